//! `--exec` / `--sh-exec` (ncat -e / -c) and the `exec` command: a
//! program's stdin and stdout joined to a session, ncat's NCAT_*
//! variables, each client its own program; beside ncat where installed.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, have, muxcat_bin, wait_port_listening};

/// Sends `input`, half-closes, reads to the end.
fn converse(port: u16, input: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(input).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn listener(program: &str, args: &[&str], port: u16) -> Child {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port_listening(port);
    child
}

/// `listen -e 'tr a-z A-Z'`: what the client sends goes through the
/// program; after the client's end of output the program finishes its
/// answer (tr answers only then), and the connection ends with it.
#[test]
fn listen_exec_answers_after_the_clients_end() {
    let port = free_port();
    let mut child = listener(
        muxcat_bin().to_str().unwrap(),
        &["listen", "-e", "tr a-z A-Z", &format!("127.0.0.1:{port}")],
        port,
    );
    assert_eq!(
        converse(port, b"hello exec\nsecond line\n"),
        b"HELLO EXEC\nSECOND LINE\n"
    );
    assert!(child.wait().unwrap().success());
}

/// `listen -e cat`: the client's bytes come back through the program;
/// muxcat exits 0 and prints nothing on stdout, as `ncat -l -e` does,
/// same bytes on the wire.
#[test]
fn listen_exec_serves_a_client_with_a_program_as_ncat_does() {
    let mut tools = vec![muxcat_bin().display().to_string()];
    if have("ncat") {
        tools.push("ncat".into());
    }
    let mut answers = Vec::new();
    for tool in &tools {
        let port = free_port();
        let addr = if tool == "ncat" {
            vec!["-l".to_string(), "127.0.0.1".into(), port.to_string()]
        } else {
            vec!["listen".to_string(), format!("127.0.0.1:{port}")]
        };
        let mut args: Vec<&str> = addr.iter().map(String::as_str).collect();
        args.extend(["-e", "/bin/cat"]);
        let mut child = listener(tool, &args, port);
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"hello exec\n").unwrap();
        let mut answer = vec![0u8; 11];
        s.read_exact(&mut answer).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        answer.extend(rest);
        let status = child.wait().unwrap();
        let mut stdout = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
        assert!(status.success(), "{tool}: {status}");
        assert!(stdout.is_empty(), "{tool} printed {stdout:?}");
        answers.push(answer);
    }
    assert_eq!(answers[0], b"hello exec\n");
    if let Some(ncat) = answers.get(1) {
        assert_eq!(&answers[0], ncat, "muxcat and ncat differ");
    }
}

/// `--sh-exec` runs through /bin/sh with ncat's variables naming the ends;
/// `connect` hands the server's banner to the program.
#[test]
fn sh_exec_sees_ncat_variables_and_connect_feeds_the_program() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut client = Command::new(muxcat_bin())
        .args([
            "-q",
            "connect",
            "--sh-exec",
            "read banner; echo \"got $banner from $NCAT_REMOTE_ADDR:$NCAT_REMOTE_PORT over $NCAT_PROTO\"",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut s, _) = server.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"WELCOME\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        format!("got WELCOME from 127.0.0.1:{port} over TCP\n")
    );
    drop(s);
    assert!(client.wait().unwrap().success());
}

/// `listen -k -e`: each client gets a program of its own, at once.
#[test]
fn keep_open_gives_each_client_its_own_program() {
    let port = free_port();
    let mut child = listener(
        muxcat_bin().to_str().unwrap(),
        &[
            "-q",
            "listen",
            "-k",
            "--sh-exec",
            "echo pid $$; cat",
            &format!("127.0.0.1:{port}"),
        ],
        port,
    );
    let a = std::thread::spawn(move || converse(port, b"from a\n"));
    let b = std::thread::spawn(move || converse(port, b"from b\n"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let (a, b) = (String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
    assert!(a.starts_with("pid ") && a.ends_with("from a\n"), "{a}");
    assert!(b.starts_with("pid ") && b.ends_with("from b\n"), "{b}");
    assert_ne!(a.lines().next(), b.lines().next(), "one program each");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The `exec` command in a script needs --allow-exec; with it, a live
/// session is handed to a program.
#[test]
fn the_exec_command_needs_allow_exec() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let script = format!(
        "connect 127.0.0.1:{port}\nexec --sh 'echo ready; while read l; do echo \"$l\" | tr a-z A-Z; done'\nwaitfor --timeout 5s never\n"
    );
    let run = |allow: bool| {
        let mut cmd = Command::new(muxcat_bin());
        if allow {
            cmd.arg("--allow-exec");
        }
        let mut child = cmd
            .args(["run", "--json", "--keep-going"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        child
    };
    let refused = run(false);
    let (s, _) = server.accept().unwrap();
    drop(s);
    let out = refused.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--allow-exec"), "{text}");
    let allowed = run(true);
    let (mut s, _) = server.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The program says it runs; then what the server sends goes to it.
    let mut ready = [0u8; 6];
    s.read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
    s.write_all(b"shout this\n").unwrap();
    let mut buf = [0u8; 11];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"SHOUT THIS\n");
    drop(s);
    let out = allowed.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is served by sh -c"), "{text}");
}

/// `udp --sh-exec`: the program reads the datagrams and its answers go
/// back to the sender (ncat -u -e).
#[test]
fn a_udp_socket_served_by_a_program() {
    let port = free_port();
    let mut child = Command::new(muxcat_bin())
        .args([
            "-q",
            "udp",
            "--sh-exec",
            "while read l; do echo \"$l\" | tr a-z A-Z; done",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 64];
    // The socket may not be bound yet: ask again until it answers.
    let answer = (0..30).find_map(|_| {
        peer.send_to(b"hello udp\n", ("127.0.0.1", port)).ok()?;
        let (n, _) = peer.recv_from(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer.as_deref(), Some(&b"HELLO UDP\n"[..]));
}
