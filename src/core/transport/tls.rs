//! TLS handshakes over TCP, on either side; the configuration (roots,
//! certificates, verifiers) is `core::tls`.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{Endpoint, Io, Kind, Link, ReadSide};
use crate::core::addr::HostPort;
use crate::core::error::{CoreError, CoreResult, ErrorCode};
use crate::core::tls::{ClientTls, handshake_error};

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS client's configuration, checked once.
pub(crate) struct ClientSide {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    insecure: bool,
}

impl ClientSide {
    pub fn new(tls: &ClientTls, host: &str) -> CoreResult<ClientSide> {
        Ok(ClientSide {
            config: tls.config()?,
            name: tls.server_name(host)?,
            insecure: tls.insecure,
        })
    }

    /// Shakes hands over a connected stream, within `limit`.
    pub async fn handshake(&self, stream: TcpStream, target: &HostPort, limit: Duration) -> CoreResult<Link> {
        let _ = stream.set_nodelay(true);
        let (local, peer) = super::tcp::ends(&stream)?;
        let connector = TlsConnector::from(self.config.clone());
        let stream = ReadAhead::new(stream);
        match tokio::time::timeout(limit, connector.connect(self.name.clone(), stream)).await {
            Ok(Ok(tls)) => {
                let cipher = agreed(tls.get_ref().1);
                Ok(link(tls, local, peer, self.insecure, cipher))
            }
            Ok(Err(e)) => Err(handshake_error(&target.to_string(), e)),
            Err(_) => Err(CoreError::new(
                ErrorCode::TlsHandshakeFailed,
                format!("TLS handshake with {target} timed out"),
            )),
        }
    }
}

/// The server side of a client's handshake, within [`HANDSHAKE_TIMEOUT`].
pub(crate) async fn accept(acceptor: &TlsAcceptor, stream: TcpStream, peer: &Endpoint) -> CoreResult<Link> {
    let _ = stream.set_nodelay(true);
    let (local, _) = super::tcp::ends(&stream)?;
    let stream = ReadAhead::new(stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let cipher = agreed(tls.get_ref().1);
            Ok(link(tls, local, peer.clone(), false, cipher))
        }
        Ok(Err(e)) => Err(handshake_error(&peer.to_string(), e)),
        Err(_) => Err(CoreError::new(
            ErrorCode::TlsHandshakeFailed,
            format!(
                "TLS handshake with {peer} failed: no handshake within {}",
                crate::core::util::format_duration(HANDSHAKE_TIMEOUT)
            ),
        )),
    }
}

/// `TLSv1.3 TLS13_AES_256_GCM_SHA384`: what a handshake agreed on.
fn agreed<D>(conn: &rustls::ConnectionCommon<D>) -> Option<String> {
    let suite = conn.negotiated_cipher_suite()?;
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    Some(format!("{version} {}", suite.suite().as_str().unwrap_or("?")))
}

/// A TLS stream (either side) as a link.
fn link<S>(tls: S, local: Endpoint, peer: Endpoint, insecure: bool, cipher: Option<String>) -> Link
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (r, w) = tokio::io::split(tls);
    Link {
        io: Io::Stream {
            read: ReadSide::Other(Box::new(r)),
            write: Box::new(w),
        },
        local,
        peer,
        kind: Kind::Tls,
        insecure,
        cipher,
        control: None,
        reset: None,
    }
}

/// Bytes read from the socket at once under TLS.
const READ_AHEAD: usize = 64 * 1024;

/// The socket under a TLS stream, read ahead: rustls asks for one record
/// (16 KiB at most) at a time, and a system call per record costs a bulk
/// transfer much of its time in the kernel. This reads up to 64 KiB when
/// the caller asks for less and hands it out from there. The buffer
/// exists only while it holds bytes, so an idle TLS session holds none.
struct ReadAhead {
    stream: TcpStream,
    held: Vec<u8>,
    at: usize,
}

impl ReadAhead {
    fn new(stream: TcpStream) -> ReadAhead {
        ReadAhead {
            stream,
            held: Vec::new(),
            at: 0,
        }
    }
}

impl tokio::io::AsyncRead for ReadAhead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let me = &mut *self;
        if me.at == me.held.len() {
            if buf.remaining() >= READ_AHEAD {
                return std::pin::Pin::new(&mut me.stream).poll_read(cx, buf);
            }
            // Nothing to read yet: wait without making (and zeroing) a
            // buffer only to drop it, as every drained socket would.
            match me.stream.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let mut ahead = std::mem::take(&mut me.held);
            ahead.resize(READ_AHEAD, 0);
            let mut read = tokio::io::ReadBuf::new(&mut ahead);
            match std::pin::Pin::new(&mut me.stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    ahead.truncate(n);
                    me.held = ahead;
                    me.at = 0;
                    if n == 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                other => return other,
            }
        }
        let n = buf.remaining().min(me.held.len() - me.at);
        buf.put_slice(&me.held[me.at..me.at + n]);
        me.at += n;
        if me.at == me.held.len() {
            // Drained: an idle session keeps no buffer.
            me.held = Vec::new();
            me.at = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for ReadAhead {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
