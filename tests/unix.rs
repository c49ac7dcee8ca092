//! Unix domain sockets as a transport: `connect unix:/path` and `listen
//! unix:/path` in scripts and pipe mode (like `ncat -U`, socat's
//! `UNIX-CONNECT`/`UNIX-LISTEN`), against socat where installed.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use muxcat::core::ErrorCode;

#[tokio::test]
async fn connect_and_listen_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev.sock");
    let mut h = Harness::new();
    let (lid, _) = h
        .listen(&format!("listen --label srv unix:{}", path.display()))
        .await;
    let listening = h
        .find(|e| e.listener_id.as_deref() == Some(lid.as_str()) && e.name() == "listening")
        .await;
    let json: serde_json::Value = serde_json::from_str(&listening.to_json()).unwrap();
    assert_eq!(json["kind"], "unix");
    assert_eq!(json["localPath"], path.display().to_string());
    // How a session frames lines, on the events that open it.
    let binary = h
        .session(&format!(
            "connect --mode binary --eol crlf unix:{}",
            path.display()
        ))
        .await;
    let connected = h.find(is("connected", &binary)).await;
    let json: serde_json::Value = serde_json::from_str(&connected.to_json()).unwrap();
    assert_eq!((&json["mode"], &json["eol"]), (&"binary".into(), &"crlf".into()));
    h.session(&format!("accept --on {lid}")).await;
    let client = h.session(&format!("connect unix:{}", path.display())).await;
    let connected = h.find(is("connected", &client)).await;
    let json: serde_json::Value = serde_json::from_str(&connected.to_json()).unwrap();
    assert_eq!(json["kind"], "unix");
    assert_eq!(json["remotePath"], path.display().to_string());
    assert_eq!(json["tls"], false);
    let server = h.session(&format!("accept --on {lid}")).await;
    let accepted = h.find(is("accepted", &server)).await;
    assert!(
        accepted.to_json().contains(r#""kind":"unix""#)
            && accepted.to_json().contains(r#""mode":"line","eol":"lf""#),
        "{}",
        accepted.to_json()
    );
    h.ok(&format!("send --to {client} ping")).await;
    h.ok(&format!("waitfor --on {server} ^ping$")).await;
    h.ok(&format!("send --to {server} pong")).await;
    h.ok(&format!("waitfor --on {client} ^pong$")).await;
    h.ok("sessions").await;
    let listing = h.find(|e| e.name() == "sessions").await.to_json();
    assert!(listing.contains(r#""kind":"unix""#), "{listing}");
    // Closing the listener removes its socket file.
    h.ok(&format!("close {lid}")).await;
    h.find(|e| e.name() == "closed").await;
    let start = Instant::now();
    while path.exists() {
        assert!(start.elapsed() < WAIT, "the socket file stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn unix_socket_errors_are_coded() {
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("taken");
    std::fs::write(&taken, b"a file of the user's").unwrap();
    let mut h = Harness::new();
    let err = h
        .run(&format!("listen unix:{}", taken.display()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BindFailed);
    assert_eq!(
        std::fs::read(&taken).unwrap(),
        b"a file of the user's",
        "never removed"
    );
    let missing = dir.path().join("nobody.sock");
    let err = h
        .run(&format!("connect unix:{}", missing.display()))
        .await
        .unwrap_err();
    assert!(
        matches!(err.code, ErrorCode::ConnectFailed | ErrorCode::ConnectRefused),
        "{err}"
    );
    let err = h
        .run(&format!("connect --tls unix:{}", missing.display()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsConfigInvalid);
    let err = h.run("connect unix:").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AddressInvalid);
}

fn wait_for_path(path: &std::path::Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pipe mode both ways, muxcat to muxcat and against socat.
#[test]
fn pipe_mode_over_a_unix_socket() {
    let data = random_bytes(1 << 20, 7);
    let dir = tempfile::tempdir().unwrap();
    let socat = Command::new("sh")
        .args(["-c", "command -v socat"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut clients = vec!["muxcat"];
    if socat {
        clients.push("socat");
    } else {
        println!("skipping the socat part: socat is not installed");
    }
    for (i, client) in clients.into_iter().enumerate() {
        let path = dir.path().join(format!("pipe{i}.sock"));
        let target = format!("unix:{}", path.display());
        let listener = Command::new(muxcat_bin())
            .args(["-q", "listen", &target])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Drained as it comes, so the listener never waits on its stdout.
        let received = std::thread::spawn(move || listener.wait_with_output().unwrap());
        wait_for_path(&path);
        let mut cmd = if client == "muxcat" {
            let mut c = Command::new(muxcat_bin());
            c.args(["-q", "connect", &target]);
            c
        } else {
            let mut c = Command::new("socat");
            c.args(["-u", "-", &format!("UNIX-CONNECT:{}", path.display())]);
            c
        };
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(&data).unwrap();
        assert!(child.wait().unwrap().success(), "{client}");
        let out = received.join().unwrap();
        assert!(out.status.success(), "{client}");
        assert_eq!(sha256(&out.stdout), sha256(&data), "{client} to muxcat");
    }
    if socat {
        // muxcat as the client of socat's UNIX-LISTEN.
        let path = dir.path().join("socat.sock");
        let mut server = Command::new("socat")
            .args(["-u", &format!("UNIX-LISTEN:{}", path.display()), "-"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut server_out = server.stdout.take().unwrap();
        let received = std::thread::spawn(move || {
            let mut out = Vec::new();
            server_out.read_to_end(&mut out).unwrap();
            out
        });
        wait_for_path(&path);
        let mut child = Command::new(muxcat_bin())
            .args(["-q", "connect", &format!("unix:{}", path.display())])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&data).unwrap();
        assert!(child.wait().unwrap().success());
        let out = received.join().unwrap();
        assert!(server.wait().unwrap().success());
        assert_eq!(sha256(&out), sha256(&data), "muxcat to socat");
    }
}
