//! Faults of the machine: running out of file descriptors, a full disk.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use muxcat::core::ErrorCode;

/// With a tiny fd limit, clients past it make `accept` fail: that is an
/// `IO_ERROR` naming the cause, and muxcat accepts again once fds free up.
#[test]
fn fd_exhaustion_is_reported_and_recovered_from() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("bash")
        .args([
            "-c",
            &format!(
                "ulimit -n 40 && exec {} --json run --stay",
                muxcat_bin().display()
            ),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(
        child.stdin.as_mut().unwrap(),
        "listen --max-connections 1000 127.0.0.1:{port}"
    )
    .unwrap();
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let wait_for = |pred: &dyn Fn(&serde_json::Value) -> bool| -> serde_json::Value {
        loop {
            let v = rx.recv_timeout(Duration::from_secs(10)).expect("event expected");
            if pred(&v) {
                return v;
            }
        }
    };
    wait_for(&|v| v["event"] == "listening");
    let clients: Vec<TcpStream> = (0..60)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let err = wait_for(&|v| v["errorCode"] == "IO_ERROR");
    let text = err["errorText"].as_str().unwrap();
    assert!(
        text.contains("accept") && text.to_lowercase().contains("open files"),
        "{text}"
    );
    // Free the fds: muxcat takes the clients still queued, then new ones.
    drop(clients);
    std::thread::sleep(Duration::from_millis(500));
    while rx.try_recv().is_ok() {}
    let _late = TcpStream::connect(("127.0.0.1", port)).unwrap();
    wait_for(&|v| v["event"] == "accepted");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// A transcript that cannot be written (the disk is full) is a
/// `RECORD_FAILED` event; the session goes on.
#[tokio::test]
async fn full_disk_is_record_failed_and_the_session_goes_on() {
    if !std::path::Path::new("/dev/full").exists() {
        println!("skipping: no /dev/full on this system");
        return;
    }
    let echo = echo_server().await;
    let mut h = Harness::new();
    let id = h.session(&format!("connect {echo}")).await;
    // The header fits in the write buffer... the flush does not.
    let started = h.run("record /dev/full").await;
    if let Err(e) = &started {
        assert_eq!(e.code, ErrorCode::RecordFailed);
    }
    h.ok("send still talking").await;
    h.ok("waitfor still talking").await;
    if started.is_ok() {
        let ev = h.find(|e| error_code(e) == Some("RECORD_FAILED")).await;
        assert_eq!(ev.session_id.as_deref(), Some(id.as_str()));
        assert!(ev.error.unwrap().text.contains("/dev/full"));
    }
}
