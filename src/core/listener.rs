//! A TCP or TLS listener: its accept loop, the connection limit, and the
//! queue of accepted clients that `accept` hands out.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::command::SessionOptions;
use super::events::{CoreError, CoreResult, ErrorCode, Event, EventKind, ListenerInfo};
use super::session::{Direction, Io, Parts, ReadSide, Session};
use super::{Ctx, new_id};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted clients no `accept` has returned yet, kept for `accept` (oldest dropped).
const ACCEPT_QUEUE: usize = 4096;

pub struct Listener {
    pub id: String,
    pub label: Option<String>,
    pub local: SocketAddr,
    pub tls: bool,
    pub max_connections: usize,
    pub(crate) opts: SessionOptions,
    clients: AtomicUsize,
    hold_excess: std::sync::atomic::AtomicBool,
    slot_freed: tokio::sync::Notify,
    cancel: CancellationToken,
    unclaimed: Mutex<VecDeque<String>>,
    wake: watch::Sender<u64>,
}

impl Listener {
    pub(crate) fn new(
        id: String,
        local: SocketAddr,
        tls: bool,
        max_connections: usize,
        opts: SessionOptions,
    ) -> Arc<Listener> {
        Arc::new(Listener {
            id,
            label: opts.label.clone(),
            local,
            tls,
            max_connections,
            opts,
            clients: AtomicUsize::new(0),
            hold_excess: std::sync::atomic::AtomicBool::new(false),
            slot_freed: tokio::sync::Notify::new(),
            cancel: CancellationToken::new(),
            unclaimed: Mutex::new(VecDeque::new()),
            wake: watch::Sender::new(0),
        })
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.unclaimed.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub(crate) fn client_closed(&self) {
        self.clients.fetch_sub(1, Ordering::AcqRel);
        self.slot_freed.notify_one();
    }

    pub(crate) fn set_hold_excess(&self, hold: bool) {
        self.hold_excess.store(hold, Ordering::Release);
    }

    pub fn info(&self) -> ListenerInfo {
        ListenerInfo {
            listener_id: self.id.clone(),
            label: self.label.clone(),
            local_addr: self.local.to_string(),
            tls: self.tls,
            clients: self.clients(),
            max_connections: self.max_connections,
            state: if self.is_closed() { "closed" } else { "listening" },
        }
    }

    /// Stops accepting; clients already accepted stay open.
    pub(crate) fn close(&self) -> bool {
        if self.cancel.is_cancelled() {
            return false;
        }
        self.cancel.cancel();
        self.wake.send_modify(|n| *n += 1);
        true
    }

    fn push_unclaimed(&self, id: String) {
        let mut q = self.queue();
        q.push_back(id);
        if q.len() > ACCEPT_QUEUE {
            q.pop_front();
        }
        drop(q);
        self.wake.send_modify(|n| *n += 1);
    }

    /// Waits for a client no earlier `accept` returned.
    pub(crate) async fn claim(&self, timeout: Duration) -> CoreResult<String> {
        let mut wake = self.wake.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            wake.borrow_and_update();
            if let Some(id) = self.queue().pop_front() {
                return Ok(id);
            }
            if self.is_closed() {
                return Err(CoreError::new(
                    ErrorCode::SessionNotFound,
                    format!("listener {} is closed and has no unclaimed client", self.id),
                ));
            }
            tokio::select! {
                _ = wake.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(CoreError::new(
                        ErrorCode::WaitforTimeout,
                        format!(
                            "no client connected to {} ({}) within {}",
                            self.id,
                            self.local,
                            super::format_duration(timeout)
                        ),
                    ));
                }
            }
        }
    }

    /// Accepts clients until closed.
    pub(crate) async fn run(self: Arc<Self>, tcp: TcpListener, tls: Option<TlsAcceptor>, ctx: Arc<Ctx>) {
        let mut last_error_report: Option<tokio::time::Instant> = None;
        loop {
            if self.hold_excess.load(Ordering::Acquire) {
                // Serve one after another: wait for a free slot before accepting.
                while self.clients() >= self.max_connections {
                    tokio::select! {
                        _ = self.cancel.cancelled() => break,
                        _ = self.slot_freed.notified() => {}
                    }
                }
            }
            let accepted = tokio::select! {
                _ = self.cancel.cancelled() => break,
                r = tcp.accept() => r,
            };
            match accepted {
                Ok((stream, peer)) => {
                    if self.clients() >= self.max_connections {
                        drop(stream);
                        let err = CoreError::new(
                            ErrorCode::MaxConnections,
                            format!(
                                "client {peer} closed: listener {} is at its limit of {} connections",
                                self.local, self.max_connections
                            ),
                        );
                        ctx.events.emit(Event::error(err).listener(&self.id)).await;
                        continue;
                    }
                    self.clients.fetch_add(1, Ordering::AcqRel);
                    tokio::spawn(self.clone().admit(stream, peer, tls.clone(), ctx.clone()));
                }
                Err(e) => {
                    // Out of fds and the like: report (at most once a second) and retry.
                    let now = tokio::time::Instant::now();
                    if last_error_report.is_none_or(|t| now - t >= Duration::from_secs(1)) {
                        last_error_report = Some(now);
                        let err = CoreError::new(
                            ErrorCode::IoError,
                            format!("accept on {} failed: {e}", self.local),
                        );
                        ctx.events.emit(Event::error(err).listener(&self.id)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        ctx.events
            .emit(Event::new(EventKind::Closed).listener(&self.id))
            .await;
    }

    /// Finishes one client's setup (TLS handshake) and opens its session.
    async fn admit(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsAcceptor>,
        ctx: Arc<Ctx>,
    ) {
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(self.local);
        let io = match tls {
            None => {
                let (r, w) = stream.into_split();
                Io::Stream {
                    read: ReadSide::Tcp(r),
                    write: Box::new(w),
                }
            }
            Some(acceptor) => {
                let hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                match hs {
                    Ok(Ok(tls)) => {
                        let (r, w) = tokio::io::split(tls);
                        Io::Stream {
                            read: ReadSide::Other(Box::new(r)),
                            write: Box::new(w),
                        }
                    }
                    Ok(Err(e)) => {
                        self.client_closed();
                        let err = super::tls::handshake_error(&peer.to_string(), e);
                        ctx.events.emit(Event::error(err).listener(&self.id)).await;
                        return;
                    }
                    Err(_) => {
                        self.client_closed();
                        let err = CoreError::new(
                            ErrorCode::TlsHandshakeFailed,
                            format!("TLS handshake with {peer} failed: no handshake within 10s"),
                        );
                        ctx.events.emit(Event::error(err).listener(&self.id)).await;
                        return;
                    }
                }
            }
        };
        let parts = Parts {
            id: new_id("sess"),
            label: None,
            direction: Direction::In,
            listener: Some(self.clone()),
            local,
            peer: Some(peer),
            tls: self.tls,
            mode: self.opts.mode,
            eol: self.opts.eol,
            timeout: self.opts.timeout,
            half_open: self.opts.half_open,
            redial: None,
        };
        let (session, read) = Session::new(parts, io, ctx.clone());
        if !ctx.register(session.clone()).await {
            session.close(super::events::CloseReason::Local, None).await;
            return;
        }
        session.record_to_dir().await;
        session.emit(EventKind::Accepted { remote: peer }).await;
        self.push_unclaimed(session.id.clone());
        session.start_reading(read);
    }
}
