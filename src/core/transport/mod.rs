//! Transports: how a session's bytes move. Every kind of link — TCP, TLS,
//! UDP, Unix domain sockets — is opened here and handed to the session as
//! an `Io` with its [`Endpoint`]s and [`Kind`]; sessions, events and
//! front ends never see socket types.
//!
//! - `tcp`: dialing and binding TCP (dual stack, connect timeout)
//! - `tls`: the handshake on either side, over TCP
//! - `udp`: opening UDP sockets (broadcast, multicast, reuse)
//! - `unix`: Unix domain stream sockets (`unix:/path`)
//! - `serial`: serial ports and pseudo-terminals (`serial /dev/ttyUSB0`)
//! - `rfc2217`: serial ports behind a Telnet COM-PORT server (`connect --rfc2217`)
//! - `via`: TCP through a SOCKS or HTTP proxy (`connect --proxy`)
//!
//! Adding a transport: a file here that dials (a `Dialer` arm) and/or
//! binds (a `Bound` arm) and yields an `Io`; a [`Kind`] and an
//! [`Endpoint`] form if it needs one; its `Target` syntax in [`Target::parse`].

pub mod exec;
pub mod rfc2217;
pub mod serial;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod unix;
pub mod via;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::tcp::OwnedReadHalf;

use super::addr::{HostPort, parse_host_port};
use super::error::{CoreError, CoreResult, ErrorCode};
use super::tls::ClientTls;

/// What kind of link a session or listener is (the `kind` of opening events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Tls,
    Udp,
    /// One sender of a `udp --per-peer` listener.
    UdpPeer,
    Unix,
    Serial,
    /// A serial port at an RFC 2217 server.
    Rfc2217,
    /// A client of a `proxy` and its connection to the target: two links.
    Proxy,
    /// A program's stdin and stdout (`--exec`): the far side of a session.
    Exec,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Udp => "udp",
            Kind::UdpPeer => "udp-peer",
            Kind::Unix => "unix",
            Kind::Serial => "serial",
            Kind::Rfc2217 => "rfc2217",
            Kind::Proxy => "proxy",
            Kind::Exec => "exec",
        }
    }

    /// The kind a transcript header or an event names.
    pub fn parse(text: &str) -> Option<Kind> {
        [
            Kind::Tcp,
            Kind::Tls,
            Kind::Udp,
            Kind::UdpPeer,
            Kind::Unix,
            Kind::Serial,
            Kind::Rfc2217,
            Kind::Proxy,
            Kind::Exec,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    pub fn is_tls(self) -> bool {
        self == Kind::Tls
    }

    pub fn is_udp(self) -> bool {
        matches!(self, Kind::Udp | Kind::UdpPeer)
    }
}

/// One end of a link: an IP address and port, a Unix socket path
/// (`None`: an unnamed client socket), or a device (a serial port).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Ip(SocketAddr),
    Unix(Option<PathBuf>),
    Device(PathBuf),
    /// A host by name, its address unknown here (a proxy resolved it).
    Name(HostPort),
}

impl Endpoint {
    /// The IP address and port, for IP links.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Ip(a) => Some(*a),
            Endpoint::Unix(_) | Endpoint::Device(_) | Endpoint::Name(_) => None,
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = std::net::AddrParseError;

    /// `unix:PATH` or `IP:PORT`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.strip_prefix("unix:") {
            Some(path) => Ok(Endpoint::Unix(Some(PathBuf::from(path)))),
            None => text.parse().map(Endpoint::Ip),
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint::Ip(a)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Ip(a) => write!(f, "{a}"),
            Endpoint::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Endpoint::Unix(None) => f.write_str("unix:(unnamed)"),
            Endpoint::Device(p) => write!(f, "{}", p.display()),
            Endpoint::Name(hp) => write!(f, "{hp}"),
        }
    }
}

/// Where a `connect` goes, or what a `listen` binds: `HOST:PORT` (or
/// `[HOST:]PORT` to listen) or `unix:PATH`; or the port a `serial` opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Ip(HostPort),
    Unix(PathBuf),
    Serial(Box<serial::SerialTarget>),
    Rfc2217(Box<rfc2217::Rfc2217Target>),
}

impl Target {
    /// `unix:PATH`, else what `ip` makes of the text.
    pub fn parse(text: &str, ip: impl Fn(&str) -> CoreResult<HostPort>) -> CoreResult<Target> {
        match text.strip_prefix("unix:") {
            Some("") => Err(CoreError::new(
                ErrorCode::AddressInvalid,
                format!("address {text:?}: unix: needs a path, like unix:/tmp/device.sock"),
            )),
            Some(path) => Ok(Target::Unix(PathBuf::from(path))),
            None => ip(text).map(Target::Ip),
        }
    }

    /// `HOST:PORT` or `unix:PATH`, for `connect`.
    pub fn parse_connect(text: &str) -> CoreResult<Target> {
        Target::parse(text, parse_host_port)
    }

    /// The host name TLS checks, for IP targets.
    pub fn host(&self) -> &str {
        match self {
            Target::Ip(hp) => &hp.host,
            Target::Rfc2217(t) => &t.addr.host,
            Target::Unix(_) | Target::Serial(_) => "localhost",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Ip(hp) => write!(f, "{hp}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Serial(s) => write!(f, "{s}"),
            Target::Rfc2217(t) => write!(f, "{}", t.addr),
        }
    }
}

/// What the reader reads from.
pub(crate) enum ReadSide {
    /// Plain TCP: the buffer is allocated only once the socket is readable.
    Tcp(OwnedReadHalf),
    Other(Box<dyn AsyncRead + Send + Unpin>),
}

impl ReadSide {
    /// A copy of the socket under a plain TCP link (a proxy resets it when
    /// the other side reset); None for others.
    pub fn socket(&self) -> Option<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        match self {
            ReadSide::Tcp(half) => half.as_ref().as_fd().try_clone_to_owned().ok(),
            ReadSide::Other(_) => None,
        }
    }

    /// Reads one chunk. For plain TCP the buffer is only allocated once the
    /// socket is readable, so idle sessions hold no read buffer (unless
    /// `keep`: bulk transfers reuse theirs).
    pub async fn read_chunk(
        &mut self,
        buf: &mut BytesMut,
        size: usize,
        keep: bool,
    ) -> std::io::Result<usize> {
        match self {
            ReadSide::Tcp(rd) => loop {
                rd.readable().await?;
                if buf.capacity() - buf.len() < size {
                    buf.reserve(size);
                }
                match rd.try_read_buf(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // A false alarm (new sockets often get one): an
                        // idle session must not keep the buffer.
                        if buf.is_empty() && !keep {
                            *buf = BytesMut::new();
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            },
            ReadSide::Other(rd) => {
                use futures_util::FutureExt;
                if buf.capacity() - buf.len() < size {
                    buf.reserve(size);
                }
                let start = buf.len();
                let n = rd.read_buf(buf).await?;
                // A TLS stream yields one record (16 KiB at most) a read:
                // what is ready now joins this chunk (never waiting), so
                // a bulk transfer is a few large events, not many small.
                while n > 0 && buf.len() - start < size && buf.capacity() > buf.len() {
                    match rd.read_buf(buf).now_or_never() {
                        Some(Ok(more)) if more > 0 => {}
                        _ => break,
                    }
                }
                Ok(buf.len() - start)
            }
        }
    }
}

/// The I/O of a session, not yet handed to its tasks.
pub(crate) enum Io {
    Stream {
        read: ReadSide,
        write: Box<dyn AsyncWrite + Send + Unpin>,
    },
    Udp(Arc<udp::Datagrams>),
    /// One peer of a `udp --per-peer` listener: sends go out of the shared
    /// socket to the peer; the listener hands received datagrams over.
    UdpPeer(Arc<udp::Datagrams>),
}

/// An open stream link, dialed or accepted.
pub(crate) struct Link {
    pub io: Io,
    pub local: Endpoint,
    pub peer: Endpoint,
    pub kind: Kind,
    /// TLS without verifying the peer (`--insecure`).
    pub insecure: bool,
    /// TLS: the version and cipher suite the handshake agreed on
    /// (`TLSv1.3 TLS13_AES_256_GCM_SHA384`).
    pub cipher: Option<String>,
    /// Modem lines and break, for links that have them (serial ports).
    pub control: Option<Control>,
    /// Closes it with a reset instead of a FIN (plain TCP links).
    pub reset: Option<tcp::Resetter>,
}

/// What a link can do beside moving bytes: a serial port's modem lines,
/// break and settings.
#[derive(Clone)]
pub(crate) enum Control {
    Serial(Arc<serial::Port>),
    Rfc2217(Arc<rfc2217::Remote>),
}

impl Control {
    pub fn settings(&self) -> serial::PortSettings {
        match self {
            Control::Serial(port) => port.settings,
            Control::Rfc2217(remote) => remote.settings,
        }
    }

    /// The output line as last set here (`None`: never set).
    pub fn line(&self, line: serial::OutputLine) -> Option<bool> {
        match self {
            Control::Serial(port) => port.line(line),
            Control::Rfc2217(remote) => remote.line(line),
        }
    }

    /// Sets an output line, or flips it (`None`); its new state.
    pub fn set_line(&self, line: serial::OutputLine, on: Option<bool>) -> CoreResult<bool> {
        // Never set here: drivers raise both lines on open.
        let on = on.unwrap_or_else(|| !self.line(line).unwrap_or(true));
        match self {
            Control::Serial(port) => port.set_line(line, on)?,
            Control::Rfc2217(remote) => remote.set_line(line, on)?,
        }
        Ok(on)
    }

    pub async fn send_break(&self, length: Duration) -> CoreResult<()> {
        match self {
            Control::Serial(port) => port.send_break(length).await,
            Control::Rfc2217(remote) => remote.send_break(length).await,
        }
    }

    /// The modem lines now; `None`: the link cannot tell.
    pub fn modem(&self) -> Option<serial::ModemLines> {
        match self {
            Control::Serial(port) => port.modem(),
            Control::Rfc2217(remote) => Some(remote.modem()),
        }
    }
}

/// Default timeout of a connect (a `--timeout` on the session overrides it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything needed to open an outbound link, checked once up front (a
/// bad CA file fails the command, not every reconnect).
pub(crate) struct Dialer {
    target: Target,
    tls: Option<tls::ClientSide>,
    timeout: Duration,
    /// `-s`/`-p`: where to connect from (TCP).
    source: Option<SocketAddr>,
    /// `--proxy`: the proxy to go through (TCP, TLS).
    via: Option<via::Via>,
}

impl Dialer {
    /// `timeout`: the session's `--timeout`, if any, bounds the connect too.
    pub fn new(target: &Target, tls: Option<&ClientTls>, timeout: Option<Duration>) -> CoreResult<Dialer> {
        let tls = match (tls, target) {
            (Some(_), Target::Unix(_) | Target::Serial(_) | Target::Rfc2217(_)) => {
                return Err(CoreError::new(
                    ErrorCode::TlsConfigInvalid,
                    format!("{target}: --tls works over TCP only"),
                ));
            }
            (Some(t), Target::Ip(hp)) => Some(tls::ClientSide::new(t, &hp.host)?),
            (None, _) => None,
        };
        Ok(Dialer {
            target: target.clone(),
            tls,
            timeout: timeout.unwrap_or(CONNECT_TIMEOUT),
            source: None,
            via: None,
        })
    }

    /// `--proxy`: go through it (TCP and TLS targets only).
    pub fn through(mut self, proxy: Option<via::Via>) -> CoreResult<Dialer> {
        if let Some(p) = &proxy
            && !matches!(self.target, Target::Ip(_))
        {
            return Err(CoreError::new(
                ErrorCode::CommandInvalid,
                format!("{}: --proxy ({p}) is for TCP and TLS targets", self.target),
            ));
        }
        self.via = proxy;
        Ok(self)
    }

    /// The proxy dials go through, if any.
    pub fn via(&self) -> Option<&via::Via> {
        self.via.as_ref()
    }

    /// `-s ADDR` / `-p PORT`: connect from there (TCP targets only).
    pub fn with_source(mut self, source: Option<SocketAddr>) -> CoreResult<Dialer> {
        if source.is_some() && !matches!(self.target, Target::Ip(_) | Target::Rfc2217(_)) {
            return Err(CoreError::new(
                ErrorCode::CommandInvalid,
                format!("{}: a source address (-s/-p) is for TCP targets", self.target),
            ));
        }
        self.source = source;
        Ok(self)
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Connects (and shakes hands) within the connect timeout.
    pub async fn dial(&self) -> CoreResult<Link> {
        match &self.target {
            Target::Ip(hp) => {
                let (stream, end) = match &self.via {
                    Some(via) => {
                        let (stream, end) = via.connect(hp, self.timeout, self.source).await?;
                        (stream, Some(end))
                    }
                    None => (tcp::connect_from(hp, self.timeout, self.source).await?, None),
                };
                let mut link = match &self.tls {
                    Some(side) => side.handshake(stream, hp, self.timeout).await?,
                    None => tcp::link(stream)?,
                };
                // Through a proxy the socket's peer is the proxy; the
                // session's is the target.
                if let Some(end) = end {
                    link.peer = end;
                }
                Ok(link)
            }
            Target::Unix(path) => unix::dial(path, self.timeout).await,
            Target::Serial(port) => serial::open(port).await,
            Target::Rfc2217(target) => rfc2217::dial(target, self.timeout, self.source).await,
        }
    }

    /// Waits until dialing can work: a serial device's path is back (a
    /// USB adapter plugged in again). Network targets are always ready.
    pub async fn ready(&self) {
        if let Target::Serial(port) = &self.target {
            serial::wait_present(&port.path).await;
        }
    }
}

/// Binds what a `listen` names; `tls`: the clients will shake hands.
pub(crate) async fn bind(target: &Target, tls: bool) -> CoreResult<(Bound, Kind)> {
    match target {
        Target::Ip(hp) => {
            let kind = if tls { Kind::Tls } else { Kind::Tcp };
            Ok((Bound::Tcp(tcp::bind_any(hp).await?), kind))
        }
        Target::Unix(_) if tls => Err(CoreError::new(
            ErrorCode::TlsConfigInvalid,
            format!("{target}: --tls works over TCP only"),
        )),
        Target::Unix(path) => Ok((Bound::Unix(unix::bind(path)?), Kind::Unix)),
        Target::Rfc2217(t) => Err(CoreError::new(
            ErrorCode::AddressInvalid,
            format!("{}: --rfc2217 is for connect", t.addr),
        )),
        Target::Serial(port) => Err(CoreError::new(
            ErrorCode::AddressInvalid,
            format!("{port}: a serial port is opened with `serial`, not listened on"),
        )),
    }
}

/// A bound listening socket.
pub(crate) enum Bound {
    Tcp(tokio::net::TcpListener),
    Unix(unix::UnixBound),
}

/// A client accepted, before any handshake.
pub(crate) enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Bound {
    pub fn local(&self) -> std::io::Result<Endpoint> {
        match self {
            Bound::Tcp(l) => l.local_addr().map(|a| Endpoint::Ip(super::addr::canonical(a))),
            Bound::Unix(u) => Ok(Endpoint::Unix(Some(u.path.clone()))),
        }
    }

    pub async fn accept(&self) -> std::io::Result<(Accepted, Endpoint)> {
        match self {
            Bound::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Accepted::Tcp(s), Endpoint::Ip(super::addr::canonical(peer))))
            }
            Bound::Unix(u) => {
                let (s, _) = u.listener.accept().await?;
                Ok((Accepted::Unix(s), Endpoint::Unix(None)))
            }
        }
    }
}

impl Accepted {
    /// The client's link: a TLS handshake first when the listener speaks TLS.
    pub async fn into_link(
        self,
        peer: &Endpoint,
        tls: Option<&tokio_rustls::TlsAcceptor>,
    ) -> CoreResult<Link> {
        match (self, tls) {
            (Accepted::Tcp(s), Some(acceptor)) => tls::accept(acceptor, s, peer).await,
            (Accepted::Tcp(s), None) => tcp::link(s),
            (Accepted::Unix(s), _) => unix::link(s),
        }
    }
}
