//! A TCP or TLS listener: its accept loop, the connection limit, and the
//! queue of accepted clients that `accept` hands out. A `udp --per-peer`
//! listener is one too: each new sender address is "accepted" as a session.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::command::SessionOptions;
use super::ctx::Ctx;
use super::events::{CoreError, CoreResult, ErrorCode, Event, EventKind, ListenerInfo};
use super::session::{Direction, Parts, Registrar, Session};
use super::slots::{Membership, Slots};
use super::transport::udp::Datagrams;
use super::transport::{Accepted, Bound, Endpoint, Kind, Link};
use super::util::{format_duration, new_id, once_a_second};

/// Accepted clients no `accept` has returned yet, kept for `accept` (oldest dropped).
const ACCEPT_QUEUE: usize = 4096;

pub struct Listener {
    pub id: String,
    pub label: Option<String>,
    pub local: Endpoint,
    /// tcp, tls, unix, or udp (`udp --per-peer`: sessions are remote
    /// addresses on one UDP socket).
    pub kind: Kind,
    pub max_connections: usize,
    pub(crate) opts: SessionOptions,
    slots: Arc<Slots>,
    cancel: CancellationToken,
    unclaimed: Mutex<VecDeque<String>>,
    /// Where its clients' sessions are registered with the manager.
    registrar: Registrar,
    wake: watch::Sender<u64>,
    /// A `proxy`: each client is connected to this target.
    upstream: Option<Arc<super::transport::Dialer>>,
    /// `--allow`/`--deny`.
    acl: Option<super::acl::Acl>,
}

impl Listener {
    pub(crate) fn new(
        id: String,
        local: Endpoint,
        kind: Kind,
        max_connections: usize,
        opts: SessionOptions,
        registrar: Registrar,
    ) -> Arc<Listener> {
        Arc::new(Listener {
            id,
            label: opts.label.clone(),
            local,
            kind,
            max_connections,
            opts,
            slots: Arc::default(),
            cancel: CancellationToken::new(),
            unclaimed: Mutex::new(VecDeque::new()),
            registrar,
            wake: watch::Sender::new(0),
            upstream: None,
            acl: None,
        })
    }

    /// `--allow`/`--deny`: who may connect.
    pub(crate) fn guarded(mut self: Arc<Self>, acl: super::acl::Acl) -> Arc<Listener> {
        if let Some(me) = Arc::get_mut(&mut self) {
            me.acl = Some(acl);
        }
        self
    }

    /// Whether the access list lets `peer` in (paths always).
    fn admits(&self, peer: &Endpoint) -> bool {
        match (&self.acl, peer.ip()) {
            (Some(acl), Some(a)) => acl.permits(a.ip()),
            _ => true,
        }
    }

    /// A `proxy`'s listener: each client it accepts is connected to the
    /// target `upstream` dials, and the pair is one session.
    pub(crate) fn relaying(mut self: Arc<Self>, upstream: super::transport::Dialer) -> Arc<Listener> {
        if let Some(me) = Arc::get_mut(&mut self) {
            me.upstream = Some(Arc::new(upstream));
        }
        self
    }

    /// Where a proxy's clients are connected to.
    pub fn target(&self) -> Option<String> {
        self.upstream.as_ref().map(|d| d.target().to_string())
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.unclaimed.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn clients(&self) -> usize {
        self.slots.taken()
    }

    /// What a session of this listener knows of it.
    pub(crate) fn membership(&self) -> Membership {
        Membership {
            listener_id: self.id.clone(),
            shares_socket: self.kind.is_udp(),
            slots: self.slots.clone(),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub(crate) fn client_closed(&self) {
        self.slots.give_back();
    }

    pub fn info(&self) -> ListenerInfo {
        ListenerInfo {
            listener_id: self.id.clone(),
            label: self.label.clone(),
            local_addr: self.local.to_string(),
            tls: self.kind.is_tls(),
            udp: self.kind.is_udp(),
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
                            format_duration(timeout)
                        ),
                    ));
                }
            }
        }
    }

    /// Accepts clients until closed.
    pub(crate) async fn run(self: Arc<Self>, bound: Bound, tls: Option<TlsAcceptor>, ctx: Arc<Ctx>) {
        let mut last_error_report: Option<tokio::time::Instant> = None;
        loop {
            let accepted = tokio::select! {
                _ = self.cancel.cancelled() => break,
                r = bound.accept() => r,
            };
            match accepted {
                Ok((stream, peer)) => {
                    if !self.admits(&peer) {
                        drop(stream);
                        let err = CoreError::new(
                            ErrorCode::AccessDenied,
                            format!(
                                "client {peer} closed: listener {} does not allow it (--allow/--deny)",
                                self.local
                            ),
                        );
                        ctx.events.emit(Event::error(err).listener(&self.id)).await;
                        continue;
                    }
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
                    self.slots.take();
                    tokio::spawn(self.clone().admit(stream, peer, tls.clone(), ctx.clone()));
                }
                Err(e) => {
                    // Out of fds and the like: report and retry.
                    let err = || {
                        CoreError::new(
                            ErrorCode::IoError,
                            format!("accept on {} failed: {e}", self.local),
                        )
                    };
                    self.report_throttled(&mut last_error_report, &ctx, err).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        ctx.events
            .emit(Event::new(EventKind::Closed).listener(&self.id))
            .await;
    }

    /// `udp --per-peer`: hands each datagram to its sender's session,
    /// opening one for a new sender. The sessions share the socket, so
    /// they end with the listener.
    pub(crate) async fn run_udp(self: Arc<Self>, socket: Arc<Datagrams>, ctx: Arc<Ctx>) {
        let mut peers: HashMap<SocketAddr, Arc<Session>> = HashMap::new();
        let mut buf = vec![0u8; 65536];
        let mut reported: Option<tokio::time::Instant> = None;
        let mut refused = 0u64;
        let mut denied = 0u64;
        loop {
            let received = tokio::select! {
                _ = self.cancel.cancelled() => break,
                r = socket.recv_from(&mut buf) => r,
            };
            match received {
                Ok((n, from)) => {
                    let live = peers.get(&from).filter(|s| !s.is_closed()).cloned();
                    let session = match live {
                        Some(s) => s,
                        None if !self.admits(&Endpoint::Ip(from)) => {
                            // As over the limit: dropped, said at most once a second.
                            denied += 1;
                            let err = || {
                                CoreError::new(
                                    ErrorCode::AccessDenied,
                                    format!(
                                        "datagram from {from} dropped: not allowed on UDP listener {} by --allow/--deny ({denied} dropped so far)",
                                        self.local
                                    ),
                                )
                            };
                            self.report_throttled(&mut reported, &ctx, err).await;
                            continue;
                        }
                        None if self.clients() >= self.max_connections => {
                            // Every datagram of a sender over the limit is
                            // dropped: say so at most once a second.
                            refused += 1;
                            let err = || {
                                CoreError::new(
                                    ErrorCode::MaxConnections,
                                    format!(
                                        "datagram from {from} dropped: UDP listener {} is at its limit of {} peers ({refused} dropped so far)",
                                        self.local, self.max_connections
                                    ),
                                )
                            };
                            self.report_throttled(&mut reported, &ctx, err).await;
                            continue;
                        }
                        None => {
                            if peers.len() >= self.max_connections {
                                peers.retain(|_, s| !s.is_closed());
                            }
                            match self.open_peer(&socket, from, &ctx).await {
                                Some(s) => {
                                    peers.insert(from, s.clone());
                                    s
                                }
                                None => break,
                            }
                        }
                    };
                    session.datagram(&buf[..n], from).await;
                }
                Err(e) => {
                    // Unconnected sockets get no ICMP errors; anything else
                    // (out of memory, say) is reported and retried.
                    let err = || {
                        CoreError::new(
                            ErrorCode::IoError,
                            format!("receive on UDP {} failed: {e}", self.local),
                        )
                    };
                    self.report_throttled(&mut reported, &ctx, err).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let open: Vec<_> = peers.into_values().filter(|s| !s.is_closed()).collect();
        let closing = open
            .iter()
            .map(|s| s.close(super::events::CloseReason::Local, None));
        futures_util::future::join_all(closing).await;
        ctx.events
            .emit(Event::new(EventKind::Closed).listener(&self.id))
            .await;
    }

    /// Reports an error of the listener at most once a second (`last`:
    /// when the previous one went out), so a storm of them is one line.
    async fn report_throttled(
        &self,
        last: &mut Option<tokio::time::Instant>,
        ctx: &Ctx,
        err: impl FnOnce() -> CoreError,
    ) {
        if once_a_second(last) {
            ctx.events.emit(Event::error(err()).listener(&self.id)).await;
        }
    }

    /// A new sender of a per-peer listener becomes a session (`accepted`).
    async fn open_peer(
        self: &Arc<Self>,
        socket: &Arc<Datagrams>,
        from: SocketAddr,
        ctx: &Arc<Ctx>,
    ) -> Option<Arc<Session>> {
        self.slots.take();
        let link = super::transport::udp::peer_link(socket, self.local.clone(), from);
        self.open_client(link, None, ctx).await
    }

    /// A client's session: registered, recorded, `accepted`, queued for
    /// `accept`, reading. `None` when the manager is shutting down.
    async fn open_client(
        self: &Arc<Self>,
        link: Link,
        upstream: Option<(Link, Option<super::transport::tcp::Resetter>)>,
        ctx: &Arc<Ctx>,
    ) -> Option<Arc<Session>> {
        let Link {
            io,
            local,
            peer,
            kind,
            cipher,
            ..
        } = link;
        let (upstream, client_reset) = match upstream {
            Some((up, reset)) => (Some(up), reset),
            None => (None, None),
        };
        let parts = Parts {
            upstream,
            client_reset,
            telnet: self.opts.telnet,
            control: None,
            id: new_id("sess"),
            label: None,
            direction: Direction::In,
            listener: Some(self.membership()),
            local,
            peer: Some(peer.clone()),
            kind,
            mode: self.opts.mode,
            eol: self.opts.eol,
            map: self.opts.map.clone(),
            frame: self.opts.frame.clone(),
            check: self.opts.check,
            timeout: self.opts.timeout,
            half_open: self.opts.half_open,
            redial: None,
        };
        let (session, read) = Session::new(parts, io, ctx.clone());
        if !self.registrar.register(session.clone()).await {
            session.close(super::events::CloseReason::Local, None).await;
            return None;
        }
        session.record_to_dir().await;
        session
            .emit(EventKind::Accepted {
                remote: peer,
                kind: session.kind,
                cipher,
            })
            .await;
        self.push_unclaimed(session.id.clone());
        // Each client its own program (--exec); a failure is the session's
        // `disconnected` event.
        let _ = session.start(read, self.opts.exec.as_deref()).await;
        Some(session)
    }

    /// Finishes one client's setup (a TLS handshake) and opens its session.
    async fn admit(
        self: Arc<Self>,
        stream: Accepted,
        peer: Endpoint,
        tls: Option<TlsAcceptor>,
        ctx: Arc<Ctx>,
    ) {
        let mut link = match stream.into_link(&peer, tls.as_ref()).await {
            Ok(link) => link,
            Err(err) => {
                self.client_closed();
                ctx.events.emit(Event::error(err).listener(&self.id)).await;
                return;
            }
        };
        // A proxy: the client's session starts once its target answers;
        // if it does not, the client is closed and told why.
        let upstream = match &self.upstream {
            None => None,
            Some(dialer) => match dialer.dial().await {
                Ok(up) => Some((up, link.reset.take())),
                Err(e) => {
                    drop(link);
                    self.client_closed();
                    let err = CoreError::new(
                        e.code,
                        format!(
                            "proxy {}: client {peer} closed: cannot reach {}: {}",
                            self.local,
                            dialer.target(),
                            e.text
                        ),
                    );
                    ctx.events.emit(Event::error(err).listener(&self.id)).await;
                    return;
                }
            },
        };
        self.open_client(link, upstream, &ctx).await;
    }
}
