//! Address parsing and resolution: `HOST:PORT`, `[IPv6]:PORT`, `[HOST:]PORT`.

use std::net::SocketAddr;

use super::error::{CoreError, CoreResult, ErrorCode};

/// A host (name, IPv4 or IPv6 literal without brackets) and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&join_host_port(&self.host, self.port))
    }
}

/// `host:port`, with IPv6 literals bracketed.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn bad(text: &str, why: &str) -> CoreError {
    CoreError::new(ErrorCode::AddressInvalid, format!("address {text:?}: {why}"))
}

fn parse_port(text: &str, port: &str) -> CoreResult<u16> {
    port.parse::<u16>()
        .map_err(|_| bad(text, &format!("port {port:?} is not a number from 0 to 65535")))
}

fn check_host(text: &str, host: &str) -> CoreResult<()> {
    if host.is_empty() {
        return Err(bad(text, "the host is empty"));
    }
    if host.contains(':') {
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad(text, &format!("{host:?} is not an IPv6 address")))?;
        return Ok(());
    }
    let ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !ok {
        return Err(bad(text, &format!("{host:?} is not a host name or IP address")));
    }
    Ok(())
}

/// `HOST:PORT` where HOST may be `[IPv6]`; the port is required.
pub fn parse_host_port(text: &str) -> CoreResult<HostPort> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad(text, "missing ']' after the IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| bad(text, "expected HOST:PORT, the port is missing"))?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad(text, &format!("{host:?} is not an IPv6 address")))?;
        (host, port)
    } else {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| bad(text, "expected HOST:PORT, the port is missing"))?;
        if host.contains(':') {
            return Err(bad(text, "write IPv6 addresses in brackets, like [::1]:7000"));
        }
        (host, port)
    };
    check_host(text, host)?;
    Ok(HostPort {
        host: host.to_string(),
        port: parse_port(text, port)?,
    })
}

/// The host of a `[HOST:]PORT` given without one: every address of both
/// families (a dual-stack `[::]` socket, or `0.0.0.0` where the system has
/// no IPv6), as ncat listens by default. `0.0.0.0` is IPv4 only, `[::]`
/// IPv6 only.
pub const ANY_HOST: &str = "*";

/// Whether a socket bound to `addr` for `hp` also takes IPv4 (a `[::]`
/// socket standing for [`ANY_HOST`]).
pub fn dual_stack(hp: &HostPort, addr: &SocketAddr) -> bool {
    hp.host == ANY_HOST && addr.is_ipv6()
}

/// An address as people write it: IPv4 peers of a dual-stack socket
/// arrive as `::ffff:a.b.c.d`, shown and reported as `a.b.c.d`.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// `[HOST:]PORT` for listen and udp; the host defaults to `default_host`.
pub fn parse_bind(text: &str, default_host: &str) -> CoreResult<HostPort> {
    if !text.contains(':') {
        return Ok(HostPort {
            host: default_host.to_string(),
            port: parse_port(text, text)?,
        });
    }
    parse_host_port(text)
}

/// Resolves a host and port to socket addresses (names through the system
/// resolver).
pub async fn resolve(hp: &HostPort) -> CoreResult<Vec<SocketAddr>> {
    if hp.host == ANY_HOST {
        use std::net::{Ipv4Addr, Ipv6Addr};
        return Ok(vec![
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), hp.port),
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), hp.port),
        ]);
    }
    if let Ok(ip) = hp.host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, hp.port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((hp.host.as_str(), hp.port))
        .await
        .map_err(|e| {
            CoreError::new(
                ErrorCode::ResolveFailed,
                format!("cannot resolve {:?}: {e}", hp.host),
            )
        })?
        .collect();
    if addrs.is_empty() {
        return Err(CoreError::new(
            ErrorCode::ResolveFailed,
            format!("{:?} resolved to no addresses", hp.host),
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_ports() {
        assert_eq!(
            parse_host_port("127.0.0.1:7000").unwrap(),
            HostPort {
                host: "127.0.0.1".into(),
                port: 7000
            }
        );
        assert_eq!(parse_host_port("[::1]:80").unwrap().host, "::1");
        assert_eq!(parse_host_port("localhost:1").unwrap().host, "localhost");
        assert_eq!(parse_bind("7000", "0.0.0.0").unwrap().host, "0.0.0.0");
        assert_eq!(parse_bind("127.0.0.1:0", "0.0.0.0").unwrap().port, 0);
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in [
            "127.0.0.1",
            "host:99999",
            "host:abc",
            ":80",
            "::1:80",
            "[::1]80",
            "a b:1",
            "[zz]:1",
        ] {
            let err = parse_host_port(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::AddressInvalid, "{bad}");
        }
        assert!(parse_bind("70000", "0.0.0.0").is_err());
    }
}
