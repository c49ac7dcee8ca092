//! `muxcat export --pcapng`: recorded sessions as captures, read back by a
//! real tshark (skipped, with the reason printed, where it is missing):
//! Modbus/TCP dissected as Modbus, HTTP as HTTP, the reassembled TCP
//! streams equal to `replay --raw`, serial transcripts as a user link
//! type, several transcripts merged in time order.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn have_tshark() -> bool {
    let ok = Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipping: tshark is not installed (apt-get install tshark)");
    }
    ok
}

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark").args(args).output().expect("tshark");
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a script with `--record DIR`; the transcripts written.
fn record(script: &str, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut child = Command::new(muxcat_bin())
        .args(["run", "--record"])
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "the script failed: {script}");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn export(inputs: &[std::path::PathBuf], out: &std::path::Path) {
    let status = Command::new(muxcat_bin())
        .args(["-q", "export", "--pcapng"])
        .arg(out)
        .args(inputs)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A Modbus/TCP server: register reads answered with 0x002a.
async fn modbus_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = [0u8; 12];
                while s.read_exact(&mut req).await.is_ok() {
                    let answer = [req[0], req[1], 0, 0, 0, 5, req[6], 3, 2, 0, 0x2a];
                    if s.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn modbus_tcp_is_dissected_and_streams_equal_replay() {
    if !have_tshark() {
        return;
    }
    let port = modbus_server().await;
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    std::fs::create_dir(&rec).unwrap();
    let script = format!(
        "connect --mode binary 127.0.0.1:{port}\nsend --hex 00 01 00 00 00 06 01 03 00 00 00 01\nwaitfor --timeout 5s (?s-u)^.{{11}}\nsend --hex 00 02 00 00 00 06 01 03 00 01 00 01\nwaitfor --timeout 5s (?s-u)^.{{11}}\n"
    );
    let files = tokio::task::spawn_blocking(move || record(&script, &rec))
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    let out = dir.path().join("out.pcapng");
    export(&files, &out);
    let out = out.to_str().unwrap();
    let decode = format!("tcp.port=={port},mbtcp");
    let fields = tshark(&[
        "-r",
        out,
        "-d",
        &decode,
        "-Y",
        "mbtcp",
        "-T",
        "fields",
        "-e",
        "mbtcp.trans_id",
        "-e",
        "modbus.func_code",
    ]);
    let rows: Vec<&str> = fields.lines().collect();
    assert_eq!(rows, ["1\t3", "1\t3", "2\t3", "2\t3"], "{fields}");
    // The reassembled streams are the transcript's, both ways.
    let follow = tshark(&["-r", out, "-q", "-z", "follow,tcp,raw,0"]);
    let (mut client, mut server) = (String::new(), String::new());
    for line in follow.lines() {
        let hexish = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_hexdigit());
        if let Some(rest) = line.strip_prefix('\t') {
            if hexish(rest) {
                server.push_str(rest);
            }
        } else if hexish(line) {
            client.push_str(line);
        }
    }
    let raw = |which: &str| {
        let out = Command::new(muxcat_bin())
            .args(["replay", "--raw", which])
            .arg(&files[0])
            .output()
            .unwrap();
        hex::encode(out.stdout)
    };
    assert_eq!(client, raw("out"), "muxcat's bytes (the client)");
    assert_eq!(server, raw("in"), "the server's bytes");
}

#[tokio::test]
async fn http_is_dissected_and_accepted_sessions_keep_their_sides() {
    if !have_tshark() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    std::fs::create_dir(&rec).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // muxcat is the HTTP server here (an accepted session), a client asks.
    let client = tokio::spawn(async move {
        for _ in 0..200 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                s.write_all(b"GET /status HTTP/1.0\r\nHost: device\r\n\r\n")
                    .await
                    .unwrap();
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer).await;
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Vec::new()
    });
    let script = format!(
        "listen 127.0.0.1:{port}\naccept --timeout 5s\nwaitfor --timeout 5s ^$\nsend --raw HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok\ndisconnect\n"
    );
    let files = tokio::task::spawn_blocking(move || record(&script, &rec))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&client.await.unwrap()).ends_with("ok"));
    let out = dir.path().join("http.pcapng");
    export(&files, &out);
    let out = out.to_str().unwrap();
    let requests = tshark(&[
        "-r",
        out,
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-e",
        "ip.dst",
        "-e",
        "tcp.dstport",
        "-e",
        "http.request.uri",
    ]);
    assert_eq!(requests.trim(), format!("127.0.0.1\t{port}\t/status"));
    let responses = tshark(&[
        "-r",
        out,
        "-Y",
        "http.response",
        "-T",
        "fields",
        "-e",
        "http.response.code",
        "-e",
        "tcp.srcport",
    ]);
    assert_eq!(responses.trim(), format!("200\t{port}"));
}

#[tokio::test]
async fn serial_transcripts_and_several_files_merge_in_time() {
    if !have_tshark() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    std::fs::write(
        &a,
        "# muxcat transcript v1 sess-a serial /dev/ttyUSB0 -> /dev/ttyUSB0 mode=line port=115200,8N1 dir=out\n\
         2026-12-01T10:00:00.000001Z > AT\\r\n\
         2026-12-01T10:00:00.000300Z < OK\\r\\n\n\
         2026-12-01T10:00:00.000500Z * modem DTR off\n",
    )
    .unwrap();
    std::fs::write(
        &b,
        "# muxcat transcript v1 sess-b udp 127.0.0.1:5000 -> 127.0.0.1:6000 mode=binary dir=udp\n\
         2026-12-01T10:00:00.000200Z > ping\n\
         2026-12-01T10:00:00.000400Z * from 127.0.0.1:7000\n\
         2026-12-01T10:00:00.000400Z < pong\n",
    )
    .unwrap();
    let out = dir.path().join("merged.pcapng");
    export(&[a, b], &out);
    let out = out.to_str().unwrap();
    let rows = tshark(&[
        "-r",
        out,
        "-T",
        "fields",
        "-e",
        "frame.interface_id",
        "-e",
        "frame.len",
        "-e",
        "udp.srcport",
        "-e",
        "frame.interface_name",
    ]);
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(
        rows,
        [
            "0\t3\t\tsess-a",
            "1\t46\t5000\tsess-b",
            "0\t4\t\tsess-a",
            "1\t46\t7000\tsess-b"
        ],
        "time order across files; UDP senders as noted"
    );
}
