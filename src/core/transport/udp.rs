//! Opening UDP sockets: bind, `--reuse`, `--broadcast`, `--multicast` and
//! `--ttl`; a per-peer listener's senders as session links.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::{Endpoint, Io, Kind, Link};
use crate::core::addr::HostPort;
use crate::core::addr::{self, resolve};
use crate::core::error::{CoreError, CoreResult, ErrorCode};

/// What a UDP socket is opened with.
#[derive(Clone, Debug)]
pub struct SocketSpec {
    pub bind: HostPort,
    pub to: Option<HostPort>,
    pub multicast: Option<IpAddr>,
    /// Interface address for multicast joins and sends.
    pub iface: Option<IpAddr>,
    pub reuse: bool,
    pub broadcast: bool,
    pub ttl: Option<u32>,
    /// `--connect`: connect the socket to `--to` (only its datagrams are
    /// received; ICMP port unreachable is reported).
    pub connect: bool,
}

/// The bound socket and its resolved `--to` destination.
pub struct OpenedUdp {
    pub socket: Datagrams,
    pub to: Option<SocketAddr>,
}

/// A bound UDP socket as sessions use it: datagrams to and from
/// addresses, written and reported the way people write them (an IPv4
/// peer of a dual-stack `[::]` socket is `a.b.c.d`, not `::ffff:a.b.c.d`).
#[derive(Debug)]
pub struct Datagrams {
    socket: UdpSocket,
    /// The family the socket speaks: IPv4 peers of an IPv6 socket are
    /// addressed as IPv4-mapped IPv6 addresses.
    ipv6: bool,
}

impl Datagrams {
    fn new(socket: UdpSocket) -> std::io::Result<Datagrams> {
        let ipv6 = socket.local_addr()?.is_ipv6();
        Ok(Datagrams { socket, ipv6 })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        let to = match to {
            SocketAddr::V4(v4) if self.ipv6 => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
            _ => to,
        };
        self.socket.send_to(data, to).await
    }

    pub async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        let (n, from) = self.socket.recv_from(buf).await?;
        Ok((n, addr::canonical(from)))
    }
}

/// One sender of a per-peer listener's socket as a session's link: the
/// listener hands its datagrams over, replies go out of the same socket.
pub(crate) fn peer_link(socket: &Arc<Datagrams>, local: Endpoint, from: SocketAddr) -> Link {
    Link {
        io: Io::UdpPeer(socket.clone()),
        local,
        peer: Endpoint::Ip(from),
        kind: Kind::UdpPeer,
        insecure: false,
        cipher: None,
        control: None,
        reset: None,
    }
}

pub async fn open(spec: &SocketSpec) -> CoreResult<OpenedUdp> {
    let candidates = resolve(&spec.bind).await?;
    let to = match &spec.to {
        Some(hp) => {
            let addrs = resolve(hp).await?;
            // Prefer a destination of the bound socket's family (IPv4
            // when no host was given, as before dual stack).
            let v4 = spec.bind.host == addr::ANY_HOST || candidates[0].is_ipv4();
            Some(
                addrs
                    .iter()
                    .copied()
                    .find(|a| a.is_ipv4() == v4)
                    .unwrap_or(addrs[0]),
            )
        }
        None => None,
    };
    // No host given: the family of the destination, else both (a
    // dual-stack [::] socket, or 0.0.0.0 where there is no IPv6).
    let mut last = None;
    let fitting = candidates
        .iter()
        .filter(|c| to.is_none_or(|t| !addr::dual_stack(&spec.bind, c) || t.is_ipv6()));
    for bind in fitting {
        match open_on(spec, *bind, addr::dual_stack(&spec.bind, bind), to) {
            Ok(opened) => return Ok(opened),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        CoreError::new(
            ErrorCode::BindFailed,
            format!("UDP {}: no address to bind", spec.bind),
        )
    }))
}

/// The receive buffer asked for on every UDP socket.
pub const UDP_RECV_BUFFER: usize = 4 << 20;

fn open_on(spec: &SocketSpec, bind: SocketAddr, dual: bool, to: Option<SocketAddr>) -> CoreResult<OpenedUdp> {
    let io_err = |what: &str, e: std::io::Error| {
        CoreError::new(ErrorCode::BindFailed, format!("{what} for UDP {bind}: {e}"))
    };
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| io_err("cannot create a socket", e))?;
    if spec.reuse {
        socket
            .set_reuse_address(true)
            .map_err(|e| io_err("SO_REUSEADDR", e))?;
        socket
            .set_reuse_port(true)
            .map_err(|e| io_err("SO_REUSEPORT", e))?;
    }
    if spec.broadcast {
        socket
            .set_broadcast(true)
            .map_err(|e| io_err("SO_BROADCAST", e))?;
    }
    if let Some(ttl) = spec.ttl {
        if bind.is_ipv4() {
            socket.set_ttl_v4(ttl).map_err(|e| io_err("IP_TTL", e))?;
        } else {
            socket
                .set_unicast_hops_v6(ttl)
                .map_err(|e| io_err("IPV6_UNICAST_HOPS", e))?;
        }
    }
    if bind.is_ipv6() {
        // An explicit [::] is IPv6 only, for UDP as for TCP.
        socket.set_only_v6(!dual).map_err(|e| io_err("IPV6_V6ONLY", e))?;
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| io_err("non-blocking mode", e))?;
    // A burst waits in the kernel instead of being dropped while muxcat
    // is busy for a moment (the default, ~208 KiB, holds ~1600 small
    // datagrams: 16 ms at 100 000/s). A limit, not an allocation; the
    // kernel caps it at net.core.rmem_max, so failure is not an error.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.bind(&bind.into()).map_err(|e| io_err("cannot bind", e))?;
    if let Some(group) = spec.multicast {
        join_multicast(&socket, bind, group, spec.iface)?;
    }
    if let (true, Some(to)) = (spec.connect, to) {
        socket.connect(&to.into()).map_err(|e| {
            CoreError::new(
                ErrorCode::ConnectFailed,
                format!("cannot connect UDP {bind} to {to}: {e}"),
            )
        })?;
    }
    let multicast_dest = to.is_some_and(|t| t.ip().is_multicast());
    if spec.multicast.is_some() || multicast_dest || spec.iface.is_some() {
        multicast_sending(&socket, bind, spec.iface, spec.ttl)?;
    }
    let std_socket: std::net::UdpSocket = socket.into();
    let socket = UdpSocket::from_std(std_socket)
        .and_then(Datagrams::new)
        .map_err(|e| io_err("cannot register the socket", e))?;
    Ok(OpenedUdp { socket, to })
}

fn multicast_err(group: impl std::fmt::Display, what: &str, e: std::io::Error) -> CoreError {
    CoreError::new(ErrorCode::MulticastFailed, format!("{what} {group}: {e}"))
}

/// Joins `group` on the interface `iface` (or the bound address, or the
/// kernel's choice).
fn join_multicast(socket: &Socket, bind: SocketAddr, group: IpAddr, iface: Option<IpAddr>) -> CoreResult<()> {
    if !group.is_multicast() {
        return Err(CoreError::new(
            ErrorCode::MulticastFailed,
            format!("{group} is not a multicast address (224.0.0.0/4 or ff00::/8)"),
        ));
    }
    match (group, bind.ip()) {
        (IpAddr::V4(g), IpAddr::V4(local)) => {
            let iface = match iface {
                Some(IpAddr::V4(i)) => i,
                _ if !local.is_unspecified() => local,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            socket
                .join_multicast_v4(&g, &iface)
                .map_err(|e| multicast_err(group, &format!("cannot join (interface {iface})"), e))
        }
        (IpAddr::V6(g), IpAddr::V6(_)) => socket
            .join_multicast_v6(&g, 0)
            .map_err(|e| multicast_err(group, "cannot join", e)),
        _ => Err(CoreError::new(
            ErrorCode::MulticastFailed,
            format!("group {group} and bound address {bind} are of different IP families"),
        )),
    }
}

/// Outgoing multicast: the interface, loopback of our own datagrams, and TTL.
fn multicast_sending(
    socket: &Socket,
    bind: SocketAddr,
    iface: Option<IpAddr>,
    ttl: Option<u32>,
) -> CoreResult<()> {
    if bind.is_ipv4() {
        let iface = match (iface, bind.ip()) {
            (Some(IpAddr::V4(i)), _) => Some(i),
            (None, IpAddr::V4(local)) if !local.is_unspecified() => Some(local),
            _ => None,
        };
        if let Some(i) = iface {
            socket
                .set_multicast_if_v4(&i)
                .map_err(|e| multicast_err(i, "cannot send multicast from interface", e))?;
        }
        socket
            .set_multicast_loop_v4(true)
            .map_err(|e| multicast_err(bind, "cannot enable multicast loopback on", e))?;
        if let Some(ttl) = ttl {
            socket
                .set_multicast_ttl_v4(ttl)
                .map_err(|e| multicast_err(bind, "cannot set the multicast TTL on", e))?;
        }
    } else {
        socket
            .set_multicast_loop_v6(true)
            .map_err(|e| multicast_err(bind, "cannot enable multicast loopback on", e))?;
        if let Some(ttl) = ttl {
            socket
                .set_multicast_hops_v6(ttl)
                .map_err(|e| multicast_err(bind, "cannot set the hop limit on", e))?;
        }
    }
    Ok(())
}
