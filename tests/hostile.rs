//! Hostile and broken peers: floods, endless lines, every byte value,
//! slowloris, resets, vanishing peers — memory stays bounded, nothing the
//! contract keeps is lost, and the other sessions keep working.

mod common;

use std::time::{Duration, Instant};

use common::*;
use muxcat::core::{ErrorCode, EventKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn a_100_mib_line_without_newline_arrives_in_64k_pieces() {
    const SIZE: usize = 100 * 1024 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let block = vec![b'y'; 1 << 20];
        for _ in 0..SIZE / block.len() {
            s.write_all(&block).await.unwrap();
        }
        s.write_all(b"\nafter\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    let mut h = Harness::new();
    let id = h.session(&format!("connect {addr}")).await;
    let mut pieces = 0usize;
    let mut total = 0usize;
    let mut biggest = 0usize;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), h.events.recv())
            .await
            .expect("stalled")
            .expect("closed");
        let mut done = false;
        for ev in ev.expand() {
            if let EventKind::Data { payload, .. } = &ev.kind {
                if &payload[..] == b"after" {
                    done = true;
                } else {
                    pieces += 1;
                    total += payload.len();
                    biggest = biggest.max(payload.len());
                }
            }
        }
        if done {
            break;
        }
    }
    assert_eq!(total, SIZE, "every byte of the long line was delivered");
    assert_eq!(biggest, 64 * 1024, "no piece is longer than the cap");
    assert_eq!(pieces, SIZE / (64 * 1024));
    // The session still frames lines afterwards.
    h.ok(&format!("waitfor --on {id} ^after$")).await;
}

#[tokio::test]
async fn every_byte_value_arrives_and_json_stays_valid() {
    let all: Vec<u8> = (0..=255u8).collect();
    let addr = sending_server(all.clone()).await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect --mode binary {addr}")).await;
    h.find(is("disconnected", &id)).await;
    assert_eq!(h.data_of(&id).concat(), all);
    for ev in &h.seen {
        let json = ev.to_json();
        serde_json::from_str::<serde_json::Value>(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let readable = ev.to_readable();
        assert!(
            !readable.chars().any(|c| c.is_control() && c != '\n'),
            "{readable:?}"
        );
    }
}

#[tokio::test]
async fn a_flood_into_one_session_does_not_stop_the_others() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flood = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let block = vec![b'z'; 64 * 1024];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) && s.write_all(&block).await.is_ok() {}
    });
    let echo = echo_server().await;
    let mut h = Harness::new();
    let flooded = h
        .session(&format!("connect --label flood --mode binary {flood}"))
        .await;
    h.session(&format!("connect --label quiet {echo}")).await;
    for i in 0..20 {
        h.ok(&format!("send --to quiet ping {i}")).await;
        h.ok(&format!("waitfor --on quiet '^ping {i}$'")).await;
    }
    // The flood was read all along (in bounded memory: see the
    // backpressure test in tcp.rs) while the quiet session answered.
    assert!(!h.data_of(&flooded).is_empty());
    h.ok("disconnect flood").await;
}

#[tokio::test]
async fn slowloris_is_cut_by_the_inactivity_timeout_only_when_set() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                for b in b"slow and steady\n" {
                    if s.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Then silence, with the connection open.
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    let mut h = Harness::new();
    // One byte every 100 ms keeps a 700 ms inactivity timeout from firing...
    let patient = h.session(&format!("connect --timeout 700ms {addr}")).await;
    h.ok(&format!(
        "waitfor --on {patient} --timeout 5s '^slow and steady$'"
    ))
    .await;
    // ...and once the peer goes quiet, the timeout closes the session.
    let ev = h.find(is("timeout", &patient)).await;
    assert_eq!(error_code(&ev), Some("TIMEOUT"));
    // Without a timeout the session simply waits.
    let other = h.session(&format!("connect {addr}")).await;
    h.ok(&format!("waitfor --on {other} --timeout 5s steady")).await;
    assert!(
        !h.seen
            .iter()
            .any(|e| e.name() == "timeout" && e.session_id.as_deref() == Some(other.as_str()))
    );
}

#[tokio::test]
async fn a_reset_mid_stream_is_an_error_disconnect_and_data_before_it_is_kept() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"partial report\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // SO_LINGER 0: close sends RST instead of FIN.
        let std = s.into_std().unwrap();
        let sock = socket2::Socket::from(std);
        sock.set_linger(Some(Duration::ZERO)).unwrap();
        drop(sock);
    });
    let mut h = Harness::new();
    let id = h.session(&format!("connect {addr}")).await;
    let ev = h.find(is("disconnected", &id)).await;
    let json = ev.to_json();
    assert!(
        json.contains(r#""reason":"error""#) && json.contains("IO_ERROR"),
        "{json}"
    );
    h.ok(&format!("waitfor --on {id} '^partial report$'")).await;
    let err = h.run(&format!("send --to {id} x")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::SessionNotConnected);
}

#[tokio::test]
async fn a_peer_that_vanishes_is_caught_by_the_timeout() {
    // The peer accepts and then never answers nor closes (as if unplugged).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keep = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let mut h = Harness::new();
    let id = h.session(&format!("connect --timeout 400ms {addr}")).await;
    h.ok("send are you there").await;
    let ev = h.find(is("disconnected", &id)).await;
    assert!(ev.to_json().contains(r#""reason":"timeout""#));
    keep.abort();
}

#[tokio::test]
async fn bad_input_is_an_error_never_a_panic() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    let cases: &[(&str, ErrorCode)] = &[
        ("connect", ErrorCode::CommandInvalid),
        ("connect 127.0.0.1:99999", ErrorCode::AddressInvalid),
        ("connect 127.0.0.1:-1", ErrorCode::AddressInvalid),
        ("connect bad host:80", ErrorCode::CommandInvalid),
        ("connect 'bad host:80'", ErrorCode::AddressInvalid),
        ("connect --timeout 5q 127.0.0.1:1", ErrorCode::CommandInvalid),
        ("connect --mode sideways 127.0.0.1:1", ErrorCode::CommandInvalid),
        ("connect --eol lfcr 127.0.0.1:1", ErrorCode::CommandInvalid),
        ("listen --max-connections many 0", ErrorCode::CommandInvalid),
        ("listen --max-connections -1 0", ErrorCode::CommandInvalid),
        ("listen 70000", ErrorCode::AddressInvalid),
        ("udp --ttl 9999999999 0", ErrorCode::CommandInvalid),
        ("udp --multicast notanip 0", ErrorCode::CommandInvalid),
        ("udp --to nowhere 0", ErrorCode::AddressInvalid),
        ("send --hex 0", ErrorCode::PayloadInvalid),
        ("send --hex gg", ErrorCode::PayloadInvalid),
        ("send \\x", ErrorCode::PayloadInvalid),
        ("send \\xZZ", ErrorCode::PayloadInvalid),
        ("waitfor", ErrorCode::CommandInvalid),
        ("waitfor [", ErrorCode::RegexInvalid),
        ("waitfor --timeout x y", ErrorCode::CommandInvalid),
        ("accept --timeout", ErrorCode::CommandInvalid),
        ("sleep forever", ErrorCode::CommandInvalid),
        ("view", ErrorCode::CommandInvalid),
        ("record", ErrorCode::CommandInvalid),
        ("disconnect a b", ErrorCode::CommandInvalid),
        ("\"unterminated", ErrorCode::CommandInvalid),
        ("\u{0}\u{1}\u{2}", ErrorCode::CommandInvalid),
        ("send --to @0 x", ErrorCode::SessionNotFound),
        ("send --to @x x", ErrorCode::SessionNotFound),
        ("disconnect nosuchlabel", ErrorCode::SessionNotFound),
        ("accept", ErrorCode::SessionNotFound),
        ("close", ErrorCode::SessionNotFound),
    ];
    for (line, code) in cases {
        match h.run(line).await {
            Err(e) => assert_eq!(e.code, *code, "{line:?}: {e}"),
            Ok(o) => panic!("{line:?} succeeded: {o:?}"),
        }
    }
    // After all that, the manager still works.
    let id = h.session(&format!("connect {echo}")).await;
    h.ok("send still alive").await;
    h.ok("waitfor still alive").await;
    h.ok("disconnect").await;
    for line in ["send x", "disconnect", &format!("record {id} off"), "shutdown"] {
        if let Err(e) = h.run(line).await {
            assert_eq!(e.code, ErrorCode::SessionNotConnected, "{line}: {e}");
        }
    }
}

#[tokio::test]
async fn ten_thousand_connect_disconnect_cycles_leave_nothing_behind() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    let fds = || std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    // Warm up (runtime threads, lazily opened files).
    for _ in 0..20 {
        h.session(&format!("connect {echo}")).await;
        h.ok("disconnect").await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (fds_before, tasks_before) = (fds(), tasks());
    for i in 0..10_000 {
        h.session(&format!("connect {echo}")).await;
        h.ok("disconnect").await;
        if i % 1000 == 0 {
            h.seen.clear();
        }
    }
    // The echo server's side closes asynchronously: wait (bounded) for it.
    let settled = || fds() <= fds_before + 4 && tasks() <= tasks_before + 4;
    for _ in 0..100 {
        if settled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (fds_after, tasks_after) = (fds(), tasks());
    assert!(
        fds_after <= fds_before + 4,
        "fds grew from {fds_before} to {fds_after}"
    );
    assert!(
        tasks_after <= tasks_before + 4,
        "live tasks grew from {tasks_before} to {tasks_after}"
    );
    // Closed sessions are kept for listing, but only about the most recent
    // 1000 (pruned every 256 new sessions).
    h.ok("sessions").await;
    let list = h.seen.iter().rev().find(|e| e.name() == "sessions").unwrap();
    let EventKind::Sessions(rows) = &list.kind else {
        unreachable!()
    };
    assert!(rows.len() <= 1000 + 256 + 1, "{} sessions kept", rows.len());
}

#[tokio::test]
async fn closed_sessions_keep_their_backlogs_within_one_bound_in_all() {
    // 24 peers each send ~1 MiB of lines, then END, and close: 24 MiB of
    // backlogs would be kept; closed sessions keep 16 MiB in all.
    let mut payload = Vec::new();
    while payload.len() < 900 * 1024 {
        payload.extend_from_slice(b"some line of device output\n");
    }
    payload.extend_from_slice(b"END\n");
    let mut h = Harness::new();
    let mut ids = Vec::new();
    for _ in 0..24 {
        let addr = sending_server(payload.clone()).await;
        let id = h.session(&format!("connect {addr}")).await;
        h.find(is("disconnected", &id)).await;
        ids.push(id);
    }
    // The newest closed session still answers a late waitfor...
    let last = ids.last().unwrap().clone();
    h.ok(&format!("waitfor --on {last} ^END$")).await;
    // ...the oldest gave its backlog up, and says so.
    let err = h
        .run(&format!("waitfor --on {} ^END$", ids[0]))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SessionNotConnected);
    assert!(err.text.contains("dropped from memory"), "{}", err.text);
}
