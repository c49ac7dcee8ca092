//! Listeners: accepting clients, `accept`, the connection limit, close.

mod common;

use std::time::Duration;

use common::*;
use muxcat::core::{ErrorCode, EventKind, Outcome};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test]
async fn accept_talk_and_listener_ids() {
    let mut h = Harness::new();
    let (lid, port) = h.listen("listen --label srv 127.0.0.1:0").await;
    assert!(lid.starts_with("lstn-"), "{lid}");
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let sid = h.session("accept").await;
    let acc = h.find(is("accepted", &sid)).await;
    assert_eq!(acc.listener_id.as_deref(), Some(lid.as_str()));
    let v: serde_json::Value = serde_json::from_str(&acc.to_json()).unwrap();
    assert_eq!(v["remoteHost"], "127.0.0.1");
    assert_eq!(v["remotePort"], client.local_addr().unwrap().port());

    // `accept` made it the default session.
    h.ok("send welcome").await;
    let mut line = String::new();
    let mut reader = BufReader::new(&mut client);
    reader.read_line(&mut line).await.unwrap();
    assert_eq!(line, "welcome\n");
    client.write_all(b"hi there\r\n").await.unwrap();
    h.ok("waitfor ^hi there$").await;
    let data = h.find(is("data", &sid)).await;
    assert_eq!(
        data.listener_id.as_deref(),
        Some(lid.as_str()),
        "accepted sessions carry their listener"
    );

    h.ok("listeners").await;
    let ev = h.find(|e| e.name() == "listeners").await;
    let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
    assert_eq!(v["listeners"][0]["clients"], 1);
    assert_eq!(v["listeners"][0]["maxConnections"], 128);
    assert_eq!(v["listeners"][0]["label"], "srv");
}

#[tokio::test]
async fn accept_returns_each_client_once_and_times_out() {
    let mut h = Harness::new();
    let (_, port) = h.listen("listen 127.0.0.1:0").await;
    let _c1 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _c2 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s1 = h.session("accept").await;
    let s2 = h.session("accept").await;
    assert_ne!(s1, s2);
    let err = h.run("accept --timeout 200ms").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::WaitforTimeout);
    // A client that connects while `accept` waits is returned.
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        TcpStream::connect(("127.0.0.1", port)).await.unwrap()
    });
    let s3 = h.session("accept --timeout 5s").await;
    assert!(s3 != s1 && s3 != s2);
    drop(late);
}

#[tokio::test]
async fn max_connections_closes_the_extra_client_and_keeps_serving() {
    let mut h = Harness::new();
    let (lid, port) = h.listen("listen --max-connections 2 127.0.0.1:0").await;
    let c1 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _c2 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s1 = h.session("accept").await;
    h.session("accept").await;
    let mut c3 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let c3_addr = c3.local_addr().unwrap();
    let ev = h.find(|e| error_code(e) == Some("MAX_CONNECTIONS")).await;
    assert_eq!(ev.listener_id.as_deref(), Some(lid.as_str()));
    let text = &ev.error.as_ref().unwrap().text;
    assert!(text.contains(&c3_addr.to_string()), "{text}");
    // The extra client was closed at once.
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(WAIT, c3.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);

    // When a client leaves, the slot is free again.
    drop(c1);
    h.find(is("disconnected", &s1)).await;
    let _c4 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    h.session("accept").await;
}

#[tokio::test]
async fn close_stops_accepting_but_keeps_clients() {
    let mut h = Harness::new();
    let (lid, port) = h.listen("listen 127.0.0.1:0").await;
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let sid = h.session("accept").await;
    assert_eq!(
        h.ok(&format!("close {lid}")).await,
        Outcome::Listener(lid.clone())
    );
    h.find(|e| e.name() == "closed" && e.listener_id.as_deref() == Some(lid.as_str()))
        .await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "still accepting"
    );
    h.ok(&format!("send --to {sid} still here")).await;
    let mut buf = [0u8; 11];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still here\n");
    assert_eq!(
        h.run(&format!("close {lid}")).await.unwrap_err().code,
        ErrorCode::SessionNotConnected
    );
    assert_eq!(
        h.run("close lstn-nothing").await.unwrap_err().code,
        ErrorCode::SessionNotFound
    );
}

#[tokio::test]
async fn bind_failures_are_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut h = Harness::new();
    let err = h.run(&format!("listen 127.0.0.1:{port}")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::BindFailed);
    assert!(err.text.contains(&port.to_string()), "{}", err.text);
    let ev = h.find(|e| e.is_error()).await;
    assert!(ev.listener_id.is_some());
    // The manager carries on.
    h.listen("listen 127.0.0.1:0").await;
}

#[tokio::test]
async fn listener_sessions_take_listener_options() {
    let mut h = Harness::new();
    let (_, port) = h
        .listen("listen --mode binary --eol crlf --timeout 300ms 127.0.0.1:0")
        .await;
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let sid = h.session("accept").await;
    h.ok("send ping").await;
    // Binary mode appends no end of line; --eol applies to line mode.
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    client.write_all(b"a\nb").await.unwrap();
    h.ok("waitfor a\\nb").await;
    let ev = h.find(is("timeout", &sid)).await;
    assert_eq!(error_code(&ev), Some("TIMEOUT"));
    let data = h.data_of(&sid).concat();
    assert_eq!(data, b"a\nb");
    assert!(
        h.seen
            .iter()
            .all(|e| !matches!(e.kind, EventKind::Connected { .. }))
    );
}

/// Whether this machine has IPv6 loopback (some CI containers do not).
fn have_ipv6() -> bool {
    let ok = std::net::TcpListener::bind("[::1]:0").is_ok();
    if !ok {
        println!("skipping the IPv6 part: no ::1 here");
    }
    ok
}

/// A listen without a host takes IPv4 and IPv6 clients (as ncat does);
/// `[::]` means IPv6 only and `0.0.0.0` IPv4 only, for TCP and UDP alike.
#[tokio::test]
async fn the_default_listen_address_takes_both_families() {
    if !have_ipv6() {
        return;
    }
    let mut h = Harness::new();
    let (_, port) = h.listen("listen 0").await;
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        let sid = h.session("accept").await;
        let v: serde_json::Value =
            serde_json::from_str(&h.find(is("accepted", &sid)).await.to_json()).unwrap();
        // IPv4 clients show as IPv4, not ::ffff:127.0.0.1.
        let want = if addr.starts_with('[') { "::1" } else { "127.0.0.1" };
        assert_eq!(v["remoteHost"], want);
        h.ok("send hi").await;
        let mut got = [0u8; 3];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi\n");
    }
    // [::] is IPv6 only.
    let (_, port6) = h.listen("listen [::]:0").await;
    assert!(TcpStream::connect(("127.0.0.1", port6)).await.is_err());
    TcpStream::connect(format!("[::1]:{port6}")).await.unwrap();

    // UDP: no host takes both and answers both; [::] only IPv6.
    let sid = h.session("udp 0").await;
    let ev = h.find(is("listening", &sid)).await;
    let uport = serde_json::from_str::<serde_json::Value>(&ev.to_json()).unwrap()["localPort"]
        .as_u64()
        .unwrap() as u16;
    for (bind, to) in [
        ("127.0.0.1:0", format!("127.0.0.1:{uport}")),
        ("[::1]:0", format!("[::1]:{uport}")),
    ] {
        let sender = tokio::net::UdpSocket::bind(bind).await.unwrap();
        sender.send_to(b"ping", &to).await.unwrap();
        h.ok(&format!("waitfor --on {sid} ^ping$")).await;
        h.ok(&format!("send --to {sid} pong")).await;
        let mut buf = [0u8; 16];
        let (n, from) = tokio::time::timeout(WAIT, sender.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"pong\n");
        assert_eq!(from.port(), uport);
    }
    let sid6 = h.session("udp [::]:0").await;
    let ev = h.find(is("listening", &sid6)).await;
    let uport6 = serde_json::from_str::<serde_json::Value>(&ev.to_json()).unwrap()["localPort"]
        .as_u64()
        .unwrap() as u16;
    let v4 = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    v4.send_to(b"v4", ("127.0.0.1", uport6)).await.unwrap();
    let v6 = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
    v6.send_to(b"v6", format!("[::1]:{uport6}")).await.unwrap();
    h.ok(&format!("waitfor --on {sid6} ^v6$")).await;
    assert!(
        h.data_of(&sid6).iter().all(|d| d != b"v4"),
        "[::] took an IPv4 datagram"
    );
}
