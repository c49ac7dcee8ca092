//! Port checks (`check`, like `nc -z`) and `wait-for` a port to open, in
//! scripts and as `muxcat check` / `muxcat wait-for` with their exit status.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use muxcat::core::EventKind;

#[tokio::test]
async fn check_reports_each_port_and_fails_on_a_closed_one() {
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = open.local_addr().unwrap().port();
    let closed = free_port();
    let mut h = Harness::new();
    h.ok(&format!("check 127.0.0.1:{port}")).await;
    let err = h
        .run(&format!("check --timeout 1s 127.0.0.1:{port} 127.0.0.1:{closed}"))
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "CONNECT_REFUSED");
    assert!(err.text.starts_with("1 of 2 closed"), "{}", err.text);
    let checks: Vec<(u16, bool)> = h
        .seen
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Check { target, open, .. } => Some((target.port, *open)),
            _ => None,
        })
        .collect();
    assert_eq!(checks, [(port, true), (port, true), (closed, false)]);
    let json = h
        .seen
        .iter()
        .rev()
        .find(|e| e.name() == "check")
        .unwrap()
        .to_json();
    assert!(
        json.contains("\"open\":false") && json.contains("\"reason\":\"refused\""),
        "{json}"
    );
    assert!(
        h.run("check 127.0.0.1:1-2000").await.is_err(),
        "more than 1024 ports"
    );
    drop(open);
}

#[tokio::test]
async fn wait_for_returns_once_the_port_opens() {
    let port = free_port();
    let opener = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(l);
    });
    let mut h = Harness::new();
    let started = std::time::Instant::now();
    h.ok(&format!("wait-for --timeout 10s 127.0.0.1:{port}")).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let err = h
        .run(&format!("wait-for --timeout 300ms 127.0.0.1:{}", free_port()))
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "WAITFOR_TIMEOUT");
    opener.abort();
}

#[test]
fn the_subcommands_exit_like_nc_z() {
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let status = |args: &[&str]| Command::new(muxcat_bin()).args(args).output().unwrap();
    let out = status(&["check", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("check 127.0.0.1:{port} open")));
    let closed = free_port();
    assert_eq!(
        status(&["check", &format!("127.0.0.1:{closed}")]).status.code(),
        Some(1)
    );
    assert_eq!(
        status(&["wait-for", &format!("127.0.0.1:{port}")]).status.code(),
        Some(0)
    );
    assert_eq!(
        status(&["wait-for", "--timeout", "200ms", &format!("127.0.0.1:{closed}")])
            .status
            .code(),
        Some(1)
    );
}
