//! A relay between two programs: `size` bytes from a client through a
//! proxy to a server that reads them all, then both ends close (the time
//! runs until the client sees the end come back through the proxy).
//! Direct (no relay: the ceiling), socat `TCP-LISTEN:P,fork TCP:target`,
//! `muxcat proxy -q` (headless) and `muxcat proxy --json` (every chunk an
//! event for a front end), in interleaved rounds of the same run.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server that reads everything and then closes; its port.
fn sink() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = stream;
                let mut buf = vec![0u8; 256 << 10];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Sends `size` bytes to `port`, half-closes, waits for the end to come
/// back; the seconds it took.
fn push(port: u16, size: u64) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let chunk = vec![0u8; 256 << 10];
    let start = Instant::now();
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..n]).ok()?;
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write).ok()?;
    let mut rest = [0u8; 64];
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    while s.read(&mut rest).ok()? > 0 {}
    Some(start.elapsed().as_secs_f64())
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

pub fn proxy(
    size: u64,
    rounds: usize,
    have: impl Fn(&str) -> bool,
    muxcat: &Path,
    free_port: impl Fn() -> u16,
) {
    println!(
        "\n## 13. Relay: {} MiB through a proxy to a reading server ({rounds} interleaved rounds, median)",
        size >> 20
    );
    let target = sink();
    let mut results: Vec<(&str, Vec<f64>)> = vec![
        ("direct (no relay)", Vec::new()),
        ("socat TCP-LISTEN,fork TCP", Vec::new()),
        ("muxcat proxy -q", Vec::new()),
        ("muxcat proxy --json (events to a front end)", Vec::new()),
        ("muxcat proxy --tui --mode binary (the TUI in a pty)", Vec::new()),
    ];
    let socat = have("socat");
    for _ in 0..rounds {
        if let Some(t) = push(target, size) {
            results[0].1.push(t);
        }
        if socat {
            let port = free_port();
            let child = Command::new("socat")
                .args([
                    &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
                    &format!("TCP:127.0.0.1:{target}"),
                ])
                .stderr(Stdio::null())
                .spawn();
            if let Ok(child) = child {
                if super::wait_listen(port)
                    && let Some(t) = push(port, size)
                {
                    results[1].1.push(t);
                }
                stop(child);
            }
        }
        for (row, extra) in [(2, "-q"), (3, "--json")] {
            let port = free_port();
            let mut cmd = Command::new(muxcat);
            if extra == "--json" {
                cmd.arg("--json");
            }
            cmd.arg("proxy");
            if extra == "-q" {
                cmd.arg("-q");
            }
            let child = cmd
                .args([format!("127.0.0.1:{port}"), format!("127.0.0.1:{target}")])
                .stderr(Stdio::null())
                .spawn();
            if let Ok(child) = child {
                if super::wait_listen(port)
                    && let Some(t) = push(port, size)
                {
                    results[row].1.push(t);
                }
                stop(child);
            }
        }
    }
    for _ in 0..rounds {
        let port = free_port();
        let args = [
            "proxy".to_string(),
            "--tui".to_string(),
            "--mode".to_string(),
            "binary".to_string(),
            format!("127.0.0.1:{port}"),
            format!("127.0.0.1:{target}"),
        ];
        if let Some(tui) = super::PtyTui::start(muxcat, &args, false) {
            if super::wait_listen(port)
                && let Some(t) = push(port, size)
            {
                results[4].1.push(t);
            }
            tui.stop();
        }
    }
    if !socat {
        println!("socat not installed: its row left out");
    }
    let gbs = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).map(|t| size as f64 / t / 1e9)
    };
    let socat_rate = gbs(&results[1].1);
    for (name, times) in &results {
        match gbs(times) {
            Some(rate) => {
                let ratio = socat_rate
                    .map(|s| format!(" ({:.2}× socat)", rate / s))
                    .unwrap_or_default();
                println!("{name}: {rate:.2} GB/s{ratio}");
            }
            None if name.starts_with("socat") && !socat => {}
            None => println!("{name}: failed"),
        }
    }
}
