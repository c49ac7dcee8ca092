//! Connecting through a proxy (`connect --proxy`, ncat's `--proxy`, nc's
//! `-x`): SOCKS4 (4a for names), SOCKS5 (RFC 1928, user/password RFC 1929)
//! and HTTP `CONNECT`. The proxy's handshake happens on a plain TCP
//! stream; what comes back is that stream, so TLS, the session and its
//! fast read path work as on a direct connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Endpoint;
use crate::core::addr::{self, HostPort};
use crate::core::error::{CoreError, CoreResult, ErrorCode};

/// `--proxy-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyType {
    /// HTTP CONNECT (ncat's default)
    #[value(alias = "connect")]
    Http,
    /// SOCKS version 4 (4a when the proxy resolves the name)
    #[value(alias = "4")]
    Socks4,
    /// SOCKS version 5
    #[value(alias = "5")]
    Socks5,
}

impl ProxyType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyType::Http => "http",
            ProxyType::Socks4 => "socks4",
            ProxyType::Socks5 => "socks5",
        }
    }

    /// The port a proxy address without one gets (ncat's).
    pub fn default_port(self) -> u16 {
        match self {
            ProxyType::Http => 3128,
            ProxyType::Socks4 | ProxyType::Socks5 => 1080,
        }
    }
}

/// `--proxy-dns`: who turns the target's name into an address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyDns {
    /// Here; a name that does not resolve fails the connect
    Local,
    /// The proxy (the name is sent as it is)
    #[default]
    Remote,
    /// Here first; a name that does not resolve goes to the proxy
    Both,
    /// Nobody: the target must be an IP address
    None,
}

/// Where and how to go through a proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    pub kind: ProxyType,
    pub proxy: HostPort,
    /// `USER[:PASS]` (SOCKS4: a user id only).
    pub auth: Option<String>,
    pub dns: ProxyDns,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} proxy {}", self.kind.as_str(), self.proxy)
    }
}

/// How the target goes to the proxy: an address, or a name it resolves.
enum Destination {
    Addr(SocketAddr),
    Name(String, u16),
}

impl Via {
    /// `--proxy HOST[:PORT]` with its type's default port.
    pub fn parse_proxy(text: &str, kind: ProxyType) -> CoreResult<HostPort> {
        let has_port = match text.strip_prefix('[') {
            Some(rest) => rest.contains("]:"),
            None => text.matches(':').count() == 1,
        };
        if has_port {
            addr::parse_host_port(text)
        } else {
            addr::parse_host_port(&addr::join_host_port(
                text.trim_start_matches('[').trim_end_matches(']'),
                kind.default_port(),
            ))
        }
    }

    /// Opens a TCP connection to the proxy (from `source`, within `limit`)
    /// and asks it for `target`; the stream, and the target as an endpoint
    /// (its address when known here, else its name).
    pub(crate) async fn connect(
        &self,
        target: &HostPort,
        limit: Duration,
        source: Option<SocketAddr>,
    ) -> CoreResult<(TcpStream, Endpoint)> {
        let destination = self.destination(target).await?;
        let started = tokio::time::Instant::now();
        let mut stream = super::tcp::connect_from(&self.proxy, limit, source)
            .await
            .map_err(|e| CoreError::new(e.code, format!("{self}: {}", e.text)))?;
        let handshake = self.handshake(&mut stream, &destination);
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, handshake).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                return Err(CoreError::new(
                    ErrorCode::ProxyFailed,
                    format!("{self} could not connect to {target}: {reason}"),
                ));
            }
            Err(_) => {
                return Err(CoreError::new(
                    ErrorCode::ProxyFailed,
                    format!(
                        "{self} did not answer for {target} within {}",
                        crate::core::util::format_duration(limit)
                    ),
                ));
            }
        }
        let end = match destination {
            Destination::Addr(a) => Endpoint::Ip(addr::canonical(a)),
            Destination::Name(..) => Endpoint::Name(target.clone()),
        };
        Ok((stream, end))
    }

    /// The target as the proxy gets it, per `--proxy-dns` (SOCKS4 carries
    /// only IPv4 addresses: a name goes as SOCKS4a).
    async fn destination(&self, target: &HostPort) -> CoreResult<Destination> {
        if let Ok(ip) = target.host.parse::<std::net::IpAddr>() {
            return Ok(Destination::Addr(SocketAddr::new(ip, target.port)));
        }
        let local = |addrs: Vec<SocketAddr>| {
            let ipv4_only = self.kind == ProxyType::Socks4;
            addrs
                .into_iter()
                .find(|a| a.is_ipv4() || !ipv4_only)
                .ok_or_else(|| {
                    CoreError::new(
                        ErrorCode::ResolveFailed,
                        format!("{target}: no IPv4 address, and SOCKS4 carries no other"),
                    )
                })
        };
        match self.dns {
            ProxyDns::Remote => Ok(Destination::Name(target.host.clone(), target.port)),
            ProxyDns::Local => Ok(Destination::Addr(local(addr::resolve(target).await?)?)),
            ProxyDns::Both => match addr::resolve(target).await.and_then(local) {
                Ok(a) => Ok(Destination::Addr(a)),
                Err(_) => Ok(Destination::Name(target.host.clone(), target.port)),
            },
            ProxyDns::None => Err(CoreError::new(
                ErrorCode::AddressInvalid,
                format!("{target}: --proxy-dns none takes an IP address only"),
            )),
        }
    }

    /// The proxy's handshake; Err: its reason, as the proxy gave it.
    async fn handshake(&self, stream: &mut TcpStream, to: &Destination) -> Result<(), String> {
        let (user, pass) = match self.auth.as_deref().map(|a| a.split_once(':').unwrap_or((a, ""))) {
            Some((u, p)) => (Some(u), p),
            None => (None, ""),
        };
        match self.kind {
            ProxyType::Http => http_connect(stream, to, self.auth.as_deref()).await,
            ProxyType::Socks5 => {
                use tokio_socks::tcp::Socks5Stream;
                let result = match user {
                    Some(u) => {
                        Socks5Stream::connect_with_password_and_socket(&mut *stream, to.socks(), u, pass)
                            .await
                    }
                    None => Socks5Stream::connect_with_socket(&mut *stream, to.socks()).await,
                };
                result.map(drop).map_err(socks_reason)
            }
            ProxyType::Socks4 => {
                use tokio_socks::tcp::Socks4Stream;
                match (to, user) {
                    (Destination::Addr(SocketAddr::V6(_)), _) => {
                        return Err("SOCKS4 carries IPv4 addresses only".into());
                    }
                    // The crate builds the request in 513 bytes.
                    (Destination::Name(h, _), Some(u)) if h.len() + u.len() > 500 => {
                        return Err("the user id and host name are too long for SOCKS4a".into());
                    }
                    _ => {}
                }
                let result = match user {
                    Some(u) => {
                        Socks4Stream::connect_with_userid_and_socket(&mut *stream, to.socks(), u).await
                    }
                    None => Socks4Stream::connect_with_socket(&mut *stream, to.socks()).await,
                };
                result.map(drop).map_err(socks_reason)
            }
        }
    }
}

impl Destination {
    /// As tokio-socks takes it: a name goes to the proxy as it is.
    fn socks(&self) -> tokio_socks::TargetAddr<'_> {
        match self {
            Destination::Addr(a) => tokio_socks::TargetAddr::Ip(*a),
            Destination::Name(h, p) => tokio_socks::TargetAddr::Domain(h.as_str().into(), *p),
        }
    }
}

/// A SOCKS failure in words (the proxy's reply code, or what went wrong).
fn socks_reason(e: tokio_socks::Error) -> String {
    use tokio_socks::Error;
    match e {
        Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the proxy closed the connection during the handshake".into()
        }
        Error::PasswordAuthFailure(_) => "the proxy refused the user name and password".into(),
        Error::NoAcceptableAuthMethods => {
            "the proxy accepts none of our authentication methods (needs --proxy-auth?)".into()
        }
        Error::GeneralSocksServerFailure => "request rejected or failed".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// The longest HTTP response head read from a proxy.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// `CONNECT host:port HTTP/1.1`, Basic credentials if given; a 2xx answer
/// opens the tunnel. The head is read a byte at a time so that nothing
/// the target sends right after it is taken from the session.
async fn http_connect(stream: &mut TcpStream, to: &Destination, auth: Option<&str>) -> Result<(), String> {
    use base64::Engine;
    let authority = match to {
        Destination::Addr(a) => addr::join_host_port(&a.ip().to_string(), a.port()),
        Destination::Name(h, p) => addr::join_host_port(h, *p),
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(auth);
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(format!(
                "its answer's head is longer than {MAX_RESPONSE_HEAD} bytes"
            ));
        }
        match stream.read_u8().await {
            Ok(b) => head.push(b),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err("the proxy closed the connection without an answer".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let status_line = String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default());
    let status_line = status_line.trim_end();
    let code = status_line
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match code {
        Some(200..=299) => Ok(()),
        Some(_) => Err(format!(
            "it answered {:?}",
            crate::core::escape::escape_display(status_line.as_bytes())
        )),
        None => Err(format!(
            "not an HTTP answer: {:?}",
            crate::core::escape::escape_display(status_line.as_bytes())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses_get_the_default_port_of_their_type() {
        let p = |t: &str, k| Via::parse_proxy(t, k).map(|hp| hp.to_string());
        assert_eq!(p("127.0.0.1", ProxyType::Socks5).unwrap(), "127.0.0.1:1080");
        assert_eq!(p("localhost", ProxyType::Http).unwrap(), "localhost:3128");
        assert_eq!(p("127.0.0.1:8080", ProxyType::Http).unwrap(), "127.0.0.1:8080");
        assert_eq!(p("[::1]:9050", ProxyType::Socks5).unwrap(), "[::1]:9050");
        assert_eq!(p("[::1]", ProxyType::Socks4).unwrap(), "[::1]:1080");
        assert!(p("127.0.0.1:notaport", ProxyType::Http).is_err());
    }
}
