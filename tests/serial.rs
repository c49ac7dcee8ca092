//! Serial ports as sessions, without hardware: a pair of pseudo-terminals
//! made by socat, muxcat on one end, the test playing the device on the
//! other. Settings are checked with `stty -F` on the port muxcat holds;
//! unplugging is ending the socat pair, replugging starting it again.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use muxcat::core::EventKind;

fn json(ev: &muxcat::core::Event) -> serde_json::Value {
    serde_json::from_str(&ev.to_json()).unwrap()
}

#[tokio::test]
async fn a_console_at_9600_8n2_lines_both_ways_recorded() {
    let Some(pair) = PtyPair::new() else { return };
    let device = pair.device();
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new();
    let id = h
        .session(&format!(
            "serial --id board --params 9600,8N2 --flow xon-xoff {}",
            pair.a.display()
        ))
        .await;
    h.ok(&format!("record board {}", dir.path().join("t.log").display()))
        .await;
    // The settings are the kernel's now, as any program sees them.
    let stty = pair.stty();
    assert!(stty.contains("speed 9600 baud"), "{stty}");
    let flags: Vec<&str> = stty.split_whitespace().collect();
    for flag in ["cs8", "cstopb", "-parenb", "clocal", "ixon", "ixoff", "-crtscts"] {
        assert!(flags.contains(&flag), "{flag} not in {stty}");
    }
    let opened = h.find(is("connected", &id)).await;
    let j = json(&opened);
    assert_eq!(j["kind"], "serial");
    assert_eq!(j["remotePath"], pair.a.display().to_string());
    assert_eq!(
        (&j["baud"], &j["dataBits"], &j["parity"]),
        (&9600.into(), &8.into(), &"none".into())
    );
    assert_eq!((&j["stopBits"], &j["flow"]), (&2.into(), &"xon-xoff".into()));

    device.write(b"U-Boot 2024.01\r\n=> ");
    h.ok("waitfor ^U-Boot").await;
    h.ok("waitfor --partial '^=> $'").await;
    h.ok("send version").await;
    device.wait_for(b"version\n").await;
    h.ok("on '^ping$' send pong").await;
    // The prompt's line ends first: then a line of its own.
    device.write(b"\r\nping\r\n");
    device.wait_for(b"pong\n").await;

    h.ok("disconnect board").await;
    let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.contains(" serial "), "{header}");
    assert!(
        header.ends_with("mode=line dir=out port=9600,8N2,xon-xoff"),
        "{header}"
    );
    assert!(text.contains("< U-Boot 2024.01\\r\\n"), "{text}");
    assert!(text.contains("> version\\n"), "{text}");
    assert!(text.contains("> pong\\n"), "{text}");
}

#[tokio::test]
async fn binary_frames_and_every_byte_value_go_through_unchanged() {
    let Some(pair) = PtyPair::new() else { return };
    let device = pair.device();
    let mut h = Harness::new();
    let id = h
        .session(&format!("serial --mode binary {}", pair.a.display()))
        .await;
    let all: Vec<u8> = (0..=255u8).collect();
    device.write(&all);
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.data_of(&id).concat().len() < 256 && tokio::time::Instant::now() < deadline {
        h.next(|e| e.name() == "data").await;
    }
    assert_eq!(h.data_of(&id).concat(), all);
    h.ok("send --hex 01 03 00 00 00 0a c5 cd ff 00").await;
    assert_eq!(
        device.wait_len(10).await,
        [0x01, 0x03, 0x00, 0x00, 0x00, 0x0a, 0xc5, 0xcd, 0xff, 0x00]
    );
}

#[tokio::test]
async fn a_held_port_is_refused_naming_who_holds_it() {
    let Some(pair) = PtyPair::new() else { return };
    let mut h = Harness::new();
    h.session(&format!("serial --label first {}", pair.a.display()))
        .await;
    let err = h.run(&format!("serial {}", pair.a.display())).await.unwrap_err();
    assert_eq!(err.code.as_str(), "SERIAL_BUSY");
    assert!(err.text.contains("this one"), "{}", err.text);
    h.ok("disconnect first").await;
    // Closed, it is free again.
    h.session(&format!("serial --label second {}", pair.a.display()))
        .await;
    h.ok("disconnect second").await;

    // Another program's lock (flock(1) locks as tio and picocom do).
    let mut holder = match Command::new("flock")
        .arg(&pair.a)
        .args(["sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            println!("skipping the flock part: flock(1) is not installed");
            return;
        }
    };
    let deadline = std::time::Instant::now() + WAIT;
    let err = loop {
        match h.run(&format!("serial {}", pair.a.display())).await {
            Err(e) => break e,
            Ok(_) => {
                // flock has not taken it yet.
                h.ok("disconnect").await;
                assert!(std::time::Instant::now() < deadline, "flock never held the port");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(err.code.as_str(), "SERIAL_BUSY");
    assert!(
        err.text.contains("sleep (pid") || err.text.contains("flock (pid"),
        "{}",
        err.text
    );
}

#[tokio::test]
async fn what_a_pty_cannot_do_is_an_error_that_says_so() {
    let Some(pair) = PtyPair::new() else { return };
    let mut h = Harness::new();
    h.session(&format!("serial --id p {}", pair.a.display())).await;
    for line in [
        "line dtr off",
        "line p rts toggle",
        "line dtr pulse 50ms",
        "break",
        "break p 100ms",
    ] {
        let err = h.run(line).await.unwrap_err();
        assert_eq!(err.code.as_str(), "SERIAL_LINE_UNSUPPORTED", "{line}: {err}");
        assert!(err.text.contains("pseudo-terminal"), "{line}: {}", err.text);
    }
    // The session carries on.
    h.ok("send still here").await;
    // Frames a pty cannot take are refused at open, naming why.
    let err = h
        .run(&format!("serial --params 9600,7E1 {}", pair.b.display()))
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "SERIAL_CONFIG_INVALID");
    assert!(err.text.contains("8 data bits without parity"), "{}", err.text);
    // Lines of a TCP session: not a serial port.
    let addr = echo_server().await;
    h.session(&format!("connect --id net {addr}")).await;
    let err = h.run("line net dtr on").await.unwrap_err();
    assert_eq!(err.code.as_str(), "SERIAL_LINE_UNSUPPORTED");
    assert!(err.text.contains("is a tcp session"), "{}", err.text);
    // A port that is not there.
    let err = h.run("serial /dev/muxcat-no-such-tty").await.unwrap_err();
    assert_eq!(err.code.as_str(), "SERIAL_OPEN_FAILED");
    assert!(err.text.contains("no such device"), "{}", err.text);
}

#[tokio::test]
async fn unplugged_and_plugged_back_the_same_session_goes_on() {
    let Some(mut pair) = PtyPair::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new();
    let id = h
        .session(&format!("serial --reconnect --id dev {}", pair.a.display()))
        .await;
    h.ok(&format!("record dev {}", dir.path().join("t.log").display()))
        .await;
    let device = pair.device();
    device.write(b"before\n");
    h.ok("waitfor ^before$").await;
    pair.unplug();
    let lost = h.next(is("reconnecting", &id)).await;
    let EventKind::Reconnecting { cause, .. } = &lost.kind else {
        unreachable!()
    };
    assert!(cause.contains("device went away"), "{cause}");
    // Sends while it is away fail, naming why; the session stays.
    assert!(h.run("send lost").await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    pair.plug();
    h.next(is("connected", &id)).await;
    let device = pair.device();
    device.write(b"after\n");
    h.ok("waitfor ^after$").await;
    h.ok("send hello again").await;
    device.wait_for(b"hello again\n").await;
    h.ok("disconnect dev").await;
    let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
    let lost_at = text.find("* connection lost: the device went away").expect(&text);
    let back_at = text.find("* reconnected").expect(&text);
    assert!(text.find("< before").unwrap() < lost_at && lost_at < back_at);
    assert!(back_at < text.find("< after").unwrap());
}

#[tokio::test]
async fn wait_opens_a_port_that_appears_later() {
    let Some(mut pair) = PtyPair::new() else { return };
    pair.unplug();
    let mut h = Harness::new();
    let path = pair.a.display().to_string();
    let manager = h.manager.clone();
    let open = tokio::spawn(async move {
        manager
            .execute(
                match muxcat::lang::parse_line(&format!("serial --wait --id late {path}")) {
                    Ok(Some(muxcat::lang::Parsed::Core(c))) => c,
                    other => panic!("{other:?}"),
                },
            )
            .await
    });
    // It says what it waits for, once, instead of failing.
    let waiting = h.next(is("reconnecting", "late")).await;
    let EventKind::Reconnecting { cause, .. } = &waiting.kind else {
        unreachable!()
    };
    assert!(cause.contains("no such device"), "{cause}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!open.is_finished());
    pair.plug();
    open.await.unwrap().expect("opened once plugged");
    let device = pair.device();
    device.write(b"late hello\n");
    h.ok("waitfor --on late ^late").await;
    let attempts = h.seen.iter().filter(|e| e.name() == "reconnecting").count();
    assert_eq!(
        attempts,
        1,
        "one event while unplugged, not one per poll: {:?}",
        h.names()
    );
}

#[test]
fn pipe_mode_is_byte_exact_both_ways() {
    let Some(pair) = PtyPair::new() else { return };
    let device = pair.device();
    let firmware = random_bytes(200_000, 7);
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), &firmware).unwrap();
    // muxcat → device: stdin from a file, like `picocom < firmware.bin`.
    let status = Command::new(muxcat_bin())
        .args(["-q", "serial", "--pipe"])
        .arg(&pair.a)
        .stdin(std::fs::File::open(input.path()).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + WAIT;
    while device.received().len() < firmware.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sha256(&device.received()), sha256(&firmware));

    // device → muxcat: stdout carries exactly what the device sent.
    let mut child = Command::new(muxcat_bin())
        .args(["-q", "serial", "--pipe"])
        .arg(&pair.a)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let back = random_bytes(100_000, 9);
    device.write(&back);
    std::thread::sleep(Duration::from_millis(300));
    // stdin ends: the run ends once the device has been quiet a while.
    child.stdin.take().unwrap().flush().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(sha256(&out.stdout), sha256(&back));
}

#[test]
fn the_list_of_ports_is_printed() {
    let out = Command::new(muxcat_bin())
        .args(["--json", "serial", "--list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["event"], "ports");
    assert!(j["ports"].is_array());
    // A device and --list together make no sense.
    let out = Command::new(muxcat_bin())
        .args(["serial", "--list", "/dev/ttyS0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
