//! Memory a remote peer controls: floods of tiny lines and endless lines
//! against the real binary, with a front end that reads slowly or not at
//! all. The peak (VmHWM) must stay far below what the flood could make it;
//! the bounds are loose (CI machines differ), the exact figures are in the
//! benchmark harness.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::muxcat_bin;

/// Peak resident memory of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A peer that accepts one client and sends `pattern` over and over for
/// `secs` seconds (or until the client stops taking it).
fn flooding_peer(pattern: &'static [u8], secs: u64) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else { return };
        s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        let block: Vec<u8> = pattern.iter().copied().cycle().take(1 << 20).collect();
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            use std::io::Write;
            match s.write(&block) {
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    });
    port
}

/// Runs `muxcat run [extra]` on a script that connects to the flood and
/// waits; `drain` reads its stdout (slowly) or not at all. Returns the
/// peak memory in MiB after `secs` seconds.
fn peak_of_run(port: u16, extra: &[&str], drain: bool, secs: u64) -> u64 {
    peak_of_script(
        &format!("connect 127.0.0.1:{port}\nsleep 60s"),
        extra,
        drain,
        secs,
    )
}

fn peak_of_script(script: &str, extra: &[&str], drain: bool, secs: u64) -> u64 {
    let mut child: Child = Command::new(muxcat_bin())
        .arg("run")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{script}").unwrap();
        // stdin stays open in the thread below until the test ends.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(120));
            drop(stdin);
        });
    }
    let mut stdout = child.stdout.take().unwrap();
    if drain {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            // A slow reader: 64 KiB every 2 ms, ~32 MB/s.
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    } else {
        // Held, never read: the pipe fills and the printer blocks.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(120));
            drop(stdout);
        });
    }
    std::thread::sleep(Duration::from_secs(secs));
    let peak = vm_hwm_kib(child.id()).expect("VmHWM") / 1024;
    let _ = child.kill();
    let _ = child.wait();
    peak
}

/// Generous for CI, far below the gigabytes these floods reached before
/// the event queue was bounded by bytes.
const LIMIT_MIB: u64 = 96;

#[test]
fn a_flood_of_empty_lines_to_a_stuck_front_end_stays_bounded() {
    let port = flooding_peer(b"\n", 6);
    let peak = peak_of_run(port, &[], false, 4);
    eprintln!("peak {peak} MiB");
    assert!(peak < LIMIT_MIB, "peak {peak} MiB");
}

#[test]
fn a_flood_of_tiny_lines_to_a_slow_json_front_end_stays_bounded() {
    let port = flooding_peer(b"a\n", 6);
    let peak = peak_of_run(port, &["--json"], true, 4);
    eprintln!("peak {peak} MiB");
    assert!(peak < LIMIT_MIB, "peak {peak} MiB");
}

#[test]
fn one_endless_line_to_a_slow_front_end_stays_bounded() {
    let port = flooding_peer(b"y", 6);
    let peak = peak_of_run(port, &[], true, 4);
    eprintln!("peak {peak} MiB");
    assert!(peak < LIMIT_MIB, "peak {peak} MiB");
}

#[test]
fn tiny_trigger_replies_to_a_peer_that_never_reads_stay_bounded() {
    // Each `a` is answered with `b`; the peer reads none of the answers.
    let port = flooding_peer(b"a\n", 8);
    let script = format!("connect 127.0.0.1:{port}\non ^a$ send b\nsleep 60s");
    let peak = peak_of_script(&script, &[], true, 6);
    eprintln!("peak {peak} MiB");
    assert!(peak < LIMIT_MIB, "peak {peak} MiB");
}
