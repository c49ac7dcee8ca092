//! Aggregate work: `clients` connections at once each send 1 MiB of text
//! lines to one `muxcat run --record DIR` listener and close. Total
//! throughput (first byte to the last session's end), muxcat's peak RSS,
//! and every transcript read back and compared with what its client sent.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

/// Client `n`'s bytes: numbered lines, 1 MiB in all (the first names it).
fn payload(n: usize) -> Vec<u8> {
    let mut out = format!("client {n:05}\n").into_bytes();
    let mut i = 0u64;
    while out.len() < 1 << 20 {
        out.extend_from_slice(
            format!("line {i:08} of client {n:05}: temperature=42 humidity=40 OK\n").as_bytes(),
        );
        i += 1;
    }
    out.truncate(1 << 20);
    out
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub fn aggregate(clients: usize, muxcat: &Path, free_port: fn() -> u16, wait_listen: fn(u16) -> bool) {
    println!("\n## 12. Aggregate: {clients} connections × 1 MiB of lines at once into `run --record`");
    let Ok(dir) = tempfile::tempdir() else {
        return println!("no temporary directory");
    };
    let rec = dir.path().join("rec");
    let script = dir.path().join("sink.mux");
    let port = free_port();
    let _ = std::fs::write(
        &script,
        format!("listen --max-connections {} 127.0.0.1:{port}\n", clients + 10),
    );
    let Ok(mut server) = Command::new(muxcat)
        .arg("--record")
        .arg(&rec)
        .args(["run", "--stay"])
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return println!("cannot start muxcat");
    };
    let pid = server.id();
    let Some(out) = server.stdout.take() else {
        return;
    };
    // Counts the sessions that ended (one `disconnected` line each).
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Instant>();
    let record_failed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failures = record_failed.clone();
    std::thread::spawn(move || {
        let mut ended = 0usize;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("RECORD_FAILED") {
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if line.contains(" disconnected ") {
                ended += 1;
                if ended == clients {
                    let _ = done_tx.send(Instant::now());
                }
            }
        }
    });
    if !wait_listen(port) {
        let _ = server.kill();
        let _ = server.wait();
        return println!("muxcat did not listen");
    }
    let payloads: Vec<Vec<u8>> = (0..clients).map(payload).collect();
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        return;
    };
    let start = Instant::now();
    let sent = rt.block_on(async {
        let mut tasks = Vec::new();
        let owned: Vec<bytes::Bytes> = payloads
            .iter()
            .map(|p| bytes::Bytes::copy_from_slice(p))
            .collect();
        for data in owned {
            tasks.push(tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
                s.write_all(&data).await.ok()?;
                s.shutdown().await.ok()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            if matches!(t.await, Ok(Some(()))) {
                ok += 1;
            }
        }
        ok
    });
    let finished = done_rx.recv_timeout(Duration::from_secs(300));
    let hwm = vm_hwm_kib(pid);
    // SIGTERM: transcripts flushed, then the files are read back.
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let stopped = Instant::now();
    while stopped.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = server.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.kill();
    let _ = server.wait();
    let Ok(end) = finished else {
        return println!("only some sessions ended within 300 s ({sent} of {clients} sent)");
    };
    let took = end.duration_since(start);
    let (mut exact, mut files) = (0usize, 0usize);
    let mut unreadable = None;
    for entry in std::fs::read_dir(&rec).into_iter().flatten().flatten() {
        files += 1;
        let Ok(text) = std::fs::read(entry.path()) else {
            continue;
        };
        let parsed = match muxcat::transcript::parse(&text, "t") {
            Ok(p) => p,
            Err(e) => {
                unreadable.get_or_insert(e);
                continue;
            }
        };
        let got = parsed.stream(muxcat::transcript::Mark::In);
        let n = std::str::from_utf8(&got[..got.len().min(12)])
            .ok()
            .and_then(|h| h.strip_prefix("client "))
            .and_then(|h| h.trim().parse::<usize>().ok());
        if n.and_then(|n| payloads.get(n)).is_some_and(|want| *want == got) {
            exact += 1;
        }
    }
    let total = (clients as u64) << 20;
    println!(
        "{clients} sessions, {} MiB in {:.2} s: {:.2} GB/s; peak RSS {}; transcripts byte-exact: {exact} of {files} files ({clients} sessions)",
        total >> 20,
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64() / 1e9,
        hwm.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into()),
    );
    let failed = record_failed.load(std::sync::atomic::Ordering::Relaxed);
    if failed > 0 || unreadable.is_some() {
        println!(
            "RECORD_FAILED events: {failed}; first unreadable transcript: {} (a full disk?)",
            unreadable.unwrap_or_default()
        );
    }
}
