//! UDP sessions: unicast, reply-to-last-sender, broadcast and multicast on loopback.

mod common;

use std::net::UdpSocket as StdUdp;
use std::time::Duration;

use common::*;
use muxcat::core::{ErrorCode, EventKind};
use tokio::net::UdpSocket;

fn local_port(ev: &muxcat::core::Event) -> u16 {
    match &ev.kind {
        EventKind::Listening { local, .. } => local.ip().map_or(0, |a| a.port()),
        _ => panic!("not a listening event"),
    }
}

#[tokio::test]
async fn datagrams_carry_their_sender_and_replies_go_back() {
    let mut h = Harness::new();
    let id = h.session("udp --label u 127.0.0.1:0").await;
    let port = local_port(&h.find(is("listening", &id)).await);
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();

    // Nobody has sent yet and there is no --to: nowhere to send.
    let err = h.run("send too early").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UdpSendFailed);

    peer.send_to(b"hello\n", ("127.0.0.1", port)).await.unwrap();
    peer.send_to(b"\xff\x00bin", ("127.0.0.1", port)).await.unwrap();
    h.ok("waitfor ^hello$").await;
    let data = h.find(is("data", &id)).await;
    let v: serde_json::Value = serde_json::from_str(&data.to_json()).unwrap();
    assert_eq!(v["text"], "hello");
    assert_eq!(v["bytes"], 6);
    assert_eq!(v["remoteHost"], "127.0.0.1");
    assert_eq!(v["remotePort"], peer_addr.port());
    let bin = h
        .find(|e| e.name() == "data" && e.to_json().contains(r#""hex":"ff0062696e""#))
        .await;
    assert_eq!(bin.session_id.as_deref(), Some(id.as_str()));

    // Each datagram is one event: no line splitting across datagrams.
    h.ok("send reply").await;
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"reply\n");
    assert_eq!(from.port(), port);
}

#[tokio::test]
async fn two_udp_sessions_talk_with_to() {
    let mut h = Harness::new();
    let a = h.session("udp --mode binary 127.0.0.1:0").await;
    let port_a = local_port(&h.find(is("listening", &a)).await);
    let b = h
        .session(&format!("udp --to 127.0.0.1:{port_a} 127.0.0.1:0"))
        .await;
    h.ok(&format!("send --to {b} --hex 01 02 03")).await;
    h.ok(&format!("waitfor --on {a} \\x01\\x02\\x03")).await;
    h.ok(&format!("send --to {a} --raw pong")).await;
    h.ok(&format!("waitfor --on {b} ^pong$")).await;
    h.ok("sessions").await;
    let list = h.find(|e| e.name() == "sessions").await.to_json();
    assert!(list.contains(r#""direction":"udp""#), "{list}");
}

#[tokio::test]
async fn bind_conflict_and_reuse() {
    let mut h = Harness::new();
    let taken = StdUdp::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = h.run(&format!("udp 127.0.0.1:{port}")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::BindFailed);
    // Two muxcat sockets may share a port with --reuse.
    let a = h.session("udp --reuse 127.0.0.1:0").await;
    let port = local_port(&h.find(is("listening", &a)).await);
    h.session(&format!("udp --reuse 127.0.0.1:{port}")).await;
}

#[tokio::test]
async fn broadcast_on_loopback() {
    let mut h = Harness::new();
    let rx = h.session("udp --reuse 0.0.0.0:0").await;
    let port = local_port(&h.find(is("listening", &rx)).await);
    // Without --broadcast the kernel refuses to send to a broadcast address.
    h.session(&format!(
        "udp --label nob --to 127.255.255.255:{port} 127.0.0.1:0"
    ))
    .await;
    let err = h.run("send --to nob x").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UdpSendFailed);
    h.session(&format!(
        "udp --label tx --broadcast --to 127.255.255.255:{port} 0.0.0.0:0"
    ))
    .await;
    if let Err(e) = h.run("send --to tx to everyone").await {
        println!("skipping broadcast receive: the kernel refused the send: {e}");
        return;
    }
    match h
        .run(&format!("waitfor --on {rx} --timeout 2s ^to everyone$"))
        .await
    {
        Ok(_) => {}
        Err(e) => println!("skipping broadcast receive: not delivered on this kernel's loopback: {e}"),
    }
}

#[tokio::test]
async fn multicast_on_loopback() {
    let group = "239.255.77.1";
    let mut h = Harness::new();
    let rx = match h
        .run(&format!(
            "udp --reuse --multicast {group} --iface 127.0.0.1 0.0.0.0:0"
        ))
        .await
    {
        Ok(muxcat::core::Outcome::Session(id)) => id,
        Ok(other) => panic!("{other:?}"),
        Err(e) => {
            assert_eq!(e.code, ErrorCode::MulticastFailed, "{e}");
            println!("skipping multicast: the kernel refused to join on loopback: {e}");
            return;
        }
    };
    let port = local_port(&h.find(is("listening", &rx)).await);
    h.session(&format!(
        "udp --label tx --iface 127.0.0.1 --ttl 1 --to {group}:{port} 127.0.0.1:0"
    ))
    .await;
    if let Err(e) = h.run("send --to tx to the group").await {
        println!("skipping multicast: the kernel refused the send: {e}");
        return;
    }
    match h
        .run(&format!("waitfor --on {rx} --timeout 2s ^to the group$"))
        .await
    {
        Ok(_) => {}
        Err(e) => println!("skipping multicast receive: not delivered on this kernel's loopback: {e}"),
    }
}

#[tokio::test]
async fn multicast_errors() {
    let mut h = Harness::new();
    let err = h.run("udp --multicast 10.0.0.1 0").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::MulticastFailed);
    assert!(err.text.contains("not a multicast"), "{}", err.text);
    let err = h.run("udp --multicast ff02::1 127.0.0.1:0").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::MulticastFailed);
}

#[tokio::test]
async fn udp_inactivity_timeout() {
    let mut h = Harness::new();
    let id = h.session("udp --timeout 300ms 127.0.0.1:0").await;
    let start = std::time::Instant::now();
    h.find(is("timeout", &id)).await;
    h.find(is("disconnected", &id)).await;
    assert!(start.elapsed() >= Duration::from_millis(250));
}

/// The port of a listener's `listening` event.
async fn listener_port(h: &mut Harness, id: &str) -> u16 {
    let ev = h
        .find(|e| e.name() == "listening" && e.listener_id.as_deref() == Some(id))
        .await;
    local_port(&ev)
}

#[tokio::test]
async fn per_peer_sessions_like_a_listener_for_datagrams() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new();
    let lid = match h
        .ok("udp --per-peer --label sensors --timeout 400ms 127.0.0.1:0")
        .await
    {
        muxcat::core::Outcome::Listener(id) => id,
        other => panic!("{other:?}"),
    };
    assert!(lid.starts_with("lstn-"), "{lid}");
    let port = listener_port(&mut h, &lid).await;
    let json = h.find(|e| e.name() == "listening").await.to_json();
    assert!(
        json.contains(r#""udp":true"#) && json.contains(r#""maxConnections":128"#),
        "{json}"
    );
    h.ok("on --on sensors ^ping$ send pong").await;

    // Three senders: three sessions, each with its own data.
    let mut peers = Vec::new();
    for _ in 0..3 {
        peers.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    let mut ids = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        p.send_to(format!("hello from {i}\n").as_bytes(), ("127.0.0.1", port))
            .await
            .unwrap();
        let id = match h.ok(&format!("accept --on {lid}")).await {
            muxcat::core::Outcome::Session(id) => id,
            other => panic!("{other:?}"),
        };
        let accepted = h.find(is("accepted", &id)).await;
        let EventKind::Accepted { remote, .. } = accepted.kind else {
            unreachable!()
        };
        assert_eq!(remote, p.local_addr().unwrap().into());
        assert_eq!(accepted.listener_id.as_deref(), Some(lid.as_str()));
        h.ok(&format!(
            "record {id} {}",
            dir.path().join(format!("{i}.log")).display()
        ))
        .await;
        ids.push(id);
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(h.data_of(id), vec![format!("hello from {i}").into_bytes()]);
    }
    // A second datagram from a known sender goes to its session, and
    // `send` answers that sender only.
    peers[1].send_to(b"again\n", ("127.0.0.1", port)).await.unwrap();
    h.ok(&format!("waitfor --on {} ^again$", ids[1])).await;
    h.ok(&format!("send --to {} just-you", ids[1])).await;
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, peers[1].recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from.port()), (&b"just-you\n"[..], port));
    // The listener's trigger answers every peer.
    peers[2].send_to(b"ping\n", ("127.0.0.1", port)).await.unwrap();
    let (n, _) = tokio::time::timeout(WAIT, peers[2].recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"pong\n");
    assert!(
        tokio::time::timeout(Duration::from_millis(100), peers[0].recv_from(&mut buf))
            .await
            .is_err(),
        "peer 0 got nothing"
    );
    h.ok("listeners").await;
    let listed = h.find(|e| e.name() == "listeners").await.to_json();
    assert!(
        listed.contains(r#""clients":3"#) && listed.contains(r#""udp":true"#),
        "{listed}"
    );

    // Idle sessions expire; a sender that comes back gets a new session.
    for id in &ids {
        h.find(is("timeout", id)).await;
        h.find(is("disconnected", id)).await;
    }
    let log = std::fs::read_to_string(dir.path().join("1.log")).unwrap();
    assert!(log.starts_with("# muxcat transcript v3 sess-"), "{log}");
    assert!(
        log.contains(" udp 127.0.0.1:") && log.contains("< again\\n") && log.contains("> just-you\\n"),
        "{log}"
    );
    peers[0].send_to(b"back\n", ("127.0.0.1", port)).await.unwrap();
    let again = h.next(|e| e.name() == "accepted").await;
    assert!(!ids.contains(again.session_id.as_ref().unwrap()));

    // Closing the listener ends its sessions: they share its socket.
    h.ok(&format!("close {lid}")).await;
    h.find(is("disconnected", again.session_id.as_deref().unwrap()))
        .await;
    h.find(|e| e.name() == "closed" && e.listener_id.as_deref() == Some(lid.as_str()))
        .await;
}

#[tokio::test]
async fn per_peer_limit_drops_extra_senders_and_says_so() {
    let mut h = Harness::new();
    let lid = match h.ok("udp --per-peer --max-connections 1 127.0.0.1:0").await {
        muxcat::core::Outcome::Listener(id) => id,
        other => panic!("{other:?}"),
    };
    let port = listener_port(&mut h, &lid).await;
    let first = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let second = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    first.send_to(b"one\n", ("127.0.0.1", port)).await.unwrap();
    h.ok("accept").await;
    for _ in 0..50 {
        second.send_to(b"two\n", ("127.0.0.1", port)).await.unwrap();
    }
    let err = h.find(|e| error_code(e) == Some("MAX_CONNECTIONS")).await;
    let text = &err.error.as_ref().unwrap().text;
    assert!(text.contains(&second.local_addr().unwrap().to_string()), "{text}");
    // The first sender is still served; the flood was one report, not 50.
    first.send_to(b"still\n", ("127.0.0.1", port)).await.unwrap();
    h.ok("waitfor ^still$").await;
    let reports = h
        .seen
        .iter()
        .filter(|e| error_code(e) == Some("MAX_CONNECTIONS"))
        .count();
    assert!(reports < 5, "{reports} reports");
    // Options that make no sense together are refused.
    for bad in [
        "udp --per-peer --to 127.0.0.1:9 0",
        "udp --max-connections 3 0",
        "udp --connect 0",
    ] {
        assert_eq!(
            h.run(bad).await.unwrap_err().code,
            ErrorCode::CommandInvalid,
            "{bad}"
        );
    }
}

/// `--allow`/`--deny` on a per-peer listener (ncat -u -l --allow): only
/// allowed senders become sessions; the others' datagrams are dropped and
/// reported (ACCESS_DENIED naming the sender, once a second at most).
#[tokio::test]
async fn per_peer_access_lists_choose_the_senders() {
    let mut h = Harness::new();
    let lid = match h
        .ok("udp --per-peer --allow 127.0.0.0/8 --deny 127.0.0.1 127.0.0.1:0")
        .await
    {
        muxcat::core::Outcome::Listener(id) => id,
        other => panic!("{other:?}"),
    };
    let port = listener_port(&mut h, &lid).await;
    let denied = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let allowed = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    for _ in 0..20 {
        denied.send_to(b"let me in\n", ("127.0.0.1", port)).await.unwrap();
    }
    let err = h.find(|e| error_code(e) == Some("ACCESS_DENIED")).await;
    let text = &err.error.as_ref().unwrap().text;
    assert!(text.contains(&denied.local_addr().unwrap().to_string()), "{text}");
    allowed.send_to(b"hello\n", ("127.0.0.1", port)).await.unwrap();
    let sid = match h.ok("accept").await {
        muxcat::core::Outcome::Session(id) => id,
        other => panic!("{other:?}"),
    };
    h.ok("waitfor ^hello$").await;
    let accepted: Vec<_> = h.seen.iter().filter(|e| e.name() == "accepted").collect();
    assert_eq!(accepted.len(), 1, "only the allowed sender is a session");
    assert_eq!(accepted[0].session_id.as_deref(), Some(sid.as_str()));
    let reports = h
        .seen
        .iter()
        .filter(|e| error_code(e) == Some("ACCESS_DENIED"))
        .count();
    assert!(reports < 5, "{reports} reports");
    // Without --per-peer there is no sender to choose.
    let e = h.run("udp --allow 127.0.0.1 0").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CommandInvalid);
    assert!(e.text.contains("--per-peer"), "{}", e.text);
}

#[tokio::test]
async fn icmp_port_unreachable_is_reported_on_a_connected_socket() {
    // A port nobody listens on: the kernel answers with ICMP port unreachable.
    let closed = StdUdp::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let mut h = Harness::new();
    // Unconnected (the default): the send goes out, the kernel keeps the
    // ICMP error to itself, and the session carries on.
    let loose = h.session(&format!("udp --to {dead} 127.0.0.1:0")).await;
    h.ok("send into the void").await;
    h.ok("send again").await;
    // Connected: the ICMP error comes back as UDP_SEND_FAILED and the
    // session stays open for the next try.
    let tight = h.session(&format!("udp --connect --to {dead} 127.0.0.1:0")).await;
    let mut reported = None;
    for _ in 0..20 {
        let _ = h.run(&format!("send --to {tight} knock")).await;
        if let Some(ev) = h.seen.iter().find(|e| {
            error_code(e) == Some("UDP_SEND_FAILED") && e.session_id.as_deref() == Some(tight.as_str())
        }) {
            reported = Some(ev.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ev = reported.expect("an ICMP port unreachable on loopback");
    assert!(ev.error.unwrap().text.to_lowercase().contains("refused"));
    for id in [&loose, &tight] {
        assert!(
            !h.names().iter().any(|n| n.starts_with("disconnected")),
            "{id}: {:#?}",
            h.names()
        );
    }
}

#[tokio::test]
async fn oversized_and_maximum_datagrams() {
    let mut h = Harness::new();
    let id = h.session("udp --mode binary 127.0.0.1:0").await;
    let port = local_port(&h.find(is("listening", &id)).await);
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The largest UDP payload over IPv4 arrives whole, as one event.
    let max = random_bytes(65_507, 7);
    peer.send_to(&max, ("127.0.0.1", port)).await.unwrap();
    let ev = h.next(is("data", &id)).await;
    let EventKind::Data { payload, count, .. } = &ev.kind else {
        unreachable!()
    };
    assert_eq!((*count, &payload[..]), (65_507, &max[..]));
    // One byte more is refused by the sender's kernel; sending one from
    // muxcat is an UDP_SEND_FAILED error, and the session goes on.
    assert!(
        peer.send_to(&vec![0u8; 65_508], ("127.0.0.1", port))
            .await
            .is_err()
    );
    let big = "ab".repeat(32_760); // 65 520 bytes after decoding
    let err = h.run(&format!("send --to {id} --raw {big}")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UdpSendFailed, "{err}");
    h.ok(&format!("send --to {id} --raw after")).await;
    let mut buf = [0u8; 16];
    let (n, _) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"after");
    peer.send_to(b"small", ("127.0.0.1", port)).await.unwrap();
    h.ok(&format!("waitfor --on {id} small")).await;
}
