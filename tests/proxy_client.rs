//! `connect --proxy`: through SOCKS4(a), SOCKS5 and HTTP CONNECT proxies
//! written here (each logs what it was asked), through ncat's HTTP proxy,
//! and beside `ncat --proxy` where installed: the same bytes reach the
//! target, the same bytes come back, the same exit status; failures are
//! `PROXY_FAILED` with the proxy's reason.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Harness, have, is, muxcat_bin, wait_port_listening};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Socks4,
    Socks5,
    Http,
}

/// A proxy on loopback: `auth` is the one credential it takes (SOCKS5 and
/// HTTP: user and password; SOCKS4: the user id); `asked` logs each
/// request as `HOST:PORT user=USER`.
struct TestProxy {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    fn start(kind: Kind, auth: Option<(&str, &str)>) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let auth = auth.map(|(u, p)| (u.to_string(), p.to_string()));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (log, auth) = (log.clone(), auth.clone());
                std::thread::spawn(move || {
                    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let _ = match kind {
                        Kind::Socks4 => socks4(client, &log, auth.as_ref()),
                        Kind::Socks5 => socks5(client, &log, auth.as_ref()),
                        Kind::Http => http(client, &log, auth.as_ref()),
                    };
                });
            }
        });
        TestProxy { port, asked }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

type Auth<'a> = Option<&'a (String, String)>;
type Auth2 = Option<(&'static str, &'static str)>;
/// (proxy port, --proxy-type, --proxy-auth, target port, words of the error)
type Failure = (
    u16,
    &'static str,
    Option<&'static str>,
    u16,
    &'static [&'static str],
);

fn dial(host: &str, port: u16) -> Option<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, Duration::from_secs(5)).ok())
}

/// Copies both ways; an end in one direction half-closes the other.
fn relay(client: TcpStream, target: TcpStream) {
    let (mut c2, mut t2) = (client.try_clone().unwrap(), target.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let mut c = client;
        let mut t = target;
        let _ = std::io::copy(&mut c, &mut t);
        let _ = t.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut t2, &mut c2);
    let _ = c2.shutdown(Shutdown::Write);
    let _ = up.join();
}

fn read_cstring(s: &mut TcpStream) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut b = [0u8];
    loop {
        s.read_exact(&mut b)?;
        if b[0] == 0 {
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.push(b[0]);
    }
}

fn socks4(mut c: TcpStream, log: &Mutex<Vec<String>>, auth: Auth) -> std::io::Result<()> {
    let mut head = [0u8; 8];
    c.read_exact(&mut head)?;
    assert_eq!(head[..2], [4, 1], "SOCKS4 CONNECT");
    let port = u16::from_be_bytes([head[2], head[3]]);
    let user = read_cstring(&mut c)?;
    let host = if head[4..7] == [0, 0, 0] && head[7] != 0 {
        read_cstring(&mut c)? // 4a
    } else {
        std::net::Ipv4Addr::new(head[4], head[5], head[6], head[7]).to_string()
    };
    log.lock().unwrap().push(format!("{host}:{port} user={user}"));
    let allowed = auth.is_none_or(|(u, _)| *u == user);
    let target = if allowed { dial(&host, port) } else { None };
    let code = if target.is_some() { 0x5A } else { 0x5B };
    c.write_all(&[0, code, 0, 0, 0, 0, 0, 0])?;
    if let Some(t) = target {
        relay(c, t);
    }
    Ok(())
}

fn socks5(mut c: TcpStream, log: &Mutex<Vec<String>>, auth: Auth) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    c.read_exact(&mut head)?;
    assert_eq!(head[0], 5);
    let mut methods = vec![0u8; head[1] as usize];
    c.read_exact(&mut methods)?;
    let mut user = String::new();
    match auth {
        None => c.write_all(&[5, 0])?,
        Some(_) if !methods.contains(&2) => return c.write_all(&[5, 0xFF]),
        Some((want_user, want_pass)) => {
            c.write_all(&[5, 2])?;
            let mut v = [0u8; 2];
            c.read_exact(&mut v)?;
            let mut u = vec![0u8; v[1] as usize];
            c.read_exact(&mut u)?;
            let mut plen = [0u8];
            c.read_exact(&mut plen)?;
            let mut p = vec![0u8; plen[0] as usize];
            c.read_exact(&mut p)?;
            user = String::from_utf8_lossy(&u).into_owned();
            if user != *want_user || p != want_pass.as_bytes() {
                log.lock().unwrap().push(format!("bad password user={user}"));
                return c.write_all(&[1, 1]);
            }
            c.write_all(&[1, 0])?;
        }
    }
    let mut req = [0u8; 4];
    c.read_exact(&mut req)?;
    assert_eq!(req[..3], [5, 1, 0], "SOCKS5 CONNECT");
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            c.read_exact(&mut a)?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        4 => {
            let mut a = [0u8; 16];
            c.read_exact(&mut a)?;
            std::net::Ipv6Addr::from(a).to_string()
        }
        3 => {
            let mut n = [0u8];
            c.read_exact(&mut n)?;
            let mut name = vec![0u8; n[0] as usize];
            c.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        other => panic!("address type {other}"),
    };
    let mut p = [0u8; 2];
    c.read_exact(&mut p)?;
    let port = u16::from_be_bytes(p);
    log.lock().unwrap().push(format!("{host}:{port} user={user}"));
    let target = dial(&host, port);
    // 0: succeeded, 5: connection refused.
    let code = if target.is_some() { 0 } else { 5 };
    c.write_all(&[5, code, 0, 1, 127, 0, 0, 1, 0, 0])?;
    if let Some(t) = target {
        relay(c, t);
    }
    Ok(())
}

fn http(c: TcpStream, log: &Mutex<Vec<String>>, auth: Auth) -> std::io::Result<()> {
    use base64::Engine;
    let mut reader = BufReader::new(c.try_clone()?);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim_end().is_empty() {
            break;
        }
        lines.push(line.trim_end().to_string());
    }
    // The client must not send its data before the answer: none is buffered.
    assert!(reader.buffer().is_empty(), "data before the tunnel opened");
    let mut c = c;
    let authority = lines[0]
        .strip_prefix("CONNECT ")
        .and_then(|r| {
            r.strip_suffix(" HTTP/1.1")
                .or_else(|| r.strip_suffix(" HTTP/1.0"))
        })
        .expect("a CONNECT request")
        .to_string();
    let given = lines
        .iter()
        .find_map(|l| l.strip_prefix("Proxy-Authorization: Basic "))
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let user = given
        .as_deref()
        .and_then(|g| g.split(':').next())
        .unwrap_or("")
        .to_string();
    log.lock().unwrap().push(format!("{authority} user={user}"));
    if let Some((u, p)) = auth
        && given.as_deref() != Some(format!("{u}:{p}").as_str())
    {
        return c.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
        );
    }
    let (host, port) = authority.rsplit_once(':').unwrap();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match dial(host, port.parse().unwrap()) {
        Some(t) => {
            c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            relay(c, t);
            Ok(())
        }
        None => c.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"),
    }
}

/// A target on 127.0.0.1 that sends `greeting`, then reads to the end and
/// answers with what it read, upper-cased; what it read comes back too.
fn target(greeting: &'static [u8]) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(greeting).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let _ = s.write_all(&buf.to_ascii_uppercase());
        buf
    });
    (port, got)
}

/// A client run with `input` on stdin: (stdout, stderr, exit status).
fn run(mut cmd: Command, input: &[u8]) -> (Vec<u8>, String, i32) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn muxcat(args: &[&str]) -> Command {
    let mut cmd = Command::new(muxcat_bin());
    cmd.arg("connect").args(args).env_remove("NCAT_PROXY_AUTH");
    cmd
}

/// ncat with the same proxy options: `HOST PORT` at the end.
fn ncat(args: &[&str], host: &str, port: u16) -> Command {
    let mut cmd = Command::new("ncat");
    cmd.args(args).args([host, &port.to_string()]);
    cmd
}

/// Through each kind of proxy, with and without credentials, by IP and by
/// name: the target gets the bytes, they come back, exit 0; ncat the same.
#[test]
fn through_each_kind_of_proxy_as_ncat() {
    // (proxy, --proxy-type, its one credential, target host)
    let cases: &[(Kind, &str, Auth2, &str)] = &[
        (Kind::Socks5, "socks5", None, "127.0.0.1"),
        (Kind::Socks5, "socks5", Some(("alice", "s3cret")), "127.0.0.1"),
        (Kind::Socks5, "socks5", None, "localhost"),
        (Kind::Socks4, "socks4", None, "127.0.0.1"),
        (Kind::Socks4, "socks4", Some(("alice", "")), "localhost"),
        (Kind::Http, "http", None, "127.0.0.1"),
        (Kind::Http, "http", Some(("alice", "s3cret")), "localhost"),
    ];
    let input = b"line one\nline two\n\x00\xff binary too\n";
    let with_ncat = have("ncat");
    for &(kind, name, auth, host) in cases {
        let proxy = TestProxy::start(kind, auth);
        let credential = auth.map(|(u, p)| {
            if kind == Kind::Socks4 {
                u.to_string()
            } else {
                format!("{u}:{p}")
            }
        });
        let mut options = vec!["--proxy".to_string(), format!("127.0.0.1:{}", proxy.port)];
        options.extend(["--proxy-type".to_string(), name.to_string()]);
        if let Some(c) = &credential {
            options.extend(["--proxy-auth".to_string(), c.clone()]);
        }
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        let mut tools = vec!["muxcat"];
        if with_ncat {
            tools.push("ncat");
        }
        for tool in tools {
            let (port, got) = target(b"hello from the target\n");
            let cmd = if tool == "muxcat" {
                let mut args = options.clone();
                let to = format!("{host}:{port}");
                args.push(&to);
                muxcat(&args)
            } else {
                ncat(&options, host, port)
            };
            let (out, err, code) = run(cmd, input);
            let what = format!("{tool} via {name} auth={credential:?} to {host}");
            assert_eq!(code, 0, "{what}: {err}");
            assert_eq!(got.join().unwrap(), input, "{what}: what the target got");
            let mut want = b"hello from the target\n".to_vec();
            want.extend(input.to_ascii_uppercase());
            assert_eq!(out, want, "{what}: what came back");
        }
        let user = auth.map_or("", |(u, _)| u);
        // The name went to the proxy (SOCKS4a, SOCKS5 and HTTP by name);
        // muxcat (first) gave its credentials at once. (ncat asks an HTTP
        // proxy without them first and again after its 407.)
        let asked = proxy.asked();
        assert!(
            asked.iter().all(|a| a.starts_with(&format!("{host}:"))),
            "{name}: {asked:?}"
        );
        assert!(asked[0].ends_with(&format!("user={user}")), "{name}: {asked:?}");
    }
}

/// `--proxy-dns local`: the address goes to the proxy, not the name.
#[test]
fn proxy_dns_local_sends_the_address() {
    let proxy = TestProxy::start(Kind::Socks4, None);
    let (port, got) = target(b"");
    let p = format!("127.0.0.1:{}", proxy.port);
    let to = format!("localhost:{port}");
    let (_, err, code) = run(
        muxcat(&["--proxy", &p, "-X", "4", "--proxy-dns", "local", &to]),
        b"x",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(got.join().unwrap(), b"x");
    assert_eq!(proxy.asked(), [format!("127.0.0.1:{port} user=")]);

    // none: a name is refused before anything is sent.
    let (_, err, code) = run(muxcat(&["--proxy", &p, "--proxy-dns", "none", &to]), b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("ADDRESS_INVALID") && err.contains("--proxy-dns none"),
        "{err}"
    );
    assert_eq!(proxy.asked().len(), 1);
}

/// nc's `-x ADDR` is SOCKS5 unless `-X` says otherwise; `-X connect` is HTTP.
#[test]
fn nc_proxy_options() {
    for (kind, extra) in [(Kind::Socks5, None), (Kind::Http, Some("connect"))] {
        let proxy = TestProxy::start(kind, None);
        let (port, got) = target(b"hi\n");
        let p = format!("127.0.0.1:{}", proxy.port);
        let to = format!("127.0.0.1:{port}");
        let mut args = vec!["-x", &p];
        if let Some(x) = extra {
            args.extend(["-X", x]);
        }
        args.push(&to);
        let (out, err, code) = run(muxcat(&args), b"abc");
        assert_eq!(code, 0, "{err}");
        assert_eq!(got.join().unwrap(), b"abc");
        assert_eq!(out, b"hi\nABC");
        assert_eq!(proxy.asked().len(), 1);
    }
}

/// Failures: wrong password, no credentials, a refused target, a proxy
/// that is not there: exit 1 as ncat, with PROXY_FAILED and the reason
/// (or CONNECT_REFUSED naming the proxy).
#[test]
fn proxy_failures_are_clear_and_exit_1_as_ncat() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let socks_auth = TestProxy::start(Kind::Socks5, Some(("alice", "s3cret")));
    let http_auth = TestProxy::start(Kind::Http, Some(("alice", "s3cret")));
    let socks = TestProxy::start(Kind::Socks5, None);
    let http = TestProxy::start(Kind::Http, None);
    let socks4 = TestProxy::start(Kind::Socks4, None);
    let (live, _target) = target(b"");
    let cases: Vec<Failure> = vec![
        (
            socks_auth.port,
            "socks5",
            Some("alice:wrong"),
            live,
            &["PROXY_FAILED", "refused the user name and password"],
        ),
        (
            socks_auth.port,
            "socks5",
            None,
            live,
            &["PROXY_FAILED", "needs --proxy-auth"],
        ),
        (http_auth.port, "http", None, live, &["PROXY_FAILED", "407"]),
        (
            socks.port,
            "socks5",
            None,
            closed,
            &["PROXY_FAILED", "connection refused"],
        ),
        (socks4.port, "socks4", None, closed, &["PROXY_FAILED", "rejected"]),
        (http.port, "http", None, closed, &["PROXY_FAILED", "502"]),
        (
            closed,
            "socks5",
            None,
            live,
            &["CONNECT_REFUSED", "socks5 proxy 127.0.0.1:"],
        ),
    ];
    for (proxy, kind, auth, to, words) in cases {
        let p = format!("127.0.0.1:{proxy}");
        let mut args = vec!["--proxy", &p, "--proxy-type", kind];
        if let Some(a) = auth {
            args.extend(["--proxy-auth", a]);
        }
        let target = format!("127.0.0.1:{to}");
        let mut mine = args.clone();
        mine.push(&target);
        let (out, err, code) = run(muxcat(&mine), b"never sent\n");
        assert_eq!(code, 1, "{args:?} → {err}");
        assert!(out.is_empty());
        for w in words {
            assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
        }
        if have("ncat") {
            let (_, nerr, ncode) = run(ncat(&args, "127.0.0.1", to), b"never sent\n");
            assert_eq!(ncode, 1, "ncat {args:?}: {nerr}");
        }
    }
}

/// ncat's own HTTP proxy (`ncat -l --proxy-type http`), a peer nobody here
/// wrote: the target's greeting arrives through it.
#[test]
fn through_ncat_as_an_http_proxy() {
    if !have("ncat") {
        return;
    }
    let proxy_port = common::free_port();
    let mut proxy = Command::new("ncat")
        .args(["-l", "127.0.0.1", &proxy_port.to_string(), "--proxy-type", "http"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port_listening(proxy_port);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"220 ready\r\n").unwrap();
    });
    let p = format!("127.0.0.1:{proxy_port}");
    let to = format!("127.0.0.1:{port}");
    let (out, err, code) = run(muxcat(&["--proxy", &p, "--recv-only", &to]), b"");
    let _ = proxy.kill();
    let _ = proxy.wait();
    server.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"220 ready\r\n");
}

/// In the command language: the `connected` event names the target and
/// the proxy; TLS runs inside the tunnel.
#[tokio::test(flavor = "multi_thread")]
async fn the_language_connects_through_a_proxy_tls_inside() {
    let proxy = TestProxy::start(Kind::Socks5, None);
    let mut h = Harness::new();
    let (_, port) = h.listen("listen --tls 127.0.0.1:0").await;
    let id = h
        .session(&format!(
            "connect --tls --insecure --proxy 127.0.0.1:{} --proxy-type socks5 localhost:{port}",
            proxy.port
        ))
        .await;
    let ev = h.find(is("connected", &id)).await;
    let json: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
    assert_eq!(json["remoteHost"], "localhost");
    assert_eq!(json["remotePort"], port);
    assert_eq!(json["proxy"], format!("127.0.0.1:{}", proxy.port));
    assert_eq!(json["proxyType"], "socks5");
    assert_eq!(json["tls"], true);
    assert!(
        ev.to_readable().contains("via socks5 proxy 127.0.0.1:"),
        "{}",
        ev.to_readable()
    );
    assert_eq!(proxy.asked(), [format!("localhost:{port} user=")]);

    // A proxy needs a TCP target.
    let e = h
        .run(&format!(
            "connect --proxy 127.0.0.1:{} unix:/tmp/x.sock",
            proxy.port
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--proxy"), "{e}");
    let e = h
        .run("connect --proxy-type socks5 127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("need --proxy"), "{e}");
}

/// `NCAT_PROXY_AUTH` gives the credentials when `--proxy-auth` does not
/// (ncat's way of keeping a password out of `ps`).
#[test]
fn credentials_from_the_environment() {
    let proxy = TestProxy::start(Kind::Socks5, Some(("alice", "s3cret")));
    let (port, got) = target(b"");
    let p = format!("127.0.0.1:{}", proxy.port);
    let to = format!("127.0.0.1:{port}");
    let mut cmd = muxcat(&["--proxy", &p, "--proxy-type", "socks5", &to]);
    cmd.env("NCAT_PROXY_AUTH", "alice:s3cret");
    let (_, err, code) = run(cmd, b"ok");
    assert_eq!(code, 0, "{err}");
    assert_eq!(got.join().unwrap(), b"ok");
    assert_eq!(proxy.asked(), [format!("{to} user=alice")]);
}
