//! Network serial ports: `connect --rfc2217` against a real ser2net in
//! front of a pseudo-terminal pair (socat), the test playing the device on
//! the pair's other end. Skipped, with the reason printed, where ser2net
//! or socat is not installed (`.ci/run` installs both).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// ser2net serving `device` as an RFC 2217 port on 127.0.0.1.
struct Ser2net {
    child: Child,
    port: u16,
    _pid: tempfile::NamedTempFile,
}

impl Ser2net {
    fn start(device: &std::path::Path) -> Option<Ser2net> {
        if Command::new("ser2net").arg("-v").output().is_err() {
            println!("skipping: ser2net is not installed (apt-get install ser2net)");
            return None;
        }
        let port = free_port();
        let pid = tempfile::NamedTempFile::new().unwrap();
        // The configuration inline (-Y, `#` for new lines): ser2net picks
        // the old format for some file names.
        let config = format!(
            "connection: &con0#  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}#  connector: serialdev,{},9600n81,local",
            device.display()
        );
        // -u: no UUCP lock files (tests run side by side); -n: foreground.
        let child = Command::new("ser2net")
            .args(["-n", "-u", "-Y", &config, "-P"])
            .arg(pid.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ser2net");
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "ser2net never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        // That probe was a client: let ser2net see it go before the test's.
        std::thread::sleep(Duration::from_millis(100));
        Some(Ser2net {
            child,
            port,
            _pid: pid,
        })
    }
}

impl Drop for Ser2net {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup() -> Option<(PtyPair, Ser2net)> {
    let pair = PtyPair::new()?;
    let server = Ser2net::start(&pair.a)?;
    Some((pair, server))
}

#[tokio::test]
async fn settings_go_to_the_port_behind_ser2net() {
    let Some((pair, server)) = setup() else { return };
    let mut h = Harness::new();
    let id = h
        .session(&format!(
            "connect --rfc2217 --params 19200,8N2 --flow rts-cts --id net 127.0.0.1:{}",
            server.port
        ))
        .await;
    // ser2net applied them to the pty it holds.
    let stty = pair.stty();
    assert!(stty.contains("speed 19200 baud"), "{stty}");
    let flags: Vec<&str> = stty.split_whitespace().collect();
    for flag in ["cstopb", "crtscts", "cs8", "-parenb"] {
        assert!(flags.contains(&flag), "{flag} not in {stty}");
    }
    let opened = h.find(is("connected", &id)).await;
    let j: serde_json::Value = serde_json::from_str(&opened.to_json()).unwrap();
    assert_eq!(
        (&j["kind"], &j["baud"], &j["stopBits"]),
        (&"rfc2217".into(), &19200.into(), &2.into())
    );
    assert_eq!(j["flow"], "rts-cts");
    // The modem state ser2net reports arrives as a `modem` event.
    let modem = h.find(is("modem", &id)).await;
    let j: serde_json::Value = serde_json::from_str(&modem.to_json()).unwrap();
    assert!(j["cts"].is_boolean() && j["dcd"].is_boolean(), "{j}");
    // DTR, RTS and break go over the network (ser2net takes them).
    h.ok("line dtr off").await;
    h.ok("line rts pulse 50ms").await;
    h.ok("break 100ms").await;
    let dtr = h
        .find(|e| e.name() == "modem" && e.to_json().contains("\"dtr\":false"))
        .await;
    assert_eq!(dtr.session_id.as_deref(), Some("net"));
}

#[tokio::test]
async fn every_byte_value_goes_both_ways_unchanged() {
    let Some((pair, server)) = setup() else { return };
    let mut h = Harness::new();
    let id = h
        .session(&format!(
            "connect --rfc2217 --mode binary 127.0.0.1:{}",
            server.port
        ))
        .await;
    // ser2net opens the port once the client is there.
    h.find(is("connected", &id)).await;
    let device = pair.device();
    let all: Vec<u8> = (0..=255u8).chain([0xff, 0xff, 0xff, 0x00]).collect();
    device.write(&all);
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.data_of(&id).concat().len() < all.len() && tokio::time::Instant::now() < deadline {
        h.next(|e| e.name() == "data").await;
    }
    assert_eq!(
        h.data_of(&id).concat(),
        all,
        "IAC bytes undoubled, nothing else touched"
    );
    h.ok("send --hex ff ff 00 ff 41").await;
    assert_eq!(device.wait_len(5).await, [0xff, 0xff, 0x00, 0xff, 0x41]);
}

#[test]
fn pipe_mode_through_ser2net_is_byte_exact() {
    let Some((pair, server)) = setup() else { return };
    let payload = random_bytes(50_000, 3);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &payload).unwrap();
    // Open the device end first: what ser2net writes must have a reader.
    let device = pair.device();
    let status = Command::new(muxcat_bin())
        .args(["-q", "connect", "--pipe", "--rfc2217"])
        .arg(format!("127.0.0.1:{}", server.port))
        .stdin(std::fs::File::open(file.path()).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + WAIT;
    while device.received().len() < payload.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sha256(&device.received()), sha256(&payload));
}

/// A server that does not speak COM-PORT-OPTION is a clear error.
#[tokio::test]
async fn a_server_that_refuses_rfc2217_is_named() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            // IAC DONT COM-PORT-OPTION
            let _ = s.write_all(&[255, 254, 44]).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let mut h = Harness::new();
    let err = h.run(&format!("connect --rfc2217 {addr}")).await.unwrap_err();
    assert_eq!(err.code.as_str(), "CONNECT_FAILED");
    assert!(err.text.contains("refuses RFC 2217"), "{}", err.text);
    // Port options without --rfc2217 are a usage error.
    let err = h.run(&format!("connect --baud 9600 {addr}")).await.unwrap_err();
    assert_eq!(err.code.as_str(), "COMMAND_INVALID");
    assert!(err.text.contains("--rfc2217"), "{}", err.text);
}
