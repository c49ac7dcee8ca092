//! TCP sessions through the session manager, against peers written here.

mod common;

use std::time::Duration;

use common::*;
use muxcat::core::{ErrorCode, EventKind, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn connect_send_waitfor_disconnect() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect {echo}")).await;
    assert!(id.starts_with("sess-") && id.len() == 41, "{id}");
    h.ok("send hello").await;
    h.ok("waitfor ^hello$").await;
    h.ok("disconnect").await;
    // (A line split across reads is also reported in part as it arrives.)
    // (The echo may be reported before the writer reports its `sent`.)
    let mut order: Vec<_> = h
        .seen
        .iter()
        .filter(|e| !matches!(e.kind, muxcat::core::EventKind::DataPartial { .. }))
        .map(|e| e.name())
        .collect();
    order[2..4].sort();
    assert_eq!(
        order,
        [
            "connecting",
            "connected",
            "data",
            "sent",
            "match",
            "disconnecting",
            "disconnected"
        ]
    );
    let last = h.seen.last().unwrap().to_json();
    assert!(last.contains(r#""reason":"local""#), "{last}");
    // The session is closed now.
    let err = h.run("send again").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::SessionNotConnected);
    let ev = h.find(|e| e.is_error()).await;
    assert_eq!(ev.session_id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn connects_to_names_and_ipv6() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    h.session(&format!("connect localhost:{}", echo.port())).await;
    h.ok("send by-name").await;
    h.ok("waitfor by-name").await;
    match TcpListener::bind("[::1]:0").await {
        Ok(l) => {
            let port = l.local_addr().unwrap().port();
            tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                s.write_all(b"six\n").await.unwrap();
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
            h.session(&format!("connect [::1]:{port}")).await;
            h.ok("waitfor ^six$").await;
        }
        Err(e) => println!("skipping IPv6: cannot bind [::1]: {e}"),
    }
}

#[tokio::test]
async fn connect_errors_have_codes() {
    let mut h = Harness::new();
    // A port nobody listens on: bind one, note it, close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = h.run(&format!("connect 127.0.0.1:{port}")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ConnectRefused);
    assert!(err.text.contains(&port.to_string()), "{}", err.text);
    let ev = h.find(|e| e.is_error()).await;
    assert_eq!(error_code(&ev), Some("CONNECT_REFUSED"));
    assert!(ev.session_id.is_some(), "the failed session is named");

    assert_eq!(
        h.run("connect nope").await.unwrap_err().code,
        ErrorCode::AddressInvalid
    );
    assert_eq!(
        h.run("send x").await.unwrap_err().code,
        ErrorCode::SessionNotFound
    );
    assert_eq!(
        h.run("send --to dead1234 x").await.unwrap_err().code,
        ErrorCode::SessionNotFound
    );
    assert_eq!(
        h.run("disconnect @3").await.unwrap_err().code,
        ErrorCode::SessionNotFound
    );
    assert_eq!(
        h.run("waitfor x").await.unwrap_err().code,
        ErrorCode::SessionNotFound
    );
}

#[tokio::test]
async fn session_refs_ids_labels_prefixes_and_positions() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    let a = h.session(&format!("connect --label alpha {echo}")).await;
    let b = h.session(&format!("connect --id my-dev {echo}")).await;
    assert_eq!(b, "my-dev");
    h.ok("send --to alpha to-alpha").await;
    h.ok("waitfor --on alpha to-alpha").await;
    h.ok(&format!("send --to {} by-prefix", &a[5..13])).await;
    h.ok(&format!("waitfor --on {} by-prefix", &a[..13])).await;
    h.ok("send --to @2 second").await;
    h.ok("waitfor --on my-dev ^second$").await;
    // The default session is the last opened.
    h.ok("send default").await;
    h.ok("waitfor --on @2 default").await;
    assert_eq!(
        h.run(&format!("connect --id my-dev {echo}"))
            .await
            .unwrap_err()
            .code,
        ErrorCode::CommandInvalid
    );

    // Two sessions sharing a label are ambiguous.
    h.session(&format!("connect --label twin {echo}")).await;
    h.session(&format!("connect --label twin {echo}")).await;
    assert_eq!(
        h.run("send --to twin x").await.unwrap_err().code,
        ErrorCode::SessionAmbiguous
    );
    // Every uuid starts with one of 16 hex digits: with 3 uuid sessions
    // plus more, a one-digit prefix is too short to be a prefix at all.
    assert_eq!(
        h.run("send --to a x").await.unwrap_err().code,
        ErrorCode::SessionNotFound
    );
}

#[tokio::test]
async fn ambiguous_prefix() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    h.session(&format!("connect --id sess-abcd0001 {echo}")).await;
    h.session(&format!("connect --id sess-abcd0002 {echo}")).await;
    assert_eq!(
        h.run("send --to abcd x").await.unwrap_err().code,
        ErrorCode::SessionAmbiguous
    );
    h.ok("send --to abcd0002 x").await;
}

#[tokio::test]
async fn waitfor_sees_data_that_arrived_before_it() {
    let server = scripted_server(vec![(
        Duration::ZERO,
        b"banner one\nbanner two\nREADY\n".to_vec(),
    )])
    .await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect {server}")).await;
    // Let all of it arrive before asking.
    h.find(|e| matches!(&e.kind, EventKind::Data { payload, .. } if &payload[..] == b"READY"))
        .await;
    h.ok("waitfor ^READY$").await;
    let m = h.find(is("match", &id)).await;
    let EventKind::Match { lines, matched, .. } = m.kind else {
        unreachable!()
    };
    assert_eq!(lines, ["banner one", "banner two"]);
    assert_eq!(matched, "READY");
    // Consumed: the same line does not match twice.
    let err = h.run("waitfor --timeout 200ms ^READY$").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::WaitforTimeout);
}

#[tokio::test]
async fn waitfor_across_chunk_boundaries() {
    let ms = Duration::from_millis(30);
    let server = scripted_server(vec![
        (ms, b"tem".to_vec()),
        (ms, b"perature=4".to_vec()),
        (ms, b"2\r".to_vec()),
        (ms, b"\nnext\r\n".to_vec()),
    ])
    .await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect {server}")).await;
    h.ok(r"waitfor ^temperature=(\d+)$").await;
    h.ok("waitfor ^next$").await;
    // The CR LF split across reads is one line end: no empty line between.
    assert_eq!(h.data_of(&id), vec![b"temperature=42".to_vec(), b"next".to_vec()]);
}

#[tokio::test]
async fn binary_mode_waitfor_matches_accumulated_bytes() {
    let ms = Duration::from_millis(20);
    let server = scripted_server(vec![(ms, b"\x01\x02log".to_vec()), (ms, b"in: ".to_vec())]).await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect --mode binary {server}")).await;
    h.ok("waitfor login: $").await;
    let m = h.find(is("match", &id)).await;
    let EventKind::Match { lines, matched, .. } = m.kind else {
        unreachable!()
    };
    assert_eq!(matched, "login: ");
    assert_eq!(lines, ["\u{1}\u{2}"]);
}

#[tokio::test]
async fn waitfor_timeout_and_closed_session() {
    let server = scripted_server(vec![(Duration::ZERO, b"only this\n".to_vec())]).await;
    let mut h = Harness::new();
    h.session(&format!("connect {server}")).await;
    let err = h.run("waitfor --timeout 300ms never").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::WaitforTimeout);
    assert!(err.text.contains("never"), "{}", err.text);
    let ev = h.find(|e| e.is_error()).await;
    assert_eq!(error_code(&ev), Some("WAITFOR_TIMEOUT"));
}

#[tokio::test]
async fn remote_close_flushes_partial_line_and_waitfor_still_reads_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"first\nno newline at end").await.unwrap();
        // Half-close: we are done sending, but still read what the client sends.
        s.shutdown().await.unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
    });
    let mut h = Harness::new();
    let id = h.session(&format!("connect {addr}")).await;
    let ev = h.find(is("disconnected", &id)).await;
    assert!(ev.to_json().contains(r#""reason":"remote""#));
    assert_eq!(
        h.data_of(&id),
        vec![b"first".to_vec(), b"no newline at end".to_vec()]
    );
    // Nothing is lost: data that arrived before the close still matches.
    h.ok("waitfor ^first$").await;
    h.ok("waitfor end$").await;
    let err = h.run("waitfor --timeout 5s more").await.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::SessionNotConnected,
        "a closed session fails at once"
    );
}

#[tokio::test]
async fn inactivity_timeout_closes_the_session() {
    let server = scripted_server(vec![
        (Duration::from_millis(100), b"a\n".to_vec()),
        (Duration::from_millis(100), b"b\n".to_vec()),
    ])
    .await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect --timeout 400ms {server}")).await;
    let start = std::time::Instant::now();
    let t = h.find(is("timeout", &id)).await;
    assert_eq!(error_code(&t), Some("TIMEOUT"));
    let d = h.next(is("disconnected", &id)).await;
    assert!(d.to_json().contains(r#""reason":"timeout""#));
    // Activity (two lines, 100 ms apart) reset the timer, so it fired after them.
    assert_eq!(h.data_of(&id).len(), 2);
    assert!(start.elapsed() >= Duration::from_millis(350));
}

#[tokio::test]
async fn sends_reset_the_inactivity_timer() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    let id = h
        .session(&format!("connect --timeout 1s --mode binary {echo}"))
        .await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        h.ok("send --raw x").await;
    }
    assert!(!h.seen.iter().any(|e| e.name() == "timeout"), "{:?}", h.names());
    h.find(is("timeout", &id)).await;
}

#[tokio::test]
async fn eol_and_raw_and_hex_sends() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        buf
    });
    let mut h = Harness::new();
    h.session(&format!("connect --eol crlf {addr}")).await;
    h.ok("send AT").await;
    h.ok(r"send --raw a\tb\x00").await;
    h.ok("send --hex de ad be ef").await;
    h.ok("send").await;
    h.ok("disconnect").await;
    let got = server.await.unwrap();
    assert_eq!(got, b"AT\r\na\tb\x00\xde\xad\xbe\xef\r\n");
}

#[tokio::test]
async fn sessions_listing() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect --label lister {echo}")).await;
    h.ok("send abc").await;
    h.ok("waitfor abc").await;
    // The listing is the command's outcome too (Lua's mux.sessions reads it).
    assert!(matches!(h.ok("sessions").await, Outcome::Sessions(list) if list.len() == 1));
    let ev = h.find(|e| e.name() == "sessions").await;
    let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
    let s = &v["sessions"][0];
    assert_eq!(s["sessionId"], id.as_str());
    assert_eq!(s["label"], "lister");
    assert_eq!(s["direction"], "out");
    assert_eq!(s["state"], "live");
    assert_eq!(s["bytesOut"], 4);
    assert_eq!(s["bytesIn"], 4);
}

#[tokio::test]
async fn transfer_64_mib_arrives_intact() {
    const SIZE: usize = 64 * 1024 * 1024;
    let data = random_bytes(SIZE, 0x9E37_79B9_7F4A_7C15);
    let want = sha256(&data);
    let addr = sending_server(data).await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect --mode binary {addr}")).await;
    let mut got = Vec::with_capacity(SIZE);
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), h.events.recv())
            .await
            .expect("transfer stalled")
            .expect("channel closed");
        match &ev.kind {
            EventKind::Data { payload, .. } => {
                hasher.update(payload);
                got.push(payload.len());
            }
            EventKind::Disconnected { .. } => break,
            _ => {}
        }
        assert!(ev.session_id.as_deref() == Some(id.as_str()) || ev.session_id.is_none());
    }
    assert_eq!(got.iter().sum::<usize>(), SIZE);
    assert_eq!(hex::encode(hasher.finish().as_ref()), want);
}

#[tokio::test]
async fn flood_is_slowed_not_buffered() {
    // A peer sends as fast as it can while the front end reads nothing:
    // the session must stop reading (TCP backpressure) rather than buffer.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let block = vec![b'x'; 64 * 1024];
        while s.write_all(&block).await.is_ok() {
            counter.fetch_add(block.len(), std::sync::atomic::Ordering::Relaxed);
        }
    });
    let mut h = Harness::new();
    h.session(&format!("connect --mode binary {addr}")).await;
    // Read no events: the peer must come to a stop (checked as "no
    // progress for 500 ms", within 20 s however slow the machine).
    let start = std::time::Instant::now();
    let (stalled_at, later) = loop {
        let before = sent.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = sent.load(std::sync::atomic::Ordering::Relaxed);
        if (before == after && before > 0) || start.elapsed() > Duration::from_secs(20) {
            break (before, after);
        }
    };
    assert_eq!(
        stalled_at, later,
        "the peer kept sending: the session was still reading"
    );
    // Bound: event channel (1024 chunks of at most 64 KiB) + backlog + kernel buffers.
    assert!(stalled_at < 200 * 1024 * 1024, "{stalled_at} bytes taken in");
    // And reading again resumes the flow.
    for _ in 0..2000 {
        h.events.recv().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sent.load(std::sync::atomic::Ordering::Relaxed) > later);
    let _ = TcpStream::connect(addr).await;
}
