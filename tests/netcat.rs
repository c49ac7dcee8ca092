//! netcat's one-way modes and ends, beside the tools they mirror (ncat,
//! OpenBSD nc) where installed: the same bytes on the wire and the same
//! exit status. `-C`, `--send-only`, `--recv-only`, `--quit-after` (nc -q),
//! `-w`, `-i`, `-N`.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, have, muxcat_bin};

/// Runs a client with `args` and `input` on stdin against a server that
/// reads everything and keeps the connection open `hold` after the
/// client's end; what the server got, the exit status, and how long the
/// client ran.
fn client_run(program: &str, args: &[String], input: &[u8], hold: Duration) -> (Vec<u8>, i32, Duration) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let got = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        std::thread::sleep(hold);
        buf
    });
    let start = Instant::now();
    let mut child = client(program, args, port)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    let took = start.elapsed();
    (got.join().unwrap(), code, took)
}

/// A client tool (`muxcat` or a peer) with `args` and then the target
/// as that tool takes it (`HOST:PORT`, or `HOST PORT`).
fn client(tool: &str, args: &[String], port: u16) -> Command {
    let mut cmd = Command::new(if tool == "muxcat" {
        muxcat_bin().display().to_string()
    } else {
        tool.to_string()
    });
    cmd.args(args);
    if tool == "muxcat" {
        cmd.arg(format!("127.0.0.1:{port}"));
    } else {
        cmd.args(["127.0.0.1".to_string(), port.to_string()]);
    }
    cmd
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `-C --send-only`: LF becomes CRLF (a CRLF stays one), the run ends
/// with stdin although the server keeps the connection open; as ncat.
#[test]
fn crlf_and_send_only_as_ncat() {
    let input = b"GET / HTTP/1.0\n\nalready\r\n";
    let mut tools = vec![("muxcat", words(&["-q", "connect", "-C", "--send-only"]))];
    if have("ncat") {
        tools.push(("ncat", words(&["-C", "--send-only"])));
    }
    let mut seen = Vec::new();
    for (tool, args) in tools {
        let (got, code, took) = client_run(tool, &args, input, Duration::from_secs(3));
        assert_eq!(code, 0, "{tool}");
        assert!(
            took < Duration::from_secs(3),
            "{tool} waited for the server end: {took:?}"
        );
        seen.push(got);
    }
    assert_eq!(seen[0], b"GET / HTTP/1.0\r\n\r\nalready\r\n");
    if let Some(ncat) = seen.get(1) {
        assert_eq!(&seen[0], ncat);
    }
}

/// `--quit-after 1s` (OpenBSD nc's -q): the run ends that long after
/// stdin, though the server keeps the connection open. (Debian's nc -q
/// waits for the server's end here, so it is not compared.)
#[test]
fn quit_after_stdin_ends() {
    let args = words(&["-q", "connect", "--quit-after", "1s"]);
    let (got, code, took) = client_run("muxcat", &args, b"bye\n", Duration::from_secs(4));
    assert_eq!((got.as_slice(), code), (&b"bye\n"[..], 0));
    assert!(took < Duration::from_secs(4), "ran {took:?}");
}

/// `-w 1` (nc) and `-i 1s` (ncat): an idle connection ends, status 0,
/// while stdin stays open and quiet.
#[test]
fn w_and_i_end_an_idle_connection() {
    let mut tools = vec![
        ("muxcat", words(&["-q", "connect", "-w", "1"])),
        ("muxcat", words(&["-q", "connect", "-i", "1s"])),
    ];
    if have("nc") {
        tools.push(("nc", words(&["-w", "1"])));
    }
    for (tool, args) in tools {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        // Quiet until the client goes (or 10 s).
        let hold = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 16];
            let _ = s.read(&mut buf);
        });
        let start = Instant::now();
        let mut child = client(tool, &args, port)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // stdin stays open and quiet: only the timeout can end it.
        let stdin = child.stdin.take();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                panic!("{tool} {args:?} did not time out");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(stdin);
        assert_eq!(status.code(), Some(0), "{tool} {args:?}");
        hold.join().unwrap();
    }
}

/// `--recv-only`: stdin is not read (it may be a terminal or hold data
/// meant for someone else), received bytes reach stdout, the run ends
/// with the peer.
#[test]
fn recv_only_leaves_stdin_alone() {
    let port = free_port();
    let mut child = Command::new(muxcat_bin())
        .args(["-q", "listen", "--recv-only", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Something on stdin that must not be sent.
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"not for the peer\n")
        .unwrap();
    let mut s = loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    s.write_all(b"to stdout\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    assert!(back.is_empty(), "stdin was sent: {back:?}");
    drop(s);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"to stdout\n");
    assert!(out.status.success());
}

/// A client from 127.0.0.2 (bound there before connecting).
fn connect_from(source: &str, port: u16) -> std::io::Result<std::net::TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(
        &format!("{source}:0")
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )?;
    socket.connect(
        &format!("127.0.0.1:{port}")
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )?;
    Ok(socket.into())
}

/// `--allow` / `--deny` / `--allowfile` (ncat's): a client the lists keep
/// out is closed at once and reported with its address (ACCESS_DENIED);
/// the others are served; a bad entry fails the listen naming it.
#[tokio::test]
async fn access_lists_keep_clients_out() {
    use common::{Harness, error_code};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("allow.txt");
    std::fs::write(&file, "# the lab\n127.0.0.0/8\n").unwrap();
    let mut h = Harness::new();
    let (lid, port) = h
        .listen(&format!(
            "listen --allowfile {} --deny 127.0.0.1 127.0.0.1:0",
            file.display()
        ))
        .await;
    let denied = tokio::task::spawn_blocking(move || {
        let mut s = connect_from("127.0.0.1", port).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 8];
        s.read(&mut buf)
    });
    let err = h.next(|e| e.name() == "error").await;
    assert_eq!(error_code(&err), Some("ACCESS_DENIED"));
    assert_eq!(err.listener_id.as_deref(), Some(lid.as_str()));
    assert!(
        err.error.as_ref().unwrap().text.contains("127.0.0.1:"),
        "{:?}",
        err.error
    );
    assert!(matches!(denied.await.unwrap(), Ok(0) | Err(_)), "closed at once");
    let allowed = tokio::task::spawn_blocking(move || connect_from("127.0.0.2", port).unwrap());
    let accepted = h.next(|e| e.name() == "accepted").await;
    assert!(
        accepted.to_readable().contains("127.0.0.2"),
        "{}",
        accepted.to_readable()
    );
    drop(allowed.await.unwrap());
    let bad = h.run("listen --allow 10.0.0.0/40 127.0.0.1:0").await.unwrap_err();
    assert!(bad.text.contains("10.0.0.0/40"), "{}", bad.text);
}

/// `-s ADDR -p PORT`: the connection comes from there, as nc's does.
#[test]
fn source_address_and_port_as_nc() {
    let mut tools = vec!["muxcat"];
    if have("nc") {
        tools.push("nc");
    }
    for tool in tools {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let from = free_port();
        let mut args = vec![
            "-s".to_string(),
            "127.0.0.2".into(),
            "-p".into(),
            from.to_string(),
        ];
        if tool == "muxcat" {
            args.insert(0, "-q".into());
            args.insert(1, "connect".into());
        }
        let mut child = client(tool, &args, port)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (s, peer) = server.accept().unwrap();
        assert_eq!(peer.to_string(), format!("127.0.0.2:{from}"), "{tool}");
        drop(s);
        let _ = child.wait();
    }
}

/// `udp -s ADDR -p PORT` (nc -u -s -p): the datagram comes from there.
#[test]
fn udp_source_address_and_port_as_nc() {
    let mut tools = vec!["muxcat"];
    if have("nc") {
        tools.push("nc");
    }
    for tool in tools {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let port = server.local_addr().unwrap().port();
        let from = {
            let probe = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let (source, source_port) = ("127.0.0.2".to_string(), from.to_string());
        let mut cmd = if tool == "muxcat" {
            let mut c = Command::new(muxcat_bin());
            c.args(["-q", "udp", "-s", &source, "-p", &source_port, "--to"])
                .arg(format!("127.0.0.1:{port}"));
            c
        } else {
            let mut c = Command::new("nc");
            c.args([
                "-u",
                "-s",
                &source,
                "-p",
                &source_port,
                "127.0.0.1",
                &port.to_string(),
            ]);
            c
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"ping\n").unwrap();
        let mut buf = [0u8; 64];
        let (n, peer) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping\n", "{tool}");
        assert_eq!(peer.to_string(), format!("127.0.0.2:{from}"), "{tool}");
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
    }
    // Both ways of naming the bind address at once is a mistake.
    let out = Command::new(muxcat_bin())
        .args(["udp", "-s", "127.0.0.1", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}

/// `-t/--telnet` (ncat -t): a telnetd's option requests are refused (each
/// once), the server gets the same answers from muxcat as from ncat; and
/// muxcat's output has no commands, a doubled 0xFF one (ncat's has them).
#[test]
fn telnet_negotiation_is_refused_and_stripped_as_ncat() {
    const IAC: u8 = 255;
    let greeting: Vec<u8> = [
        &[IAC, 253, 1, IAC, 251, 3, IAC, 253, 24][..],
        b"login: \xff\xff",
        &[IAC, 253, 1],
    ]
    .concat();
    let mut tools = vec![("muxcat", words(&["-q", "connect", "-t"]))];
    if have("ncat") {
        tools.push(("ncat", words(&["-t"])));
    }
    let mut answers = Vec::new();
    for (tool, args) in tools {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let greet = greeting.clone();
        let telnetd = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.write_all(&greet).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < 9 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        });
        let mut child = client(tool, &args, port)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let got = telnetd.join().unwrap();
        let stdin = child.stdin.take();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        // ncat passes the commands through to stdout; muxcat takes them out.
        if tool == "muxcat" {
            assert_eq!(out.stdout, b"login: \xff");
        }
        answers.push(got);
    }
    // WONT ECHO, DONT SGA, WONT TERMINAL-TYPE: once each.
    assert_eq!(answers[0], [IAC, 252, 1, IAC, 254, 3, IAC, 252, 24]);
    if let Some(ncat) = answers.get(1) {
        assert_eq!(&answers[0], ncat, "muxcat and ncat answered differently");
    }
}

/// `--progress` draws only on a terminal: with stderr a pipe (a script,
/// a log) it writes nothing there.
#[test]
fn progress_stays_off_a_pipe() {
    let (got, code, _) = client_run(
        "muxcat",
        &words(&["connect", "--progress", "-q"]),
        b"data\n",
        Duration::ZERO,
    );
    assert_eq!((got.as_slice(), code), (&b"data\n"[..], 0));
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    });
    let out = Command::new(muxcat_bin())
        .args(["connect", "--progress", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(" out · "),
        "{:?}",
        out.stderr
    );
}
