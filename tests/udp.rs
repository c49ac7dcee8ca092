//! UDP sessions: unicast, reply-to-last-sender, broadcast and multicast on loopback.

mod common;

use std::net::UdpSocket as StdUdp;
use std::time::Duration;

use common::*;
use muxcat::core::{ErrorCode, EventKind};
use tokio::net::UdpSocket;

fn local_port(ev: &muxcat::core::Event) -> u16 {
    match &ev.kind {
        EventKind::Listening { local, .. } => local.port(),
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
