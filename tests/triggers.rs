//! Auto-replies (`on … send …`): muxcat answering like a device.

mod common;

use std::time::Duration;

use common::*;
use muxcat::core::{ErrorCode, EventKind, Outcome};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    tokio::time::timeout(WAIT, r.read_line(&mut line))
        .await
        .expect("no reply")
        .unwrap();
    line
}

#[tokio::test]
async fn a_listener_answers_like_a_device_with_captures() {
    let mut h = Harness::new();
    let (lid, port) = h.listen("listen --label modem --eol crlf 127.0.0.1:0").await;
    let t1 = h
        .ok(r"on --on modem '^AT\+GMR$' send 'AT version:2.2.0\r\nOK'")
        .await;
    assert_eq!(t1, Outcome::Trigger("trig-1".into()));
    h.ok(r"on --on modem '^GET (\w+) (?P<unit>\w+)$' send 'VALUE $1=42 ${unit}'")
        .await;

    // A client that connects after the triggers were armed is answered too.
    let mut client = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    client.get_mut().write_all(b"AT+GMR\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "AT version:2.2.0\r\n");
    assert_eq!(read_line(&mut client).await, "OK\r\n");
    client.get_mut().write_all(b"GET temp C\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "VALUE temp=42 C\r\n");
    client.get_mut().write_all(b"UNKNOWN\r\n").await.unwrap();

    // Each firing is a `sent` event that names its trigger.
    let sent = h
        .find(|e| matches!(&e.kind, EventKind::Sent { trigger: Some(t), .. } if t == "trig-2"))
        .await;
    assert_eq!(sent.listener_id.as_deref(), Some(lid.as_str()));
    let json: serde_json::Value = serde_json::from_str(&sent.to_json()).unwrap();
    assert_eq!(json["triggerId"], "trig-2");

    h.ok("triggers").await;
    let list = h.find(|e| e.name() == "triggers").await;
    let EventKind::Triggers(rows) = &list.kind else {
        unreachable!()
    };
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].fired, 1);
    assert_eq!(rows[1].fired, 1);
    assert_eq!(rows[0].on, lid);
}

#[tokio::test]
async fn once_off_and_scopes() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    let a = h.session(&format!("connect --label a {echo}")).await;
    h.session(&format!("connect --label b {echo}")).await;
    // Only session a answers "ping" (the echo server sends our ping back).
    h.ok("on --on a --once ^ping$ send pong").await;
    h.ok("send --to a ping").await;
    h.ok("waitfor --on a ^pong$").await;
    // --once: the second ping is not answered.
    h.ok("send --to a ping").await;
    h.ok("waitfor --on a ^ping$").await;
    let err = h.run("waitfor --on a --timeout 300ms ^pong$").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::WaitforTimeout);
    // Session b was never in scope.
    h.ok("send --to b ping").await;
    let err = h.run("waitfor --on b --timeout 300ms ^pong$").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::WaitforTimeout);
    // A trigger for everyone, then removed.
    h.ok("on ^hello$ send world").await;
    h.ok("send --to b hello").await;
    h.ok("waitfor --on b ^world$").await;
    h.ok("off trig-2").await;
    assert_eq!(
        h.run("off trig-2").await.unwrap_err().code,
        ErrorCode::CommandInvalid
    );
    h.ok("send --to b hello").await;
    let err = h.run("waitfor --on b --timeout 300ms ^world$").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::WaitforTimeout);
    let _ = a;
}

#[tokio::test]
async fn binary_triggers_match_bytes_and_reply_in_hex() {
    let mut h = Harness::new();
    let (_, port) = h.listen("listen --mode binary 127.0.0.1:0").await;
    // A Modbus-like request gets a fixed binary answer.
    h.ok(r"on --hex '(?-u)^\x01\x03\x00\x00' send 01 03 02 00 2a")
        .await;
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    client
        .write_all(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x01])
        .await
        .unwrap();
    let mut reply = [0u8; 5];
    tokio::time::timeout(WAIT, client.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, [0x01, 0x03, 0x02, 0x00, 0x2a]);
}

#[tokio::test]
async fn trigger_replies_are_in_the_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let (manager, events) = muxcat::core::Manager::start(muxcat::core::ManagerConfig {
        record_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    });
    let mut h = Harness {
        manager,
        events,
        seen: Vec::new(),
    };
    let (_, port) = h.listen("listen 127.0.0.1:0").await;
    h.ok("on ^status$ send ok").await;
    let mut client = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    client.get_mut().write_all(b"status\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "ok\n");
    drop(client);
    h.find(|e| e.name() == "disconnected").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains(" < status\\n\n") && text.contains(" > ok\\n\n"),
        "{text}"
    );
}

#[tokio::test]
async fn trigger_errors() {
    let mut h = Harness::new();
    assert_eq!(
        h.run("on ( send x").await.unwrap_err().code,
        ErrorCode::RegexInvalid
    );
    assert_eq!(
        h.run("on x reply y").await.unwrap_err().code,
        ErrorCode::CommandInvalid
    );
    assert_eq!(
        h.run("on --hex x send zz").await.unwrap_err().code,
        ErrorCode::PayloadInvalid
    );
    assert_eq!(
        h.run("on --on nobody x send y").await.unwrap_err().code,
        ErrorCode::SessionNotFound
    );
}

#[tokio::test]
async fn answers_a_peer_never_reads_stop_at_a_bound_and_are_reported() {
    let mut h = Harness::new();
    let (_lid, port) = h.listen("listen --label dev 127.0.0.1:0").await;
    let answer = "x".repeat(4000);
    h.ok(&format!("on --on dev ^q$ send {answer}")).await;
    h.ok("on --on dev ^r$ send done").await;
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // 10 000 questions, 40 MB of answers: more than the bound (16 MiB) and
    // what the kernel buffers, and the client reads none of them yet.
    client.write_all("q\n".repeat(10_000).as_bytes()).await.unwrap();
    let dropped = h
        .find(|e| {
            e.error
                .as_ref()
                .is_some_and(|err| err.text.contains("reply not sent"))
        })
        .await;
    let err = dropped.error.unwrap();
    assert_eq!(err.code, ErrorCode::IoError);
    assert!(
        err.text.contains("trig-1") && err.text.contains("16 MiB"),
        "{}",
        err.text
    );
    // The session goes on: once the client reads, the answers queued
    // before the bound arrive (at least as many as fit in it), and a new
    // question is answered. (Events are drained meanwhile, as a front end
    // does.)
    let reading = tokio::spawn(async move {
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        // The bound counts what each queued answer costs (its bytes and
        // a few hundred bytes of bookkeeping): ~15.8 MB of answers.
        while got < 15_000_000 {
            let n = tokio::time::timeout(WAIT, client.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("answers stopped after {got} bytes"))
                .unwrap();
            assert!(n > 0, "the session closed");
            got += n;
        }
        client.write_all(b"r\n").await.unwrap();
        let mut tail = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !tail.ends_with(b"done\n") {
            let n = tokio::time::timeout_at(deadline, client.read(&mut buf))
                .await
                .expect("the new answer")
                .unwrap();
            assert!(n > 0, "the session closed");
            got += n;
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(8000);
            tail.drain(..keep);
        }
        got
    });
    tokio::pin!(reading);
    let got = loop {
        tokio::select! {
            r = &mut reading => break r.unwrap(),
            Some(ev) = h.events.recv() => h.seen.extend(ev.expand()),
        }
    };
    assert!(
        got < 40_000_000,
        "some answers were not sent: {got} bytes arrived"
    );
    // "At most once a second", by the events' own timestamps.
    let reports: Vec<_> = h
        .seen
        .iter()
        .filter(|e| {
            e.error
                .as_ref()
                .is_some_and(|err| err.text.contains("reply not sent"))
        })
        .map(|e| e.timestamp)
        .collect();
    for pair in reports.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::TimeDelta::milliseconds(990),
            "two reports {} ms apart",
            (pair[1] - pair[0]).num_milliseconds()
        );
    }
}
