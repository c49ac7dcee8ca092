//! Helpers shared by the integration tests: a manager with an event reader,
//! loopback peers written here (not with muxcat), and the muxcat binary.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use muxcat::core::{Command, CoreResult, Event, EventKind, Manager, ManagerConfig, Outcome};
use muxcat::lang::{Parsed, parse_line};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bound for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Harness {
    pub manager: Manager,
    pub events: muxcat::core::EventStream,
    /// Every event seen so far, in order.
    pub seen: Vec<Event>,
}

impl Harness {
    pub fn new() -> Harness {
        let (manager, events) = Manager::start(ManagerConfig::default());
        Harness {
            manager,
            events,
            seen: Vec::new(),
        }
    }

    /// Parses and runs one command line.
    pub async fn run(&mut self, line: &str) -> CoreResult<Outcome> {
        match parse_line(line) {
            Ok(Some(Parsed::Core(cmd))) => self.exec(cmd).await,
            Ok(other) => panic!("{line:?} is not a core command: {other:?}"),
            Err(e) => Err(e),
        }
    }

    /// Runs a command while draining events, so a command that waits on a
    /// full event channel cannot deadlock the test.
    pub async fn exec(&mut self, cmd: Command) -> CoreResult<Outcome> {
        let manager = self.manager.clone();
        let task = tokio::spawn(async move { manager.execute(cmd).await });
        tokio::pin!(task);
        loop {
            tokio::select! {
                r = &mut task => {
                    // Events emitted before the reply are already queued.
                    while let Ok(ev) = self.events.try_recv() {
                        self.seen.extend(ev.expand());
                    }
                    return r.expect("command task");
                }
                Some(ev) = self.events.recv() => self.seen.extend(ev.expand()),
            }
        }
    }

    pub async fn ok(&mut self, line: &str) -> Outcome {
        match self.run(line).await {
            Ok(o) => o,
            Err(e) => panic!("{line:?} failed: {e}"),
        }
    }

    pub async fn session(&mut self, line: &str) -> String {
        match self.ok(line).await {
            Outcome::Session(id) => id,
            other => panic!("{line:?} returned {other:?}"),
        }
    }

    /// Opens a listener and returns (id, port).
    pub async fn listen(&mut self, line: &str) -> (String, u16) {
        let id = match self.ok(line).await {
            Outcome::Listener(id) => id,
            other => panic!("{line:?} returned {other:?}"),
        };
        let ev = self
            .find(|e| e.listener_id.as_deref() == Some(id.as_str()) && e.name() == "listening")
            .await;
        let EventKind::Listening { local, .. } = ev.kind else {
            unreachable!()
        };
        (id, local.ip().map_or(0, |a| a.port()))
    }

    /// The first event (seen or to come) matching `pred`.
    pub async fn find(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(ev) = self.seen.iter().find(|e| pred(e)) {
            return ev.clone();
        }
        self.next(pred).await
    }

    /// The next new event matching `pred`.
    pub async fn next(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let batch = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no matching event within {WAIT:?}; seen: {:#?}", self.names()))
                .expect("event channel closed");
            let mut hit = None;
            for ev in batch.expand() {
                if hit.is_none() && pred(&ev) {
                    hit = Some(ev.clone());
                }
                self.seen.push(ev);
            }
            if let Some(ev) = hit {
                return ev;
            }
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.name(),
                    e.error.as_ref().map(|e| e.to_string()).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Received payloads of a session seen so far, in order.
    pub fn data_of(&self, session: &str) -> Vec<Vec<u8>> {
        self.seen
            .iter()
            .filter(|e| e.session_id.as_deref() == Some(session))
            .filter_map(|e| match &e.kind {
                EventKind::Data { payload, .. } => Some(payload.to_vec()),
                _ => None,
            })
            .collect()
    }
}

pub fn is(name: &'static str, session: &str) -> impl Fn(&Event) -> bool + use<> {
    let session = session.to_string();
    move |e: &Event| e.name() == name && e.session_id.as_deref() == Some(session.as_str())
}

pub fn error_code(e: &Event) -> Option<&'static str> {
    e.error.as_ref().map(|err| err.code.as_str())
}

/// A plain tokio echo server on 127.0.0.1, written without muxcat.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A server that sends `script` pieces with pauses between them, then
/// keeps the connection open until the client leaves.
pub async fn scripted_server(pieces: Vec<(Duration, Vec<u8>)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            for (pause, bytes) in pieces {
                tokio::time::sleep(pause).await;
                if s.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            let mut sink = [0u8; 1024];
            while let Ok(n) = s.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    });
    addr
}

/// Deterministic pseudo-random bytes (xorshift), every byte value.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; n];
    let mut x: u64 = seed | 1;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// A server that sends `data` to its one client, ends its output, and
/// reads whatever the client sends until the client closes.
pub async fn sending_server(data: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        s.write_all(&data).await.expect("write");
        s.shutdown().await.expect("shutdown");
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    addr
}

/// A port nothing listens on yet (bound, then freed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Path of the muxcat binary built for these tests.
pub fn muxcat_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_muxcat"))
}

/// SHA-256 hex of bytes.
pub fn sha256(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// A pair of pseudo-terminals joined by socat (`socat pty,link=A pty,link=B`):
/// muxcat opens `a` as its serial port, the test plays the device on `b`.
pub struct PtyPair {
    _dir: tempfile::TempDir,
    pub a: std::path::PathBuf,
    pub b: std::path::PathBuf,
    socat: Option<std::process::Child>,
}

impl PtyPair {
    /// None (with the reason printed) where socat is not installed.
    pub fn new() -> Option<PtyPair> {
        if std::process::Command::new("socat").arg("-V").output().is_err() {
            println!("skipping: socat is not installed (it makes the pseudo-terminal pairs)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut pair = PtyPair {
            a: dir.path().join("ttyA"),
            b: dir.path().join("ttyB"),
            _dir: dir,
            socat: None,
        };
        pair.plug();
        Some(pair)
    }

    /// Makes the pair (again): the links appear, as a USB adapter's
    /// device node does when it is plugged in.
    pub fn plug(&mut self) {
        let child = std::process::Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", self.a.display()))
            .arg(format!("pty,raw,echo=0,link={}", self.b.display()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat");
        self.socat = Some(child);
        let deadline = std::time::Instant::now() + WAIT;
        while !(self.a.exists() && self.b.exists()) {
            assert!(std::time::Instant::now() < deadline, "socat made no pty pair");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Ends the pair: the port goes away under muxcat, as when unplugged.
    pub fn unplug(&mut self) {
        if let Some(mut child) = self.socat.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = std::time::Instant::now() + WAIT;
        while self.a.exists() {
            assert!(std::time::Instant::now() < deadline, "the pty links stayed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The device end, read by a thread of its own.
    pub fn device(&self) -> Device {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&self.b)
            .expect("open the device end");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut reader = file.try_clone().unwrap();
        let sink = received.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 65536];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Device { file, received }
    }

    /// `stty -a` of the port muxcat holds (its settings as the kernel has them).
    pub fn stty(&self) -> String {
        let out = std::process::Command::new("stty")
            .arg("-F")
            .arg(&self.a)
            .arg("-a")
            .output()
            .expect("stty");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        if let Some(mut child) = self.socat.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The device end of a [`PtyPair`]: what it received, and a way to write.
pub struct Device {
    file: std::fs::File,
    received: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Device {
    pub fn write(&self, bytes: &[u8]) {
        use std::io::Write;
        (&self.file).write_all(bytes).expect("device write");
    }

    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `len` bytes arrived; what arrived.
    pub async fn wait_len(&self, len: usize) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.received();
            if got.len() >= len || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until what arrived contains `needle`.
    pub async fn wait_for(&self, needle: &[u8]) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.received();
            if got.windows(needle.len()).any(|w| w == needle) {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the device never got {:?}; it got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Whether a peer tool is on PATH; says so when it is not (its part of a
/// test is skipped).
pub fn have(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("skipping the {tool} part: {tool} is not installed");
    }
    found
}

/// Waits until something is in LISTEN on 127.0.0.1:`port`, without
/// connecting (a one-shot listener must keep its one client).
pub fn wait_port_listening(port: u16) {
    let needle = format!(":{port:04X} 00000000:0000 0A");
    for _ in 0..500 {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if tcp.contains(&needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {port}");
}
