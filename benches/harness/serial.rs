//! The serial row of the harness: bytes through a pseudo-terminal pair
//! (socat makes it), muxcat beside socat (and picocom/tio where installed)
//! in the same run; and keystroke → device latency from the TUI's raw
//! console. Loopback only; every wait is bounded.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A socat pty pair in a temporary folder; killed on drop.
struct Pair {
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    socat: Child,
}

impl Pair {
    fn new() -> Option<Pair> {
        let dir = tempfile::tempdir().ok()?;
        let (a, b) = (dir.path().join("ttyA"), dir.path().join("ttyB"));
        let socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let start = Instant::now();
        while !(a.exists() && b.exists()) {
            if start.elapsed() > Duration::from_secs(5) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(Pair {
            _dir: dir,
            a,
            b,
            socat,
        })
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

fn open_device(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .ok()
}

/// MB/s of `size` bytes written on the device end until the reader (a
/// program reading the port to its stdout, `PORT` in its arguments) has
/// given them all back.
fn through(program: &str, args: &[&str], size: u64) -> Option<f64> {
    let pair = Pair::new()?;
    let port = pair.a.display().to_string();
    let mut child = Command::new(program)
        .args(args.iter().map(|a| a.replace("PORT", &port)))
        // A stdin that stays open: the readers do not end on its EOF.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut out = child.stdout.take()?;
    // Let the reader open the port first.
    std::thread::sleep(Duration::from_millis(300));
    let mut device = open_device(&pair.b)?;
    let start = Instant::now();
    std::thread::spawn(move || {
        let block = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        while sent < size {
            let n = block.len().min((size - sent) as usize);
            if device.write_all(&block[..n]).is_err() {
                return;
            }
            sent += n as u64;
        }
    });
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        while got < size {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
        let _ = done.send(got);
    });
    let got = finished.recv_timeout(Duration::from_secs(60)).ok();
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    (got? >= size).then(|| size as f64 / elapsed.as_secs_f64() / 1e6)
}

pub fn serial(size: u64, presses: usize, have: impl Fn(&str) -> bool, muxcat: &Path) {
    println!("\n## 9. Serial: a pseudo-terminal pair (socat), same run");
    if !have("socat") {
        return println!("socat is not installed: it makes the pty pairs; skipped");
    }
    let mx = muxcat.display().to_string();
    let mut readers: Vec<(&str, &str, Vec<&str>)> = vec![
        ("muxcat", &mx, vec!["-q", "serial", "--pipe", "PORT"]),
        ("socat", "socat", vec!["-u", "PORT,raw,echo=0", "-"]),
    ];
    if have("picocom") {
        readers.push(("picocom", "picocom", vec!["-q", "-b", "115200", "PORT"]));
    }
    if have("tio") {
        readers.push(("tio", "tio", vec!["--mute", "PORT"]));
    }
    let mut figures = Vec::new();
    for (name, program, args) in &readers {
        match through(program, args, size) {
            Some(mbs) => figures.push((*name, mbs)),
            None => println!("{name}: did not finish"),
        }
    }
    let base = figures.iter().find(|(n, _)| *n == "socat").map(|(_, v)| *v);
    for (name, mbs) in &figures {
        let ratio = base
            .map(|b| format!(" ({:.2}× socat)", mbs / b))
            .unwrap_or_default();
        println!("{name}: {mbs:.0} MB/s device → stdout, {} MiB{ratio}", size >> 20);
    }
    keystroke_latency(presses, muxcat);
}

/// Raw console of `muxcat serial`: time from a key into the TUI's terminal
/// to its byte on the device end.
fn keystroke_latency(presses: usize, muxcat: &Path) {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let Some(pair) = Pair::new() else {
        return println!("no pty pair");
    };
    let Ok(pty) = native_pty_system().openpty(PtySize {
        rows: 30,
        cols: 120,
        pixel_width: 0,
        pixel_height: 0,
    }) else {
        return println!("no pseudo-terminal");
    };
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = CommandBuilder::new(muxcat);
    cmd.args(["serial", &pair.a.display().to_string()]);
    cmd.env("TERM", "xterm-256color");
    cmd.env("HOME", home.path());
    cmd.env("XDG_DATA_HOME", home.path());
    let Ok(mut child) = pty.slave.spawn_command(cmd) else {
        return println!("cannot start the TUI");
    };
    drop(pty.slave);
    let (Ok(mut screen), Ok(mut keys)) = (pty.master.try_clone_reader(), pty.master.take_writer()) else {
        return;
    };
    // Drain the screen so the TUI never blocks on its terminal.
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(screen.read(&mut buf), Ok(n) if n > 0) {}
    });
    let Some(mut device) = open_device(&pair.b) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(800));
    // Insert, then ctrl-t: the raw console, each key out at once.
    let _ = keys.write_all(b"i");
    let _ = keys.flush();
    std::thread::sleep(Duration::from_millis(200));
    let _ = keys.write_all(b"\x14");
    let _ = keys.flush();
    std::thread::sleep(Duration::from_millis(200));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut reader = device.try_clone().expect("clone");
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send((Instant::now(), n)).is_err() {
                break;
            }
        }
    });
    let mut latencies = Vec::new();
    for i in 0..presses {
        let key = [b'a' + (i % 26) as u8];
        let sent = Instant::now();
        let _ = keys.write_all(&key);
        let _ = keys.flush();
        if let Ok((at, _)) = rx.recv_timeout(Duration::from_secs(2)) {
            latencies.push(at.duration_since(sent).as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = device.flush();
    let _ = child.kill();
    let _ = child.wait();
    if latencies.is_empty() {
        return println!("no key reached the device");
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "keystroke → device (raw console): median {:.2} ms, max {:.2} ms ({} keys)",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies.len()
    );
}
