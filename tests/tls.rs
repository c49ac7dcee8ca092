//! TLS both ways, with certificates made here by rcgen.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use muxcat::core::{ErrorCode, EventKind};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A CA, a server certificate for localhost/127.0.0.1 and a client
/// certificate it signed, written as PEM files.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn write(dir: &Path, name: &str, pem: String) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "muxcat test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["client.test".to_string()])
            .unwrap()
            .signed_by(&client_key, &ca)
            .unwrap();
        let d = dir.path();
        Pki {
            ca: write(d, "ca.pem", ca.pem()),
            server_cert: write(d, "server.pem", server.pem()),
            server_key: write(d, "server.key", server_key.serialize_pem()),
            client_cert: write(d, "client.pem", client.pem()),
            client_key: write(d, "client.key", client_key.serialize_pem()),
            _dir: dir,
        }
    }

    fn listen(&self) -> String {
        format!(
            "listen --tls --cert {} --key {} 127.0.0.1:0",
            self.server_cert.display(),
            self.server_key.display()
        )
    }
}

#[tokio::test]
async fn verified_tls_both_sides() {
    let pki = Pki::new();
    let mut h = Harness::new();
    let (lid, port) = h.listen(&pki.listen()).await;
    let listening = h.find(|e| e.name() == "listening").await;
    assert!(listening.to_json().contains(r#""tls":true"#));
    let client = h
        .session(&format!(
            "connect --label c --tls --ca {} localhost:{port}",
            pki.ca.display()
        ))
        .await;
    let connected = h.find(is("connected", &client)).await;
    let v: serde_json::Value = serde_json::from_str(&connected.to_json()).unwrap();
    assert_eq!(v["tls"], true);
    assert_eq!(v["insecure"], false);
    // What the handshake agreed on, said (rustls with ring prefers AES-256-GCM).
    let cipher = v["tlsCipher"].as_str().unwrap_or_default();
    assert!(cipher.starts_with("TLSv1.3 TLS13_"), "{cipher}");
    assert!(connected.to_readable().contains(&format!("tls {cipher}")));
    let server = h.session(&format!("accept --on {lid}")).await;
    // The listening side names the same agreement on `accepted`.
    let accepted = h.find(is("accepted", &server)).await;
    let v: serde_json::Value = serde_json::from_str(&accepted.to_json()).unwrap();
    assert_eq!(v["tlsCipher"].as_str(), Some(cipher), "{v}");
    assert!(accepted.to_readable().contains(&format!("(tls {cipher})")));
    h.ok("send --to c over tls").await;
    h.ok(&format!("waitfor --on {server} ^over tls$")).await;
    h.ok(&format!("send --to {server} and back")).await;
    h.ok("waitfor --on c ^and back$").await;
    h.ok("disconnect c").await;
    h.find(|e| e.name() == "disconnected" && e.session_id.as_deref() == Some(server.as_str()))
        .await;
}

#[tokio::test]
async fn wrong_ca_fails_the_handshake_and_the_listener_keeps_serving() {
    let pki = Pki::new();
    let other = Pki::new();
    let mut h = Harness::new();
    let (lid, port) = h.listen(&pki.listen()).await;
    let err = h
        .run(&format!(
            "connect --tls --ca {} 127.0.0.1:{port}",
            other.ca.display()
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsHandshakeFailed);
    assert!(err.text.contains("invalid peer certificate"), "{}", err.text);
    let server_side = h
        .find(|e| error_code(e) == Some("TLS_HANDSHAKE_FAILED") && e.listener_id.as_deref() == Some(&lid))
        .await;
    assert!(server_side.error.unwrap().text.contains("127.0.0.1"));
    // Still serving.
    h.session(&format!(
        "connect --tls --ca {} 127.0.0.1:{port}",
        pki.ca.display()
    ))
    .await;
}

#[tokio::test]
async fn wrong_name_fails_the_handshake() {
    let pki = Pki::new();
    let mut h = Harness::new();
    let (_, port) = h.listen(&pki.listen()).await;
    let err = h
        .run(&format!(
            "connect --tls --ca {} --sni wrong.example 127.0.0.1:{port}",
            pki.ca.display()
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsHandshakeFailed);
    assert!(err.text.contains("not valid for name"), "{}", err.text);
}

#[tokio::test]
async fn self_signed_listener_and_insecure_client() {
    let mut h = Harness::new();
    let (_, port) = h.listen("listen --tls 127.0.0.1:0").await;
    let ev = h.find(|e| e.name() == "listening").await;
    let EventKind::Listening { fingerprint, .. } = &ev.kind else {
        unreachable!()
    };
    let fp = fingerprint
        .clone()
        .expect("self-signed listeners print a fingerprint");
    assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
    assert!(ev.to_readable().contains(&fp));

    // Verification is on by default: a self-signed certificate is refused.
    let err = h
        .run(&format!("connect --tls 127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsHandshakeFailed);

    let id = h
        .session(&format!("connect --tls --insecure 127.0.0.1:{port}"))
        .await;
    let connected = h.find(is("connected", &id)).await;
    assert!(connected.to_json().contains(r#""insecure":true"#));
    assert!(connected.to_readable().contains("INSECURE"));
    h.ok("send hi").await;
    h.ok("accept").await;
    h.ok("waitfor ^hi$").await;
}

#[tokio::test]
async fn client_certificates_when_required() {
    let pki = Pki::new();
    let mut h = Harness::new();
    let (lid, port) = h
        .listen(&format!("{} --ca {}", pki.listen(), pki.ca.display()))
        .await;
    // Without a client certificate: refused, and the listener says why.
    let _ = h
        .run(&format!(
            "connect --tls --ca {} localhost:{port}",
            pki.ca.display()
        ))
        .await;
    let ev = h
        .find(|e| error_code(e) == Some("TLS_HANDSHAKE_FAILED") && e.listener_id.as_deref() == Some(&lid))
        .await;
    let text = ev.error.unwrap().text;
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    // With one: accepted.
    h.session(&format!(
        "connect --tls --ca {} --cert {} --key {} localhost:{port}",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    ))
    .await;
    h.ok("send with cert").await;
    let server = h.session("accept").await;
    h.ok(&format!("waitfor --on {server} ^with cert$")).await;
}

#[tokio::test]
async fn bad_tls_configuration() {
    let pki = Pki::new();
    let other = Pki::new();
    let mut h = Harness::new();
    let missing = h
        .run("listen --tls --cert /nonexistent.pem --key /nonexistent.key 0")
        .await;
    let err = missing.unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsConfigInvalid);
    assert!(err.text.contains("/nonexistent.pem"), "{}", err.text);
    // A key that belongs to another certificate.
    let mismatched = h
        .run(&format!(
            "listen --tls --cert {} --key {} 0",
            pki.server_cert.display(),
            other.server_key.display()
        ))
        .await
        .unwrap_err();
    assert_eq!(mismatched.code, ErrorCode::TlsConfigInvalid);
    // Not PEM at all.
    let garbage = pki.ca.with_file_name("garbage.pem");
    std::fs::write(&garbage, "hello, not a certificate\n").unwrap();
    let err = h
        .run(&format!("connect --tls --ca {} 127.0.0.1:1", garbage.display()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsConfigInvalid);
    assert!(err.text.contains("garbage.pem"), "{}", err.text);
    let err = h.run("listen --tls --cert a.pem 0").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsConfigInvalid);
}

#[tokio::test]
async fn plain_client_to_tls_listener_is_reported() {
    let mut h = Harness::new();
    let (lid, port) = h.listen("listen --tls 127.0.0.1:0").await;
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let ev = h
        .find(|e| error_code(e) == Some("TLS_HANDSHAKE_FAILED") && e.listener_id.as_deref() == Some(&lid))
        .await;
    assert!(ev.error.unwrap().text.contains("127.0.0.1"));
    h.ok("listeners").await;
    let list = h.find(|e| e.name() == "listeners").await;
    assert!(
        list.to_json().contains(r#""clients":0"#),
        "the failed client freed its slot"
    );
}

#[tokio::test]
async fn tls_client_to_a_plain_listener_fails_cleanly() {
    let mut h = Harness::new();
    let (_, port) = h.listen("listen --mode binary 127.0.0.1:0").await;
    // The plain side never answers the ClientHello: the handshake gives up
    // after the connect timeout (the session's --timeout).
    let err = h
        .run(&format!("connect --tls --insecure --timeout 1s 127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert_eq!(err.code, muxcat::core::ErrorCode::TlsHandshakeFailed, "{err}");
    assert!(err.text.contains("timed out"), "{}", err.text);
    // The listener saw the ClientHello as bytes (0x16 = handshake record)
    // and keeps serving plain clients.
    let hello = h
        .find(|e| e.name() == "data" && e.to_json().contains(r#""hex":"16"#))
        .await;
    assert!(hello.listener_id.is_some());
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain.write_all(b"still serving\n").await.unwrap();
    h.find(|e| e.name() == "data" && e.to_json().contains("still serving"))
        .await;
}

/// A tokio-rustls acceptor (not muxcat) with the server certificate, and a
/// bound listener for it.
async fn tls_server(pki: &Pki) -> (tokio_rustls::TlsAcceptor, TcpListener, u16) {
    let certs = muxcat::core::tls::load_certs(&pki.server_cert).unwrap();
    let key = muxcat::core::tls::load_key(&pki.server_key).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), listener, port)
}

/// A TLS echo server written with tokio-rustls directly, not with muxcat.
#[tokio::test]
async fn connects_to_a_tls_server_written_elsewhere() {
    let pki = Pki::new();
    let (acceptor, listener, port) = tls_server(&pki).await;
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(s).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).await.unwrap();
        tls.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
        tls.shutdown().await.unwrap();
    });
    let mut h = Harness::new();
    let id = h
        .session(&format!(
            "connect --tls --ca {} localhost:{port}",
            pki.ca.display()
        ))
        .await;
    h.ok("send shout").await;
    h.ok("waitfor ^SHOUT$").await;
    let ev = h.find(is("disconnected", &id)).await;
    assert!(ev.to_json().contains(r#""reason":"remote""#), "{}", ev.to_json());
}

/// A TLS peer that ends without close_notify (ncat does when its stdin
/// ends): the end of its output, said in an `eof` event, not an IO_ERROR.
#[tokio::test]
async fn a_tls_peer_closing_without_close_notify_is_the_end_of_its_output() {
    let pki = Pki::new();
    let (acceptor, listener, port) = tls_server(&pki).await;
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(s).await.unwrap();
        tls.write_all(b"last words\n").await.unwrap();
        tls.flush().await.unwrap();
        // Drop the TCP connection under TLS: FIN without close_notify.
        let (mut tcp, _) = tls.into_inner();
        tcp.shutdown().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    });
    let mut h = Harness::new();
    let id = h
        .session(&format!(
            "connect --tls --ca {} localhost:{port}",
            pki.ca.display()
        ))
        .await;
    h.ok("waitfor ^last words$").await;
    let eof = h.find(is("eof", &id)).await;
    assert!(eof.to_json().contains("close_notify"), "{}", eof.to_json());
    let ev = h.find(is("disconnected", &id)).await;
    assert!(ev.error.is_none(), "{}", ev.to_json());
    assert!(ev.to_json().contains(r#""reason":"remote""#), "{}", ev.to_json());
}

fn have_openssl() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipping: openssl is not installed");
    }
    ok
}

/// `openssl req -x509 …` makes a self-signed certificate marked CA:TRUE;
/// curl, socat and ncat accept it given as the trust anchor, and so does
/// muxcat: exactly that certificate, with its name and dates checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_openssl_certificate_given_as_ca_is_trusted_exactly() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, cn: &str| {
        let (cert, key) = (
            dir.path().join(format!("{name}.pem")),
            dir.path().join(format!("{name}.key")),
        );
        let ok = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            ])
            .arg(format!("/CN={cn}"))
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{cn},IP:127.0.0.1"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl req");
        (cert, key)
    };
    let (cert, key) = make("server", "localhost");
    let (other, _) = make("other", "localhost");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "s_server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut h = Harness::new();
    // Another self-signed CA:TRUE certificate is not the one presented.
    let err = h
        .run(&format!(
            "connect --tls --ca {} localhost:{port}",
            other.display()
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsHandshakeFailed, "{}", err.text);
    // The right certificate under the wrong name.
    let err = h
        .run(&format!(
            "connect --tls --ca {} --sni wrong.example localhost:{port}",
            cert.display()
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsHandshakeFailed, "{}", err.text);
    // The certificate itself: trusted; bytes go both ways.
    let id = h
        .session(&format!("connect --tls --ca {} localhost:{port}", cert.display()))
        .await;
    h.ok("send hello s_server").await;
    let mut got = Vec::new();
    let mut out = server.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while !got.ends_with(b"hello s_server\n") {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    {
        use std::io::Write;
        server
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"hello muxcat\n")
            .unwrap();
    }
    h.ok(&format!("waitfor --on {id} ^hello muxcat$")).await;
    let got = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert!(
        got.ends_with(b"hello s_server\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// The same exception never covers a pinned certificate out of its dates.
#[tokio::test]
async fn an_expired_self_signed_ca_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = write(dir.path(), "old.pem", cert.pem());
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let _ = acceptor.accept(s).await;
    });
    let mut h = Harness::new();
    let err = h
        .run(&format!(
            "connect --tls --ca {} localhost:{port}",
            cert_path.display()
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsHandshakeFailed);
    assert!(err.text.to_lowercase().contains("expired"), "{}", err.text);
}
