//! Opening UDP sockets: bind, `--reuse`, `--broadcast`, `--multicast` and `--ttl`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::addr::resolve;
use super::command::UdpSpec;
use super::events::{CoreError, CoreResult, ErrorCode};

/// The bound socket and its resolved `--to` destination.
pub struct OpenedUdp {
    pub socket: UdpSocket,
    pub to: Option<SocketAddr>,
}

pub async fn open(spec: &UdpSpec) -> CoreResult<OpenedUdp> {
    let bind = resolve(&spec.bind).await?[0];
    let to = match &spec.to {
        Some(hp) => {
            let addrs = resolve(hp).await?;
            // Prefer a destination of the bound socket's family.
            Some(
                addrs
                    .iter()
                    .copied()
                    .find(|a| a.is_ipv4() == bind.is_ipv4())
                    .unwrap_or(addrs[0]),
            )
        }
        None => None,
    };
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
    socket
        .set_nonblocking(true)
        .map_err(|e| io_err("non-blocking mode", e))?;
    socket.bind(&bind.into()).map_err(|e| io_err("cannot bind", e))?;
    if let Some(group) = spec.multicast {
        join_multicast(&socket, bind, group, spec.ttl)?;
    }
    let std_socket: std::net::UdpSocket = socket.into();
    let socket = UdpSocket::from_std(std_socket).map_err(|e| io_err("cannot register the socket", e))?;
    Ok(OpenedUdp { socket, to })
}

fn join_multicast(socket: &Socket, bind: SocketAddr, group: IpAddr, ttl: Option<u32>) -> CoreResult<()> {
    let fail = |what: &str, e: std::io::Error| {
        CoreError::new(ErrorCode::MulticastFailed, format!("{what} {group}: {e}"))
    };
    if !group.is_multicast() {
        return Err(CoreError::new(
            ErrorCode::MulticastFailed,
            format!("{group} is not a multicast address (224.0.0.0/4 or ff00::/8)"),
        ));
    }
    match (group, bind.ip()) {
        (IpAddr::V4(g), IpAddr::V4(local)) => {
            // Join on the bound interface, or let the kernel choose.
            let iface = if local.is_unspecified() {
                Ipv4Addr::UNSPECIFIED
            } else {
                local
            };
            socket
                .join_multicast_v4(&g, &iface)
                .map_err(|e| fail("cannot join", e))?;
            if !local.is_unspecified() {
                socket
                    .set_multicast_if_v4(&local)
                    .map_err(|e| fail("cannot send to", e))?;
            }
            socket
                .set_multicast_loop_v4(true)
                .map_err(|e| fail("cannot loop back", e))?;
            if let Some(ttl) = ttl {
                socket
                    .set_multicast_ttl_v4(ttl)
                    .map_err(|e| fail("cannot set the TTL for", e))?;
            }
        }
        (IpAddr::V6(g), IpAddr::V6(_)) => {
            socket
                .join_multicast_v6(&g, 0)
                .map_err(|e| fail("cannot join", e))?;
            socket
                .set_multicast_loop_v6(true)
                .map_err(|e| fail("cannot loop back", e))?;
            if let Some(ttl) = ttl {
                socket
                    .set_multicast_hops_v6(ttl)
                    .map_err(|e| fail("cannot set the hop limit for", e))?;
            }
        }
        _ => {
            return Err(CoreError::new(
                ErrorCode::MulticastFailed,
                format!("group {group} and bound address {bind} are of different IP families"),
            ));
        }
    }
    Ok(())
}
