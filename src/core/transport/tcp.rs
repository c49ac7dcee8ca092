//! TCP: dialing (the first address that accepts, within a timeout) and
//! binding (dual stack for a host-less `listen`, a deep accept queue).

use std::net::SocketAddr;
use std::time::Duration;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

use super::{Endpoint, Io, Kind, Link, ReadSide};
use crate::core::addr::{self, HostPort};
use crate::core::error::{CoreError, CoreResult, ErrorCode};

/// Connects to the first address of the host that accepts, within `limit`.
pub(crate) async fn connect(target: &HostPort, limit: Duration) -> CoreResult<TcpStream> {
    connect_from(target, limit, None).await
}

/// From `source` (`-s`/`-p`), bound before connecting.
async fn dial_one(a: SocketAddr, source: Option<SocketAddr>) -> std::io::Result<TcpStream> {
    let Some(mut from) = source else {
        return TcpStream::connect(a).await;
    };
    // An unspecified source address takes the target's family.
    if from.ip().is_unspecified() && from.is_ipv4() != a.is_ipv4() {
        from = SocketAddr::new(
            if a.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            },
            from.port(),
        );
    }
    let socket = if a.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket
        .bind(from)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind the source {from}: {e}")))?;
    socket.connect(a).await
}

/// [`connect`] from a source address and port.
pub(crate) async fn connect_from(
    target: &HostPort,
    limit: Duration,
    source: Option<SocketAddr>,
) -> CoreResult<TcpStream> {
    let addrs = addr::resolve(target).await?;
    let attempt = async {
        let mut last = None;
        for a in &addrs {
            match dial_one(*a, source).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some((*a, e)),
            }
        }
        let Some((a, e)) = last else {
            return Err(CoreError::new(
                ErrorCode::ResolveFailed,
                format!("{target}: no address"),
            ));
        };
        Err(if e.kind() == std::io::ErrorKind::ConnectionRefused {
            CoreError::new(
                ErrorCode::ConnectRefused,
                format!("{target} ({a}) refused the connection"),
            )
        } else {
            CoreError::new(
                ErrorCode::ConnectFailed,
                format!("cannot connect to {target} ({a}): {e}"),
            )
        })
    };
    tokio::time::timeout(limit, attempt).await.unwrap_or_else(|_| {
        Err(CoreError::new(
            ErrorCode::ConnectFailed,
            format!(
                "connecting to {target} timed out after {}",
                crate::core::util::format_duration(limit)
            ),
        ))
    })
}

/// The two ends of a connected stream, as people write them.
pub(crate) fn ends(stream: &TcpStream) -> CoreResult<(Endpoint, Endpoint)> {
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(l), Ok(r)) => Ok((Endpoint::Ip(addr::canonical(l)), Endpoint::Ip(addr::canonical(r)))),
        (Err(e), _) | (_, Err(e)) => Err(CoreError::new(
            ErrorCode::ConnectFailed,
            format!("the connection has no address: {e}"),
        )),
    }
}

/// A plain TCP link: no Nagle delay (interactive traffic), read side that
/// holds no buffer while idle.
pub(crate) fn link(stream: TcpStream) -> CoreResult<Link> {
    let _ = stream.set_nodelay(true);
    let (local, peer) = ends(&stream)?;
    let reset = Resetter::default();
    let (r, w) = stream.into_split();
    let write = TcpWrite {
        half: Some(w),
        reset: reset.flag.clone(),
    };
    Ok(Link {
        io: Io::Stream {
            read: ReadSide::Tcp(r),
            write: Box::new(write),
        },
        local,
        peer,
        kind: Kind::Tcp,
        insecure: false,
        cipher: None,
        control: None,
        reset: Some(reset),
    })
}

/// Lets a TCP link's write half close with no FIN: with SO_LINGER 0 set
/// on the socket (by whoever holds it), the peer then gets an RST when the
/// link's last handle goes (a proxy passing on the other side's reset).
#[derive(Default)]
pub(crate) struct Resetter {
    flag: Arc<AtomicBool>,
}

impl Resetter {
    pub fn arm(&self) {
        self.flag.store(true, Ordering::Release);
    }
}

/// tokio's write half, except that after a reset dropping it sends no FIN.
struct TcpWrite {
    half: Option<OwnedWriteHalf>,
    reset: Arc<AtomicBool>,
}

impl TcpWrite {
    /// The half (taken only when dropped).
    fn half(&mut self) -> std::io::Result<Pin<&mut OwnedWriteHalf>> {
        self.half
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))
    }
}

impl AsyncWrite for TcpWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.half() {
            Ok(half) => half.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.half() {
            Ok(half) => half.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.half() {
            Ok(half) => half.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.reset.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        match self.half() {
            Ok(half) => half.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for TcpWrite {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Acquire)
            && let Some(half) = self.half.take()
        {
            half.forget();
        }
    }
}

/// Connection requests the kernel queues before `accept` takes them: a
/// burst of clients must not overflow it (the kernel caps it at somaxconn).
const LISTEN_BACKLOG: i32 = 4096;

/// A listening socket with SO_REUSEADDR and a deep accept queue; a `dual`
/// `[::]` socket takes IPv4 clients too.
pub(crate) fn bind(addr: SocketAddr, dual: bool) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // An explicit [::] is IPv6 only, as 0.0.0.0 is IPv4 only.
        socket.set_only_v6(!dual)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Binds the first of `bind`'s addresses that works (`[::]` dual stack,
/// then `0.0.0.0`, for a host-less listen).
pub(crate) async fn bind_any(bind: &HostPort) -> CoreResult<TcpListener> {
    let addrs = addr::resolve(bind).await?;
    let mut last_err = None;
    for a in &addrs {
        match self::bind(*a, addr::dual_stack(bind, a)) {
            Ok(l) => return Ok(l),
            Err(e) => last_err = Some((*a, e)),
        }
    }
    Err(match last_err {
        Some((a, e)) => CoreError::new(ErrorCode::BindFailed, format!("cannot listen on {a}: {e}")),
        None => CoreError::new(ErrorCode::BindFailed, format!("{bind}: no address")),
    })
}
