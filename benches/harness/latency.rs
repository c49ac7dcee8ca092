//! Request → reply through a trigger: clients send `PING`, the server
//! answers `PONG`; the time from the write to the whole answer, p50 and
//! p99, on one connection and on many at once. Servers: `muxcat run` with
//! `on ^PING$ send PONG` on a listener, a minimal tokio server doing the
//! same (the limit: no events, no triggers), and socat forking a `sed`
//! per client (`SYSTEM:`), the peers' way of answering. Loopback; the
//! clients are tokio tasks in this process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Round trips of `clients` connections at once, `each` per client:
/// every sample in microseconds (empty if a connection failed).
async fn measure(port: u16, clients: usize, each: usize) -> Vec<u64> {
    let mut tasks = Vec::new();
    let start_line = std::sync::Arc::new(tokio::sync::Barrier::new(clients));
    for _ in 0..clients {
        let go = start_line.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                go.wait().await;
                return Vec::new();
            };
            let _ = stream.set_nodelay(true);
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            let mut line = String::new();
            let mut samples = Vec::with_capacity(each);
            // One round trip first: the server has accepted this client
            // (and started whatever serves it) before timing starts.
            let warm = async {
                w.write_all(b"PING\n").await.ok()?;
                r.read_line(&mut line).await.ok()
            };
            let warmed = tokio::time::timeout(Duration::from_secs(30), warm).await;
            go.wait().await;
            if !matches!(warmed, Ok(Some(n)) if n > 0) {
                return samples;
            }
            for _ in 0..each {
                let sent = Instant::now();
                if w.write_all(b"PING\n").await.is_err() {
                    break;
                }
                line.clear();
                let got = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line)).await;
                if !matches!(got, Ok(Ok(n)) if n > 0) || !line.starts_with("PONG") {
                    break;
                }
                samples.push(sent.elapsed().as_micros() as u64);
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

/// The minimal server: a task per client answering each `PING` line.
async fn tokio_pong() -> u16 {
    let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
        return 0;
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if l.starts_with("PING") && w.write_all(b"PONG\n").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn spawn(command: &str) -> Option<Child> {
    Command::new("sh")
        .args(["-c", &format!("exec {command}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

pub fn latency(
    many: usize,
    each: usize,
    have: fn(&str) -> bool,
    muxcat: &Path,
    free_port: fn() -> u16,
    wait_listen: fn(u16) -> bool,
) {
    println!("\n## 11. Request → reply through a trigger (PING → PONG), milliseconds");
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        return println!("no runtime");
    };
    let Ok(dir) = tempfile::tempdir() else {
        return println!("no temporary directory");
    };
    println!(
        "{:<28} {:>9} {:>8} {:>8} {:>8}",
        "server", "clients", "samples", "p50", "p99"
    );
    let row = |name: &str, port: u16, clients: usize, per: usize| {
        let mut samples = rt.block_on(measure(port, clients, per));
        samples.sort_unstable();
        println!(
            "{name:<28} {clients:>9} {:>8} {:>8.3} {:>8.3}",
            samples.len(),
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
    };
    let cases = [(1usize, each * 10), (many, each)];
    // muxcat: a listener whose clients are answered by a trigger.
    let port = free_port();
    let script = dir.path().join("pong.mux");
    let _ = std::fs::write(
        &script,
        format!(
            "listen --max-connections {} 127.0.0.1:{port}\non ^PING$ send PONG\n",
            many + 10
        ),
    );
    if let Some(mut server) = spawn(&format!("{} run --stay {}", muxcat.display(), script.display())) {
        if wait_listen(port) {
            std::thread::sleep(Duration::from_millis(200));
            for (clients, per) in cases {
                row("muxcat run, on ^PING$", port, clients, per);
            }
        }
        let _ = server.kill();
        let _ = server.wait();
    }
    let port = rt.block_on(tokio_pong());
    for (clients, per) in cases {
        row("tokio (the limit)", port, clients, per);
    }
    if have("socat") && have("sed") {
        let port = free_port();
        if let Some(mut server) = spawn(&format!(
            "socat TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=4096 SYSTEM:'sed -u s/PING/PONG/'"
        )) {
            if wait_listen(port) {
                // A process pair per client: 100 at once, not `many`.
                for (clients, per) in [(1usize, each * 10), (many.min(100), each)] {
                    row("socat fork SYSTEM:sed", port, clients, per);
                }
            }
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}
