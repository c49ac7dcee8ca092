//! One session: a link of any transport, with a reader task that frames
//! and reports received bytes, a writer task for sends, the waitfor
//! backlog and the inactivity timeout. By concern:
//!
//! - this file: the session's state, opening, sending, triggers, closing
//! - `reader`: the read loops (stream, UDP) and the idle timer
//! - `writer`: the writer task, half-close and the final FIN
//! - `backlog`: what `waitfor` looks back on, and what closed sessions keep
//! - `reconnect`: dialing again after a drop (`connect --reconnect`)
//! - `modem`: a serial port's modem lines and break

mod backlog;
mod modem;
mod reader;
mod reconnect;
mod relay;
pub use relay::RelayDir;
mod writer;

use backlog::Backlog;
use reader::{idle_timer, read_loop, strip_eol, udp_loop};
pub(crate) use writer::WriteReq;
use writer::{WriteSide, Writer, write_loop};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::command::{Eol, Mode, View};
use super::ctx::{CLOSED_BACKLOGS, Ctx, KeepsBacklog};
use super::dial::Redial;
use super::events::Framing;
use super::events::{CloseReason, CoreError, CoreResult, DataLine, ErrorCode, Event, EventKind, SessionInfo};
use super::frames::Framer;
use super::framing::{Line, LineSplitter};
use super::linemap::LineMap;
use super::recording::{Place, Transcript};
use super::slots::Membership;
use super::transport::{self, Endpoint, Io, Kind, ReadSide};
use crate::transcript::{self, Mark};

/// Default size of one read; a flood is read in chunks of this size.
pub const READ_SIZE: usize = 64 * 1024;
/// Line mode frames a read in pieces of this size (see `received`).
const LINE_PIECE: usize = 16 * 1024;
/// Reads smaller than this are copied out so an idle session keeps no buffer.
const SMALL_READ: usize = 4 * 1024;
/// Trigger replies waiting for a peer that does not read them, at most
/// (counted as the memory they hold, [`REQ_OVERHEAD`] included).
const REPLY_BACKLOG: usize = 16 << 20;
/// What one queued send costs beyond its bytes: the request, its reply
/// channel and the allocation of its payload.
const REQ_OVERHEAD: usize = 256;
/// What `waitfor` can look back on: received lines/bytes since the previous
/// `waitfor` returned, the oldest dropped past these bounds.
pub const BACKLOG_LINES: usize = 10_000;
pub const BACKLOG_BYTES: usize = 1024 * 1024;
/// What one kept line costs beyond its bytes (its handle and queue slot):
/// a flood of empty lines is bounded by memory, not by a count.
const LINE_OVERHEAD: usize = std::mem::size_of::<Bytes>() + 16;
/// A connection that lasted this long resets the reconnect backoff.
const STABLE_LINK: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
    Udp,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
            Direction::Udp => "udp",
        }
    }
}

/// The connection under a session. A `--reconnect` session gets a new one
/// (a new generation) after each drop; the reader and writer of an old one
/// are stopped by its token and can no longer end the session.
struct Link {
    generation: u64,
    /// Cancels this connection's reader and writer (the session's own
    /// token for sessions that never reconnect, so they allocate nothing).
    token: CancellationToken,
    /// While reconnecting: the attempt and when it starts.
    down: Option<(u32, Instant)>,
    up_since: Instant,
    /// Consecutive short-lived connections: the backoff keeps growing
    /// against a peer that accepts and drops at once.
    streak: u32,
}

struct State {
    closed: Option<CloseReason>,
    local: Endpoint,
    /// The peer. UDP: the `--to` destination, if any.
    peer: Option<Endpoint>,
    link: Link,
    backlog: Backlog,
    last_activity: Instant,
    /// UDP: the last sender, the default destination of sends.
    last_sender: Option<SocketAddr>,
    view: View,
    tasks: Vec<JoinHandle<()>>,
    recording: Option<Transcript>,
    /// UDP: the destination last noted in the transcript.
    noted_dest: Option<SocketAddr>,
    /// The peer ended its output / we ended ours (half-open sessions).
    read_eof: bool,
    write_eof: bool,
    /// Closed, and its backlog dropped to make room for newer ones.
    backlog_forgotten: bool,
    /// The current link's modem lines and break (serial ports).
    control: Option<transport::Control>,
    /// A proxy's other side reset: this side is reset too (no FIN first).
    reset: bool,
}

pub struct Session {
    pub id: String,
    pub label: Option<String>,
    pub direction: Direction,
    pub listener: Option<Membership>,
    /// The transport: tcp, tls, udp, udp-peer, unix.
    pub kind: Kind,
    pub mode: Mode,
    pub eol: Eol,
    /// `--imap`/`--omap`: for front ends and the transcript header.
    pub map: LineMap,
    /// `--frame`: how the binary stream is cut (the reader frames).
    pub frame: Option<super::frames::FrameSpec>,
    /// `--check`: verified on every received frame (binary sessions).
    pub check: Option<super::checksum::Checksum>,
    pub timeout: Option<Duration>,
    /// A serial port's settings (the same across reconnects).
    pub port: Option<transport::serial::PortSettings>,
    half_open: bool,
    redial: Option<Box<Redial>>,
    pub(crate) ctx: Arc<Ctx>,
    writer: Mutex<Writer>,
    udp: Option<Arc<transport::udp::Datagrams>>,
    state: Mutex<State>,
    /// Bumped on every received line/chunk and on close; waiters watch it.
    wake: watch::Sender<u64>,
    cancel: CancellationToken,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Bytes handed to the writer and not yet written.
    queued_out: AtomicUsize,
    /// When a dropped trigger reply was last reported (once a second).
    reply_dropped_report: Mutex<Option<Instant>>,
    released: AtomicBool,
    /// A proxy session's connection to its target.
    /// `--telnet`: the peer's Telnet commands, taken out of its data.
    telnet: Option<Box<Mutex<super::telnet::Decoder>>>,
    /// Set once: at open (a proxy), or when a program takes it (`exec`).
    pub(crate) relay: std::sync::OnceLock<Box<relay::Relay>>,
}

impl KeepsBacklog for Session {
    fn forget_backlog(&self) {
        let mut state = self.lock();
        state.backlog = Backlog::default();
        state.backlog_forgotten = true;
    }
}

/// A new session handed to the manager, and its answer (false: it is
/// shutting down).
pub(crate) type Registration = (Arc<Session>, tokio::sync::oneshot::Sender<bool>);

/// How sessions opened outside the actor (connects, accepted clients)
/// reach its tables; once the actor is gone, registering fails.
#[derive(Clone)]
pub(crate) struct Registrar(pub mpsc::Sender<Registration>);

impl Registrar {
    /// Hands a new session to the manager; false when it is shutting down.
    pub async fn register(&self, session: Arc<Session>) -> bool {
        let (ack, done) = tokio::sync::oneshot::channel();
        if self.0.send((session, ack)).await.is_err() {
            return false;
        }
        done.await.unwrap_or(false)
    }
}

/// What a session is made of, before its tasks start.
pub(crate) struct Parts {
    pub id: String,
    pub label: Option<String>,
    pub direction: Direction,
    pub listener: Option<Membership>,
    pub local: Endpoint,
    pub peer: Option<Endpoint>,
    pub kind: Kind,
    pub mode: Mode,
    pub eol: Eol,
    /// `--imap`/`--omap`: for front ends and the transcript header.
    pub map: LineMap,
    /// `--frame`, `--check`: binary frames and their checksum.
    pub frame: Option<super::frames::FrameSpec>,
    pub check: Option<super::checksum::Checksum>,
    pub timeout: Option<Duration>,
    pub half_open: bool,
    /// `connect --reconnect`: how to get the connection back.
    pub redial: Option<Box<Redial>>,
    /// Modem lines and break (serial ports).
    pub control: Option<transport::Control>,
    /// A proxy session: its connection to the target, and how to reset
    /// the client's link.
    pub upstream: Option<transport::Link>,
    pub client_reset: Option<transport::tcp::Resetter>,
    /// `--telnet`: negotiation answered and stripped (ncat -t).
    pub telnet: bool,
}

impl Session {
    /// Builds the session; [`Session::start_reading`] starts the reader
    /// once the opening event has been emitted, the first send the writer.
    pub(crate) fn new(parts: Parts, io: Io, ctx: Arc<Ctx>) -> (Arc<Session>, Option<ReadSide>) {
        ctx.live_sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client_tls = parts.kind.is_tls();
        let (read, write, udp) = match io {
            Io::Stream { read, write } => (Some(read), WriteSide::Stream(write), None),
            Io::Udp(socket) => (None, WriteSide::Udp(socket.clone()), Some(socket)),
            Io::UdpPeer(socket) => (None, WriteSide::Udp(socket), None),
        };
        let relay = parts
            .upstream
            .and_then(|up| relay::Relay::new((read.as_ref(), parts.client_reset, client_tls), up));
        let kind = if relay.is_some() { Kind::Proxy } else { parts.kind };
        let relay = match relay {
            Some(r) => std::sync::OnceLock::from(Box::new(r)),
            None => std::sync::OnceLock::new(),
        };
        let cancel = CancellationToken::new();
        let token = match parts.redial {
            Some(_) => cancel.child_token(),
            None => cancel.clone(),
        };
        let session = Arc::new(Session {
            id: parts.id,
            label: parts.label,
            direction: parts.direction,
            listener: parts.listener,
            kind,
            mode: parts.mode,
            eol: parts.eol,
            map: parts.map,
            frame: parts.frame,
            check: parts.check,
            timeout: parts.timeout,
            port: parts.control.as_ref().map(transport::Control::settings),
            half_open: parts.half_open,
            redial: parts.redial,
            ctx,
            writer: Mutex::new(Writer::Idle(write)),
            udp,
            state: Mutex::new(State {
                closed: None,
                local: parts.local,
                peer: parts.peer,
                link: Link {
                    generation: 0,
                    token,
                    down: None,
                    up_since: Instant::now(),
                    streak: 0,
                },
                backlog: Backlog::default(),
                last_activity: Instant::now(),
                last_sender: None,
                view: View::Line,
                tasks: Vec::new(),
                recording: None,
                noted_dest: None,
                read_eof: false,
                write_eof: false,
                backlog_forgotten: false,
                control: parts.control,
                reset: false,
            }),
            wake: watch::Sender::new(0),
            cancel,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            queued_out: AtomicUsize::new(0),
            reply_dropped_report: Mutex::new(None),
            released: AtomicBool::new(false),
            telnet: parts
                .telnet
                .then(|| Box::new(Mutex::new(super::telnet::Decoder::wanting(&[])))),
            relay,
        });
        (session, read)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge every session: take the state as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the reader (stream sessions) or receiver (UDP).
    pub(crate) fn start_reading(self: &Arc<Self>, read: Option<ReadSide>) {
        let link = self.link();
        let control = self.lock().control.clone();
        if let Some(control) = control {
            let task = tokio::spawn(self.clone().watch_modem(control, link.1.clone()));
            self.add_task(task);
        }
        self.start_relay();
        let task = match (read, &self.udp) {
            (Some(read), _) => tokio::spawn(read_loop(self.clone(), read, link)),
            (None, Some(socket)) => tokio::spawn(udp_loop(self.clone(), socket.clone())),
            (None, None) if self.timeout.is_some() => tokio::spawn(idle_timer(self.clone())),
            (None, None) => return,
        };
        self.add_task(task);
    }

    fn add_task(&self, task: JoinHandle<()>) {
        let mut state = self.lock();
        // A reconnecting session starts tasks again and again: forget finished ones.
        if state.tasks.len() >= 8 {
            state.tasks.retain(|t| !t.is_finished());
        }
        state.tasks.push(task);
    }

    /// The current connection's generation and token.
    fn link(&self) -> (u64, CancellationToken) {
        let state = self.lock();
        (state.link.generation, state.link.token.clone())
    }

    /// The local address (of the current connection).
    pub fn local(&self) -> Endpoint {
        self.lock().local.clone()
    }

    /// The peer (of the current connection); UDP: the `--to` destination.
    pub fn peer(&self) -> Option<Endpoint> {
        self.lock().peer.clone()
    }

    /// Sends the `--preamble` of a connect; it is queued before anything
    /// sent after the connection is reported.
    pub(crate) fn send_preamble(self: &Arc<Self>, preamble: Bytes) {
        let sending = self.send(preamble);
        let session = self.clone();
        tokio::spawn(async move {
            if let Err(e) = sending.await
                && !session.is_closed()
            {
                let err = CoreError::new(e.code, format!("--preamble: {}", e.text));
                session.emit_error(EventKind::Error, err).await;
            }
        });
    }

    /// `--telnet`: the data in `chunk` (None: not a Telnet session); the
    /// answers to its negotiation are queued to be sent.
    fn telnet_data(self: &Arc<Self>, chunk: &Bytes) -> Option<Bytes> {
        let decoder = self.telnet.as_ref()?;
        let mut data = bytes::BytesMut::with_capacity(chunk.len());
        let mut found = Vec::new();
        decoder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .feed(chunk, &mut data, &mut found);
        for f in found {
            if let super::telnet::Found::Reply(answer) = f {
                // Queued in order with every other send; its `sent` event
                // and transcript line say what was answered.
                std::mem::drop(self.send(Bytes::from(answer)));
            }
        }
        Some(data.freeze())
    }

    /// A payload as `send` sends it: the session's end of line appended
    /// in line mode unless `raw`.
    pub fn with_eol(&self, payload: Bytes, raw: bool) -> Bytes {
        if raw || self.mode == Mode::Binary {
            return payload;
        }
        let mut buf = bytes::BytesMut::with_capacity(payload.len() + 2);
        buf.extend_from_slice(&payload);
        buf.extend_from_slice(self.eol.bytes());
        buf.freeze()
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// The session's own link is TLS (a proxy's client side with `--tls-in`).
    pub(super) fn reads_tls(&self) -> bool {
        self.kind.is_tls() || self.relay.get().is_some_and(|r| r.client_tls)
    }

    /// A proxy session's target and its transport.
    pub fn upstream(&self) -> Option<(Endpoint, Kind)> {
        self.relay.get().map(|r| (r.target.clone(), r.upstream_kind))
    }

    pub fn listener_id(&self) -> Option<&str> {
        self.listener.as_ref().map(|l| l.listener_id.as_str())
    }

    pub fn view(&self) -> View {
        self.lock().view
    }

    pub fn set_view(&self, view: View) {
        self.lock().view = view;
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    pub fn info(&self) -> SessionInfo {
        let state = self.lock();
        let peer = match self.direction {
            Direction::Udp => state.peer.clone().or(state.last_sender.map(Endpoint::Ip)),
            _ => state.peer.clone(),
        };
        SessionInfo {
            session_id: self.id.clone(),
            label: self.label.clone(),
            direction: self.direction.as_str(),
            listener_id: self.listener_id().map(str::to_string),
            local_addr: state.local.to_string(),
            peer: peer.map(|p| p.to_string()),
            state: match (state.closed, state.link.down) {
                (Some(reason), _) => format!("closed ({})", reason.as_str()),
                (None, Some(_)) => "reconnecting".to_string(),
                (None, None) => "live".to_string(),
            },
            tls: self.kind.is_tls(),
            kind: self.kind.as_str(),
            mode: self.mode.as_str(),
            bytes_in: self.bytes_in(),
            bytes_out: self.bytes_out(),
        }
    }

    fn transcript(&self) -> Option<Transcript> {
        self.lock().recording.clone()
    }

    /// Writes a chunk to the transcript, if recording (waits if the writer is behind).
    async fn record(&self, mark: Mark, data: &Bytes) {
        if let Some(t) = self.transcript() {
            t.write(mark, data.clone()).await;
        }
    }

    async fn record_event(&self, text: &str) {
        if let Some(t) = self.transcript() {
            t.event(text).await;
        }
    }

    /// A `*` line of `text` followed by the bytes of `data` as they are:
    /// the line's escaping shows them once (`\r\n`, not `\\r\\n`).
    async fn record_event_with(&self, text: &str, data: &[u8]) {
        if let Some(t) = self.transcript() {
            let mut line = Vec::with_capacity(text.len() + data.len());
            line.extend_from_slice(text.as_bytes());
            line.extend_from_slice(data);
            t.event_bytes(Bytes::from(line)).await;
        }
    }

    /// The peer ended its output: the session closes, unless it is
    /// half-open and we still have output to send (then `eof` says so).
    async fn input_ended(self: &Arc<Self>, generation: u64, note: Option<&str>) {
        self.relay_client_ended().await;
        let close = {
            let mut state = self.lock();
            state.read_eof = true;
            !self.half_open || state.write_eof
        };
        if !close || note.is_some() {
            let text = match note {
                Some(note) => format!("peer ended its output: {note}"),
                None => "peer ended its output".to_string(),
            };
            self.record_event(&text).await;
            self.emit(EventKind::Eof {
                note: note.map(str::to_string),
            })
            .await;
        }
        if close {
            self.connection_ended(generation, CloseReason::Remote, None).await;
        }
    }

    /// True once the peer ended its output.
    fn input_done(&self) -> bool {
        self.lock().read_eof
    }

    /// We ended our output; true when the peer already ended its own.
    fn end_of_output(&self) -> bool {
        let mut state = self.lock();
        state.write_eof = true;
        state.read_eof
    }

    /// UDP: true when `dest` differs from the destination last noted.
    fn to_differs(&self, dest: SocketAddr) -> bool {
        let mut state = self.lock();
        if state.recording.is_none()
            || state.noted_dest == Some(dest)
            || state.peer.as_ref().and_then(Endpoint::ip) == Some(dest)
        {
            return false;
        }
        state.noted_dest = Some(dest);
        true
    }

    /// The transcript header: kind, client -> server, mode.
    fn transcript_header(&self) -> String {
        // A per-peer UDP session is `udp` in the v1 header.
        let kind = match self.kind {
            Kind::UdpPeer => Kind::Udp.as_str(),
            k => k.as_str(),
        };
        let (local, peer) = {
            let state = self.lock();
            (state.local.clone(), state.peer.clone())
        };
        let peer = peer.map(|p| p.to_string()).unwrap_or_else(|| "*".to_string());
        let local = local.to_string();
        let (from, to) = match (
            self.direction,
            self.relay.get().filter(|_| self.kind == Kind::Proxy),
        ) {
            // A proxy: its client -> its target (through `via`, below).
            (_, Some(relay)) => (peer, relay.target.to_string()),
            (Direction::In, None) => (peer, local.clone()),
            _ => (local.clone(), peer),
        };
        let mut header = transcript::header(&self.id, kind, &from, &to, self.mode.as_str());
        if self.kind == Kind::Proxy {
            header.push_str(&format!(" via={local}"));
        }
        // Who opened it: `muxcat export` needs to know which end is muxcat.
        header.push_str(&format!(" dir={}", self.direction.as_str()));
        if let Some(port) = &self.port {
            // `port=115200,8N1` (and `,rts-cts`): tio's compact form.
            header.push_str(&format!(" port={}", port.describe().replacen(' ', ",", 2)));
        }
        // Maps are display and keyboard only (the bytes below are raw);
        // the header says which were on.
        if !self.map.is_empty() {
            header.push(' ');
            header.push_str(&self.map.describe());
        }
        header
    }

    /// Starts a transcript in `path`, replacing any current one.
    pub async fn start_recording(&self, place: Place) -> CoreResult<()> {
        let t = self
            .ctx
            .recorder
            .open(place, &self.id, self.transcript_header())
            .await?;
        let old = self.lock().recording.replace(t);
        if let Some(old) = old {
            old.event("recording moved to another file").await;
            old.close().await;
        }
        Ok(())
    }

    pub async fn stop_recording(&self) {
        let old = self.lock().recording.take();
        if let Some(old) = old {
            old.event("recording stopped").await;
            old.close().await;
        }
    }

    /// `--record DIR`: starts the session's transcript before its first
    /// event; a failure is reported and the session goes on unrecorded.
    pub(crate) async fn record_to_dir(&self) {
        let Some(dir) = self.ctx.record_dir.clone() else {
            return;
        };
        if let Err(e) = self.start_recording(Place::Dir(dir, self.id.clone())).await {
            self.emit_error(EventKind::Error, e).await;
        }
    }

    fn event(&self, kind: EventKind) -> Event {
        let opening = matches!(kind, EventKind::Listening { .. } | EventKind::Connected { .. });
        let framing = opening || matches!(kind, EventKind::Accepted { .. });
        let relayed = self.relay.get().filter(|_| self.kind == Kind::Proxy).map(|r| {
            let dir = match &kind {
                EventKind::Data { .. } | EventKind::DataBatch(_) | EventKind::DataPartial { .. } => {
                    Some("c2s")
                }
                EventKind::Sent { .. } => Some("s2c"),
                _ => None,
            };
            (r.target.to_string(), dir)
        });
        let mut ev = Event::new(kind)
            .session(&self.id)
            .listener_opt(self.listener_id());
        if let Some((target, dir)) = relayed {
            ev.dir = dir;
            if framing {
                ev.target = Some(target);
            }
        }
        if framing {
            ev.framing = Some(Framing {
                mode: self.mode,
                eol: self.eol,
                map: self.map.clone(),
            });
            ev.port = self.port;
        }
        if opening {
            ev.labelled(self.label.as_deref())
        } else {
            ev
        }
    }

    pub(crate) async fn emit(&self, kind: EventKind) {
        self.ctx.events.emit(self.event(kind)).await;
    }

    async fn emit_error(&self, kind: EventKind, err: CoreError) {
        self.ctx.events.emit(self.event(kind).with_error(err)).await;
    }

    fn touch(&self) {
        self.lock().last_activity = Instant::now();
    }

    fn bump(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Sends bytes as they are (the caller appended any EOL). The bytes are
    /// queued at once, in call order; the future resolves with the message
    /// id once they were handed to the kernel.
    pub fn send(self: &Arc<Self>, data: Bytes) -> impl Future<Output = CoreResult<u64>> + Send + 'static {
        self.send_as(data, None)
    }

    /// [`Session::send`] on behalf of a trigger.
    fn send_as(
        self: &Arc<Self>,
        data: Bytes,
        trigger: Option<String>,
    ) -> impl Future<Output = CoreResult<u64>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let queued = self.queue(WriteReq::Data { data, done, trigger });
        let closed = self.not_connected();
        async move {
            queued?;
            rx.await.map_err(|_| closed)?
        }
    }

    /// Half-closes: no more sends, the peer sees the end; receiving goes on.
    pub fn half_close(self: &Arc<Self>) -> impl Future<Output = CoreResult<()>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let queued = self.queue(WriteReq::Shutdown { done });
        let closed = self.not_connected();
        async move {
            queued?;
            rx.await.map_err(|_| closed)?
        }
    }

    /// Hands a request to the writer, starting it on first use.
    fn queue(self: &Arc<Self>, req: WriteReq) -> CoreResult<()> {
        if self.is_closed() {
            return Err(self.not_connected());
        }
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Writer::Idle(_) = &*writer
            && let Writer::Idle(side) = std::mem::replace(&mut *writer, Writer::Gone)
        {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(write_loop(self.clone(), side, rx, self.link()));
            self.add_task(task);
            *writer = Writer::Running(tx);
        }
        let bytes = match &req {
            WriteReq::Data { data, .. } => data.len() + REQ_OVERHEAD,
            WriteReq::Shutdown { .. } => 0,
        };
        match &*writer {
            Writer::Running(tx) => {
                // Counted before the writer can take it off.
                self.queued_out.fetch_add(bytes, Ordering::AcqRel);
                tx.send(req).map_err(|_| {
                    self.queued_out.fetch_sub(bytes, Ordering::AcqRel);
                    self.not_connected()
                })
            }
            _ => Err(self.not_connected()),
        }
    }

    /// At close: a writer that never started still owes the peer its FIN.
    async fn shut_idle_writer(&self) {
        let idle = {
            let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            match std::mem::replace(&mut *writer, Writer::Gone) {
                Writer::Idle(side) => Some(side),
                running => {
                    *writer = running;
                    None
                }
            }
        };
        if let Some(WriteSide::Stream(mut w)) = idle
            && !self.lock().reset
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), w.shutdown()).await;
        }
    }

    /// UDP: where a send goes (the `--to` address, else the last sender).
    fn udp_destination(&self) -> CoreResult<SocketAddr> {
        let state = self.lock();
        state.peer.as_ref().and_then(Endpoint::ip).or(state.last_sender).ok_or_else(|| {
            CoreError::new(
                ErrorCode::UdpSendFailed,
                format!(
                    "{}: no destination yet: open it with --to HOST:PORT or wait for a datagram to reply to",
                    self.id
                ),
            )
        })
    }

    async fn sent(&self, payload: &Bytes, n: usize, trigger: Option<String>) -> u64 {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        self.touch();
        let message_id = self.ctx.next_message_id();
        // Bulk (pipe mode) shows no `sent` events, and a writer must not
        // wait for a front end that may itself be waiting for this write.
        if !self.ctx.bulk {
            self.emit(EventKind::Sent {
                message_id,
                bytes: n,
                payload: payload.clone(),
                trigger,
            })
            .await;
        }
        message_id
    }

    /// Answers received data that matches a trigger (queued in order
    /// with every other send; recorded and reported like them). A plot's
    /// matches come back as `sample` events, for the caller to emit after
    /// the data they were taken from.
    #[must_use]
    fn fire_triggers<'a>(self: &Arc<Self>, received: impl IntoIterator<Item = &'a [u8]>) -> Vec<Event> {
        let triggers = self.ctx.triggers_for(&self.id, self.listener_id());
        let mut samples = Vec::new();
        if triggers.is_empty() {
            return samples;
        }
        for data in received {
            for t in triggers.iter().filter(|t| t.watches_received()) {
                if t.is_plot() {
                    if let Some(values) = t.sample(data) {
                        samples.push(self.event(EventKind::Sample {
                            plot: t.id.clone(),
                            series: t.series(),
                            values,
                        }));
                    }
                    continue;
                }
                if t.is_computed() {
                    match t.notify(&self.id, data) {
                        None => continue,
                        Some(true) => {}
                        Some(false) => self.reply_dropped(
                            &t.id,
                            "the script computing its replies is not keeping up (256 matches wait)",
                        ),
                    }
                    if t.once {
                        self.ctx.remove_trigger(&t.id);
                    }
                    continue;
                }
                let Some(mut reply) = t.reply(data) else { continue };
                if self.mode == Mode::Line && !t.raw {
                    reply.extend_from_slice(self.eol.bytes());
                }
                if self.queued_out.load(Ordering::Acquire) + reply.len() + REQ_OVERHEAD > REPLY_BACKLOG {
                    let why = format!(
                        "{} has {} MiB of replies it has not read",
                        self.id,
                        REPLY_BACKLOG >> 20
                    );
                    self.reply_dropped(&t.id, &why);
                    continue;
                }
                // Queued now; the result arrives as the `sent` event.
                std::mem::drop(self.send_as(Bytes::from(reply), Some(t.id.clone())));
                if t.once {
                    self.ctx.remove_trigger(&t.id);
                }
            }
        }
        samples
    }

    /// A plot's samples, after the data they came from.
    async fn emit_samples(&self, samples: Vec<Event>) {
        for sample in samples {
            self.ctx.events.emit(sample).await;
        }
    }

    /// A peer that keeps sending what a trigger answers but reads none of
    /// the answers would make them pile up without end: past
    /// [`REPLY_BACKLOG`] they are not sent, and that is reported (at most
    /// once a second). Stopping reading instead could deadlock a client that
    /// writes all its requests before reading any answer.
    fn reply_dropped(self: &Arc<Self>, trigger: &str, why: &str) {
        let due = {
            let mut last = self
                .reply_dropped_report
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            super::util::once_a_second(&mut last)
        };
        if !due {
            return;
        }
        let err = CoreError::new(
            ErrorCode::IoError,
            format!("trigger {trigger}: reply not sent: {why}"),
        );
        // Stamped now, when it happened, not when the queue has room.
        let event = self.event(EventKind::Error).with_error(err);
        let sink = self.ctx.events.clone();
        tokio::spawn(async move { sink.emit(event).await });
    }

    /// Handles one received datagram (from the session's own socket, or
    /// handed over by its per-peer listener).
    pub(crate) async fn datagram(self: &Arc<Self>, datagram: &[u8], from: SocketAddr) {
        let n = datagram.len();
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        if self.transcript().is_some() {
            // Datagrams may come from anyone: note each change of sender
            // (a per-peer session has only one).
            let changed = !self.listener.as_ref().is_some_and(|l| l.shares_socket)
                && self.lock().last_sender != Some(from);
            if changed {
                self.record_event(&format!("from {from}")).await;
            }
            self.record(Mark::In, &Bytes::copy_from_slice(datagram)).await;
        }
        // --exec: the program reads the datagrams (its output goes back
        // to the sender, as sends do).
        if self.relay.get().is_some() && !self.relay_c2s(&Bytes::copy_from_slice(datagram)).await {
            return;
        }
        let shown = match self.mode {
            Mode::Line => strip_eol(datagram),
            Mode::Binary => datagram,
        };
        let payload = Bytes::copy_from_slice(shown);
        {
            let mut state = self.lock();
            state.last_activity = Instant::now();
            state.last_sender = Some(from);
            state.backlog.limit = self.ctx.backlog_limit();
            match self.mode {
                _ if self.ctx.bulk => {}
                Mode::Line => state.backlog.push_line(payload.clone()),
                Mode::Binary => state.backlog.push_stream(payload.clone()),
            }
        }
        self.bump();
        let samples = self.fire_triggers([&payload[..]]);
        let check = self.check.map(|sum| sum.verify(&payload));
        self.emit(EventKind::Data {
            payload,
            count: n,
            from: Some(from),
            eol: b"",
            check,
        })
        .await;
        self.emit_samples(samples).await;
    }

    fn not_connected(&self) -> CoreError {
        let text = match self.lock().link.down {
            Some((attempt, at)) => {
                let wait = at.saturating_duration_since(Instant::now());
                format!(
                    "session {} is reconnecting (attempt {attempt} in {})",
                    self.id,
                    super::util::format_duration(Duration::from_millis(wait.as_millis() as u64))
                )
            }
            None => format!("session {} is closed", self.id),
        };
        CoreError::new(ErrorCode::SessionNotConnected, text)
    }

    /// Handles one received chunk: counts it, frames it, reports it.
    async fn received(
        self: &Arc<Self>,
        chunk: Bytes,
        splitter: &mut LineSplitter,
        lines: &mut Vec<Line>,
        framer: &mut Option<Box<Framer>>,
    ) {
        self.bytes_in.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.record(Mark::In, &chunk).await;
        // --telnet: the transcript has the bytes as they came; what is
        // delivered has no commands, and each request gets its refusal.
        let chunk = match self.telnet_data(&chunk) {
            Some(data) if data.is_empty() => {
                self.touch();
                return;
            }
            Some(data) => data,
            None => chunk,
        };
        // A proxy: on to the server first (rewritten, if a trigger says
        // so), then reported.
        if !self.relay_c2s(&chunk).await {
            return;
        }
        match self.mode {
            Mode::Line => {
                // In pieces: a read of empty lines is 64 Ki lines, and the
                // bookkeeping of each must not pile up (a piece at a time
                // waits for room in the event queue).
                let mut at = 0;
                while at < chunk.len() {
                    let end = (at + LINE_PIECE).min(chunk.len());
                    splitter.push(&chunk.slice(at..end), lines);
                    self.deliver_lines(lines).await;
                    at = end;
                }
                if !self.ctx.bulk {
                    self.report_partial(splitter).await;
                }
            }
            Mode::Binary => match framer {
                Some(framer) => {
                    let mut frames = Vec::new();
                    framer.push(&chunk, Instant::now(), &mut frames);
                    self.touch();
                    for frame in frames {
                        self.deliver_frame(frame).await;
                    }
                }
                None => self.deliver_frame(chunk).await,
            },
        }
    }

    /// One unit of a binary session: a read, or a `--frame` frame.
    pub(super) async fn deliver_frame(self: &Arc<Self>, frame: Bytes) {
        {
            let mut state = self.lock();
            state.last_activity = Instant::now();
            if !self.ctx.bulk {
                state.backlog.limit = self.ctx.backlog_limit();
                state.backlog.push_stream(frame.clone());
            }
        }
        self.bump();
        let samples = self.fire_triggers([&frame[..]]);
        let count = frame.len();
        let check = self.check.map(|sum| sum.verify(&frame));
        self.emit(EventKind::Data {
            payload: frame,
            count,
            from: None,
            eol: b"",
            check,
        })
        .await;
        self.emit_samples(samples).await;
    }

    /// A line that has not ended (a prompt): its new bytes are reported at
    /// once, and `waitfor` can see it.
    async fn report_partial(self: &Arc<Self>, splitter: &mut LineSplitter) {
        let Some(new) = splitter.take_unreported() else {
            return;
        };
        self.lock().backlog.grow_partial(&new, splitter.pending());
        self.bump();
        let count = new.len();
        self.emit(EventKind::DataPartial { payload: new, count }).await;
    }

    async fn deliver_lines(self: &Arc<Self>, lines: &mut Vec<Line>) {
        if lines.is_empty() {
            self.touch();
            return;
        }
        {
            let mut state = self.lock();
            state.last_activity = Instant::now();
            state.backlog.limit = self.ctx.backlog_limit();
            for line in lines.iter().filter(|_| !self.ctx.bulk) {
                state.backlog.complete_line(line.content.clone());
            }
        }
        self.bump();
        let samples = self.fire_triggers(lines.iter().map(|l| &l.content[..]));
        // One event per read, however many lines it held: the front end
        // expands the batch (see `Event::expand`).
        let kind = if lines.len() == 1 {
            let line = lines.remove(0);
            EventKind::Data {
                payload: line.content,
                count: line.count,
                from: None,
                eol: line.eol,
                check: None,
            }
        } else {
            EventKind::DataBatch(
                lines
                    .drain(..)
                    .map(|l| DataLine {
                        payload: l.content,
                        count: l.count,
                        eol: l.eol,
                    })
                    .collect(),
            )
        };
        self.emit(kind).await;
        self.emit_samples(samples).await;
        if lines.capacity() > 256 {
            // A flood of tiny lines grew it: an idle session keeps no such list.
            lines.shrink_to(256);
        }
    }

    /// When the inactivity timeout would expire, if one is set.
    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| self.lock().last_activity + t)
    }

    /// Ends the session once; the first caller's reason wins. Local closes
    /// wait for the reader and writer to finish, so `disconnected` is the
    /// session's last event and the peer has seen the FIN.
    pub async fn close(self: &Arc<Self>, reason: CloseReason, err: Option<CoreError>) -> bool {
        let tasks = {
            let mut state = self.lock();
            if state.closed.is_some() {
                return false;
            }
            state.closed = Some(reason);
            // A serial port is unlocked once its reader and writer end too.
            state.control = None;
            std::mem::take(&mut state.tasks)
        };
        if reason == CloseReason::Local {
            self.emit(EventKind::Disconnecting).await;
        }
        self.cancel.cancel();
        self.shut_idle_writer().await;
        if let Some(relay) = self.relay.get() {
            let graceful = !self.lock().reset;
            relay.close(graceful).await;
        }
        if reason == CloseReason::Local {
            for task in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
            }
        }
        self.release();
        self.ctx
            .live_sessions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let held = self.lock().backlog.held();
        if held > 0 {
            let me: Arc<dyn KeepsBacklog> = self.clone();
            self.ctx.closed_backlogs.keep(Arc::downgrade(&me), held);
        }
        let recording = self.lock().recording.take();
        if let Some(t) = recording {
            let note = match &err {
                Some(e) => format!("disconnected {} {}: {}", reason.as_str(), e.code, e.text),
                None => format!("disconnected {}", reason.as_str()),
            };
            t.event(&note).await;
            t.close().await;
        }
        let kind = EventKind::Disconnected { reason };
        match err {
            Some(err) => self.emit_error(kind, err).await,
            None => self.emit(kind).await,
        }
        self.bump();
        true
    }

    /// Frees the listener slot (once).
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel)
            && let Some(l) = &self.listener
        {
            l.slots.give_back();
        }
    }

    async fn expire(self: &Arc<Self>) {
        let t = self.timeout.unwrap_or_default();
        self.emit_error(
            EventKind::Timeout,
            CoreError::new(
                ErrorCode::Timeout,
                format!("session {} idle for {}", self.id, super::util::format_duration(t)),
            ),
        )
        .await;
        self.close(CloseReason::Timeout, None).await;
    }

    async fn fail(self: &Arc<Self>, generation: u64, what: &str, e: std::io::Error) {
        // With TLS 1.3 a server rejects a client certificate after the
        // client's handshake finished: the first read gets the alert.
        let tls_alert = e
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        let code = if tls_alert && self.bytes_in() == 0 {
            ErrorCode::TlsHandshakeFailed
        } else {
            ErrorCode::IoError
        };
        let err = CoreError::new(code, format!("{what} on {}: {e}", self.id));
        self.connection_ended(generation, CloseReason::Error, Some(err))
            .await;
    }

    /// Waits until a line (line mode) or the accumulated bytes (binary mode)
    /// match, consuming the backlog up to and including the match. In line
    /// mode the line still pending (a prompt) is looked at too: at once
    /// with `partial`, else once the session has been quiet for
    /// [`QUIET`]. `fresh`: what arrived before this call is not looked at.
    pub async fn wait_for(
        self: &Arc<Self>,
        regex: &regex::bytes::Regex,
        timeout: Duration,
        opts: WaitOptions,
    ) -> CoreResult<EventKind> {
        let mut wake = self.wake.subscribe();
        let deadline = Instant::now() + timeout;
        if opts.fresh {
            self.lock().backlog.forget();
        }
        loop {
            wake.borrow_and_update();
            let (closed, forgotten, quiet_at) = {
                let mut state = self.lock();
                if let Some(found) = self.take_match(&mut state.backlog, regex) {
                    return Ok(found);
                }
                // The pending line: a prompt waits for an answer, so it
                // goes quiet; a line still arriving does not match early.
                let mut quiet_at = None;
                let pending = self.mode == Mode::Line
                    && !state.backlog.partial_taken
                    && !state.backlog.partial.is_empty();
                if pending {
                    let quiet = state.last_activity + QUIET;
                    if opts.partial || quiet <= Instant::now() {
                        if let Some(found) = take_partial(&mut state.backlog, regex) {
                            return Ok(found);
                        }
                    } else {
                        quiet_at = Some(quiet);
                    }
                }
                (state.closed, state.backlog_forgotten, quiet_at)
            };
            if let Some(reason) = closed {
                let forgotten = if forgotten {
                    format!(
                        " (what it received was dropped from memory: closed sessions keep {} MiB in all; its transcript keeps every byte)",
                        CLOSED_BACKLOGS >> 20
                    )
                } else {
                    String::new()
                };
                return Err(CoreError::new(
                    ErrorCode::SessionNotConnected,
                    format!(
                        "session {} closed ({}) before anything matched /{}/{forgotten}",
                        self.id,
                        reason.as_str(),
                        regex.as_str()
                    ),
                ));
            }
            tokio::select! {
                changed = wake.changed() => {
                    if changed.is_err() {
                        return Err(self.not_connected());
                    }
                }
                _ = reader::sleep_until_opt(quiet_at) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(CoreError::new(
                        ErrorCode::WaitforTimeout,
                        format!(
                            "nothing on {} matched /{}/ within {}",
                            self.id,
                            regex.as_str(),
                            super::util::format_duration(timeout)
                        ),
                    ));
                }
            }
        }
    }

    /// `waitfor --fresh` without waiting: a key macro's send forgets what
    /// came before it, so the wait after it sees only the answer to it.
    pub fn forget_received(&self) {
        self.lock().backlog.forget();
    }

    fn take_match(&self, backlog: &mut Backlog, regex: &regex::bytes::Regex) -> Option<EventKind> {
        // (The pending line is looked at by `wait_for`, after the complete ones.)
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self.mode {
            Mode::Line => {
                let pos = backlog.lines.iter().position(|l| regex.is_match(l))?;
                let before: Vec<String> = backlog.lines.drain(..pos).map(|l| lossy(&l)).collect();
                let matched = backlog.lines.pop_front()?;
                backlog.line_bytes = backlog.lines.iter().map(|l| l.len() + LINE_OVERHEAD).sum();
                Some(EventKind::Match {
                    lines: before,
                    matched: lossy(&matched),
                    raw: matched,
                })
            }
            Mode::Binary => {
                let stream = backlog.stream();
                let m = regex.find(stream)?;
                let before = &stream[..m.start()];
                let found = EventKind::Match {
                    lines: if before.is_empty() {
                        Vec::new()
                    } else {
                        vec![lossy(before)]
                    },
                    matched: lossy(m.as_bytes()),
                    raw: Bytes::copy_from_slice(m.as_bytes()),
                };
                let end = m.end();
                backlog.consume_stream(end);
                Some(found)
            }
        }
    }
}

/// How long a session must be quiet before `waitfor` matches the line it
/// is still receiving (a prompt without a line end).
pub const QUIET: Duration = Duration::from_millis(100);

/// `waitfor --partial` / `--fresh`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitOptions {
    /// Match the pending line at once, without waiting for quiet.
    pub partial: bool,
    /// Ignore what arrived before the wait started.
    pub fresh: bool,
}

/// Matches the pending line; it is then taken (it completes later into a
/// line that is not matched again).
fn take_partial(backlog: &mut Backlog, regex: &regex::bytes::Regex) -> Option<EventKind> {
    if !regex.is_match(&backlog.partial) {
        return None;
    }
    backlog.partial_taken = true;
    let lines: Vec<String> = backlog
        .lines
        .drain(..)
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .collect();
    backlog.line_bytes = 0;
    Some(EventKind::Match {
        lines,
        matched: String::from_utf8_lossy(&backlog.partial).into_owned(),
        raw: Bytes::copy_from_slice(&backlog.partial),
    })
}

#[cfg(test)]
mod size_tests {
    /// Every idle session holds one of these: what only some sessions use
    /// (a proxy's relay, a Telnet decoder) is boxed, so it stays small
    /// (1312 bytes before; 10 000 idle sessions are ~3 KiB each in all).
    #[test]
    fn an_idle_session_stays_small() {
        assert!(
            std::mem::size_of::<super::Session>() <= 900,
            "{}",
            std::mem::size_of::<super::Session>()
        );
        assert!(
            std::mem::size_of::<super::relay::Relay>() > 300,
            "boxing it is what keeps sessions small"
        );
    }
}
