//! UDP datagrams per second, 64 and 1400 bytes, into muxcat (pipe mode,
//! `run` printing an event line per datagram) beside `socat UDP-RECV`, at
//! full speed and paced at 100 000/s; and out of muxcat (pipe mode, a
//! datagram per stdin line) beside `socat UDP-SENDTO`. Loss is counted at
//! the receiver and in the kernel's drop counter (`RcvbufErrors` of
//! /proc/net/snmp); this machine's `net.core.rmem_max` caps what a socket
//! may ask for.

use std::io::Read;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The kernel's count of UDP datagrams dropped for a full receive buffer.
fn rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until a UDP socket is bound to `port` on 127.0.0.1.
fn wait_udp(port: u16) -> bool {
    let needle = format!("0100007F:{port:04X}");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if std::fs::read_to_string("/proc/net/udp")
            .unwrap_or_default()
            .contains(&needle)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// What one run of a receiver saw.
struct Received {
    per_second: f64,
    lost: u64,
    kernel_drops: u64,
}

/// Sends `count` datagrams of `size` bytes (each ending in a newline) to
/// a receiver started with `command` (`{P}`: its port) whose stdout has a
/// line per datagram; `pace`: datagrams per second, or flat out.
fn receive(command: &str, count: u64, size: usize, pace: Option<u64>, port: u16) -> Option<Received> {
    let command = command.replace("{P}", &port.to_string());
    let mut child = Command::new("sh")
        .args(["-c", &format!("exec {command}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut out = child.stdout.take()?;
    let lines = Arc::new(AtomicU64::new(0));
    let last = Arc::new(std::sync::Mutex::new(Instant::now()));
    let (seen, when) = (lines.clone(), last.clone());
    let counter = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            let got = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            seen.fetch_add(got, Ordering::Relaxed);
            if let Ok(mut t) = when.lock() {
                *t = Instant::now();
            }
        }
    });
    if !wait_udp(port) {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    // `run` opens the socket a moment after binding: let it settle.
    std::thread::sleep(Duration::from_millis(200));
    let sender = UdpSocket::bind("127.0.0.1:0").ok()?;
    let mut payload = vec![b'x'; size];
    payload[size - 1] = b'\n';
    let drops_before = rcvbuf_errors();
    let start = Instant::now();
    for i in 0..count {
        if let Some(rate) = pace
            && i % 100 == 0
        {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let _ = sender.send_to(&payload, ("127.0.0.1", port));
    }
    // Done when every line is out, or nothing came for half a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.load(Ordering::Relaxed) < count && Instant::now() < deadline {
        let quiet = last.lock().map(|t| t.elapsed()).unwrap_or_default();
        if quiet > Duration::from_millis(500) && start.elapsed() > Duration::from_millis(600) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = lines.load(Ordering::Relaxed);
    let took = last.lock().map(|t| t.duration_since(start)).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let _ = counter.join();
    Some(Received {
        per_second: got as f64 / took.as_secs_f64().max(1e-6),
        lost: count.saturating_sub(got),
        kernel_drops: rcvbuf_errors().saturating_sub(drops_before),
    })
}

/// Datagrams out of a sender started with `command` (`{P}`: where to) on
/// `count` lines of `size` bytes from stdin: (datagrams/s, datagrams, bytes).
fn send(command: &str, count: u64, size: usize) -> Option<(f64, u64, u64)> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).ok()?;
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket
        .bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().ok()?.into())
        .ok()?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let port = socket.local_addr().ok()?.port();
    let line = "x".repeat(size - 1);
    let command = command.replace("{P}", &port.to_string());
    let start = Instant::now();
    let mut child = Command::new("bash")
        .args(["-c", &format!("yes {line} | head -n {count} | {command}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let (mut datagrams, mut bytes, mut last) = (0u64, 0u64, start);
    let mut buf = vec![0u8; 65536];
    let deadline = start + Duration::from_secs(30);
    while bytes < count * size as u64 && Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(n) => {
                datagrams += 1;
                bytes += n as u64;
                last = Instant::now();
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Some((
        datagrams as f64 / last.duration_since(start).as_secs_f64().max(1e-6),
        datagrams,
        bytes,
    ))
}

pub fn udp(count: u64, have: fn(&str) -> bool, muxcat: &Path, free_port: fn() -> u16) {
    println!("\n## 1c. UDP: {count} datagrams into and out of each program");
    println!(
        "(receive buffer limit net.core.rmem_max = {} bytes)",
        std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap_or_default()
            .trim()
    );
    let m = muxcat.display();
    let Ok(dir) = tempfile::tempdir() else {
        return println!("no temporary directory");
    };
    let script = dir.path().join("udp.mux");
    let mut receivers: Vec<(&str, String)> = vec![
        ("muxcat (pipe)", format!("{m} -q udp 127.0.0.1:{{P}}")),
        ("muxcat run", format!("{m} run --stay {}", script.display())),
    ];
    if have("socat") {
        receivers.push((
            "socat UDP-RECV",
            "socat -u UDP-RECV:{P},bind=127.0.0.1 STDOUT".into(),
        ));
    }
    println!(
        "{:<16} {:>6} {:>12} {:>10} {:>14} {:>10} {:>10}",
        "into", "bytes", "flat out/s", "lost", "kernel drops", "100k/s: lost", "drops"
    );
    for size in [64usize, 1400] {
        for (name, command) in &receivers {
            let port = free_port();
            // `run` reads its socket's port from the script.
            let _ = std::fs::write(&script, format!("udp 127.0.0.1:{port}\n"));
            let flat = receive(command, count, size, None, port);
            let port = free_port();
            let _ = std::fs::write(&script, format!("udp 127.0.0.1:{port}\n"));
            let paced = receive(command, count.min(200_000), size, Some(100_000), port);
            match (flat, paced) {
                (Some(f), Some(p)) => println!(
                    "{name:<16} {size:>6} {:>12.0} {:>10} {:>14} {:>10} {:>10}",
                    f.per_second, f.lost, f.kernel_drops, p.lost, p.kernel_drops
                ),
                _ => println!("{name:<16} {size:>6} failed"),
            }
        }
    }
    for size in [64usize, 1400] {
        match tui_receive(muxcat, 200_000, size, 100_000, free_port()) {
            Some((drops, cpu)) => println!(
                "{:<16} {size:>6} {:>12} {:>10} {:>14} {:>10} {:>10}   (TUI CPU {cpu:.0}% of a core)",
                "muxcat TUI", "-", "-", "-", drops, drops
            ),
            None => println!("{:<16} {size:>6} failed", "muxcat TUI"),
        }
    }
    let mut senders: Vec<(&str, String)> = vec![(
        "muxcat (pipe)",
        format!("{m} -q udp --to 127.0.0.1:{{P}} 127.0.0.1:0"),
    )];
    if have("socat") {
        senders.push((
            "socat UDP-SENDTO",
            "socat -u STDIN UDP-SENDTO:127.0.0.1:{P}".into(),
        ));
    }
    println!(
        "{:<16} {:>6} {:>12} {:>12} {:>10}",
        "out of", "bytes", "datagrams/s", "datagrams", "MB/s"
    );
    for size in [64usize, 1400] {
        for (name, command) in &senders {
            match send(command, count, size) {
                Some((rate, n, bytes)) => println!(
                    "{name:<16} {size:>6} {rate:>12.0} {n:>12} {:>10.1}",
                    rate * (bytes as f64 / n.max(1) as f64) / 1e6
                ),
                None => println!("{name:<16} {size:>6} failed"),
            }
        }
    }
    println!(
        "(socat sends what one read of stdin gives as one datagram, up to 8 KiB: its datagram counts are not per line)"
    );
}

/// The TUI (in a pseudo-terminal, 140×40, drawing the session) with a UDP
/// socket receiving `count` datagrams paced at `rate`/s: the kernel's drops
/// (the TUI takes every datagram it reads; when it falls behind, it stops
/// reading) and its CPU time over the run, in % of one core.
fn tui_receive(muxcat: &Path, count: u64, size: usize, rate: u64, port: u16) -> Option<(u64, f64)> {
    let tui = super::PtyTui::start(
        muxcat,
        &["tui".into(), "-c".into(), format!("udp 127.0.0.1:{port}")],
        false,
    )?;
    let ticks = |pid: Option<u32>| pid.map(super::cpu_ticks).unwrap_or(0);
    let pid = tui.pid();
    let ready = wait_udp(port);
    std::thread::sleep(Duration::from_millis(300));
    let result = ready.then(|| {
        let sender = UdpSocket::bind("127.0.0.1:0").ok()?;
        let mut payload = vec![b'x'; size];
        payload[size - 1] = b'\n';
        let (drops_before, cpu_before) = (rcvbuf_errors(), ticks(pid));
        let start = Instant::now();
        for i in 0..count {
            if i % 100 == 0 {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let _ = sender.send_to(&payload, ("127.0.0.1", port));
        }
        // What is queued drains (or is dropped) within a moment.
        std::thread::sleep(Duration::from_millis(500));
        let took = start.elapsed().as_secs_f64();
        let cpu = (ticks(pid) - cpu_before) as f64 / 100.0 / took * 100.0;
        Some((rcvbuf_errors().saturating_sub(drops_before), cpu))
    });
    tui.stop();
    result.flatten()
}
