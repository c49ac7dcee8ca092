//! Pipe mode, netcat compatible: stdin bytes go to the peer, received bytes
//! go to stdout unchanged, diagnostics go to stderr. A front end of the
//! session manager like the others, so TLS, timeouts and `--record` work here too.
//!
//! stdin and stdout are served by threads of their own with bounded
//! channels: a slow stdout slows the socket (backpressure), a slow peer
//! slows stdin.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::core::command::{ConnectSpec, ListenSpec, UdpSpec};
use crate::core::recycle::Recycler;
use crate::core::transport::Target;
use crate::core::{
    CloseReason, Command, CoreError, ErrorCode, Event, EventKind, Manager, ManagerConfig, Mode, Outcome,
};
use crate::script::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_STDOUT_GONE, shutdown_signal};

/// stdin is read in chunks of this size.
const STDIN_CHUNK: usize = 256 * 1024;
/// Received chunks smaller than this are gathered up to it for stdout.
const STAGE_LIMIT: usize = 64 * 1024;
/// Sends queued ahead of the one being written.
const SENDS_IN_FLIGHT: usize = 4;
/// How far a broker client may fall behind on relayed bytes (queued for it,
/// not yet written) before the relay waits for it.
const RELAY_BEHIND: usize = 8 << 20;
/// How long a client that far behind may read nothing before it is dropped.
const RELAY_STALL: std::time::Duration = std::time::Duration::from_secs(5);

pub enum PipeRole {
    Connect(ConnectSpec),
    Listen {
        spec: ListenSpec,
        keep_open: bool,
        broker: bool,
    },
    Udp {
        spec: UdpSpec,
        /// Each stdin line is one datagram (else each read chunk).
        line_input: bool,
    },
}

#[derive(Clone, Debug, Default)]
pub struct PipeOptions {
    /// Events as JSON lines on stderr.
    pub json: bool,
    /// No diagnostics at all.
    pub quiet: bool,
    pub record_dir: Option<PathBuf>,
    /// The transcript version recordings write.
    pub transcript_format: crate::transcript::Format,
    /// End the run when the peer ends its output (ncat 7.96's default);
    /// otherwise stdin still goes to the peer until it ends (OpenBSD nc's).
    pub exit_on_eof: bool,
    /// `--send-only`: received bytes are not written; stdin's end ends the run.
    pub send_only: bool,
    /// `--recv-only`: stdin is not read.
    pub recv_only: bool,
    /// `-C`: LF from stdin goes out as CRLF.
    pub crlf: bool,
    /// `--quit-after`: the run ends this long after stdin ends.
    pub quit_after: Option<std::time::Duration>,
    /// `--progress`: bytes, rate and time on stderr (a terminal) as pv.
    pub progress: bool,
}

/// Reads stdin on a thread: whole lines, or chunks as they come.
fn stdin_reader(lines: bool) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(4);
    let spawned = std::thread::Builder::new()
        .name("muxcat-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let step = grow_pipe(&stdin);
            let mut stdin = stdin.lock();
            // Chunks go out without a copy; once the session has written
            // one and let go of it, its buffer is read into again (a fresh
            // buffer per read costs page faults and zeroing).
            let mut spent = Recycler::default();
            loop {
                let chunk = if lines {
                    let mut line = Vec::new();
                    match stdin.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => Bytes::from(line),
                    }
                } else {
                    let mut buf = spent.take().unwrap_or_default();
                    // Zeroes a new buffer only: a chunk is a slice of a
                    // buffer that keeps its full length, so a short read
                    // does not make the next use zero the rest again.
                    buf.resize(STDIN_CHUNK, 0);
                    match read_coalesced(&mut stdin, &mut buf, step) {
                        Ok(0) => break,
                        Ok(n) => {
                            let whole = buf.freeze();
                            spent.keep(&whole);
                            whole.slice(..n)
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                };
                if tx.blocking_send(chunk).is_err() {
                    break;
                }
            }
        });
    if spawned.is_err() {
        tracing::error!("cannot start the stdin reader");
    }
    rx
}

/// What a pipe holds unless told otherwise (Linux).
const PIPE_DEFAULT: usize = 64 * 1024;
/// What pipe mode asks for: 1 MiB, the unprivileged maximum.
const PIPE_WANTED: usize = 1 << 20;

/// Grows a pipe on stdin or stdout: with the default 64 KiB, the writer
/// and the reader wake each other every 64 KiB; 1 MiB makes those round
/// trips 16 times rarer. Returns what one read can get (not a pipe, or
/// refused: the default).
fn grow_pipe(fd: impl std::os::fd::AsFd) -> usize {
    #[cfg(target_os = "linux")]
    if let Ok(size) = rustix::pipe::fcntl_setpipe_size(&fd, PIPE_WANTED) {
        return size.max(PIPE_DEFAULT);
    }
    let _ = fd;
    PIPE_DEFAULT
}

/// Reads what stdin has, up to `buf.len()`: a pipe hands over at most its
/// size (`step`) per read, so while reads come back full there is more
/// waiting and it is read too — fewer, larger sends under load, and a
/// short line typed by hand still goes at once.
fn read_coalesced(input: &mut impl Read, buf: &mut [u8], step: usize) -> std::io::Result<usize> {
    let mut filled = 0;
    loop {
        let want = step.min(buf.len() - filled);
        let n = match input.read(&mut buf[filled..filled + want]) {
            Ok(n) => n,
            // Bytes already read go out; the error comes back next time.
            Err(_) if filled > 0 => return Ok(filled),
            Err(e) => return Err(e),
        };
        filled += n;
        if n < want || filled == buf.len() {
            return Ok(filled);
        }
    }
}

/// Stdout without std's line buffering: that wrapper copies every chunk
/// and scans it for newlines, which costs more than the write itself for
/// bulk binary data. Chunks here are large; each is written as it is.
fn raw_stdout() -> Box<dyn Write + Send> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
            return Box::new(std::fs::File::from(fd));
        }
    }
    Box::new(std::io::stdout())
}

/// Closes the process's stdout, so its reader sees the end at once (`|
/// (cat; echo EOF)` goes on while muxcat still sends stdin to the peer):
/// fd 1 is pointed at /dev/null, dropping the last handle on the pipe.
fn close_stdout() {
    #[cfg(target_os = "linux")]
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

/// Writes to stdout on a thread; flushes whenever it runs out of work.
/// `gone` resolves when stdout can no longer be written (its reader went
/// away, as with `| head -c 10`): the run ends then, as nc's does.
fn stdout_writer() -> (
    mpsc::Sender<Bytes>,
    std::thread::JoinHandle<()>,
    oneshot::Receiver<()>,
) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let (gone_tx, gone) = oneshot::channel();
    let handle = std::thread::spawn(move || {
        grow_pipe(std::io::stdout());
        let mut out = raw_stdout();
        let mut gone_tx = Some(gone_tx);
        while let Some(chunk) = rx.blocking_recv() {
            if gone_tx.is_none() {
                continue;
            }
            let broken = out.write_all(&chunk).is_err() || (rx.is_empty() && out.flush().is_err());
            if broken && let Some(tell) = gone_tx.take() {
                let _ = tell.send(());
            }
        }
        let _ = out.flush();
        drop(out);
        close_stdout();
    });
    (tx, handle, gone)
}

/// Diagnostics on stderr: connection-level events, readable or JSON.
fn diagnose(ev: &Event, opts: &PipeOptions) {
    if opts.quiet
        || matches!(
            ev.kind,
            EventKind::Data { .. } | EventKind::DataBatch(_) | EventKind::Sent { .. }
        )
    {
        return;
    }
    let line = if opts.json { ev.to_json() } else { ev.to_readable() };
    eprintln!("{line}");
}

/// Runs pipe mode; returns the exit status.
/// How long a serial pipe waits for the device's answer once stdin ended
/// (socat's `-t` default).
const SERIAL_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

pub async fn run(role: PipeRole, opts: PipeOptions) -> u8 {
    // Bigger reads: pipe mode moves bulk bytes.
    let (manager, mut events) = Manager::start(ManagerConfig {
        record_dir: opts.record_dir.clone(),
        transcript_format: opts.transcript_format,
        read_size: 256 * 1024,
        bulk: true,
        ..ManagerConfig::default()
    });
    // A serial port never ends its output: once stdin has, the run ends
    // after the device has been quiet for a while (as socat's -t).
    let lingers = matches!(&role, PipeRole::Connect(spec) if matches!(spec.target, Target::Serial(_) | Target::Rfc2217(_)));
    // --exec: a program has the sessions' far side; stdin and stdout are
    // not part of it (as ncat -e).
    let exec = match &role {
        PipeRole::Connect(spec) => spec.opts.exec.is_some(),
        PipeRole::Listen { spec, .. } => spec.opts.exec.is_some(),
        PipeRole::Udp { spec, .. } => spec.opts.exec.is_some(),
    };
    let mut linger: Option<tokio::time::Instant> = None;
    // Pipe mode is byte-transparent whatever --mode says: sessions are
    // opened in binary mode; --mode only decides how UDP reads stdin.
    let (open, line_input, keep_open, broker, udp_to) = match role {
        PipeRole::Connect(mut spec) => {
            spec.opts.mode = Mode::Binary;
            // With --reconnect the peer's end of output means "dial again".
            spec.opts.half_open = spec.reconnect.is_none();
            (Command::Connect(Box::new(spec)), false, false, false, false)
        }
        PipeRole::Listen {
            mut spec,
            keep_open,
            broker,
        } => {
            spec.opts.mode = Mode::Binary;
            // A single client may end its output while we still send
            // ours; with --keep-open or --broker stdin is shared, so a
            // client's end of output ends its session.
            // A program serving a client finishes its answer after the
            // client's end of output (--exec).
            spec.opts.half_open = (!broker && !keep_open) || spec.opts.exec.is_some();
            if !broker && !keep_open {
                // Like nc -l: one client (none with --max-connections 0).
                spec.max_connections = spec.max_connections.min(1);
            }
            (Command::Listen(spec), false, keep_open, broker, false)
        }
        PipeRole::Udp { mut spec, line_input } => {
            spec.opts.mode = Mode::Binary;
            let to = spec.socket.to.is_some();
            (Command::Udp(spec), line_input, false, false, to)
        }
    };
    let is_listen = matches!(open, Command::Listen(_));
    // Events that arrive while the opening command completes (data read
    // at once, a client accepted at once) are kept for the main loop.
    let mut early = std::collections::VecDeque::new();
    let opened = {
        let pending = manager.submit(open).await;
        tokio::pin!(pending);
        loop {
            tokio::select! {
                r = &mut pending => break r,
                Some(ev) = events.recv() => early.push_back(ev),
            }
        }
    };
    let (listener, first_target) = match opened {
        Ok(Outcome::Listener(id)) => (Some(id), None),
        Ok(Outcome::Session(id)) => (None, Some(id)),
        Ok(Outcome::Done | Outcome::Trigger(_) | Outcome::Matched { .. } | Outcome::Sessions(_)) => {
            (None, None)
        }
        Err(_) => {
            for ev in early.drain(..) {
                diagnose(&ev, &opts);
            }
            while let Ok(ev) = events.try_recv() {
                diagnose(&ev, &opts);
            }
            return EXIT_FAILED;
        }
    };
    let (target_tx, target_rx) = watch::channel(first_target);
    // --keep-open and --broker serve every client at once, stdin to all.
    let many = broker || keep_open;
    let clients = Clients::default();
    let stdin_done = Arc::new(AtomicBool::new(false));
    let (out_tx, out_thread, gone) = stdout_writer();
    let (manager_for_pump, clients_for_pump, stdin_done_for_pump) =
        (manager.clone(), clients.clone(), stdin_done.clone());
    // Resolves only if stdout's reader went away (not when the writer
    // thread simply ends, having closed stdout after the peer's end).
    let stdout_gone = async move {
        if gone.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stdout_gone);
    let (crlf, no_stdin) = (opts.crlf, exec || opts.recv_only);
    // --progress: only where someone watches (stderr a terminal).
    let progress = (opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| Arc::new(Progress::new()));
    let progress_in = progress.clone();
    let pump = tokio::spawn(async move {
        if no_stdin {
            return std::future::pending().await;
        }
        let mut stdin = stdin_reader(line_input);
        // --progress counts what stdin gave, -C rewrites it: one task.
        if progress_in.is_some() || crlf {
            let mut to_crlf = crlf.then(|| crlf_lines(false));
            stdin = mapped(stdin, move |chunk| {
                if let Some(p) = &progress_in {
                    p.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                match &mut to_crlf {
                    Some(f) => f(chunk),
                    None => chunk,
                }
            });
        }
        stdin_pump(
            manager_for_pump,
            stdin,
            target_rx,
            many.then_some(clients_for_pump),
            stdin_done_for_pump,
        )
        .await
    });
    // Taken (and stdout closed) once the one peer has ended its output;
    // never used with --exec or --send-only.
    let mut out_tx = (!exec && !opts.send_only).then_some(out_tx);
    // Received data waiting to go to stdout with the data queued behind it.
    let mut staged = bytes::BytesMut::new();
    tokio::pin!(pump);
    let mut pump_running = !no_stdin;
    let mut quit_at: Option<tokio::time::Instant> = None;
    let interrupt = shutdown_signal();
    tokio::pin!(interrupt);

    let mut code = EXIT_OK;
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = ticks.tick(), if progress.is_some() => {
                if let Some(p) = &progress {
                    p.show(false);
                }
            }
            ev = async { match early.pop_front() { Some(ev) => Some(ev), None => events.recv().await } } => {
                let Some(ev) = ev else { break };
                // A relay or stdin copy racing a client's departure fails
                // with SESSION_NOT_CONNECTED: its `disconnected` said it all.
                let departed = many
                    && ev.error.as_ref().is_some_and(|e| e.code == ErrorCode::SessionNotConnected)
                    && ev.session_id.as_deref().is_some_and(|id| !clients.has(id));
                if !departed {
                    diagnose(&ev, &opts);
                }
                let sid = ev.session_id.clone();
                match ev.kind {
                    EventKind::Data { payload, .. } => {
                        if let Some(p) = &progress {
                            p.received.fetch_add(payload.len() as u64, Ordering::Relaxed);
                        }
                        if let Some(deadline) = &mut linger {
                            *deadline = tokio::time::Instant::now() + SERIAL_LINGER;
                        }
                        if broker {
                            clients.relay(&manager, sid.as_deref(), &payload, &opts).await;
                        }
                        let Some(out) = &out_tx else { continue };
                        // Small chunks (datagrams, short reads) are gathered
                        // while more data waits, so stdout's thread wakes and
                        // writes once per batch; bulk reads go as they are.
                        let chunk = if staged.is_empty() && payload.len() >= STAGE_LIMIT {
                            payload
                        } else {
                            staged.extend_from_slice(&payload);
                            if early.is_empty() && let Ok(next) = events.try_recv() {
                                early.push_back(next);
                            }
                            let more = early.front().is_some_and(|e| matches!(e.kind, EventKind::Data { .. }));
                            if more && staged.len() < STAGE_LIMIT {
                                continue;
                            }
                            staged.split().freeze()
                        };
                        // stdout may be stuck (`| less`, not reading):
                        // waiting for it must not deafen us to Ctrl-C.
                        tokio::select! {
                            _ = out.send(chunk) => {}
                            _ = &mut interrupt => {
                                code = EXIT_INTERRUPTED;
                                break;
                            }
                        }
                    }
                    // The one peer ended its output: stdout ends now (as
                    // ncat closes it), stdin still goes to the peer unless
                    // --exit-on-eof ends the run here.
                    EventKind::Eof { .. } if !many => {
                        if target_tx.borrow().as_deref() != sid.as_deref() {
                            continue;
                        }
                        out_tx = None;
                        // --recv-only: nothing more will come, nothing goes.
                        if opts.exit_on_eof || opts.recv_only {
                            break;
                        }
                    }
                    EventKind::Accepted { .. } => {
                        let Some(sid) = sid else { continue };
                        if many {
                            clients.join(&sid);
                        } else {
                            target_tx.send_replace(Some(sid.clone()));
                            if let Some(l) = &listener {
                                // Like nc -l: one client, then no more.
                                tokio::spawn(manager.submit(Command::Close { listener: Some(l.clone()) }).await);
                            }
                            if stdin_done.load(Ordering::Acquire) {
                                let half = manager.submit(Command::HalfClose { session: Some(sid) }).await;
                                tokio::spawn(half);
                            }
                        }
                    }
                    // nc -l: a client that failed its TLS handshake was the
                    // one client; nothing more will come.
                    EventKind::Error
                        if is_listen
                            && !many
                            && target_tx.borrow().is_none()
                            && ev.error.as_ref().is_some_and(|e| e.code == ErrorCode::TlsHandshakeFailed) =>
                    {
                        code = EXIT_FAILED;
                        break;
                    }
                    // --reconnect: stdin waits while the connection is down;
                    // once stdin has ended, a drop ends the run.
                    EventKind::Reconnecting { .. } => {
                        if stdin_done.load(Ordering::Acquire) {
                            break;
                        }
                        target_tx.send_replace(None);
                    }
                    EventKind::Connected { .. } if !is_listen => {
                        let Some(sid) = sid else { continue };
                        target_tx.send_replace(Some(sid.clone()));
                        if stdin_done.load(Ordering::Acquire) {
                            let half = manager.submit(Command::HalfClose { session: Some(sid) }).await;
                            tokio::spawn(half);
                        }
                    }
                    EventKind::Disconnected { reason } => {
                        let Some(sid) = sid else { continue };
                        if many {
                            clients.leave(&sid);
                            continue;
                        }
                        if target_tx.borrow().as_deref() != Some(sid.as_str()) {
                            continue;
                        }
                        if reason == CloseReason::Error {
                            code = EXIT_FAILED;
                        }
                        break;
                    }
                    _ => {}
                }
            }
            _ = &mut pump, if pump_running => {
                pump_running = false;
                // A UDP sender is done when its input is, and so is a
                // --send-only run; everyone else waits for the peer (or
                // Ctrl-C), or --quit-after.
                if udp_to || opts.send_only {
                    break;
                }
                if let Some(after) = opts.quit_after {
                    quit_at = Some(tokio::time::Instant::now() + after);
                }
                if lingers {
                    linger = Some(tokio::time::Instant::now() + SERIAL_LINGER);
                }
            }
            _ = async { if let Some(d) = linger { tokio::time::sleep_until(d).await } }, if linger.is_some() => break,
            _ = async { if let Some(d) = quit_at { tokio::time::sleep_until(d).await } }, if quit_at.is_some() => break,
            () = &mut stdout_gone => {
                code = EXIT_STDOUT_GONE;
                break;
            }
            _ = &mut interrupt => {
                code = EXIT_INTERRUPTED;
                break;
            }
        }
    }
    if let Some(p) = &progress {
        p.show(true);
    }
    // Bytes gathered for stdout when a deadline ended the run (the serial
    // linger, --quit-after) were received: they go out like the rest.
    if (code == EXIT_OK || code == EXIT_FAILED)
        && !staged.is_empty()
        && let Some(out) = &out_tx
    {
        let _ = out.send(staged.split().freeze()).await;
    }
    // Nothing reads events from here on: closing sessions must not wait
    // for room in a queue nobody drains (a stdout that is stuck, say).
    manager.stop_waiting();
    if code == EXIT_INTERRUPTED {
        crate::script::exit_on_next_signal(manager.clone());
    }
    manager.shutdown().await;
    drop(manager);
    drop(out_tx);
    let joined = tokio::task::spawn_blocking(move || out_thread.join());
    if code == EXIT_OK || code == EXIT_FAILED {
        // Every received byte reaches stdout, however slow its reader.
        let _ = joined.await;
    } else {
        // Interrupted, or stdout is gone: a reader that stopped reading
        // must not keep the process alive.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), joined).await;
    }
    code
}

/// Relayed bytes queued for one broker client and not yet written.
#[derive(Default)]
struct Backlog {
    bytes: AtomicUsize,
    drained: tokio::sync::Notify,
}

impl Backlog {
    /// Waits until at most `limit` bytes are queued; false when no byte
    /// was written for [`RELAY_STALL`] (the client stopped reading).
    async fn below(&self, limit: usize) -> bool {
        let mut last = usize::MAX;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let now = self.bytes.load(Ordering::Acquire);
            if now <= limit {
                return true;
            }
            if now >= last && tokio::time::timeout(RELAY_STALL, drained).await.is_err() {
                return false;
            }
            last = now;
        }
    }

    fn written(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::AcqRel);
        self.drained.notify_waiters();
    }
}

/// A broker client: its session id and its backlog of relayed bytes.
type Client = (String, Arc<Backlog>);

/// The clients served at once (`--keep-open`, `--broker`), in the order they came.
#[derive(Clone, Default)]
struct Clients {
    clients: Arc<Mutex<Vec<Client>>>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn join(&self, id: &str) {
        self.lock().push((id.to_string(), Arc::default()));
    }

    fn leave(&self, id: &str) {
        self.lock().retain(|(c, _)| c != id);
    }

    fn has(&self, id: &str) -> bool {
        self.lock().iter().any(|(c, _)| c == id)
    }

    fn ids(&self) -> Vec<String> {
        self.lock().iter().map(|(c, _)| c.clone()).collect()
    }

    /// One client's bytes go to every other client, in order. A client more
    /// than [`RELAY_BEHIND`] behind holds the relay up (so memory stays
    /// bounded and senders are slowed by TCP, as `ncat --broker` does);
    /// one that reads nothing for [`RELAY_STALL`] meanwhile is disconnected,
    /// as a chat server drops a client whose send queue overflows, and the
    /// others go on.
    async fn relay(&self, manager: &Manager, from: Option<&str>, payload: &Bytes, opts: &PipeOptions) {
        let others: Vec<_> = self
            .lock()
            .iter()
            .filter(|(c, _)| Some(c.as_str()) != from)
            .cloned()
            .collect();
        let len = payload.len();
        for (other, backlog) in others {
            if !backlog.below(RELAY_BEHIND).await {
                self.leave(&other);
                let text = format!(
                    "broker client {other} read nothing for {} s with {} MiB waiting for it; disconnected",
                    RELAY_STALL.as_secs(),
                    RELAY_BEHIND >> 20
                );
                diagnose(
                    &Event::error(CoreError::new(ErrorCode::IoError, text)).session(&other),
                    opts,
                );
                tokio::spawn(manager.submit(Command::Disconnect { session: Some(other) }).await);
                continue;
            }
            backlog.bytes.fetch_add(len, Ordering::AcqRel);
            let cmd = Command::Send {
                to: Some(other),
                payload: payload.clone(),
                raw: true,
            };
            let sent = manager.submit(cmd).await;
            tokio::spawn(async move {
                let _ = sent.await;
                backlog.written(len);
            });
        }
    }
}

/// `--progress`: what moved and since when, shown on stderr like pv.
struct Progress {
    sent: std::sync::atomic::AtomicU64,
    received: std::sync::atomic::AtomicU64,
    start: std::time::Instant,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            sent: Default::default(),
            received: Default::default(),
            start: std::time::Instant::now(),
        }
    }

    /// One line, rewritten in place (`last`: the final one, kept).
    fn show(&self, last: bool) {
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let (sent, received) = (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        );
        let line = format!(
            "\r{} out · {} in · {}/s · {}:{:02} ",
            human_bytes(sent),
            human_bytes(received),
            human_bytes(((sent + received) as f64 / secs) as u64),
            secs as u64 / 60,
            secs as u64 % 60
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        if last {
            let _ = err.write_all(b"\n");
        }
        let _ = err.flush();
    }
}

/// `1.5 MiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// stdin's chunks through `f`, in order (a task between the reader and
/// the pump, only when an option needs one).
fn mapped(
    mut stdin: mpsc::Receiver<Bytes>,
    mut f: impl FnMut(Bytes) -> Bytes + Send + 'static,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(chunk) = stdin.recv().await {
            if tx.send(f(chunk)).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// `-C`: each LF not already after a CR becomes CRLF (a CR that ends
/// one chunk counts for the next).
fn crlf_lines(mut after_cr: bool) -> impl FnMut(Bytes) -> Bytes + Send + 'static {
    move |chunk| {
        let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 16);
        for &b in chunk.iter() {
            if b == b'\n' && !after_cr {
                out.push(b'\r');
            }
            out.push(b);
            after_cr = b == b'\r';
        }
        Bytes::from(out)
    }
}

/// Feeds stdin to the current session (or every broker client); at EOF
/// half-closes it, like `nc -N`.
async fn stdin_pump(
    manager: Manager,
    mut stdin: mpsc::Receiver<Bytes>,
    mut target: watch::Receiver<Option<String>>,
    many: Option<Clients>,
    done: Arc<AtomicBool>,
) {
    let mut in_flight = futures_util::stream::FuturesOrdered::new();
    while let Some(chunk) = stdin.recv().await {
        // stdin waits for the slowest client (the operator's input is
        // paced, not dropped); relayed bytes are bounded in `relay`.
        if let Some(clients) = &many {
            for c in clients.ids() {
                let cmd = Command::Send {
                    to: Some(c),
                    payload: chunk.clone(),
                    raw: true,
                };
                let _ = manager.execute(cmd).await;
            }
            continue;
        }
        let Ok(id) = wait_for_target(&mut target).await else {
            return;
        };
        let cmd = Command::Send {
            to: Some(id),
            payload: chunk,
            raw: true,
        };
        // A few sends in flight keep the socket busy while stdin is read;
        // the session's writer keeps them in order.
        in_flight.push_back(manager.submit(cmd).await);
        if in_flight.len() >= SENDS_IN_FLIGHT {
            in_flight.next().await;
        }
    }
    while in_flight.next().await.is_some() {}
    tracing::debug!("stdin ended");
    done.store(true, Ordering::Release);
    if many.is_some() {
        return;
    }
    let current = target.borrow().clone();
    if let Some(id) = current {
        let r = manager.execute(Command::HalfClose { session: Some(id) }).await;
        tracing::debug!("half-closed: {r:?}");
    }
}

async fn wait_for_target(target: &mut watch::Receiver<Option<String>>) -> Result<String, ()> {
    loop {
        if let Some(id) = target.borrow_and_update().clone() {
            return Ok(id);
        }
        target.changed().await.map_err(|_| ())?;
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn sizes_read_as_pv_writes_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(300 << 20), "300.0 MiB");
    }
}
