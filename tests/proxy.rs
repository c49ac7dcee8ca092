//! Proxy sessions: a client relayed to a target as one session, both
//! directions in its events and transcript, ends passed on as a relay
//! must (FIN half-closes, a reset resets), bytes injected and directions
//! held; and `muxcat proxy` between real peers (socat, OpenBSD nc).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use muxcat::core::EventKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server that answers `HELLO ` + what it read, half-closes, and then
/// reports what else arrived before the client's end.
async fn hello_server() -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 100];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let mut answer = b"HELLO ".to_vec();
                answer.extend_from_slice(&buf[..n]);
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
                let _ = tx.send(rest).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn a_client_is_relayed_both_ways_and_its_conversation_recorded() {
    let (server, mut rest) = hello_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new();
    let (lid, port) = h.listen(&format!("proxy --label tap 127.0.0.1:0 {server}")).await;
    let listening = h.find(|e| e.name() == "listening").await;
    assert_eq!(listening.target.as_deref(), Some(server.to_string().as_str()));
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let accepted = h.next(|e| e.name() == "accepted").await;
    let id = accepted.session_id.clone().unwrap();
    assert_eq!(accepted.listener_id.as_deref(), Some(lid.as_str()));
    let json: serde_json::Value = serde_json::from_str(&accepted.to_json()).unwrap();
    assert_eq!(json["kind"], "proxy");
    assert_eq!(json["target"], server.to_string());
    let file = dir.path().join("tap.log");
    h.ok(&format!("record {id} {}", file.display())).await;
    client.write_all(b"ping\n").await.unwrap();
    let mut answer = vec![0u8; 11];
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer, b"HELLO ping\n");
    // The server half-closed: the client sees the end, and can still send.
    let mut more = Vec::new();
    assert_eq!(client.read_to_end(&mut more).await.unwrap(), 0);
    client.write_all(b"after the server's FIN\n").await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(rest.recv().await.unwrap(), b"after the server's FIN\n");
    h.next(is("disconnected", &id)).await;
    let c2s = h.find(|e| e.name() == "data" && e.dir == Some("c2s")).await;
    assert!(matches!(&c2s.kind, EventKind::Data { payload, .. } if &payload[..] == b"ping"));
    let s2c = h.find(|e| e.name() == "sent" && e.dir == Some("s2c")).await;
    let json: serde_json::Value = serde_json::from_str(&s2c.to_json()).unwrap();
    assert_eq!(json["text"], "HELLO ping\n");
    // One file, both directions: what the client sent and what it got.
    let text = std::fs::read_to_string(&file).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.contains(" proxy 127.0.0.1:"), "{header}");
    assert!(
        header.contains(&format!("-> {server} ")) && header.contains(&format!("via=127.0.0.1:{port}")),
        "{header}"
    );
    assert_eq!(replay_raw(&file, "c2s"), b"ping\nafter the server's FIN\n");
    assert_eq!(replay_raw(&file, "s2c"), b"HELLO ping\n");
}

#[tokio::test]
async fn a_target_that_cannot_be_reached_closes_the_client_and_says_why() {
    let closed = free_port();
    let mut h = Harness::new();
    let (lid, port) = h.listen(&format!("proxy 127.0.0.1:0 127.0.0.1:{closed}")).await;
    for _ in 0..2 {
        let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut buf = Vec::new();
        // Closed at once, nothing relayed.
        assert_eq!(client.read_to_end(&mut buf).await.unwrap_or(0), 0);
        let err = h.next(|e| e.name() == "error").await;
        assert_eq!(error_code(&err), Some("CONNECT_REFUSED"));
        assert_eq!(err.listener_id.as_deref(), Some(lid.as_str()));
        let text = &err.error.as_ref().unwrap().text;
        assert!(
            text.contains(&format!("127.0.0.1:{closed}")) && text.contains("closed"),
            "{text}"
        );
    }
    assert!(!h.seen.iter().any(|e| e.name() == "accepted"));
}

#[tokio::test]
async fn a_reset_from_the_server_resets_the_client() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut s = s;
        let mut buf = [0u8; 5];
        let _ = s.read_exact(&mut buf);
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    });
    let mut h = Harness::new();
    let (_, port) = h.listen(&format!("proxy 127.0.0.1:0 {server}")).await;
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let id = h.next(|e| e.name() == "accepted").await.session_id.unwrap();
    client.write_all(b"boom\n").await.unwrap();
    let ended = h.next(is("disconnected", &id)).await;
    assert_eq!(error_code(&ended), Some("IO_ERROR"));
    let mut buf = [0u8; 16];
    let read = client.read(&mut buf).await;
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "the client must see the reset, not an end of output"
    );
}

#[tokio::test]
async fn bytes_are_injected_either_way_and_a_held_direction_waits() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let mut h = Harness::new();
    let (_, port) = h
        .listen(&format!("proxy --id tap 127.0.0.1:0 {server_addr}"))
        .await;
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let id = h.next(|e| e.name() == "accepted").await.session_id.unwrap();
    h.ok(&format!("send --to {id} --dir c2s PING")).await;
    let mut buf = [0u8; 5];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"PING\n");
    h.ok(&format!("send --to {id} --dir s2c HI")).await;
    let mut buf = [0u8; 3];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HI\n");
    // Held: the server's bytes wait (in the kernel) until released.
    h.ok(&format!("hold {id} s2c")).await;
    server.write_all(b"late\n").await.unwrap();
    let mut buf = [0u8; 5];
    let early = tokio::time::timeout(Duration::from_millis(300), client.read_exact(&mut buf)).await;
    assert!(early.is_err(), "a held direction relayed");
    h.ok(&format!("release {id} s2c")).await;
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"late\n");
    // Not a proxy: --dir c2s and hold say so.
    let echo = echo_server().await;
    let plain = h.session(&format!("connect {echo}")).await;
    let err = h
        .run(&format!("send --to {plain} --dir c2s x"))
        .await
        .unwrap_err();
    assert!(err.text.contains("not a proxy session"), "{}", err.text);
    let err = h.run(&format!("hold {plain} c2s")).await.unwrap_err();
    assert!(err.text.contains("not a proxy session"), "{}", err.text);
    assert!(
        h.run("hold tap sideways")
            .await
            .unwrap_err()
            .text
            .contains("c2s or s2c")
    );
}

#[tokio::test]
async fn tls_is_terminated_on_either_side() {
    let mut h = Harness::new();
    // The target speaks TLS (muxcat's own self-signed listener).
    let (_, tls_port) = h.listen("listen --tls --id device 127.0.0.1:0").await;
    let (_, port) = h
        .listen(&format!(
            "proxy --tls-in --tls-out --insecure 127.0.0.1:0 127.0.0.1:{tls_port}"
        ))
        .await;
    // A TLS client of the proxy (muxcat's connect, --insecure: self-signed).
    let client = h
        .session(&format!("connect --tls --insecure --id cli 127.0.0.1:{port}"))
        .await;
    h.ok(&format!("send --to {client} secret")).await;
    let relayed = h.next(|e| e.name() == "data" && e.dir == Some("c2s")).await;
    assert!(matches!(&relayed.kind, EventKind::Data { payload, .. } if &payload[..] == b"secret"));
    // It reached the TLS listener's client session in the clear.
    let at_device = h
        .find(|e| {
            e.name() == "data"
                && e.dir.is_none()
                && e.listener_id.as_ref().is_some_and(|l| l.starts_with("device"))
        })
        .await;
    assert!(matches!(&at_device.kind, EventKind::Data { payload, .. } if &payload[..] == b"secret"));
}

#[tokio::test]
async fn max_connections_closes_the_extra_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut h = Harness::new();
    let (_, port) = h
        .listen(&format!("proxy --max-connections 1 127.0.0.1:0 {server}"))
        .await;
    let _first = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    h.next(|e| e.name() == "accepted").await;
    let mut second = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let err = h.next(|e| e.name() == "error").await;
    assert_eq!(error_code(&err), Some("MAX_CONNECTIONS"));
    let mut buf = Vec::new();
    assert_eq!(second.read_to_end(&mut buf).await.unwrap_or(0), 0);
}

/// `replay --raw DIR FILE`: one direction of a transcript, decoded.
fn replay_raw(file: &std::path::Path, dir: &str) -> Vec<u8> {
    let out = Command::new(muxcat_bin())
        .args(["replay", "--raw", dir])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Ctrl-C to a `muxcat proxy`, once it has ended: what it wrote on stderr.
fn interrupt(mut proxy: std::process::Child) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &proxy.id().to_string()])
        .status();
    let _ = proxy.wait();
    let mut err = String::new();
    proxy.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    err
}

/// `muxcat proxy` between socat (an echoing server) and OpenBSD nc (a
/// client that ends its output with -N): 2 MiB arrive back intact, the
/// client's FIN reaches socat through the proxy and socat's comes back,
/// and the transcript has both streams.
#[test]
fn muxcat_proxy_between_socat_and_nc_passes_bytes_and_ends() {
    if !have("socat") || !have("nc") {
        return;
    }
    let (target, port) = (free_port(), free_port());
    let mut socat = Command::new("socat")
        .args([
            &format!("TCP-LISTEN:{target},bind=127.0.0.1,reuseaddr"),
            "EXEC:cat",
        ])
        .spawn()
        .unwrap();
    wait_port_listening(target);
    let dir = tempfile::tempdir().unwrap();
    let proxy = Command::new(muxcat_bin())
        .args(["--record"])
        .arg(dir.path())
        .args([
            "proxy",
            "-q",
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{target}"),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_port_listening(port);
    let data = random_bytes(2 << 20, 17);
    let mut nc = Command::new("nc")
        .args(["-N", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = nc.stdin.take().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&sent).unwrap();
    });
    let mut echoed = Vec::new();
    nc.stdout.take().unwrap().read_to_end(&mut echoed).unwrap();
    writer.join().unwrap();
    assert!(nc.wait().unwrap().success());
    assert_eq!(
        sha256(&echoed),
        sha256(&data),
        "{} of {} bytes",
        echoed.len(),
        data.len()
    );
    assert!(socat.wait().unwrap().success(), "socat saw its peer end");
    let err = interrupt(proxy);
    assert!(!err.contains("error"), "{err}");
    let log = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for raw in ["c2s", "s2c"] {
        assert_eq!(sha256(&replay_raw(&log, raw)), sha256(&data), "--raw {raw}");
    }
}

/// `--json`: the events go to stderr, each chunk with its direction.
#[test]
fn muxcat_proxy_json_traces_both_directions() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = server.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"pong").unwrap();
    });
    let port = free_port();
    let proxy = Command::new(muxcat_bin())
        .args([
            "--json",
            "proxy",
            &format!("127.0.0.1:{port}"),
            &target.to_string(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_port_listening(port);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    drop(client);
    std::thread::sleep(Duration::from_millis(300));
    let err = interrupt(proxy);
    let events: Vec<serde_json::Value> = err.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        events.iter().any(
            |e| e["event"] == "data" && e["dir"] == "c2s" && e["hex"] == hex::encode("ping")
                || e["text"] == "ping"
        ),
        "{err}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "sent" && e["dir"] == "s2c" && e["text"] == "pong"),
        "{err}"
    );
}

/// `on --dir s2c --rewrite`: the client gets the rewritten bytes, the
/// transcript keeps both; `--dir c2s --rewrite` changes what the server
/// gets; `on --dir s2c … send` answers the server.
#[tokio::test]
async fn triggers_rewrite_either_direction_and_answer_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new();
    let (lid, port) = h.listen(&format!("proxy 127.0.0.1:0 {server_addr}")).await;
    h.ok(&format!(
        "on --on {lid} --dir s2c --rewrite 'version=(\\d+)' 'version=9$1'"
    ))
    .await;
    h.ok(&format!("on --on {lid} --dir c2s --rewrite secret XXXXXX"))
        .await;
    h.ok(&format!("on --on {lid} --dir s2c '^PING (\\w+)' send 'PONG $1'"))
        .await;
    h.ok("triggers").await;
    let listing = h.find(|e| e.name() == "triggers").await.to_readable();
    assert!(listing.contains("(rewrites s2c to version=9$1)"), "{listing}");
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let id = h.next(|e| e.name() == "accepted").await.session_id.unwrap();
    let file = dir.path().join("rw.log");
    h.ok(&format!("record {id} {}", file.display())).await;
    server.write_all(b"version=1\n").await.unwrap();
    let mut buf = [0u8; 11];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"version=91\n");
    client.write_all(b"my secret\n").await.unwrap();
    let mut buf = [0u8; 10];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"my XXXXXX\n");
    server.write_all(b"PING abc\n").await.unwrap();
    let mut buf = [0u8; 9];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"PING abc\n");
    let mut buf = [0u8; 9];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"PONG abc\n");
    drop(client);
    drop(server);
    h.next(is("disconnected", &id)).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("> version=91\\n"), "{text}");
    assert!(
        text.contains("s2c rewritten by trig-1, the server sent: version=1\\n"),
        "{text}"
    );
    assert!(text.contains("< my secret\\n"), "{text}");
    assert!(
        text.contains("c2s rewritten by trig-2, the server got: my XXXXXX\\n"),
        "{text}"
    );
    assert!(text.contains("injected c2s PONG abc\\n"), "{text}");
}
