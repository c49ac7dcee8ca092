//! A console for devices (issue 16): prompts without a line end, waits
//! that look only at what is new, against stand-in devices on loopback.

mod common;

use std::time::{Duration, Instant};

use common::*;
use muxcat::core::{EventKind, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A stand-in modem: `login: ` (no line end), then after a name,
/// `Password: `, then `$ ` prompts.
async fn login_device() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let _ = s.write_all(b"Welcome\r\nlogin: ").await;
        let mut buf = [0u8; 256];
        let mut step = 0;
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            step += 1;
            let answer: &[u8] = match step {
                1 => b"\r\nPassword: ",
                _ => b"\r\n$ ",
            };
            if s.write_all(answer).await.is_err() {
                break;
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_prompt_shows_at_once_and_waitfor_matches_it_when_quiet() {
    let addr = login_device().await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect {addr}")).await;
    // The prompt arrives as a partial `data` event, before any line end.
    let partial = h
        .find(|e| {
            e.session_id.as_deref() == Some(id.as_str()) && matches!(e.kind, EventKind::DataPartial { .. })
        })
        .await;
    let json: serde_json::Value = serde_json::from_str(&partial.to_json()).unwrap();
    assert_eq!(
        (&json["event"], &json["text"], &json["partial"]),
        (&"data".into(), &"login: ".into(), &true.into())
    );
    assert!(
        partial.to_readable().contains("<… login: "),
        "{}",
        partial.to_readable()
    );
    // Matched by default once the session is quiet.
    let started = Instant::now();
    h.ok("waitfor --timeout 5s ^login: $").await;
    assert!(started.elapsed() < Duration::from_secs(4));
    h.ok("send admin").await;
    // `--partial`: at once.
    h.ok("waitfor --partial --timeout 5s Password:").await;
    h.ok("send secret").await;
    h.ok("waitfor --timeout 5s ^\\$ $").await;
    // The counters are the bytes received, each counted once.
    h.ok("send x").await;
    h.ok("waitfor --timeout 5s ^\\$ $").await;
    let counted: usize = h
        .seen
        .iter()
        .filter(|e| e.session_id.as_deref() == Some(id.as_str()))
        .map(|e| match &e.kind {
            EventKind::Data { count, .. } | EventKind::DataPartial { count, .. } => *count,
            _ => 0,
        })
        .sum();
    let expected = "Welcome\r\nlogin: \r\nPassword: \r\n$ \r\n$ ".len();
    assert_eq!(counted, expected);
}

#[tokio::test]
async fn one_text_never_matches_twice_when_its_line_end_comes_later() {
    let addr = scripted_server(vec![
        (Duration::ZERO, b"Password: ".to_vec()),
        (Duration::from_millis(400), b"\r\nready\r\n".to_vec()),
    ])
    .await;
    let mut h = Harness::new();
    h.session(&format!("connect {addr}")).await;
    h.ok("waitfor --partial --timeout 5s Password").await;
    // The line completes later: it is not matched a second time.
    let again = h.run("waitfor --timeout 1s Password").await;
    assert!(again.is_err(), "{again:?}");
    h.ok("waitfor --timeout 5s ^ready$").await;
}

#[tokio::test]
async fn a_line_still_arriving_does_not_match_before_it_goes_quiet() {
    // `OK` then, 50 ms later, the rest of the line: not quiet yet, so the
    // wait matches the whole line, not its start.
    let addr = scripted_server(vec![
        (Duration::ZERO, b"OK".to_vec()),
        (Duration::from_millis(50), b" 42\n".to_vec()),
    ])
    .await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect {addr}")).await;
    h.ok("waitfor --timeout 5s ^OK").await;
    let matched = h.find(is("match", &id)).await;
    let EventKind::Match { matched, .. } = matched.kind else {
        unreachable!()
    };
    assert_eq!(matched, "OK 42");
}

#[tokio::test]
async fn fresh_waits_ignore_what_came_before() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    h.session(&format!("connect {echo}")).await;
    h.ok("send OK").await;
    h.ok("waitfor --timeout 5s ^OK$").await;
    h.ok("send OK").await;
    // Let the stale OK arrive before the wait starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stale = h.run("waitfor --fresh --timeout 500ms ^OK$").await;
    assert!(stale.is_err(), "matched an OK from before: {stale:?}");
    // Without --fresh the no-loss rule holds.
    h.ok("send OK").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(
        h.ok("waitfor --timeout 5s ^OK$").await,
        Outcome::Matched { .. }
    ));
}

#[tokio::test]
async fn connect_wait_keeps_trying_until_the_device_is_up() {
    let port = free_port();
    let mut h = Harness::new();
    // The device comes up 2 s after muxcat starts trying.
    let device = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"U-Boot ready\n").await.unwrap();
        let mut sink = [0u8; 64];
        let _ = s.read(&mut sink).await;
    });
    let id = h
        .session(&format!(
            "connect --reconnect --backoff 100ms..300ms --wait --label board 127.0.0.1:{port}"
        ))
        .await;
    let tries = h
        .seen
        .iter()
        .filter(|e| e.session_id.as_deref() == Some(id.as_str()) && e.name() == "reconnecting")
        .count();
    assert!(tries >= 1, "it retried the first connect: {:?}", h.names());
    h.ok("waitfor --timeout 5s ^U-Boot").await;
    h.ok("disconnect").await;
    device.abort();
}

#[tokio::test]
async fn disconnect_stops_a_connect_that_waits() {
    let port = free_port();
    let mut h = Harness::new();
    let manager = h.manager.clone();
    let waiting = tokio::spawn(async move {
        let cmd = match muxcat::lang::parse_line(&format!(
            "connect --reconnect --backoff 100ms --wait --label late 127.0.0.1:{port}"
        )) {
            Ok(Some(muxcat::lang::Parsed::Core(cmd))) => cmd,
            other => panic!("{other:?}"),
        };
        manager.execute(cmd).await
    });
    h.next(|e| e.name() == "reconnecting").await;
    h.ok("disconnect late").await;
    let result = waiting.await.unwrap();
    let err = result.unwrap_err();
    assert!(err.text.contains("stopped waiting"), "{err}");
}

#[tokio::test]
async fn repeat_runs_a_send_every_interval_count_times() {
    let echo = echo_server().await;
    let out = muxcat_run(&format!(
        "connect {echo}\nrepeat --every 100ms --count 3 send tick\nwaitfor ^tick$\nwaitfor ^tick$\nwaitfor ^tick$\ndisconnect\n"
    ))
    .await;
    assert_eq!(out.0, 0, "{}", out.1);
    assert_eq!(out.1.matches("< tick").count(), 3, "{}", out.1);
    // One session command a time.
    for bad in [
        "repeat source x.mux",
        "repeat --count 0 send x",
        "repeat repeat send x",
    ] {
        let err = muxcat::lang::parse_line(bad).unwrap_err();
        assert_eq!(err.code, muxcat::core::ErrorCode::CommandInvalid, "{bad}");
    }
}

/// `muxcat run` on a script: exit status and stdout.
async fn muxcat_run(script: &str) -> (i32, String) {
    let mut child = tokio::process::Command::new(muxcat_bin())
        .arg("run")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn line_maps_are_on_the_opening_event_and_the_transcript_header() {
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.log");
    let mut h = Harness::new();
    let id = h
        .session(&format!("connect --imap igncr --omap onlcr,delbs {echo}"))
        .await;
    let connected = h.find(is("connected", &id)).await;
    let json: serde_json::Value = serde_json::from_str(&connected.to_json()).unwrap();
    assert_eq!(
        (&json["imap"], &json["omap"]),
        (&"igncr".into(), &"onlcr,delbs".into())
    );
    h.ok(&format!("record {}", file.display())).await;
    // `send` is exact (maps are for typing): the transcript has raw bytes.
    h.ok("send --raw a\\rb\\n").await;
    h.ok("waitfor ^b$").await;
    h.ok("disconnect").await;
    let text = std::fs::read_to_string(&file).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.ends_with("mode=line dir=out imap=igncr omap=onlcr,delbs"),
        "{header}"
    );
    assert!(text.contains("> a\\rb\\n"), "{text}");
    let err = muxcat::lang::parse_line("connect --imap bogus 127.0.0.1:1").unwrap_err();
    assert!(err.text.contains("\"bogus\" is not an input map"), "{err}");
}
