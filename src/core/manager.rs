//! The session manager actor: one task owns the tables of sessions and
//! listeners; [`Manager`] is the cheap cloneable handle front ends hold.
//! Commands that wait (connect, waitfor, accept, disconnect) run in tasks of
//! their own so the actor never blocks.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

use super::command::{Command, ConnectSpec, ListenSpec, Outcome, TriggerSpec, UdpSpec};
use super::ctx::Ctx;
use super::dial::Redial;
use super::events::short_id;
use super::events::{CloseReason, CoreError, CoreResult, ErrorCode, Event, EventKind};
use super::listener::Listener;
use super::resolve;
use super::session::{Direction, Parts, Registrar, Registration, Session};
use super::sink::{EventSink, EventStream};
use super::transport::{self, Dialer, Endpoint, Io, Kind};
use super::trigger::{Scope, Trigger};
use super::util::new_id;

pub use super::transport::CONNECT_TIMEOUT;
/// The longest `--id`.
const MAX_ID: usize = 64;

/// An `--id` is safe in a file name (no `/`, no `..`) and on a terminal
/// (no control bytes): ASCII letters, digits and `-_.:`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Closed sessions kept listed (for their scrollback and `sessions`) before
/// the oldest are forgotten.
const KEEP_CLOSED: usize = 1000;
/// Sessions registered between two prunings of closed ones.
const PRUNE_EVERY: u64 = 256;

#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// Bytes of memory the event channel may hold: how far the front end
    /// may fall behind before sessions stop reading.
    pub event_budget: usize,
    /// `--record DIR`: a transcript per session in DIR.
    pub record_dir: Option<std::path::PathBuf>,
    /// Bytes asked for per read (one `data` event in binary mode holds at
    /// most this much).
    pub read_size: usize,
    /// Bulk transfer (pipe mode): read buffers are reused once the front
    /// end has let go of them, no `waitfor` backlog is kept (nothing can
    /// wait for anything), and no `sent` events are emitted (nothing shows
    /// them, and the broker's relay waits for writes while not reading
    /// events).
    pub bulk: bool,
    /// The transcript version recordings write (`--transcript-format`).
    pub transcript_format: crate::transcript::Format,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            event_budget: super::sink::EVENT_BUDGET,
            record_dir: None,
            read_size: super::session::READ_SIZE,
            bulk: false,
            transcript_format: crate::transcript::Format::default(),
        }
    }
}

/// A failed command, with the session or listener it concerned.
#[derive(Clone, Debug)]
pub struct Failure {
    pub error: CoreError,
    pub session_id: Option<String>,
    pub listener_id: Option<String>,
}

impl From<CoreError> for Failure {
    fn from(error: CoreError) -> Self {
        Failure {
            error,
            session_id: None,
            listener_id: None,
        }
    }
}

type Reply = oneshot::Sender<Result<Outcome, Failure>>;

pub(crate) enum Msg {
    Command(Box<Command>, Reply),
    /// `accept` found a client: make it the default session.
    Claimed(String, Reply),
    Shutdown(oneshot::Sender<()>),
}

/// The handle: send commands, read events from the receiver `start` returned.
#[derive(Clone)]
pub struct Manager {
    tx: mpsc::Sender<Msg>,
    events: EventSink,
    recorder: super::recording::Recorder,
}

impl Manager {
    /// Spawns the actor; events arrive on the returned receiver.
    pub fn start(config: ManagerConfig) -> (Manager, EventStream) {
        let (events, rx_events) = EventSink::with_budget(config.event_budget);
        let (tx, rx) = mpsc::channel(256);
        let recorder = super::recording::Recorder::start(events.clone(), config.transcript_format);
        let ctx = Arc::new(Ctx {
            events: events.clone(),
            recorder: recorder.clone(),
            record_dir: config.record_dir.clone(),
            read_size: config.read_size.max(4096),
            bulk: config.bulk,
            triggers: Default::default(),
            trigger_count: Default::default(),
            closed_backlogs: Default::default(),
            live_sessions: Default::default(),
            next_message: AtomicU64::new(0),
        });
        let (registrations, registered) = mpsc::channel::<Registration>(256);
        let actor = Actor {
            ctx,
            sessions: Vec::new(),
            listeners: Vec::new(),
            default_session: None,
            default_listener: None,
            self_tx: tx.downgrade(),
            registrar: Registrar(registrations),
            next_trigger: 0,
            registered: 0,
            dialing: Default::default(),
        };
        tokio::spawn(actor.run(rx, registered));
        (Manager { tx, events, recorder }, rx_events)
    }

    /// Runs a command. A failure is also emitted as an `error` event.
    pub async fn execute(&self, cmd: Command) -> CoreResult<Outcome> {
        self.submit(cmd).await.await
    }

    /// Queues a command now (commands take effect in submission order) and
    /// returns a future for its result, to await or to spawn.
    pub async fn submit(&self, cmd: Command) -> impl Future<Output = CoreResult<Outcome>> + Send + 'static {
        self.submit_at(cmd, None).await
    }

    /// [`Manager::execute`] for a line of a file: the error names the place
    /// (`setup.mux:3: …`).
    pub async fn execute_at(&self, cmd: Command, place: Option<&str>) -> CoreResult<Outcome> {
        self.submit_at(cmd, place.map(str::to_string)).await.await
    }

    async fn submit_at(
        &self,
        cmd: Command,
        place: Option<String>,
    ) -> impl Future<Output = CoreResult<Outcome>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let queued = self.tx.send(Msg::Command(Box::new(cmd), reply)).await.is_ok();
        let events = self.events.clone();
        async move {
            let gone = || CoreError::new(ErrorCode::IoError, "the session manager has stopped");
            if !queued {
                return Err(gone());
            }
            match rx.await {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(mut failure)) => {
                    if let Some(place) = place {
                        failure.error.text = format!("{place}: {}", failure.error.text);
                    }
                    let ev = Event::error(failure.error.clone())
                        .session_opt(failure.session_id.as_deref())
                        .listener_opt(failure.listener_id.as_deref());
                    events.emit(ev).await;
                    Err(failure.error)
                }
                Err(_) => Err(gone()),
            }
        }
    }

    /// Puts an event of the front end's own (a parse error, say) in the
    /// stream, in order with the others.
    pub async fn emit(&self, event: Event) {
        self.events.emit(event).await;
    }

    /// The front end no longer reads events (it is shutting down, or its
    /// output is gone): emitting never waits from now on.
    pub fn stop_waiting(&self) {
        self.events.stop_waiting();
    }

    /// Writes out every transcript's queued lines, from synchronous code
    /// (a panic hook), waiting at most `limit`.
    pub fn flush_transcripts_blocking(&self, limit: Duration) {
        self.recorder.flush_blocking(limit);
    }

    /// Closes every session and listener, waiting until they are closed.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Actor {
    ctx: Arc<Ctx>,
    sessions: Vec<Arc<Session>>,
    listeners: Vec<Arc<Listener>>,
    default_session: Option<String>,
    default_listener: Option<String>,
    self_tx: mpsc::WeakSender<Msg>,
    /// Handed to connects and listeners to register their sessions.
    registrar: Registrar,
    next_trigger: u64,
    registered: u64,
    /// `connect --wait` still trying its first connect: id, label, and
    /// how to stop it (`disconnect`).
    dialing: Dialing,
}

/// Connects still trying their first connect (`--wait`), in order.
type Dialing = Arc<std::sync::Mutex<Vec<Arc<Dial>>>>;

/// A `connect --wait` still trying: named as a session is, stopped by
/// `disconnect`.
struct Dial {
    id: String,
    label: Option<String>,
    stop: tokio_util::sync::CancellationToken,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, mut registered: mpsc::Receiver<Registration>) {
        loop {
            let msg = tokio::select! {
                Some((session, ack)) = registered.recv() => {
                    self.register(session);
                    let _ = ack.send(true);
                    continue;
                }
                msg = rx.recv() => match msg {
                    Some(msg) => msg,
                    None => break,
                },
            };
            match msg {
                Msg::Command(cmd, reply) => self.command(*cmd, reply).await,
                Msg::Claimed(id, reply) => {
                    self.default_session = Some(id.clone());
                    let _ = reply.send(Ok(Outcome::Session(id)));
                }
                Msg::Shutdown(done) => self.shutdown(done),
            }
        }
    }

    fn register(&mut self, session: Arc<Session>) {
        // Opened sessions become the default at once; accepted ones when
        // `accept` returns them.
        if session.direction != Direction::In {
            self.default_session = Some(session.id.clone());
        }
        self.sessions.push(session);
        // Counting closed sessions walks the whole table: do it once every
        // so many sessions, not on every one (10 000 accepts stay linear).
        self.registered += 1;
        if !self.registered.is_multiple_of(PRUNE_EVERY) {
            return;
        }
        let closed = self.sessions.iter().filter(|s| s.is_closed()).count();
        if closed > KEEP_CLOSED {
            let mut excess = closed - KEEP_CLOSED;
            self.sessions.retain(|s| {
                if excess > 0 && s.is_closed() {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }

    fn shutdown(&mut self, done: oneshot::Sender<()>) {
        for l in &self.listeners {
            l.close();
        }
        let open: Vec<_> = self.sessions.iter().filter(|s| !s.is_closed()).cloned().collect();
        let recorder = self.ctx.recorder.clone();
        tokio::spawn(async move {
            let closing = open.iter().map(|s| s.close(CloseReason::Local, None));
            futures_util::future::join_all(closing).await;
            recorder.flush().await;
            // Let listener tasks report `closed`.
            tokio::task::yield_now().await;
            let _ = done.send(());
        });
    }

    fn id_in_use(&self, id: &str) -> bool {
        self.sessions.iter().any(|s| s.id == id) || self.listeners.iter().any(|l| l.id == id)
    }

    fn take_id(&self, forced: &Option<String>, prefix: &str) -> CoreResult<String> {
        match forced {
            Some(id) if self.id_in_use(id) => Err(CoreError::new(
                ErrorCode::CommandInvalid,
                format!("--id {id}: a session or listener already has this id"),
            )),
            Some(id) if !valid_id(id) => Err(CoreError::new(
                ErrorCode::CommandInvalid,
                format!(
                    "--id {}: an id is 1 to {MAX_ID} letters, digits, '-', '_', '.' or ':', and does not start with '@' or '.' (it names files and shows on terminals)",
                    super::escape::escape_display(id.as_bytes())
                ),
            )),
            Some(id) => Ok(id.clone()),
            None => Ok(new_id(prefix)),
        }
    }

    async fn command(&mut self, cmd: Command, reply: Reply) {
        match cmd {
            Command::Connect(spec) => self.connect(spec, reply),
            Command::Listen(spec) => {
                let result = self.listen(spec, None).await;
                let _ = reply.send(result);
            }
            Command::Proxy(spec) => {
                let result = match transport::Dialer::new(&spec.target, spec.tls_out.as_ref(), None) {
                    Ok(dialer) => self.listen(spec.listen, Some(dialer)).await,
                    Err(e) => Err(Failure::from(e)),
                };
                let _ = reply.send(result);
            }
            Command::Inject { to, payload, raw } => {
                let session = match self.find_session(to.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return fail(reply, e, None),
                };
                let payload = session.with_eol(payload, raw);
                tokio::spawn(async move {
                    let result = session
                        .inject_c2s(payload)
                        .await
                        .map(|_| Outcome::Session(session.id.clone()))
                        .map_err(|e| failure(e, &session));
                    let _ = reply.send(result);
                });
            }
            Command::Exec { session, spec } => {
                self.act_on(session.as_deref(), reply, |s| {
                    s.attach_exec(&spec)?;
                    s.start_relay();
                    Ok(format!("{} is served by {}", s.id, spec.describe()))
                })
                .await;
            }
            Command::Hold { session, dir, hold } => {
                self.act_on(session.as_deref(), reply, |s| {
                    let what = if hold { "held" } else { "released" };
                    Ok(if s.hold(dir, hold)? {
                        format!("{} {} {what}", s.id, dir.as_str())
                    } else {
                        format!("{} {} was already {what}", s.id, dir.as_str())
                    })
                })
                .await;
            }
            Command::Udp(spec) => {
                let result = self.udp(spec).await;
                let _ = reply.send(result);
            }
            Command::Send { to, payload, raw } => {
                let session = match self.find_session(to.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return fail(reply, e, None),
                };
                let data = session.with_eol(payload, raw);
                self.send(session, data, reply);
            }
            Command::Forget { session } => match self.find_session(session.as_deref()) {
                Ok(s) => {
                    s.forget_received();
                    let _ = reply.send(Ok(Outcome::Done));
                }
                Err(e) => fail(reply, e, None),
            },
            Command::WaitFor {
                on,
                timeout,
                regex,
                opts,
            } => {
                let session = match self.find_session(on.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return fail(reply, e, None),
                };
                tokio::spawn(async move {
                    let mut reply = reply;
                    // A wait nobody awaits any more (Ctrl-C in the TUI)
                    // stops, and consumes nothing.
                    let waited = tokio::select! {
                        r = session.wait_for(&regex, timeout, opts) => r,
                        _ = reply.closed() => return,
                    };
                    let result = match waited {
                        Ok(found) => {
                            let raw = match &found {
                                EventKind::Match { raw, .. } => raw.clone(),
                                _ => Bytes::new(),
                            };
                            session.emit(found).await;
                            Ok(Outcome::Matched {
                                session: session.id.clone(),
                                raw,
                            })
                        }
                        Err(e) => Err(failure(e, &session)),
                    };
                    let _ = reply.send(result);
                });
            }
            Command::Accept { on, timeout } => {
                let listener = match self.find_listener(on.as_deref()) {
                    Ok(l) => l,
                    Err(e) => return fail(reply, e, None),
                };
                let actor = self.self_tx.clone();
                tokio::spawn(async move {
                    match listener.claim(timeout).await {
                        Ok(id) => match actor.upgrade() {
                            Some(actor) => {
                                // The reply goes back through the actor, which makes
                                // the client the default session first.
                                if let Err(mpsc::error::SendError(Msg::Claimed(id, reply))) =
                                    actor.send(Msg::Claimed(id.clone(), reply)).await
                                {
                                    let _ = reply.send(Ok(Outcome::Session(id)));
                                }
                            }
                            None => {
                                let _ = reply.send(Ok(Outcome::Session(id)));
                            }
                        },
                        Err(e) => {
                            let _ = reply.send(Err(Failure {
                                error: e,
                                session_id: None,
                                listener_id: Some(listener.id.clone()),
                            }));
                        }
                    }
                });
            }
            Command::HalfClose { session } => {
                let session = match self.find_session(session.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return fail(reply, e, None),
                };
                let closing = session.half_close();
                tokio::spawn(async move {
                    let result = closing
                        .await
                        .map(|()| Outcome::Session(session.id.clone()))
                        .map_err(|e| failure(e, &session));
                    let _ = reply.send(result);
                });
            }
            Command::Disconnect { session } => {
                let session = match self.find_session(session.as_deref()) {
                    Ok(s) => s,
                    // A connect still waiting for its peer stops.
                    Err(e) => match self.stop_dialing(session.as_deref()) {
                        Some(id) => {
                            let _ = reply.send(Ok(Outcome::Session(id)));
                            return;
                        }
                        None => return fail(reply, e, None),
                    },
                };
                tokio::spawn(async move {
                    let result = if session.close(CloseReason::Local, None).await {
                        Ok(Outcome::Session(session.id.clone()))
                    } else {
                        Err(failure(
                            CoreError::new(
                                ErrorCode::SessionNotConnected,
                                format!("session {} is already closed", session.id),
                            ),
                            &session,
                        ))
                    };
                    let _ = reply.send(result);
                });
            }
            Command::Close { listener } => {
                let result = self
                    .find_listener(listener.as_deref())
                    .map_err(Failure::from)
                    .and_then(|l| {
                        if l.close() {
                            Ok(Outcome::Listener(l.id.clone()))
                        } else {
                            Err(Failure {
                                error: CoreError::new(
                                    ErrorCode::SessionNotConnected,
                                    format!("listener {} is already closed", l.id),
                                ),
                                session_id: None,
                                listener_id: Some(l.id.clone()),
                            })
                        }
                    });
                let _ = reply.send(result);
            }
            Command::Resolve { session } => {
                let result = self
                    .find_session(session.as_deref())
                    .map(|s| Outcome::Session(s.id.clone()));
                let _ = reply.send(result.map_err(Failure::from));
            }
            Command::View { session, view } => {
                let result = self.find_session(session.as_deref()).map(|s| {
                    s.set_view(view);
                    Outcome::Session(s.id.clone())
                });
                let _ = reply.send(result.map_err(Failure::from));
            }
            Command::Record { session, file } => {
                let session = match self.find_session(session.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return fail(reply, e, None),
                };
                tokio::spawn(async move {
                    let result = match file {
                        Some(path) => session.start_recording(super::recording::Place::File(path)).await,
                        None => {
                            session.stop_recording().await;
                            Ok(())
                        }
                    };
                    let _ = reply.send(
                        result
                            .map(|()| Outcome::Session(session.id.clone()))
                            .map_err(|e| failure(e, &session)),
                    );
                });
            }
            Command::On(spec) => {
                let result = self.arm_trigger(spec).await;
                let _ = reply.send(result.map_err(Failure::from));
            }
            Command::Triggers => {
                let list = self
                    .ctx
                    .triggers
                    .read()
                    .map(|l| l.iter().map(|t| t.info()).collect())
                    .unwrap_or_default();
                self.ctx.events.emit(Event::new(EventKind::Triggers(list))).await;
                let _ = reply.send(Ok(Outcome::Done));
            }
            Command::Off { id } => {
                let result = if self.ctx.remove_trigger(&id) {
                    self.ctx
                        .events
                        .emit(Event::new(EventKind::Info(format!(
                            "{} {id} removed",
                            if id.starts_with("plot-") {
                                "plot"
                            } else {
                                "trigger"
                            }
                        ))))
                        .await;
                    Ok(Outcome::Trigger(id))
                } else {
                    Err(Failure::from(CoreError::new(
                        ErrorCode::CommandInvalid,
                        format!("off: there is no trigger or plot {id:?} (see `triggers`)"),
                    )))
                };
                let _ = reply.send(result);
            }
            Command::Sessions => {
                let list: Vec<_> = self.sessions.iter().map(|s| s.info()).collect();
                self.ctx
                    .events
                    .emit(Event::new(EventKind::Sessions(list.clone())))
                    .await;
                let _ = reply.send(Ok(Outcome::Sessions(list)));
            }
            Command::Listeners => {
                let list = self.listeners.iter().map(|l| l.info()).collect();
                self.ctx.events.emit(Event::new(EventKind::Listeners(list))).await;
                let _ = reply.send(Ok(Outcome::Done));
            }
            Command::Line {
                session,
                line,
                action,
            } => {
                let session = match self.find_session(session.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return fail(reply, e, None),
                };
                // A pulse takes its time: other commands go on meanwhile.
                tokio::spawn(async move {
                    let result = session.set_line(line, action).await;
                    let _ = reply.send(
                        result
                            .map(|()| Outcome::Session(session.id.clone()))
                            .map_err(|e| failure(e, &session)),
                    );
                });
            }
            Command::Break { session, length } => {
                let session = match self.find_session(session.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return fail(reply, e, None),
                };
                tokio::spawn(async move {
                    let result = session.send_break(length).await;
                    let _ = reply.send(
                        result
                            .map(|()| Outcome::Session(session.id.clone()))
                            .map_err(|e| failure(e, &session)),
                    );
                });
            }
            Command::Check { targets, timeout } => {
                let events = self.ctx.events.clone();
                tokio::spawn(async move {
                    let _ = reply.send(check(&events, targets, timeout).await);
                });
            }
            Command::WaitPort { target, timeout } => {
                let events = self.ctx.events.clone();
                tokio::spawn(async move {
                    let mut reply = reply;
                    tokio::select! {
                        r = wait_port(&events, target, timeout) => { let _ = reply.send(r); }
                        // Nobody waits any more (Ctrl-C): stop trying.
                        _ = reply.closed() => {}
                    }
                });
            }
            Command::Ports => {
                let events = self.ctx.events.clone();
                tokio::spawn(async move {
                    let listed = tokio::task::spawn_blocking(super::transport::serial::list_ports)
                        .await
                        .unwrap_or_else(|e| Err(CoreError::new(ErrorCode::IoError, e.to_string())));
                    let result = match listed {
                        Ok(list) => {
                            events.emit(Event::new(EventKind::Ports(list))).await;
                            Ok(Outcome::Done)
                        }
                        Err(e) => Err(Failure::from(e)),
                    };
                    let _ = reply.send(result);
                });
            }
        }
    }

    /// `on`: the trigger applies to the session or listener named, or to
    /// every session.
    async fn arm_trigger(&mut self, spec: TriggerSpec) -> CoreResult<Outcome> {
        let scope = match spec.on.as_deref() {
            None => Scope::All,
            Some(r) => match (self.find_session(Some(r)), self.find_listener(Some(r))) {
                (Ok(s), _) => Scope::Session(s.id.clone()),
                (_, Ok(l)) => Scope::Listener(l.id.clone()),
                (Err(e), _) => return Err(e),
            },
        };
        self.next_trigger += 1;
        let what = if spec.sample { "plot" } else { "trigger" };
        let id = format!(
            "{}-{}",
            if spec.sample { "plot" } else { "trig" },
            self.next_trigger
        );
        let trigger = Arc::new(
            Trigger::new(id.clone(), scope, spec.regex, spec.reply, spec.raw, spec.once)
                .with_checksum(spec.checksum)
                .with_notify(spec.notify)
                .sampling(spec.sample)
                .relaying(spec.dir, spec.rewrite),
        );
        let info = trigger.info();
        {
            let mut list = self.ctx.triggers.write().unwrap_or_else(|e| e.into_inner());
            list.push(trigger);
            self.ctx
                .trigger_count
                .store(list.len(), std::sync::atomic::Ordering::Release);
        }
        // The regex and reply are the operator's words: shown escaped.
        let text = format!(
            "{what} {id} armed on {}: /{}/ -> {}{}",
            short_id(&info.on),
            super::escape::escape_display(info.regex.as_bytes()),
            super::escape::escape_display(info.reply.as_bytes()),
            if info.once { " (once)" } else { "" }
        );
        self.ctx.events.emit(Event::new(EventKind::Info(text))).await;
        Ok(Outcome::Trigger(id))
    }

    fn send(&self, session: Arc<Session>, data: Bytes, reply: Reply) {
        // Queued here, in command order; only the wait runs in a task.
        let sending = session.send(data);
        tokio::spawn(async move {
            let result = sending
                .await
                .map(|_| Outcome::Session(session.id.clone()))
                .map_err(|e| failure(e, &session));
            let _ = reply.send(result);
        });
    }

    /// Does `act` to a session and says what it did (an `info` event of
    /// the session); the session is the outcome.
    async fn act_on(
        &self,
        session: Option<&str>,
        reply: Reply,
        act: impl FnOnce(&Arc<Session>) -> CoreResult<String>,
    ) {
        match self.find_session(session).and_then(|s| Ok((act(&s)?, s))) {
            Ok((text, s)) => {
                self.ctx
                    .events
                    .emit(Event::new(EventKind::Info(text)).session(&s.id))
                    .await;
                let _ = reply.send(Ok(Outcome::Session(s.id.clone())));
            }
            Err(e) => fail(reply, e, None),
        }
    }

    /// Stops a `connect --wait` still trying (by id, a prefix of it, or
    /// label); its id.
    fn stop_dialing(&self, name: Option<&str>) -> Option<String> {
        let dialing = self.dialing.lock().ok()?;
        // The one resolver: ids, labels, prefixes, `@N` as for sessions.
        let dial = super::resolve::resolve(&dialing, name?, &super::resolve::SESSIONS, |d| {
            (&d.id, &d.label, true)
        })
        .ok()?;
        dial.stop.cancel();
        Some(dial.id.clone())
    }

    fn connect(&mut self, spec: Box<ConnectSpec>, reply: Reply) {
        let id = match self.take_id(&spec.opts.id, "sess") {
            Ok(id) => id,
            Err(e) => return fail(reply, e, None),
        };
        let dialer = match Dialer::new(&spec.target, spec.tls.as_ref(), spec.opts.timeout)
            .and_then(|d| d.with_source(spec.source))
            .and_then(|d| d.through(spec.via.clone()))
        {
            Ok(d) => d,
            Err(e) => return fail(reply, e, Some(id)),
        };
        let ctx = self.ctx.clone();
        let registrar = self.registrar.clone();
        let dialing = self.dialing.clone();
        tokio::spawn(async move {
            let event = |kind| Event::new(kind).session(&id).labelled(spec.opts.label.as_deref());
            ctx.events
                .emit(event(EventKind::Connecting {
                    target: spec.target.clone(),
                }))
                .await;
            // The first connect must work: a typo fails at once instead of
            // retrying forever. Drops after it are what --reconnect is for;
            // `--wait` retries the first one too (a board not powered yet).
            let dialed = if spec.wait {
                let stop = tokio_util::sync::CancellationToken::new();
                if let Ok(mut d) = dialing.lock() {
                    d.push(Arc::new(Dial {
                        id: id.clone(),
                        label: spec.opts.label.clone(),
                        stop: stop.clone(),
                    }));
                }
                let mut reply = reply;
                let dialed = first_dial(
                    &ctx,
                    &id,
                    &dialer,
                    spec.reconnect.unwrap_or_default(),
                    &stop,
                    &mut reply,
                )
                .await;
                if let Ok(mut d) = dialing.lock() {
                    d.retain(|dial| dial.id != id);
                }
                match dialed {
                    Some(Ok(d)) => (d, reply),
                    Some(Err(e)) => return fail(reply, e, Some(id)),
                    None => return,
                }
            } else {
                match dialer.dial().await {
                    Ok(d) => (d, reply),
                    Err(e) => return fail(reply, e, Some(id)),
                }
            };
            let (dialed, reply) = dialed;
            let (remote, local, kind, insecure, cipher) = (
                dialed.peer,
                dialed.local,
                dialed.kind,
                dialed.insecure,
                dialed.cipher,
            );
            let via = dialer.via().cloned().map(Box::new);
            let redial = spec.reconnect.map(|backoff| {
                Box::new(Redial {
                    dialer,
                    backoff,
                    preamble: spec.preamble.clone(),
                })
            });
            let parts = Parts {
                upstream: None,
                telnet: spec.opts.telnet,
                client_reset: None,
                // Moved, not cloned: once the session closes, nothing else holds the port.
                control: dialed.control,
                id: id.clone(),
                label: spec.opts.label.clone(),
                direction: Direction::Out,
                listener: None,
                local: local.clone(),
                peer: Some(remote.clone()),
                kind,
                mode: spec.opts.mode,
                eol: spec.opts.eol,
                map: spec.opts.map.clone(),
                frame: spec.opts.frame.clone(),
                check: spec.opts.check,
                timeout: spec.opts.timeout,
                half_open: spec.opts.half_open,
                redial,
            };
            let (session, read) = Session::new(parts, dialed.io, ctx.clone());
            if !registrar.register(session.clone()).await {
                session.close(CloseReason::Local, None).await;
                let err = CoreError::new(ErrorCode::IoError, "the session manager is shutting down");
                return fail(reply, err, Some(id));
            }
            session.record_to_dir().await;
            session
                .emit(EventKind::Connected {
                    remote,
                    local,
                    kind,
                    insecure,
                    via,
                    cipher,
                })
                .await;
            if let Err(e) = session.start(read, spec.opts.exec.as_deref()).await {
                return fail(reply, e, Some(id));
            }
            if let Some(preamble) = spec.preamble {
                session.send_preamble(preamble);
            }
            let _ = reply.send(Ok(Outcome::Session(id)));
        });
    }

    /// `listen`, or a `proxy`'s listener (`upstream`: where its clients go).
    async fn listen(
        &mut self,
        spec: ListenSpec,
        upstream: Option<transport::Dialer>,
    ) -> Result<Outcome, Failure> {
        let id = self.take_id(&spec.opts.id, "lstn")?;
        let with_id = |e: CoreError| Failure {
            error: e,
            session_id: None,
            listener_id: Some(id.clone()),
        };
        let (acceptor, fingerprint) = match &spec.tls {
            Some(t) => {
                let setup = t.config().map_err(with_id)?;
                (Some(TlsAcceptor::from(setup.config)), setup.fingerprint)
            }
            None => (None, None),
        };
        let (bound, kind) = transport::bind(&spec.bind, spec.tls.is_some())
            .await
            .map_err(with_id)?;
        let local = bound
            .local()
            .map_err(|e| with_id(CoreError::new(ErrorCode::BindFailed, e.to_string())))?;
        let listener = Listener::new(
            id.clone(),
            local,
            kind,
            spec.max_connections,
            spec.opts,
            self.registrar.clone(),
        );
        let listener = match upstream {
            Some(dialer) => listener.relaying(dialer),
            None => listener,
        };
        let listener = match &spec.acl {
            Some(acl) => listener.guarded(acl.resolve().await.map_err(with_id)?),
            None => listener,
        };
        self.announce(&listener, fingerprint).await;
        tokio::spawn(listener.run(bound, acceptor, self.ctx.clone()));
        Ok(Outcome::Listener(id))
    }

    /// Reports a new listener (`listening`) and makes it the default one.
    async fn announce(&mut self, listener: &Arc<Listener>, fingerprint: Option<String>) {
        let kind = EventKind::Listening {
            local: listener.local.clone(),
            kind: listener.kind,
            fingerprint,
            max_connections: Some(listener.max_connections),
        };
        let mut ev = Event::new(kind)
            .listener(&listener.id)
            .labelled(listener.label.as_deref());
        ev.target = listener.target();
        self.ctx.events.emit(ev).await;
        self.listeners.push(listener.clone());
        self.default_listener = Some(listener.id.clone());
    }

    async fn udp(&mut self, spec: UdpSpec) -> Result<Outcome, Failure> {
        if let Some(max_peers) = spec.per_peer {
            return self.udp_per_peer(spec, max_peers).await;
        }
        let id = self.take_id(&spec.opts.id, "sess")?;
        let with_id = |e: CoreError| Failure {
            error: e,
            session_id: Some(id.clone()),
            listener_id: None,
        };
        let opened = transport::udp::open(&spec.socket).await.map_err(with_id)?;
        let local = opened
            .socket
            .local_addr()
            .map_err(|e| with_id(CoreError::new(ErrorCode::BindFailed, e.to_string())))?;
        let parts = Parts {
            upstream: None,
            telnet: false,
            client_reset: None,
            control: None,
            id: id.clone(),
            label: spec.opts.label.clone(),
            direction: Direction::Udp,
            listener: None,
            local: Endpoint::Ip(local),
            peer: opened.to.map(Endpoint::Ip),
            kind: Kind::Udp,
            mode: spec.opts.mode,
            eol: spec.opts.eol,
            map: spec.opts.map.clone(),
            frame: None,
            check: spec.opts.check,
            timeout: spec.opts.timeout,
            half_open: spec.opts.half_open,
            redial: None,
        };
        let (session, read) = Session::new(parts, Io::Udp(Arc::new(opened.socket)), self.ctx.clone());
        self.register(session.clone());
        session.record_to_dir().await;
        session
            .emit(EventKind::Listening {
                local: Endpoint::Ip(local),
                kind: Kind::Udp,
                fingerprint: None,
                max_connections: None,
            })
            .await;
        match session.start(read, spec.opts.exec.as_deref()).await {
            Ok(()) => Ok(Outcome::Session(id)),
            Err(error) => Err(Failure {
                error,
                session_id: Some(id),
                listener_id: None,
            }),
        }
    }

    /// `udp --per-peer`: a listener whose sessions are the senders.
    async fn udp_per_peer(&mut self, spec: UdpSpec, max_peers: usize) -> Result<Outcome, Failure> {
        let id = self.take_id(&spec.opts.id, "lstn")?;
        let with_id = |e: CoreError| Failure {
            error: e,
            session_id: None,
            listener_id: Some(id.clone()),
        };
        let opened = transport::udp::open(&spec.socket).await.map_err(with_id)?;
        let local = opened
            .socket
            .local_addr()
            .map_err(|e| with_id(CoreError::new(ErrorCode::BindFailed, e.to_string())))?;
        let listener = Listener::new(
            id.clone(),
            Endpoint::Ip(local),
            Kind::Udp,
            max_peers,
            spec.opts,
            self.registrar.clone(),
        );
        let listener = match &spec.acl {
            Some(acl) => listener.guarded(acl.resolve().await.map_err(with_id)?),
            None => listener,
        };
        self.announce(&listener, None).await;
        tokio::spawn(listener.run_udp(Arc::new(opened.socket), self.ctx.clone()));
        Ok(Outcome::Listener(id))
    }

    /// Resolves a session reference: id, unique id prefix (4+ hex digits,
    /// with or without `sess-`), label, or `@N`; `None` is the default.
    fn find_session(&self, r: Option<&str>) -> CoreResult<Arc<Session>> {
        let Some(r) = r else {
            return self
                .default_session
                .as_deref()
                .and_then(|id| self.sessions.iter().find(|s| s.id == id))
                .cloned()
                .ok_or_else(|| {
                    CoreError::new(
                        ErrorCode::SessionNotFound,
                        "no session given and none is selected: connect, udp or accept first, or name one",
                    )
                });
        };
        resolve::resolve(&self.sessions, r, &resolve::SESSIONS, |s| {
            (&s.id, &s.label, !s.is_closed())
        })
    }

    fn find_listener(&self, r: Option<&str>) -> CoreResult<Arc<Listener>> {
        let Some(r) = r else {
            return self
                .default_listener
                .as_deref()
                .and_then(|id| self.listeners.iter().find(|l| l.id == id))
                .cloned()
                .ok_or_else(|| {
                    CoreError::new(
                        ErrorCode::SessionNotFound,
                        "no listener: listen first, or name one",
                    )
                });
        };
        resolve::resolve(&self.listeners, r, &resolve::LISTENERS, |l| {
            (&l.id, &l.label, !l.is_closed())
        })
    }
}

fn failure(error: CoreError, session: &Session) -> Failure {
    Failure {
        error,
        session_id: Some(session.id.clone()),
        listener_id: session.listener_id().map(str::to_string),
    }
}

/// `connect --wait`: the first connect, tried until it works, with the
/// backoff between attempts (each reported as `reconnecting`). None: the
/// caller went away (the reply was dropped).
async fn first_dial(
    ctx: &Ctx,
    id: &str,
    dialer: &Dialer,
    backoff: super::dial::Backoff,
    stop: &tokio_util::sync::CancellationToken,
    reply: &mut Reply,
) -> Option<CoreResult<transport::Link>> {
    let mut attempt = 0;
    loop {
        let cause = match dialer.dial().await {
            Ok(d) => return Some(Ok(d)),
            Err(e) => e,
        };
        attempt += 1;
        let delay = backoff.delay(attempt, fastrand::f64());
        ctx.events
            .emit(
                Event::new(EventKind::Reconnecting {
                    attempt,
                    delay,
                    cause: cause.text.clone(),
                })
                .session(id),
            )
            .await;
        tokio::select! {
            // A serial device not plugged in yet: until its path is there.
            _ = async { tokio::time::sleep(delay).await; dialer.ready().await } => {}
            _ = stop.cancelled() => {
                let err = CoreError::new(
                    ErrorCode::SessionNotConnected,
                    format!("{id}: stopped waiting for its first connect (disconnect); last: {}", cause.text),
                );
                ctx.events
                    .emit(Event::new(EventKind::Disconnected { reason: CloseReason::Local }).session(id))
                    .await;
                return Some(Err(err));
            }
            _ = reply.closed() => return None,
        }
    }
}

/// `check`: every target tried (16 at a time, reported in order); it
/// fails when one is closed, naming which.
async fn check(
    events: &super::sink::EventSink,
    targets: Vec<super::addr::HostPort>,
    timeout: Duration,
) -> Result<Outcome, Failure> {
    use futures_util::StreamExt;
    let total = targets.len();
    let mut tries = futures_util::stream::iter(targets.into_iter().map(|t| async move {
        let r = super::probe::probe(&t, timeout).await;
        (t, r)
    }))
    .buffered(16);
    let mut closed = Vec::new();
    let mut code = ErrorCode::ConnectRefused;
    while let Some((target, result)) = tries.next().await {
        let reason = result.as_ref().err().map(|e| match e.code {
            ErrorCode::ConnectRefused => "refused".to_string(),
            _ => e.text.clone(),
        });
        if let Err(e) = &result {
            if e.code != ErrorCode::ConnectRefused {
                code = e.code;
            }
            closed.push(target.to_string());
        }
        let open = result.is_ok();
        events
            .emit(Event::new(EventKind::Check { target, open, reason }))
            .await;
    }
    if closed.is_empty() {
        return Ok(Outcome::Done);
    }
    Err(Failure::from(CoreError::new(
        code,
        format!("{} of {total} closed: {}", closed.len(), closed.join(", ")),
    )))
}

/// `wait-for`: tries until the port opens or `timeout` passes.
async fn wait_port(
    events: &super::sink::EventSink,
    target: super::addr::HostPort,
    timeout: Duration,
) -> Result<Outcome, Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let last = match super::probe::probe(&target, left.max(Duration::from_millis(1))).await {
            Ok(()) => {
                events
                    .emit(Event::new(EventKind::Check {
                        target,
                        open: true,
                        reason: None,
                    }))
                    .await;
                return Ok(Outcome::Done);
            }
            Err(e) => e,
        };
        if tokio::time::Instant::now() + super::probe::RETRY >= deadline {
            return Err(Failure::from(CoreError::new(
                ErrorCode::WaitforTimeout,
                format!(
                    "{target} did not open within {} (last: {})",
                    super::util::format_duration(timeout),
                    last.text
                ),
            )));
        }
        tokio::time::sleep(super::probe::RETRY).await;
    }
}

fn fail(reply: Reply, error: CoreError, session_id: Option<String>) {
    let _ = reply.send(Err(Failure {
        error,
        session_id,
        listener_id: None,
    }));
}
