//! Pipe mode against itself and against socat, ncat and OpenBSD nc.
//! Peers that are not installed are skipped with a printed reason
//! (`.ci/run` installs them).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, have, muxcat_bin, random_bytes, sha256};

fn muxcat(args: &[&str]) -> Command {
    let mut c = Command::new(muxcat_bin());
    c.args(args);
    c
}

/// Waits until something accepts TCP connections on the port.
fn wait_listening(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a muxcat listener whose diagnostics tell us when it listens
/// (probing it would use up its one client).
fn muxcat_listener(args: &[&str]) -> Child {
    muxcat_listener_logged(args).0
}

/// The same, keeping its diagnostics (stderr) for the test to watch.
fn muxcat_listener_logged(args: &[&str]) -> (Child, std::sync::Arc<std::sync::Mutex<String>>) {
    let mut child = muxcat(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "listener exited");
    }
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    (child, log)
}

/// Waits (bounded) until `check` holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `client` with `input` on stdin; returns its stdout and status.
fn run_with_input(mut client: Command, input: Vec<u8>) -> (Vec<u8>, i32) {
    let mut child = client
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (out.stdout, out.status.code().unwrap_or(-1))
}

#[test]
fn one_gib_between_muxcat_connect_and_listen() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut listener = muxcat_listener(&["listen", &format!("127.0.0.1:{port}")]);
    drop(listener.stdin.take());
    let mut received = listener.stdout.take().unwrap();
    let hasher = std::thread::spawn(move || {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            let n = received.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
            ctx.update(&buf[..n]);
        }
        (hex::encode(ctx.finish().as_ref()), total)
    });
    let sent_hash = dir.path().join("sent");
    let client = format!(
        "set -euo pipefail; head -c 1073741824 /dev/urandom | tee >(sha256sum > {}) | {} -q connect 127.0.0.1:{port}",
        sent_hash.display(),
        muxcat_bin().display()
    );
    let status = Command::new("bash")
        .args(["-c", &client])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let (got, total) = hasher.join().unwrap();
    assert!(listener.wait().unwrap().success());
    // tee's process substitution may finish a moment after the pipeline.
    let start = Instant::now();
    let mut sent = String::new();
    while sent.len() < 64 && start.elapsed() < Duration::from_secs(10) {
        sent = std::fs::read_to_string(&sent_hash).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(total, 1 << 30);
    assert_eq!(
        sent.split_whitespace().next(),
        Some(got.as_str()),
        "1 GiB arrived changed"
    );
}

#[test]
fn connect_half_closes_on_stdin_eof_and_exits_after_the_peer() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap(); // returns at the client's FIN
        // The client half-closed; it must still receive our answer.
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(b"answer after your EOF").unwrap();
        got
    });
    let (out, code) = run_with_input(
        muxcat(&["connect", &format!("127.0.0.1:{port}")]),
        b"request".to_vec(),
    );
    assert_eq!(peer.join().unwrap(), b"request");
    assert_eq!(out, b"answer after your EOF");
    assert_eq!(code, 0);
}

#[test]
fn connect_reconnect_pipes_across_a_peer_restart() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let (rebooted_tx, rebooted) = std::sync::mpsc::channel();
    let peer = std::thread::spawn(move || {
        // First boot: read one line, answer, close, refuse for a while.
        let (s, _) = server.accept().unwrap();
        let mut first = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut first)
            .unwrap();
        (&s).write_all(b"one\n").unwrap();
        drop(s);
        drop(server);
        std::thread::sleep(Duration::from_millis(300));
        // Second boot: everything until the client's EOF, then answer.
        let server = TcpListener::bind(addr).unwrap();
        let (mut s, _) = server.accept().unwrap();
        rebooted_tx.send(()).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        s.write_all(b"two\n").unwrap();
        (first, rest)
    });
    let mut child = muxcat(&[
        "connect",
        "--reconnect",
        "--backoff",
        "50ms..100ms",
        &format!("127.0.0.1:{}", addr.port()),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"a\n").unwrap();
    rebooted.recv_timeout(Duration::from_secs(10)).unwrap();
    stdin.write_all(b"b\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (first, rest) = peer.join().unwrap();
    assert_eq!(first, "a\n");
    assert_eq!(rest, b"b\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn listen_keeps_sending_after_the_client_half_closes() {
    let port = free_port();
    let mut listener = muxcat_listener(&["listen", &format!("127.0.0.1:{port}")]);
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"from client").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut stdin = listener.stdin.take().unwrap();
    stdin.write_all(b"from server").unwrap();
    drop(stdin);
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"from server");
    let out = listener.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"from client");
    assert!(out.status.success());
}

#[test]
fn connection_errors_exit_1_with_a_reason() {
    let port = free_port();
    let out = muxcat(&["connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CONNECT_REFUSED"), "{err}");
    let out = muxcat(&["-q", "connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty(), "-q prints nothing");
    let out = muxcat(&["connect", "no-port"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // --json puts events on stderr, stdout stays the byte stream.
    let out = muxcat(&["--json", "connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let last = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["errorCode"], "CONNECT_REFUSED");
}

/// `--keep-open` serves clients at once, as `ncat -l -k` does: their bytes
/// to stdout, stdin to every one of them.
#[test]
fn keep_open_serves_clients_at_once() {
    let port = free_port();
    let (mut listener, log) =
        muxcat_listener_logged(&["listen", "--keep-open", &format!("127.0.0.1:{port}")]);
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = out.clone();
    let mut stdout = listener.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    // Three clients connected together; none waits for another to leave.
    let mut clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    eventually("three clients accepted", || {
        log.lock().unwrap().matches("accepted").count() == 3
    });
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("client {i}\n").as_bytes()).unwrap();
    }
    eventually("three clients heard", || out.lock().unwrap().lines().count() == 3);
    let mut lines: Vec<String> = out.lock().unwrap().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["client 0", "client 1", "client 2"]);
    // stdin goes to all of them.
    let mut stdin = listener.stdin.take().unwrap();
    stdin.write_all(b"to everyone\n").unwrap();
    for c in &mut clients {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = [0u8; 12];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"to everyone\n");
    }
    // Clients leave; the listener stays for the next one.
    drop(clients);
    let mut late = TcpStream::connect(("127.0.0.1", port)).unwrap();
    late.write_all(b"late\n").unwrap();
    eventually("the late client heard", || out.lock().unwrap().contains("late\n"));
    let _ = listener.kill();
    let _ = listener.wait();
}

#[test]
fn broker_relays_between_clients() {
    let port = free_port();
    let (mut broker, log) = muxcat_listener_logged(&["listen", "--broker", &format!("127.0.0.1:{port}")]);
    let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut b = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    eventually("three clients accepted", || {
        log.lock().unwrap().matches(" accepted ").count() == 3
    });
    a.write_all(b"from a\n").unwrap();
    for peer in [&mut b, &mut c] {
        peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 7];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"from a\n");
    }
    // stdin goes to every client.
    broker.stdin.as_mut().unwrap().write_all(b"all\n").unwrap();
    for peer in [&mut a, &mut b, &mut c] {
        peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"all\n");
    }
    drop((a, b, c));
    std::thread::sleep(Duration::from_millis(200));
    let _ = broker.kill();
    let mut out = String::new();
    broker.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = broker.wait();
    assert_eq!(out, "from a\n", "the broker's stdout gets client bytes");
}

#[test]
fn a_broker_client_that_does_not_read_is_dropped_and_the_others_get_everything() {
    let port = free_port();
    let (mut broker, log) = muxcat_listener_logged(&["listen", "--broker", &format!("127.0.0.1:{port}")]);
    // The broker's stdout gets every client's bytes: drained so it never blocks.
    let mut stdout = broker.stdout.take().unwrap();
    let drained = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()).unwrap());
    let mut sender = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut stuck = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = TcpStream::connect(("127.0.0.1", port)).unwrap();
    eventually("three clients accepted", || {
        log.lock().unwrap().matches(" accepted ").count() == 3
    });
    const TOTAL: usize = 64 << 20;
    let counting = std::thread::spawn(move || {
        reader.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while got < TOTAL {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    });
    let block = vec![b'x'; 1 << 20];
    for _ in 0..TOTAL >> 20 {
        sender.write_all(&block).unwrap();
    }
    assert_eq!(
        counting.join().unwrap(),
        TOTAL,
        "the client that reads gets every byte; the broker's log:\n{}",
        log.lock().unwrap()
    );
    eventually("the client that does not read dropped", || {
        log.lock().unwrap().contains("MiB waiting for it; disconnected")
    });
    // It then sees its connection end, short of the whole stream.
    stuck.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let end = stuck.read_to_end(&mut got);
    assert!(
        !matches!(&end, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the connection was not closed: {end:?}"
    );
    assert!(got.len() < TOTAL, "it was dropped, not served: {}", got.len());
    let _ = broker.kill();
    let _ = broker.wait();
    drained.join().unwrap();
}

#[test]
fn udp_lines_are_datagrams() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let to = rx.local_addr().unwrap();
    let (_, code) = run_with_input(
        muxcat(&["-q", "udp", "--to", &to.to_string(), "127.0.0.1:0"]),
        b"one\ntwo\n".to_vec(),
    );
    assert_eq!(code, 0);
    let mut buf = [0u8; 64];
    let (n, _) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"one\n");
    let (n, _) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"two\n");
}

#[test]
fn tls_in_pipe_mode() {
    let port = free_port();
    let mut listener = muxcat_listener(&["listen", "--tls", &format!("127.0.0.1:{port}")]);
    drop(listener.stdin.take());
    let (out, code) = run_with_input(
        muxcat(&[
            "-q",
            "connect",
            "--tls",
            "--insecure",
            &format!("127.0.0.1:{port}"),
        ]),
        b"secret bytes".to_vec(),
    );
    let got = listener.wait_with_output().unwrap();
    assert_eq!(code, 0);
    assert!(out.is_empty());
    assert_eq!(got.stdout, b"secret bytes");
}

/// muxcat as client and as server against each peer tool, both directions.
#[test]
fn interoperates_with_socat_ncat_and_nc() {
    let data = random_bytes(4 * 1024 * 1024, 7);
    let want = sha256(&data);
    let peers: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "socat",
            vec![
                "socat".into(),
                "-u".into(),
                "TCP-LISTEN:{port},reuseaddr".into(),
                "STDOUT".into(),
            ],
            vec![
                "socat".into(),
                "-u".into(),
                "STDIN".into(),
                "TCP:127.0.0.1:{port}".into(),
            ],
        ),
        (
            "ncat",
            vec![
                "ncat".into(),
                "-l".into(),
                "--recv-only".into(),
                "127.0.0.1".into(),
                "{port}".into(),
            ],
            vec![
                "ncat".into(),
                "--send-only".into(),
                "127.0.0.1".into(),
                "{port}".into(),
            ],
        ),
        (
            "nc.openbsd",
            vec![
                "nc.openbsd".into(),
                "-d".into(),
                "-l".into(),
                "127.0.0.1".into(),
                "{port}".into(),
            ],
            vec![
                "nc.openbsd".into(),
                "-N".into(),
                "127.0.0.1".into(),
                "{port}".into(),
            ],
        ),
    ];
    for (tool, server, client) in peers {
        if !have(tool) {
            continue;
        }
        let fill = |args: &Vec<String>, port: u16| -> Command {
            let args: Vec<String> = args
                .iter()
                .map(|a| a.replace("{port}", &port.to_string()))
                .collect();
            let mut c = Command::new(&args[0]);
            c.args(&args[1..]);
            c
        };
        // Peer listens, muxcat connects.
        let port = free_port();
        let srv = fill(&server, port)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        // Drain the peer's stdout while the client runs, or it blocks on a full pipe.
        let srv = std::thread::spawn(move || srv.wait_with_output().unwrap().stdout);
        wait_for_port_owner(port);
        let (_, code) = run_with_input(
            muxcat(&["-q", "connect", &format!("127.0.0.1:{port}")]),
            data.clone(),
        );
        let got = srv.join().unwrap();
        assert_eq!(code, 0, "{tool} as server");
        assert_eq!(
            sha256(&got),
            want,
            "{tool} as server: bytes differ ({} received)",
            got.len()
        );

        // muxcat listens, peer connects.
        let port = free_port();
        let mut lst = muxcat_listener(&["listen", &format!("127.0.0.1:{port}")]);
        // Nothing to send back: the listener half-closes as soon as the client is in.
        drop(lst.stdin.take());
        let lst = std::thread::spawn(move || lst.wait_with_output().unwrap().stdout);
        let (_, code) = run_with_input(fill(&client, port), data.clone());
        let got = lst.join().unwrap();
        assert_eq!(code, 0, "{tool} as client");
        assert_eq!(
            sha256(&got),
            want,
            "{tool} as client: bytes differ ({} received)",
            got.len()
        );
    }
}

/// Waits until a peer tool listens, without connecting (which would use
/// up a one-shot listener): polls /proc/net/tcp for the port in LISTEN.
fn wait_for_port_owner(port: u16) {
    let needle = format!(":{port:04X} 00000000:0000 0A");
    let start = Instant::now();
    loop {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if tcp.contains(&needle) {
            return;
        }
        if start.elapsed() > Duration::from_secs(10) {
            // Fall back to trying to connect.
            wait_listening(port);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_closes_cleanly() {
    let port = free_port();
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let child = muxcat(&["-q", "connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (mut s, _) = server.accept().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A clean close: FIN (read returns 0), not a reset.
    assert!(s.read_to_end(&mut rest).is_ok());
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(130));
    wait_listening(port);
}

/// Bytes a server sends the moment it accepts reach stdout, even while the
/// opening command is still completing (a recording makes that window wider).
#[test]
fn a_banner_sent_at_once_is_not_lost() {
    for _ in 0..5 {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.write_all(b"BANNER v1\n").unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        });
        let dir = tempfile::tempdir().unwrap();
        let (out, code) = run_with_input(
            muxcat(&[
                "-q",
                "--record",
                dir.path().to_str().unwrap(),
                "connect",
                &format!("127.0.0.1:{port}"),
            ]),
            b"bye\n".to_vec(),
        );
        peer.join().unwrap();
        assert_eq!(code, 0);
        assert_eq!(out, b"BANNER v1\n");
    }
}

/// A peer that sends `pattern` for `secs` seconds to one client.
fn flooding_peer(pattern: &'static [u8], secs: u64) -> u16 {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = server.accept() else { return };
        s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        let block: Vec<u8> = pattern.iter().copied().cycle().take(64 * 1024).collect();
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if let Err(e) = s.write(&block)
                && e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::TimedOut
            {
                return;
            }
        }
    });
    port
}

/// Waits (bounded) for a child to exit; its status code.
fn exits_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `muxcat connect … | less`, Ctrl-C, `q`: stdout is stuck while events
/// have backed up; the interrupt still ends the run.
#[test]
fn ctrl_c_with_a_stuck_stdout_still_exits() {
    let port = flooding_peer(b"line of output\n", 30);
    let mut child = muxcat(&["-q", "connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // stdout is held and never read: its pipe fills, then the queue.
    let _stdout = child.stdout.take();
    std::thread::sleep(Duration::from_millis(1500));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(exits_within(&mut child, Duration::from_secs(10)), Some(130));
}

/// `muxcat connect … </dev/null | head -c 10` against a peer that keeps
/// sending: exits once stdout is gone, as nc does.
#[test]
fn a_closed_stdout_ends_the_run() {
    let port = flooding_peer(b"0123456789", 30);
    let mut child = muxcat(&["-q", "connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"0123456789");
    drop(stdout);
    assert_eq!(exits_within(&mut child, Duration::from_secs(10)), Some(141));
}

/// `muxcat run … | head -1`: the script stops once stdout is gone.
#[test]
fn run_stops_when_its_stdout_is_gone() {
    let port = flooding_peer(b"tick\n", 30);
    let mut child = muxcat(&["run"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "connect 127.0.0.1:{port}\nsleep 30s").unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("connecting"), "{line}");
    drop(stdout);
    assert_eq!(exits_within(&mut child, Duration::from_secs(10)), Some(141));
    drop(stdin);
}

/// muxcat, then each of `peers` that is installed: the tools a netcat
/// behaviour is checked against.
fn muxcat_and(peers: &[&'static str]) -> Vec<&'static str> {
    let mut tools = vec!["muxcat"];
    tools.extend(peers.iter().copied().filter(|p| have(p)));
    tools
}

/// The command for one of [`muxcat_and`]'s tools.
fn tool_command(tool: &str) -> Command {
    if tool == "muxcat" {
        muxcat(&[])
    } else {
        Command::new(tool)
    }
}

/// Starts a listener (muxcat or ncat) in pipe mode, stdin piped, and waits
/// until its port accepts connections.
fn spawn_listener(program: &str, args: &[String], port: u16, stdin: Stdio) -> Child {
    let child = tool_command(program)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    child
}

/// `--max-connections 0` refuses every client, as `ncat -l -k --max-conns 0`.
#[test]
fn max_connections_0_refuses_every_client_like_ncat() {
    for tool in muxcat_and(&["ncat"]) {
        let port = free_port();
        let args: Vec<String> = if tool == "muxcat" {
            vec![
                "listen".into(),
                "--max-connections".into(),
                "0".into(),
                format!("127.0.0.1:{port}"),
            ]
        } else {
            // ncat applies --max-conns only with -k (it warns otherwise).
            vec![
                "-l".into(),
                "-k".into(),
                "--max-conns".into(),
                "0".into(),
                "127.0.0.1".into(),
                port.to_string(),
            ]
        };
        let mut child = spawn_listener(tool, &args, port, Stdio::piped());
        for _ in 0..3 {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = c.write_all(b"hello\n");
            let mut buf = [0u8; 16];
            // Closed at once: end of stream or a reset, never a wait.
            assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)), "{tool}");
        }
        assert!(child.try_wait().unwrap().is_none(), "{tool} keeps listening");
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        assert!(out.stdout.is_empty(), "{tool} printed what a refused client sent");
    }
}

/// `listen` (no --keep-open) with stdin still open: the one client sends
/// and leaves; the next stdin line finds it gone and the run ends with 0,
/// as with nc and ncat.
#[test]
fn listen_ends_with_0_once_its_client_has_left_like_nc() {
    for tool in muxcat_and(&["ncat", "nc.openbsd"]) {
        let port = free_port();
        let args: Vec<String> = if tool == "muxcat" {
            vec!["-q".into(), "listen".into(), format!("127.0.0.1:{port}")]
        } else {
            vec!["-l".into(), "127.0.0.1".into(), port.to_string()]
        };
        let mut child = tool_command(tool)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut c = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(c) => break c,
                Err(_) if start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("{tool}: {e}"),
            }
        };
        c.write_all(b"request\n").unwrap();
        drop(c);
        std::thread::sleep(Duration::from_millis(300));
        let mut stdin = child.stdin.take().unwrap();
        // Written until the gone client is noticed (a reset, then EPIPE).
        for _ in 0..20 {
            if stdin.write_all(b"answer\n").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            if child.try_wait().unwrap().is_some() {
                break;
            }
        }
        assert_eq!(
            exits_within(&mut child, Duration::from_secs(10)),
            Some(0),
            "{tool}"
        );
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "request\n", "{tool}");
    }
}

/// A TLS listener whose one client fails the handshake: nothing more
/// will come, so the run ends with 1 (it stayed up before).
#[test]
fn listen_ends_with_1_when_its_one_client_fails_the_tls_handshake() {
    let port = free_port();
    let mut child = muxcat_listener(&["listen", "--tls", &format!("127.0.0.1:{port}")]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"this is not a TLS client hello\r\n\r\n").unwrap();
    assert_eq!(exits_within(&mut child, Duration::from_secs(15)), Some(1));
}

/// When the peer ends its output, stdout ends at once (`| (cat; echo EOF)`
/// goes on), while stdin still reaches the peer; `--exit-on-eof` ends the
/// run there instead.
#[test]
fn the_peer_ending_its_output_closes_stdout_at_once() {
    for exit_on_eof in [false, true] {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.write_all(b"hello\n").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got
        });
        let mut args = vec!["-q", "connect"];
        if exit_on_eof {
            args.push("--exit-on-eof");
        }
        let target = format!("127.0.0.1:{port}");
        args.push(&target);
        let mut child = muxcat(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        // Read to the end while stdin is still open.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            let _ = tx.send(out);
        });
        let out = rx.recv_timeout(Duration::from_secs(10)).expect("stdout ended");
        assert_eq!(out, b"hello\n");
        if exit_on_eof {
            assert_eq!(exits_within(&mut child, Duration::from_secs(10)), Some(0));
            assert_eq!(peer.join().unwrap(), b"");
        } else {
            assert!(child.try_wait().unwrap().is_none(), "still sending stdin");
            stdin.write_all(b"late reply\n").unwrap();
            drop(stdin);
            assert_eq!(exits_within(&mut child, Duration::from_secs(10)), Some(0));
            assert_eq!(peer.join().unwrap(), b"late reply\n");
        }
    }
}

/// `--broker` relays between clients whether or not stdin has ended, as
/// `ncat --broker -l … </dev/null` does.
#[test]
fn broker_relays_after_stdin_has_ended_like_ncat() {
    for tool in muxcat_and(&["ncat"]) {
        let port = free_port();
        let args: Vec<String> = if tool == "muxcat" {
            vec![
                "-q".into(),
                "listen".into(),
                "--broker".into(),
                format!("127.0.0.1:{port}"),
            ]
        } else {
            vec![
                "--broker".into(),
                "-l".into(),
                "127.0.0.1".into(),
                port.to_string(),
            ]
        };
        let mut child = spawn_listener(tool, &args, port, Stdio::null());
        let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut b = TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        for (from, to, text) in [(0, 1, "from a\n"), (1, 0, "from b\n")] {
            let mut pair = [&mut a, &mut b];
            pair[from].write_all(text.as_bytes()).unwrap();
            let to = &mut pair[to];
            to.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = vec![0u8; text.len()];
            to.read_exact(&mut got).unwrap_or_else(|e| panic!("{tool}: {e}"));
            assert_eq!(got, text.as_bytes(), "{tool}");
        }
        // Still relaying later (nobody is dropped for "reading nothing").
        std::thread::sleep(Duration::from_secs(6));
        a.write_all(b"again\n").unwrap();
        let mut got = [0u8; 6];
        b.read_exact(&mut got).unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert_eq!(&got, b"again\n", "{tool}");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A client that never starts its TLS handshake occupies only its own
/// slot: the next client of a `--keep-open --tls` listener is served at
/// once (it waited ~10 s before), as with ncat.
#[test]
fn a_silent_tls_client_does_not_hold_up_the_next_one() {
    let port = free_port();
    let mut listener = muxcat_listener(&["listen", "--keep-open", "--tls", &format!("127.0.0.1:{port}")]);
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let started = Instant::now();
    let mut stdout = listener.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut got = [0u8; 5];
        let _ = stdout.read_exact(&mut got);
        let _ = tx.send(got);
    });
    let (_, code) = run_with_input(
        muxcat(&[
            "-q",
            "connect",
            "--tls",
            "--insecure",
            &format!("127.0.0.1:{port}"),
        ]),
        b"hello".to_vec(),
    );
    assert_eq!(code, 0);
    let got = rx
        .recv_timeout(Duration::from_secs(9))
        .expect("the second client was held up");
    assert_eq!(&got, b"hello");
    assert!(started.elapsed() < Duration::from_secs(9));
    let _ = listener.kill();
    let _ = listener.wait();
}
