//! A proxy session's second leg: the connection to the target. The
//! session's own link is the client; what the client sends is forwarded
//! here by the reader (client → server, `c2s`, the session's received
//! bytes), and what the server sends goes to the client through the
//! session's writer (server → client, `s2c`, its sent bytes). Each
//! direction waits for the other end to take its bytes before it reads
//! more, so a slow reader, a held direction or a front end that falls
//! behind slows the relay down and nothing is dropped or piles up.
//!
//! The transcript is the client's conversation: `<` what the client sent,
//! `>` what it received; where the server's side differs (a rewrite, an
//! injected chunk) a `*` line says what the server sent or got.
//!
//! Ends propagate as a transparent relay's do: a FIN from one side
//! half-closes the other, a reset resets it (SO_LINGER 0 on the other
//! socket, so it gets an RST, not a FIN).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::Session;
use crate::core::events::{CloseReason, CoreError, CoreResult, ErrorCode};
use crate::core::transport::tcp::Resetter;
use crate::core::transport::{Endpoint, Kind, ReadSide};

/// Which way bytes go through a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayDir {
    /// Client to server: what the session receives.
    C2s,
    /// Server to client: what the session sends.
    S2c,
}

impl RelayDir {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayDir::C2s => "c2s",
            RelayDir::S2c => "s2c",
        }
    }

    pub fn parse(text: &str) -> Option<RelayDir> {
        match text {
            "c2s" => Some(RelayDir::C2s),
            "s2c" => Some(RelayDir::S2c),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            RelayDir::C2s => 0,
            RelayDir::S2c => 1,
        }
    }
}

/// The upstream leg of a proxy session.
pub(crate) struct Relay {
    /// The target, as connected.
    pub target: Endpoint,
    /// The upstream link's transport (tcp, tls, unix).
    pub upstream_kind: Kind,
    /// The client's link is TLS (`--tls-in`).
    pub client_tls: bool,
    write: tokio::sync::Mutex<Option<Box<dyn AsyncWrite + Send + Unpin>>>,
    read: std::sync::Mutex<Option<ReadSide>>,
    /// Copies of both sockets and their links' resetters (TCP only): a
    /// side is reset when the other side reset. The copies go when the
    /// session closes, so the last close is the links' own.
    client_socket: std::sync::Mutex<Option<OwnedFd>>,
    upstream_socket: std::sync::Mutex<Option<OwnedFd>>,
    client_reset: Option<Resetter>,
    upstream_reset: Option<Resetter>,
    /// `hold`: a direction paused (its bytes wait in the kernel).
    held: watch::Sender<[bool; 2]>,
    /// Bytes forwarded to the server (c2s as the server got them).
    pub to_server: std::sync::atomic::AtomicU64,
    /// `--exec`: the program on the far side (killed when the session ends).
    process: std::sync::Mutex<Option<tokio::process::Child>>,
}

impl Relay {
    pub(crate) fn new(
        client: (Option<&ReadSide>, Option<Resetter>, bool),
        upstream: crate::core::transport::Link,
    ) -> Option<Relay> {
        let (client_read, client_reset, client_tls) = client;
        let crate::core::transport::Io::Stream { read, write } = upstream.io else {
            return None;
        };
        Some(Relay {
            target: upstream.peer,
            upstream_kind: upstream.kind,
            client_tls,
            client_socket: std::sync::Mutex::new(client_read.and_then(ReadSide::socket)),
            upstream_socket: std::sync::Mutex::new(read.socket()),
            client_reset,
            upstream_reset: upstream.reset,
            write: tokio::sync::Mutex::new(Some(write)),
            read: std::sync::Mutex::new(Some(read)),
            held: watch::Sender::new([false; 2]),
            to_server: Default::default(),
            process: std::sync::Mutex::new(None),
        })
    }

    /// `--exec`: the program whose stdio the upstream link is.
    fn with_process(self, child: tokio::process::Child) -> Relay {
        *self.process.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        self
    }

    /// The upstream reader's side, once.
    pub(crate) fn take_read(&self) -> Option<ReadSide> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Writes to the server (relayed or injected bytes).
    async fn to_server(&self, data: &[u8]) -> std::io::Result<()> {
        let mut write = self.write.lock().await;
        let Some(w) = write.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the server's side is closed",
            ));
        };
        w.write_all(data).await?;
        w.flush().await?;
        self.to_server.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The client ended its output: FIN to the server.
    async fn end_to_server(&self) {
        // Shut down and let go: a program's stdin closes only when dropped.
        let write = self.write.lock().await.take();
        if let Some(mut w) = write {
            let _ = w.shutdown().await;
        }
    }

    /// The session closed: the server's side goes too.
    pub(crate) async fn close(&self, graceful: bool) {
        let write = self.write.lock().await.take();
        if let (Some(mut w), true) = (write, graceful) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), w.shutdown()).await;
        }
        self.read.lock().unwrap_or_else(|e| e.into_inner()).take();
        for socket in [&self.client_socket, &self.upstream_socket] {
            socket.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        // A program that has not ended with its input is ended (and reaped).
        let child = self.process.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            tokio::spawn(async move {
                if tokio::time::timeout(std::time::Duration::from_millis(500), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            });
        }
    }

    /// Makes the other side's close an RST (it is closed right after).
    fn reset(&self, from: RelayDir) {
        let (socket, resetter) = match from {
            RelayDir::C2s => (&self.upstream_socket, &self.upstream_reset),
            RelayDir::S2c => (&self.client_socket, &self.client_reset),
        };
        if let Some(fd) = socket.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = socket2::SockRef::from(fd).set_linger(Some(std::time::Duration::ZERO));
            if let Some(r) = resetter {
                r.arm();
            }
        }
    }

    pub(crate) fn set_held(&self, dir: RelayDir, hold: bool) -> bool {
        let mut changed = false;
        self.held.send_modify(|h| {
            changed = h[dir.index()] != hold;
            h[dir.index()] = hold;
        });
        changed
    }

    pub(crate) fn is_held(&self, dir: RelayDir) -> bool {
        self.held.borrow()[dir.index()]
    }

    /// Resolves once `dir` is held (a read under way stops for it).
    pub(crate) async fn held_now(&self, dir: RelayDir) {
        let mut held = self.held.subscribe();
        let _ = held.wait_for(|h| h[dir.index()]).await;
    }

    /// Waits while `dir` is held.
    pub(crate) async fn released(&self, dir: RelayDir) {
        let mut held = self.held.subscribe();
        let _ = held.wait_for(|h| !h[dir.index()]).await;
    }
}

impl Session {
    /// `--exec` / `exec CMD`: a program takes the session's far side: what
    /// the peer sends goes to its stdin, its stdout to the peer; its end
    /// of output ends the session. Before the reader starts (an opening
    /// session), or on a live one (the TUI's `exec`).
    pub fn attach_exec(self: &Arc<Self>, spec: &crate::core::transport::exec::ExecSpec) -> CoreResult<()> {
        if self.relay.get().is_some() {
            return Err(CoreError::new(
                ErrorCode::CommandInvalid,
                format!(
                    "session {} already relays to {}",
                    self.id,
                    self.relay.get().map(|r| r.target.to_string()).unwrap_or_default()
                ),
            ));
        }
        let (local, remote) = (self.local(), self.peer());
        let peers = crate::core::transport::exec::Peers {
            local: &local,
            remote: remote.as_ref(),
            proto: if self.kind.is_udp() { "udp" } else { "tcp" },
        };
        let (link, child) = crate::core::transport::exec::spawn(spec, &peers)?;
        let client_tls = self.kind.is_tls();
        let relay = Relay::new((None, None, client_tls), link)
            .ok_or_else(|| CoreError::new(ErrorCode::IoError, "the program has no stdio"))?
            .with_process(child);
        if self.relay.set(Box::new(relay)).is_err() {
            return Err(CoreError::new(
                ErrorCode::CommandInvalid,
                format!("session {} already relays", self.id),
            ));
        }
        Ok(())
    }

    /// Starts an opened session: its `--exec` program first, if any (a
    /// program that cannot start closes the session with that error), so
    /// no byte is read before it can take it; then the reader.
    pub(crate) async fn start(
        self: &Arc<Self>,
        read: Option<ReadSide>,
        exec: Option<&crate::core::transport::exec::ExecSpec>,
    ) -> CoreResult<()> {
        if let Some(exec) = exec
            && let Err(e) = self.attach_exec(exec)
        {
            self.close(CloseReason::Error, Some(e.clone())).await;
            return Err(e);
        }
        self.start_reading(read);
        Ok(())
    }

    /// Starts the upstream reader (once the session reads too).
    pub fn start_relay(self: &Arc<Self>) {
        if let Some(up) = self.relay.get().and_then(|r| r.take_read()) {
            let task = tokio::spawn(upstream_loop(self.clone(), up));
            self.add_task(task);
        }
    }

    /// The client sent `chunk`: it goes on to the server (before it is
    /// reported, so the relay adds no more delay than a copy). False when
    /// the server's side failed (the session is closing).
    pub(super) async fn relay_c2s(self: &Arc<Self>, chunk: &Bytes) -> bool {
        let Some(relay) = self.relay.get() else {
            return true;
        };
        let forwarded = match self.rewrite(RelayDir::C2s, chunk) {
            Some((rewritten, by)) => {
                // `<` keeps what the client sent; what the server got instead:
                self.record_event_with(&format!("c2s rewritten by {by}, the server got: "), &rewritten)
                    .await;
                rewritten
            }
            None => chunk.clone(),
        };
        match relay.to_server(&forwarded).await {
            Ok(()) => true,
            Err(e) => {
                let generation = self.lock().link.generation;
                let what = format!("forwarding to {} failed", relay.target);
                self.fail(generation, &what, e).await;
                false
            }
        }
    }

    /// `on --rewrite` triggers of direction `dir`, applied in order: the
    /// rewritten bytes and the triggers that changed them, or None.
    fn rewrite(&self, dir: RelayDir, data: &Bytes) -> Option<(Bytes, String)> {
        let triggers = self.ctx.triggers_for(&self.id, self.listener_id());
        let mut out: Option<Vec<u8>> = None;
        let mut by = Vec::new();
        for t in triggers
            .iter()
            .filter(|t| t.rewrite && t.dir.unwrap_or(RelayDir::C2s) == dir)
        {
            let input = out.as_deref().unwrap_or(data);
            if let Some(changed) = t.rewritten(input) {
                out = Some(changed);
                by.push(t.id.clone());
            }
        }
        out.map(|bytes| (Bytes::from(bytes), by.join(", ")))
    }

    /// `on --dir s2c REGEX send …`: answers to the server's bytes, sent
    /// to the server (as if the client sent them).
    async fn answer_s2c(self: &Arc<Self>, data: &[u8]) {
        let triggers = self.ctx.triggers_for(&self.id, self.listener_id());
        for t in triggers
            .iter()
            .filter(|t| t.dir == Some(RelayDir::S2c) && !t.rewrite && !t.is_plot())
        {
            let Some(mut reply) = t.reply(data) else { continue };
            if self.mode == crate::core::command::Mode::Line && !t.raw {
                reply.extend_from_slice(self.eol.bytes());
            }
            if t.once {
                self.ctx.remove_trigger(&t.id);
            }
            if let Err(e) = self.inject_c2s(Bytes::from(reply)).await {
                self.emit_error(crate::core::events::EventKind::Error, e).await;
            }
        }
    }

    /// `send --dir c2s`: bytes to the server as if the client sent them
    /// (noted in the transcript: the client did not).
    pub async fn inject_c2s(self: &Arc<Self>, data: Bytes) -> CoreResult<u64> {
        let Some(relay) = self.relay.get() else {
            return Err(CoreError::new(
                ErrorCode::CommandInvalid,
                format!("session {} is not a proxy session: --dir is for proxies", self.id),
            ));
        };
        if self.is_closed() {
            return Err(self.not_connected());
        }
        self.record_event_with("injected c2s ", &data).await;
        relay.to_server(&data).await.map_err(|e| {
            CoreError::new(
                ErrorCode::IoError,
                format!("send to {} (the server of {}) failed: {e}", relay.target, self.id),
            )
        })?;
        let id = self.ctx.next_message_id();
        let mut ev = self.event(crate::core::events::EventKind::Sent {
            message_id: id,
            bytes: data.len(),
            payload: data,
            trigger: None,
        });
        ev.dir = Some(RelayDir::C2s.as_str());
        self.ctx.events.emit(ev).await;
        Ok(id)
    }

    /// The client ended its output: the server's input ends too.
    pub(super) async fn relay_client_ended(&self) {
        if let Some(relay) = self.relay.get() {
            relay.end_to_server().await;
        }
    }

    /// The client reset: so is the server's connection.
    pub(super) fn relay_reset(&self, from: RelayDir) {
        if let Some(relay) = self.relay.get() {
            relay.reset(from);
            self.lock().reset = true;
        }
    }

    /// `hold` / `release` of a proxy session's direction.
    pub fn hold(&self, dir: RelayDir, hold: bool) -> CoreResult<bool> {
        match self.relay.get() {
            Some(relay) => Ok(relay.set_held(dir, hold)),
            None => Err(CoreError::new(
                ErrorCode::CommandInvalid,
                format!(
                    "session {} is not a proxy session: hold and release are for proxies",
                    self.id
                ),
            )),
        }
    }

    /// Resolves once the client's direction is held (never for others).
    pub(super) async fn c2s_held_now(&self) {
        match self.relay.get() {
            // Boxed: every session's reader waits on this; only a proxy's
            // needs the room.
            Some(relay) => Box::pin(relay.held_now(RelayDir::C2s)).await,
            None => std::future::pending().await,
        }
    }

    /// Waits while the client's direction is held (the reader's bytes
    /// stay in the kernel meanwhile).
    pub(super) async fn c2s_released(&self) {
        if let Some(relay) = self.relay.get()
            && relay.is_held(RelayDir::C2s)
        {
            Box::pin(relay.released(RelayDir::C2s)).await;
        }
    }
}

/// Reads the server and hands each chunk to the session's writer, waiting
/// until the client took it.
pub(super) async fn upstream_loop(session: Arc<Session>, relay_read: ReadSide) {
    let mut read = relay_read;
    let Some(relay) = session.relay.get() else {
        return;
    };
    let mut buf = BytesMut::new();
    let size = session.ctx.read_size;
    loop {
        if relay.is_held(RelayDir::S2c) {
            tokio::select! {
                _ = session.cancel.cancelled() => return,
                _ = relay.released(RelayDir::S2c) => {}
            }
        }
        let result = tokio::select! {
            _ = session.cancel.cancelled() => return,
            // Held while waiting: no read, the bytes stay in the kernel.
            _ = relay.held_now(RelayDir::S2c) => continue,
            r = read.read_chunk(&mut buf, size, session.ctx.bulk) => r,
        };
        match result {
            Ok(0) => {
                // FIN from the server: the client's input ends (after
                // what is queued for it).
                session
                    .record_event(&format!("{} ended its output", relay.target))
                    .await;
                let _ = session.half_close().await;
                // A program's end of output is its end (ncat -e closes the
                // connection when its program exits).
                if relay.upstream_kind == Kind::Exec {
                    session.close(CloseReason::Remote, None).await;
                }
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && relay.upstream_kind.is_tls() => {
                session
                    .record_event(&format!("{} closed without close_notify", relay.target))
                    .await;
                let _ = session.half_close().await;
                return;
            }
            Ok(_) => {
                let chunk = buf.split().freeze();
                if buf.capacity() < 1024 {
                    buf = BytesMut::new();
                }
                let original = chunk.clone();
                let chunk = match session.rewrite(RelayDir::S2c, &chunk) {
                    Some((rewritten, by)) => {
                        // `>` has what the client got; what the server sent:
                        session
                            .record_event_with(&format!("s2c rewritten by {by}, the server sent: "), &chunk)
                            .await;
                        rewritten
                    }
                    None => chunk,
                };
                if session.send(chunk).await.is_err() {
                    return;
                }
                // Answers go to what the server sent, as it sent it.
                session.answer_s2c(&original).await;
            }
            Err(e) => {
                let reset = e.kind() == std::io::ErrorKind::ConnectionReset;
                if reset {
                    session.relay_reset(RelayDir::S2c);
                }
                let err = CoreError::new(
                    ErrorCode::IoError,
                    format!(
                        "reading {} (the server of {}) failed: {e}",
                        relay.target, session.id
                    ),
                );
                session.close(CloseReason::Error, Some(err)).await;
                return;
            }
        }
    }
}
