//! Whole-process figures, side by side with the peers found on PATH (socat,
//! ncat, OpenBSD nc): pipe throughput, managed-session throughput, idle
//! sessions at scale, start-up time. Installs nothing; peers that are
//! missing are left out. Only same-run ratios mean much on a noisy machine.
//!
//!     cargo bench --bench harness            quick mode (about a minute)
//!     cargo bench --bench harness -- --full  full mode (2 GiB, 10 000 sessions, 3 runs)
//!
//! Loopback only; every count and wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use muxcat::core::{EventKind, Manager, ManagerConfig, Mode};

#[path = "harness/aggregate.rs"]
mod aggregate_bench;
#[path = "harness/copier.rs"]
mod copier;
#[path = "harness/latency.rs"]
mod latency_bench;
#[path = "harness/proxy.rs"]
mod proxy_bench;
#[path = "harness/pty_tui.rs"]
mod pty_tui;
use pty_tui::PtyTui;
#[path = "harness/roundtrip.rs"]
mod roundtrip_bench;
#[path = "harness/serial.rs"]
mod serial_bench;
#[path = "harness/tls.rs"]
mod tls_bench;
#[path = "harness/udp.rs"]
mod udp_bench;
use tokio::io::AsyncWriteExt;

fn muxcat() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_muxcat"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A port for a peer that must be told one (socat, ncat): below the
/// ephemeral range (32768-60999), where no client's own port can take it
/// between this check and the peer's bind; free for TCP and UDP now.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        // Runs at once on one machine start at different places.
        let seed = std::process::id() as u16 % 8000;
        let _ = NEXT.compare_exchange(0, 20_000 + seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..12_000 {
        let mut port = NEXT.fetch_add(1, Ordering::Relaxed);
        if !(20_000..32_000).contains(&port) {
            NEXT.store(20_001, Ordering::Relaxed);
            port = 20_000;
        }
        let tcp = TcpListener::bind(("127.0.0.1", port)).is_ok();
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if tcp && udp {
            return port;
        }
    }
    0
}

/// Waits (bounded) until something is in LISTEN on the port, without connecting.
fn wait_listen(port: u16) -> bool {
    let needle = format!(":{port:04X} 00000000:0000 0A");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let tcp6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
        if tcp.contains(&needle)
            || tcp6.contains(&format!(":{port:04X} 00000000000000000000000000000000:0000 0A"))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn gb(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One timed transfer: server to /dev/null, `SOURCE | client` (SOURCE
/// yields `size` bytes).
fn pipe_once(source: &str, server: &str, client: &str, size: u64) -> Option<f64> {
    let (mut srv, port) = start_server(server)?;
    let client = client.replace("{P}", &port.to_string());
    let start = Instant::now();
    let ok = Command::new("bash")
        .args(["-c", &format!("{source} | {client}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let waited = wait_bounded(&mut srv, Duration::from_secs(30));
    let elapsed = start.elapsed();
    (ok && waited).then(|| gb(size, elapsed))
}

/// Starts `SERVER` (`{P}`: a free port) with its output thrown away, and
/// waits until it listens; the process and the port.
fn start_server(server: &str) -> Option<(Child, u16)> {
    let port = free_port();
    let server = server.replace("{P}", &port.to_string());
    let mut srv = Command::new("sh")
        .args(["-c", &format!("exec {server} > /dev/null")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    if !wait_listen(port) {
        let _ = srv.kill();
        let _ = srv.wait();
        return None;
    }
    Some((srv, port))
}

fn wait_bounded(child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn pipe_throughput(size: u64, runs: usize) {
    pipe_table("zeros", &format!("head -c {size} /dev/zero"), size, runs, true);
    let text = size / 2;
    pipe_table(
        "text lines",
        &format!("yes 'temperature=42 humidity=40 status=OK' | head -c {text}"),
        text,
        runs,
        false,
    );
}

/// How one row of a pipe table is measured.
enum Pair {
    /// `SOURCE | cat`: what the harness itself can move.
    Ceiling,
    /// A server and a client command (`{P}` is the port).
    Run(String, String),
    /// The same, with transcripts written to the recording directory.
    Recorded(String, String),
    /// Writing the volume of the recorded pair just before it alone, two
    /// writers at once as in the recorded pair: what this disk allows.
    Disk,
}

/// One table: every pair moving `size` bytes of `source`.
fn pipe_table(what: &str, source: &str, size: u64, runs: usize, all_peers: bool) {
    println!(
        "\n## 1. Pipe throughput: {} MiB of {what}, median of {runs}",
        size >> 20
    );
    let m = muxcat();
    let m = m.display();
    let Ok(rec) = tempfile::tempdir() else {
        return println!("no temporary directory");
    };
    let rec_dir = rec.path().display().to_string();
    let mut pairs: Vec<(String, Pair)> = vec![
        ("ceiling: head | cat".into(), Pair::Ceiling),
        (
            "muxcat".into(),
            Pair::Run(
                format!("{m} -q listen 127.0.0.1:{{P}}"),
                format!("{m} -q connect 127.0.0.1:{{P}}"),
            ),
        ),
        (
            "muxcat --record (both ends)".into(),
            Pair::Recorded(
                format!("{m} -q --record {rec_dir} listen 127.0.0.1:{{P}}"),
                format!("{m} -q --record {rec_dir} connect 127.0.0.1:{{P}}"),
            ),
        ),
    ];
    if all_peers {
        // Binary data: what transcript v3's LZ4 lines change against v2's
        // base64, and what the disk takes of v2's volume.
        let v2 = format!("{m} -q --record {rec_dir} --transcript-format v2");
        pairs.push((
            "muxcat --record v2 (both ends)".into(),
            Pair::Recorded(
                format!("{v2} listen 127.0.0.1:{{P}}"),
                format!("{v2} connect 127.0.0.1:{{P}}"),
            ),
        ));
        pairs.push(("disk: v2's transcripts alone".into(), Pair::Disk));
    } else {
        pairs.push(("disk: their transcripts alone".into(), Pair::Disk));
    }
    if let Ok(me) = std::env::current_exe() {
        let me = me.display();
        pairs.insert(
            1,
            (
                "limit: blocking read/write".into(),
                Pair::Run(
                    format!("{me} --copy-listen {{P}}"),
                    format!("{me} --copy-connect {{P}}"),
                ),
            ),
        );
    }
    if have("socat") {
        pairs.push((
            "socat".into(),
            Pair::Run(
                "socat -u TCP-LISTEN:{P},reuseaddr STDOUT".into(),
                "socat -u STDIN TCP:127.0.0.1:{P}".into(),
            ),
        ));
    }
    if have("ncat") && all_peers {
        pairs.push((
            "ncat".into(),
            Pair::Run(
                "ncat -l --recv-only 127.0.0.1 {P}".into(),
                "ncat --send-only 127.0.0.1 {P}".into(),
            ),
        ));
    }
    if have("nc.openbsd") && all_peers {
        pairs.push((
            "nc (OpenBSD)".into(),
            Pair::Run(
                "nc.openbsd -d -l 127.0.0.1 {P}".into(),
                "nc.openbsd -N 127.0.0.1 {P}".into(),
            ),
        ));
    }
    // Rounds go through every pair in turn, so a slow spell of this noisy
    // machine hits all of them rather than one.
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
    let mut transcripts: Vec<u64> = Vec::new();
    let mut volumes: Vec<(String, u64)> = Vec::new();
    for _ in 0..runs {
        for ((name, pair), got) in pairs.iter().zip(figures.iter_mut()) {
            let f = match pair {
                Pair::Ceiling => {
                    let start = Instant::now();
                    let ok = Command::new("bash")
                        .args(["-c", &format!("{source} | cat > /dev/null")])
                        .status()
                        .is_ok_and(|s| s.success());
                    ok.then(|| gb(size, start.elapsed()))
                }
                Pair::Run(server, client) => pipe_once(source, server, client, size),
                Pair::Recorded(server, client) => {
                    let f = pipe_once(source, server, client, size);
                    // Transcripts of zeros are large: measured, then dropped.
                    transcripts = drain_dir(rec.path());
                    volumes.retain(|(n, _)| n != name);
                    volumes.push((name.clone(), transcripts.iter().sum()));
                    f
                }
                Pair::Disk => write_alone(rec.path(), &transcripts).map(|d| gb(size, d)),
            };
            got.extend(f);
        }
    }
    let mut results = Vec::new();
    for ((name, _), got) in pairs.iter().zip(figures) {
        if got.is_empty() {
            println!("{name:<30} failed");
            continue;
        }
        results.push((name.clone(), median(got)));
    }
    let find = |n: &str| results.iter().find(|(name, _)| name == n).map(|(_, v)| *v);
    let (socat, nc) = (find("socat"), find("nc (OpenBSD)"));
    println!("{:<30} {:>8} {:>10} {:>10}", "pair", "GB/s", "÷ socat", "÷ nc");
    for (name, v) in &results {
        let ratio = |base: Option<f64>| {
            base.map(|b| format!("{:.2}", v / b))
                .unwrap_or_else(|| "-".into())
        };
        println!("{name:<30} {v:>8.2} {:>10} {:>10}", ratio(socat), ratio(nc));
    }
    if let (Some(m), Some(ceiling), Some(limit)) = (
        find("muxcat"),
        find("ceiling: head | cat"),
        find("limit: blocking read/write"),
    ) {
        println!(
            "muxcat: {:.0}% of head | cat, {:.0}% of a blocking read/write relay over the same socket",
            100.0 * m / ceiling,
            100.0 * m / limit
        );
    }
    for (name, volume) in &volumes {
        println!(
            "{name}: transcripts of {:.3} bytes written per byte moved",
            *volume as f64 / size as f64
        );
    }
    for (i, (name, _)) in pairs
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| matches!(p, Pair::Disk))
    {
        // The disk row measures the recorded pair just before it.
        let before = &pairs[i.saturating_sub(1)].0;
        if let (Some(rec), Some(disk)) = (find(before), find(name)) {
            println!(
                "{before} runs at {:.2} of what the disk takes of its volume",
                rec / disk
            );
        }
    }
}

/// Removes the files in `dir`; returns their sizes.
fn drain_dir(dir: &std::path::Path) -> Vec<u64> {
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        sizes.extend(entry.metadata().ok().map(|m| m.len()));
        let _ = std::fs::remove_file(entry.path());
    }
    sizes
}

/// Writes files of `sizes` into `dir`, one thread each, 256 KiB per write
/// (as the transcript writer does); returns the time taken, files removed.
fn write_alone(dir: &std::path::Path, sizes: &[u64]) -> Option<Duration> {
    if sizes.is_empty() {
        return None;
    }
    let start = Instant::now();
    let ok = std::thread::scope(|s| {
        let writers: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                s.spawn(move || -> std::io::Result<()> {
                    let mut f = std::fs::File::create(dir.join(format!("disk-{i}")))?;
                    let block = vec![b'x'; 256 * 1024];
                    let mut left = size;
                    while left > 0 {
                        let n = left.min(block.len() as u64) as usize;
                        f.write_all(&block[..n])?;
                        left -= n as u64;
                    }
                    Ok(())
                })
            })
            .collect();
        writers.into_iter().all(|w| w.join().is_ok_and(|r| r.is_ok()))
    });
    let elapsed = start.elapsed();
    drain_dir(dir);
    ok.then_some(elapsed)
}

/// Bytes through the session manager into a front end that only counts
/// the events (no terminal).
fn managed_throughput(size: usize) {
    println!(
        "\n## 2. Managed-session throughput: {} MiB through the session manager",
        size >> 20
    );
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return println!("no runtime: {e}"),
    };
    for (name, mode, line_len) in [
        ("binary", Mode::Binary, 0usize),
        ("line, 32-byte lines", Mode::Line, 32),
    ] {
        let figure = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?;
            let addr = listener.local_addr().ok()?;
            let block: Bytes = if line_len == 0 {
                Bytes::from(vec![b'x'; 1 << 20])
            } else {
                let mut line = vec![b'a'; line_len - 1];
                line.push(b'\n');
                Bytes::from(line.repeat((1 << 20) / line_len))
            };
            let total = size - size % block.len();
            tokio::spawn(async move {
                if let Ok((mut s, _)) = listener.accept().await {
                    let mut sent = 0;
                    while sent < total {
                        if s.write_all(&block).await.is_err() {
                            return;
                        }
                        sent += block.len();
                    }
                    let _ = s.shutdown().await;
                }
            });
            let (manager, mut events) = Manager::start(ManagerConfig::default());
            let mode_word = if mode == muxcat::core::Mode::Line {
                "line"
            } else {
                "binary"
            };
            let Ok(Some(muxcat::lang::Parsed::Core(connect))) =
                muxcat::lang::parse_line(&format!("connect --mode {mode_word} {addr}"))
            else {
                return None;
            };
            let start = Instant::now();
            let pending = manager.submit(connect).await;
            tokio::spawn(pending);
            let mut got = 0usize;
            let mut events_seen = 0usize;
            while let Some(ev) = events.recv().await {
                events_seen += 1;
                match ev.kind {
                    EventKind::Data { count, .. } => got += count,
                    EventKind::DataBatch(lines) => got += lines.iter().map(|l| l.count).sum::<usize>(),
                    EventKind::Disconnected { .. } => break,
                    _ => {}
                }
            }
            let elapsed = start.elapsed();
            Some((got, events_seen, elapsed))
        });
        match figure {
            Some((bytes, events, elapsed)) => println!(
                "{name:<22} {:>7.0} MB/s  ({} events, {:.1} M events/s)",
                bytes as f64 / elapsed.as_secs_f64() / 1e6,
                events,
                events as f64 / elapsed.as_secs_f64() / 1e6
            ),
            None => println!("{name:<22} failed"),
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// PSS of a process and all its descendants.
fn tree_pss_kib(root: u32) -> (u64, usize) {
    let mut pids = vec![root];
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(") ")
                .next()
                .and_then(|r| r.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(parent) && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        i += 1;
    }
    (pids.iter().map(|p| pss_kib(*p)).sum(), pids.len())
}

/// Opens `n` idle connections; returns how many were opened.
/// Clients of 127.0.0.1:`port`, from 127.0.0.1, then 127.0.0.2, … (10 000
/// each), so ephemeral ports (and TIME_WAIT from earlier rounds) never
/// run short.
fn open_clients(port: u16, n: usize) -> Vec<TcpStream> {
    let mut clients = Vec::with_capacity(n);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for i in 0..n {
        let source = std::net::SocketAddr::from(([127, 0, 0, 1 + (i / 10_000) as u8], 0));
        let connect = || -> std::io::Result<TcpStream> {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.bind(&source.into())?;
            // A peer that stops accepting (ncat at its select() limit) must not hang the harness.
            s.connect_timeout(&addr.into(), Duration::from_secs(2))?;
            Ok(s.into())
        };
        match connect() {
            Ok(c) => clients.push(c),
            Err(_) => break,
        }
    }
    clients
}

/// Writes `command` to a `run` reading its stdin; how long until a line
/// with `answer` came back (`answered` gets every such line's time).
fn command_latency(
    stdin: &mut std::process::ChildStdin,
    answered: &std::sync::mpsc::Receiver<Instant>,
    command: &str,
) -> Option<Duration> {
    while answered.try_recv().is_ok() {}
    let start = Instant::now();
    writeln!(stdin, "{command}").ok()?;
    stdin.flush().ok()?;
    let at = answered.recv_timeout(Duration::from_secs(10)).ok()?;
    Some(at.saturating_duration_since(start))
}

fn scale(n: usize, peers_n: usize) {
    println!("\n## 3. Scale: idle sessions on one listener");
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let port = free_port();
    let mut child = match Command::new(muxcat())
        .args(["run", "--stay"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return println!("cannot start muxcat: {e}"),
    };
    let Some(mut stdin) = child.stdin.take() else {
        return;
    };
    let _ = writeln!(stdin, "listen --max-connections 20000 127.0.0.1:{port}");
    let _ = stdin.flush();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(child.id()).unwrap_or(0);
    let (tx, rx) = std::sync::mpsc::channel();
    let (answer_tx, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut accepted = 0usize;
        for line in out.lines().map_while(Result::ok) {
            if line.contains(" accepted ") {
                accepted += 1;
                let _ = tx.send(accepted);
            } else if line.contains(" listeners (") {
                let _ = answer_tx.send(Instant::now());
            }
        }
    });
    let start = Instant::now();
    let clients = open_clients(port, n);
    let mut accepted = 0;
    while accepted < clients.len() && start.elapsed() < Duration::from_secs(60) {
        if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
            accepted = a;
        }
    }
    let took = start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(child.id()).unwrap_or(0);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / accepted.max(1) as f64;
    println!(
        "muxcat: {accepted}/{n} held, accepted at {:.0}/s, RSS {} -> {} KiB: {:.2} KiB per session",
        accepted as f64 / took.as_secs_f64(),
        before,
        after,
        per / 1024.0
    );
    // A command while they are held, and while 1000 of them send a line.
    let idle: Vec<_> = (0..5)
        .filter_map(|_| command_latency(&mut stdin, &answers, "listeners"))
        .collect();
    let mut busy = Vec::new();
    for _ in 0..5 {
        for mut c in clients.iter().take(1000) {
            let _ = c.write_all(b"a line from one of a thousand clients\n");
        }
        busy.extend(command_latency(&mut stdin, &answers, "listeners"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let ms = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "a command (listeners) answered in ms, sessions held: {}; right after 1000 of them each sent a line: {}",
        ms(&idle),
        ms(&busy)
    );
    drop(stdin);
    drop(clients);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    wait_bounded(&mut child, Duration::from_secs(10));

    // The peers, with fewer connections: socat forks per connection, ncat selects.
    if have("socat") {
        let port = free_port();
        if let Ok(mut srv) = Command::new("socat")
            // -u: TCP to /dev/null only, so a child waits for its client.
            .args([
                "-u",
                &format!("TCP-LISTEN:{port},fork,reuseaddr,backlog=1024"),
                "/dev/null",
            ])
            .stdin(Stdio::null())
            .spawn()
        {
            wait_listen(port);
            let (base, _) = tree_pss_kib(srv.id());
            let start = Instant::now();
            let clients = open_clients(port, peers_n);
            // Accepted = a child forked for it.
            let mut procs = 0;
            while procs <= clients.len() && start.elapsed() < Duration::from_secs(30) {
                procs = tree_pss_kib(srv.id()).1;
                std::thread::sleep(Duration::from_millis(20));
            }
            let rate = clients.len() as f64 / start.elapsed().as_secs_f64();
            std::thread::sleep(Duration::from_millis(500));
            let (pss, procs) = tree_pss_kib(srv.id());
            println!(
                "socat fork: {} connections, {} processes, accepted at {rate:.0}/s, {:.1} KiB PSS per connection",
                clients.len(),
                procs,
                (pss.saturating_sub(base)) as f64 / clients.len().max(1) as f64
            );
            drop(clients);
            let _ = srv.kill();
            let _ = srv.wait();
            let _ = Command::new("pkill")
                .args(["-f", &format!("TCP-LISTEN:{port}")])
                .status();
        }
    }
    if have("ncat") {
        let port = free_port();
        if let Ok(mut srv) = Command::new("ncat")
            // -n: no reverse lookup of each client (on a machine without
            // DNS each one waits ~37 ms for it).
            .args([
                "-l",
                "-n",
                "--broker",
                "-m",
                "20000",
                "127.0.0.1",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            wait_listen(port);
            let base = rss_kib(srv.id()).unwrap_or(0);
            // Accepted = a descriptor more in ncat (it forks nothing).
            let fds = |pid: u32| std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
            let base_fds = fds(srv.id());
            let start = Instant::now();
            let clients = open_clients(port, peers_n.min(1000));
            while fds(srv.id()) < base_fds + clients.len() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(2));
            }
            let accepted = fds(srv.id()).saturating_sub(base_fds);
            let rate = accepted as f64 / start.elapsed().as_secs_f64();
            std::thread::sleep(Duration::from_millis(500));
            let alive = srv.try_wait().ok().flatten().is_none();
            let after = rss_kib(srv.id()).unwrap_or(0);
            println!(
                "ncat --broker: {} connections, {}, accepted {accepted} at {rate:.0}/s, {:.2} KiB RSS per connection (select(): at most ~1018)",
                clients.len(),
                if alive { "alive" } else { "died" },
                (after.saturating_sub(base)) as f64 / clients.len().max(1) as f64
            );
            drop(clients);
            let _ = srv.kill();
            let _ = srv.wait();
        }
    }
}

/// CPU time (user + system) of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // After the command name: state is field 0, utime 11, stime 12.
    fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// The TUI in a pseudo-terminal: keystroke-to-screen latency while one
/// session is flooded, and idle CPU with 100 quiet sessions.
fn responsiveness(presses: usize) {
    println!("\n## 5. Responsiveness: keystroke to screen while a session is flooded");
    // A flood server and an echo server (for the quiet sessions).
    let flood = TcpListener::bind("127.0.0.1:0").expect("bind");
    let flood_port = flood.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = flood.accept() {
            let line = b"FLOOD 0123456789 abcdefghijklmnopqrstuvwxyz 0123456789\n".repeat(1024);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) && s.write_all(&line).is_ok() {}
        }
    });
    let quiet = TcpListener::bind("127.0.0.1:0").expect("bind");
    let quiet_port = quiet.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((s, _)) = quiet.accept() {
            held.push(s);
        }
    });
    let mut args = vec!["tui".to_string()];
    for _ in 0..100 {
        args.push("-c".into());
        args.push(format!("connect 127.0.0.1:{quiet_port}"));
    }
    let Some(mut tui) = PtyTui::start(&muxcat(), &args, true) else {
        return println!("cannot start the TUI in a pseudo-terminal");
    };
    if tui
        .wait_for(&|s| s.contains("Sessions 100"), Duration::from_secs(20))
        .is_none()
    {
        tui.stop();
        return println!("the TUI did not show 100 sessions");
    }
    // Idle: 100 quiet sessions, nothing happening.
    let pid = tui.pid().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let idle = cpu_ticks(pid).saturating_sub(before);
    println!("idle CPU, 100 quiet sessions: {} ms over 3 s", idle * 10);
    // Open the flood and select it.
    if !tui.open_and_select("flood", flood_port, 101) {
        tui.stop();
        return println!("the flood session did not open");
    }
    if tui
        .wait_for(&|s| s.contains("< FLOOD"), Duration::from_secs(10))
        .is_none()
    {
        let screen = tui.screen();
        tui.stop();
        return println!("the flood never showed; the screen:\n{screen}");
    }
    // Each press of `t` hides or shows the timestamps: time until the screen agrees.
    let mut latencies = Vec::new();
    let stamp = |s: &str| {
        s.lines()
            .any(|l| l.contains(" < FLOOD") && l.chars().filter(|c| *c == ':').count() >= 2)
    };
    for _ in 0..presses {
        let shown = stamp(&tui.screen());
        let _ = tui.keys().write_all(b"t");
        let _ = tui.keys().flush();
        if let Some(d) = tui.wait_for(&|s| stamp(s) != shown, Duration::from_secs(5)) {
            latencies.push(d.as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if latencies.is_empty() {
        tui.stop();
        return println!("no keystroke took effect within 5 s");
    }
    print_spread("keystroke to screen under flood", &latencies, 1);
    keystroke_to_wire(&mut tui, presses);
    tui.stop();
}

/// `WHAT: median M ms, max X ms (N presses)` with `digits` decimals.
fn print_spread(what: &str, took: &[f64], digits: usize) {
    let max = took.iter().cloned().fold(0.0, f64::max);
    println!(
        "{what}: median {:.digits$} ms, max {:.digits$} ms ({} presses)",
        median(took.to_vec()),
        max,
        took.len()
    );
}

/// Keystroke → byte on the wire, the flood still running in another
/// session: a line typed in insert mode (timed from its Enter) and a key in
/// the raw console, each timed until a listener here reads it.
fn keystroke_to_wire(tui: &mut PtyTui, presses: usize) {
    let wire = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = wire.local_addr().map(|a| a.port()).unwrap_or(0);
    let (arrived, arrivals) = std::sync::mpsc::channel::<(Instant, usize)>();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = wire.accept() {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || arrived.send((Instant::now(), n)).is_err() {
                    break;
                }
            }
        }
    });
    if !tui.open_and_select("wire", port, 102) {
        return println!("the wire session did not open");
    }
    // Insert mode on it.
    let _ = tui.keys().write_all(b"i");
    let _ = tui.keys().flush();
    std::thread::sleep(Duration::from_millis(300));
    let timed = |keys: &mut dyn Write, what: &str, press: &[u8], expect: usize| {
        let mut took = Vec::new();
        for _ in 0..presses {
            while arrivals.try_recv().is_ok() {}
            let start = Instant::now();
            let _ = keys.write_all(press);
            let _ = keys.flush();
            let mut got = 0;
            while got < expect {
                match arrivals.recv_timeout(Duration::from_secs(5)) {
                    Ok((at, n)) => {
                        got += n;
                        if got >= expect {
                            took.push(at.duration_since(start).as_secs_f64() * 1000.0);
                        }
                    }
                    Err(_) => break,
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if took.is_empty() {
            return println!("{what}: nothing reached the wire within 5 s");
        }
        print_spread(&format!("{what}, flood in another session"), &took, 2);
    };
    // "x" then Enter: the line and its line end leave together.
    timed(tui.keys(), "insert mode: Enter to line on the wire", b"x\r", 2);
    // ctrl-t in insert mode opens the raw console: each key out at once.
    let _ = tui.keys().write_all(b"\x14");
    let _ = tui.keys().flush();
    std::thread::sleep(Duration::from_millis(300));
    timed(tui.keys(), "raw console: keystroke to byte on the wire", b"y", 1);
}

fn startup(runs: usize) {
    println!("\n## 7. Start-up: `muxcat run` of a one-line script, median of {runs}");
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let child = Command::new(muxcat())
            .arg("run")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn();
        let Ok(mut child) = child else { continue };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"listeners\n");
        }
        if child.wait().is_ok() {
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    println!("muxcat run: {:.1} ms", median(times));
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A peer that sends `pattern` to its one client for `secs` seconds.
fn flood_peer(pattern: &'static [u8], secs: u64) -> u16 {
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        let Ok((mut s, _)) = server.accept() else { return };
        let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
        let block: Vec<u8> = pattern.iter().copied().cycle().take(1 << 20).collect();
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if let Err(e) = s.write(&block)
                && e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::TimedOut
            {
                return;
            }
        }
    });
    port
}

/// Peak memory (VmHWM) of a front end while a peer floods it for `secs`:
/// stdout read at full speed, or never read (the pipe fills, then the
/// event queue, then TCP's window closes).
fn memory(secs: u64) {
    println!("\n## 8. Memory a flooding peer controls: peak RSS over {secs} s");
    println!(
        "{:<44} {:>12} {:>12}",
        "front end, flood", "read stdout", "stuck stdout"
    );
    let cases: [(&str, &[&str], &'static [u8], bool); 6] = [
        ("run, empty lines", &[], b"\n", false),
        ("run --json, empty lines", &["--json"], b"\n", false),
        ("run, one endless line", &[], b"y", false),
        ("run, trigger answering `a` (peer never reads)", &[], b"a\n", true),
        ("pipe (connect), empty lines", &["pipe"], b"\n", false),
        ("pipe (connect), binary zeros", &["pipe"], b"\0", false),
    ];
    for (name, extra, pattern, trigger) in cases {
        let mut row = Vec::new();
        for stuck in [false, true] {
            let port = flood_peer(pattern, secs + 2);
            let pipe = extra.first() == Some(&"pipe");
            let mut cmd = Command::new(muxcat());
            if pipe {
                cmd.args(["-q", "connect", &format!("127.0.0.1:{port}")]);
            } else {
                cmd.arg("run").args(extra.iter());
            }
            let spawned = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            let Ok(mut child) = spawned else {
                row.push("failed".to_string());
                continue;
            };
            let mut stdin = child.stdin.take();
            if !pipe && let Some(input) = stdin.as_mut() {
                let on = if trigger { "on ^a$ send b\n" } else { "" };
                let _ = write!(input, "connect 127.0.0.1:{port}\n{on}sleep 60s\n");
            }
            let out = child.stdout.take();
            let reader = std::thread::spawn(move || {
                let Some(mut out) = out else { return };
                if stuck {
                    std::thread::sleep(Duration::from_secs(secs + 1));
                    return;
                }
                let mut buf = vec![0u8; 1 << 20];
                while matches!(out.read(&mut buf), Ok(n) if n > 0) {}
            });
            std::thread::sleep(Duration::from_secs(secs));
            let peak = vm_hwm_kib(child.id()).map(|k| format!("{} MiB", k / 1024));
            row.push(peak.unwrap_or_else(|| "-".to_string()));
            let _ = child.kill();
            let _ = child.wait();
            drop(stdin);
            let _ = reader.join();
        }
        println!("{name:<44} {:>12} {:>12}", row[0], row[1]);
    }
}

fn main() {
    if copier::serve_if_asked() {
        return;
    }
    let full = std::env::args().any(|a| a == "--full");
    println!(
        "# muxcat benchmark harness ({} mode)",
        if full { "full" } else { "quick" }
    );
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let (size, runs, sessions, peers) = if full {
        (2u64 << 30, 3, 19_000, 1_000)
    } else {
        (512u64 << 20, 1, 2_000, 300)
    };
    // `--only pipe|tls|udp|managed|scale|tui|startup|memory|serial|roundtrip|latency|aggregate|proxy` runs one section.
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if run("pipe") {
        pipe_throughput(size, runs);
    }
    if run("tls") {
        tls_bench::tls(
            if full { 1 << 30 } else { 256 << 20 },
            if full { 3 } else { 1 },
            have,
            &muxcat(),
            pipe_once,
        );
    }
    if run("udp") {
        udp_bench::udp(if full { 1_000_000 } else { 200_000 }, have, &muxcat(), free_port);
    }
    if run("managed") {
        managed_throughput(if full { 1 << 30 } else { 256 << 20 });
    }
    if run("scale") {
        scale(sessions, peers);
    }
    if run("tui") {
        responsiveness(if full { 40 } else { 10 });
    }
    println!("\n## 4 and 6. TUI frame time and hot paths: cargo bench --bench hot_paths");
    if run("startup") {
        startup(if full { 20 } else { 5 });
    }
    if run("memory") {
        memory(if full { 8 } else { 4 });
    }
    if run("roundtrip") {
        roundtrip_bench::roundtrips(if full { 10_000 } else { 2_000 }, have, &muxcat());
    }
    if run("latency") {
        latency_bench::latency(
            1000,
            if full { 50 } else { 10 },
            have,
            &muxcat(),
            free_port,
            wait_listen,
        );
    }
    if run("aggregate") {
        aggregate_bench::aggregate(if full { 1000 } else { 200 }, &muxcat(), free_port, wait_listen);
    }
    if run("proxy") {
        proxy_bench::proxy(
            if full { 1 << 30 } else { 256 << 20 },
            if full { 3 } else { 1 },
            have,
            &muxcat(),
            free_port,
        );
    }
    if run("serial") {
        serial_bench::serial(
            if full { 256 << 20 } else { 64 << 20 },
            if full { 200 } else { 50 },
            have,
            &muxcat(),
        );
    }
}
