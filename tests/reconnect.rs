//! `connect --reconnect`: a device that reboots (closes, refuses for a
//! while, comes back on the same port) is reconnected to, under the same
//! session, with the preamble sent again and the gap in the transcript.

mod common;

use std::time::Duration;

use common::*;
use muxcat::core::{ErrorCode, EventKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A device on `port`: each boot accepts one client, reads its first line
/// (reported on `heard`), answers `hello N`, waits for `bye` from the test,
/// then "reboots": closes, refuses connections for `down`, listens again.
async fn rebooting_device(
    boots: usize,
    down: Duration,
) -> (u16, mpsc::UnboundedReceiver<String>, mpsc::UnboundedSender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (heard_tx, heard) = mpsc::unbounded_channel();
    let (bye, mut bye_rx) = mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        let mut listener = Some(listener);
        for boot in 1..=boots {
            let l = match listener.take() {
                Some(l) => l,
                None => TcpListener::bind(addr).await.unwrap(),
            };
            let (stream, _) = l.accept().await.unwrap();
            drop(l);
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            BufReader::new(r).read_line(&mut line).await.unwrap();
            heard_tx.send(line).unwrap();
            w.write_all(format!("hello {boot}\n").as_bytes()).await.unwrap();
            if bye_rx.recv().await.is_none() {
                return;
            }
            drop(w);
            tokio::time::sleep(down).await;
        }
    });
    (addr.port(), heard, bye)
}

#[tokio::test]
async fn reconnects_to_a_rebooting_device_under_the_same_session() {
    let dir = tempfile::tempdir().unwrap();
    let (port, mut heard, bye) = rebooting_device(2, Duration::from_millis(300)).await;
    let mut h = Harness::new();
    let id = h
        .session(&format!(
            "connect --reconnect --backoff 50ms..200ms --preamble HELLO 127.0.0.1:{port}"
        ))
        .await;
    let file = dir.path().join("device.log");
    h.ok(&format!("record {}", file.display())).await;
    h.ok("waitfor --timeout 5s ^hello\\ 1$").await;
    assert_eq!(heard.recv().await.unwrap(), "HELLO\n");

    // Reboot: the session stays, sends fail while it is down.
    bye.send(()).unwrap();
    let ev = h.next(is("reconnecting", &id)).await;
    let EventKind::Reconnecting {
        attempt,
        delay,
        cause,
    } = &ev.kind
    else {
        unreachable!()
    };
    assert_eq!(*attempt, 1);
    assert!(
        *delay >= Duration::from_millis(25) && *delay <= Duration::from_millis(50),
        "{delay:?}"
    );
    assert!(cause.contains("closed"), "{cause}");
    let json = ev.to_json();
    assert!(
        json.contains(r#""event":"reconnecting""#) && json.contains(r#""delayMs":"#),
        "{json}"
    );
    let err = h.run(&format!("send --to {id} lost")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::SessionNotConnected);
    assert!(err.text.contains("reconnecting"), "{}", err.text);

    // While the device refuses, attempts fail and back off; then it is back.
    h.next(is("connected", &id)).await;
    let attempts: Vec<u32> = h
        .seen
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Reconnecting { attempt, .. } => Some(attempt),
            _ => None,
        })
        .collect();
    assert!(attempts.len() >= 2, "the device refused for 300ms: {attempts:?}");
    assert!(attempts.windows(2).all(|w| w[1] == w[0] + 1), "{attempts:?}");
    assert!(
        h.seen
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Reconnecting { cause, .. } if cause.contains("refused"))),
        "{:#?}",
        h.names()
    );
    assert_eq!(
        heard.recv().await.unwrap(),
        "HELLO\n",
        "the preamble is sent again"
    );
    h.ok(&format!("waitfor --on {id} --timeout 5s ^hello\\ 2$")).await;
    h.ok(&format!("send --to {id} still-here")).await;

    // No disconnected event in between: it is one session throughout.
    assert!(
        !h.names().iter().any(|n| n.starts_with("disconnected")),
        "{:#?}",
        h.names()
    );
    h.ok(&format!("disconnect {id}")).await;
    let ev = h.find(is("disconnected", &id)).await;
    assert!(ev.to_json().contains(r#""reason":"local""#));

    let transcript = std::fs::read_to_string(&file).unwrap();
    let lost = transcript.find("* connection lost").expect(&transcript);
    let back = transcript.find("* reconnected 127.0.0.1:").expect(&transcript);
    let hello2 = transcript.find("< hello 2").expect(&transcript);
    assert!(lost < back && back < hello2, "{transcript}");
    assert!(
        transcript[back..].contains("> HELLO\\n"),
        "the preamble again: {transcript}"
    );
    assert!(transcript.contains("> still-here\\n"), "{transcript}");
}

#[tokio::test]
async fn disconnect_stops_reconnecting_and_delays_grow_to_the_cap() {
    // A device that answers once, then is gone for good.
    let (port, _heard, bye) = rebooting_device(1, Duration::ZERO).await;
    let mut h = Harness::new();
    let id = h
        .session(&format!(
            "connect --reconnect --backoff 20ms..80ms --preamble hi 127.0.0.1:{port}"
        ))
        .await;
    h.ok("waitfor --timeout 5s ^hello").await;
    bye.send(()).unwrap();
    // Attempt 4 would wait 160ms uncapped: the cap (80ms, minus jitter) holds.
    let ev = h
        .next(|e| matches!(e.kind, EventKind::Reconnecting { attempt: 5, .. }))
        .await;
    let EventKind::Reconnecting { delay, cause, .. } = &ev.kind else {
        unreachable!()
    };
    assert!(
        *delay >= Duration::from_millis(40) && *delay <= Duration::from_millis(80),
        "{delay:?}"
    );
    assert!(cause.contains("refused"), "{cause}");
    h.ok("sessions").await;
    let state = h.find(|e| e.name() == "sessions").await.to_json();
    assert!(state.contains(r#""state":"reconnecting""#), "{state}");

    h.ok(&format!("disconnect {id}")).await;
    h.find(is("disconnected", &id)).await;
    let seen = h.seen.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(ev) = h.events.try_recv() {
        h.seen.extend(ev.expand());
    }
    assert_eq!(
        h.seen.len(),
        seen,
        "events after disconnect: {:#?}",
        &h.names()[seen..]
    );
}

#[tokio::test]
async fn reconnect_options_are_checked() {
    let mut h = Harness::new();
    for (line, code) in [
        ("connect --backoff 1s..2s 127.0.0.1:9", ErrorCode::CommandInvalid),
        (
            "connect --reconnect --backoff 0ms..1s 127.0.0.1:9",
            ErrorCode::CommandInvalid,
        ),
        (
            "connect --reconnect --backoff 5s..1s 127.0.0.1:9",
            ErrorCode::CommandInvalid,
        ),
        (
            "connect --reconnect --backoff soon 127.0.0.1:9",
            ErrorCode::CommandInvalid,
        ),
        (r"connect --preamble bad\q 127.0.0.1:9", ErrorCode::PayloadInvalid),
    ] {
        let err = h.run(line).await.unwrap_err();
        assert_eq!(err.code, code, "{line}: {err}");
    }
    // The first connect must succeed: --reconnect is for drops after it.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = h
        .run(&format!("connect --reconnect 127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ConnectRefused);
}

#[tokio::test]
async fn a_tls_session_reconnects_and_shakes_hands_again() {
    let mut h = Harness::new();
    let (lid, port) = h.listen("listen --tls 127.0.0.1:0").await;
    let id = h
        .session(&format!(
            "connect --tls --insecure --reconnect --backoff 20ms..50ms --preamble hi 127.0.0.1:{port}"
        ))
        .await;
    let first = accept_on(&mut h, &lid).await;
    h.ok(&format!("waitfor --on {first} ^hi$")).await;
    // The server ends the session: the client dials and shakes hands again.
    h.ok(&format!("disconnect {first}")).await;
    h.next(is("reconnecting", &id)).await;
    let back = h.next(is("connected", &id)).await;
    assert!(back.to_json().contains(r#""tls":true"#), "{}", back.to_json());
    let second = accept_on(&mut h, &lid).await;
    assert_ne!(first, second);
    h.ok(&format!("waitfor --on {second} ^hi$")).await;
    h.ok(&format!("send --to {second} welcome back")).await;
    h.ok(&format!("waitfor --on {id} ^welcome\\ back$")).await;
}

async fn accept_on(h: &mut Harness, listener: &str) -> String {
    match h.ok(&format!("accept --on {listener}")).await {
        muxcat::core::Outcome::Session(s) => s,
        other => panic!("{other:?}"),
    }
}
