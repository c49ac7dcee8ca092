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

/// Reads from `s` until `want` has arrived (or the peer ends); all read.
fn read_until(s: &mut TcpStream, want: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(want.len()).any(|w| w == want) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// `--pty`: the program's stdin, stdout and stderr are a terminal that
/// echoes and ends lines as one (CR LF), byte for byte as socat's
/// `SYSTEM:…,pty,setsid,ctty`.
#[test]
fn a_program_on_a_pty_sees_a_terminal_as_with_socat() {
    let script = r#"test -t 0 && test -t 1 && test -t 2 && echo TTY; read x; echo "got $x""#;
    let mut runs = vec![("muxcat", free_port())];
    if have("socat") {
        runs.push(("socat", free_port()));
    }
    for (tool, port) in runs {
        let mut child = if tool == "muxcat" {
            let addr = format!("127.0.0.1:{port}");
            listener(
                muxcat_bin().to_str().unwrap(),
                &["listen", "-q", "--pty", "--sh-exec", script, &addr],
                port,
            )
        } else {
            let listen = format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr");
            let exec = format!("SYSTEM:{},pty,setsid,ctty,stderr", script.replace(',', "\\,"));
            listener("socat", &[&listen, &exec], port)
        };
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = read_until(&mut s, b"TTY\r\n");
        s.write_all(b"hello\n").unwrap();
        s.read_to_end(&mut got).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&got),
            "TTY\r\nhello\r\ngot hello\r\n",
            "{tool}"
        );
        let _ = child.wait();
    }
    // --pty is for a program.
    let out = Command::new(muxcat_bin())
        .args(["listen", "--pty", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--exec"));
}

/// The pty is the program's controlling terminal: Ctrl-C from the peer
/// interrupts it (a shell's `sleep`), as in a terminal window; the size
/// is 80×24.
#[test]
fn ctrl_c_from_the_peer_interrupts_a_program_on_a_pty() {
    let port = free_port();
    let script =
        r#"trap 'echo INTERRUPTED; exit 3' INT; stty size; echo READY; sleep 30; echo NOT-INTERRUPTED"#;
    let addr = format!("127.0.0.1:{port}");
    let mut child = listener(
        muxcat_bin().to_str().unwrap(),
        &["listen", "-q", "--pty", "--sh-exec", script, &addr],
        port,
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = read_until(&mut s, b"READY\r\n");
    // Ctrl-C until it lands: one that arrives between the shell's fork
    // and `sleep`'s exec is lost by the shell, not by the terminal (a
    // person presses it again, so does this test).
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..20 {
        if String::from_utf8_lossy(&got).contains("INTERRUPTED\r\n") || s.write_all(b"\x03").is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.read_to_end(&mut got).unwrap_or_default();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("24 80\r\nREADY\r\n"), "{text:?}");
    assert!(
        text.contains("INTERRUPTED\r\n") && !text.contains("NOT-"),
        "{text:?}"
    );
    let _ = child.wait();
}
