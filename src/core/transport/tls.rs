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
