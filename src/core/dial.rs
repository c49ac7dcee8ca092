//! Opening an outbound TCP or TLS connection, once (`connect`) or again and
//! again (`connect --reconnect`), and the backoff between attempts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::addr::{self, HostPort};
use super::command::ConnectSpec;
use super::events::{CoreError, CoreResult, ErrorCode};
use super::session::{Io, ReadSide};

/// Default timeout of a TCP connect (a `--timeout` on the session overrides it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything needed to open the connection, checked once up front (a bad
/// CA file fails the command, not every reconnect).
pub(crate) struct Dialer {
    target: HostPort,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>, bool)>,
    timeout: Duration,
}

/// An open connection.
pub(crate) struct Dialed {
    pub io: Io,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub tls: bool,
    pub insecure: bool,
}

impl Dialer {
    pub fn new(spec: &ConnectSpec) -> CoreResult<Dialer> {
        let tls = match &spec.tls {
            Some(t) => Some((t.config()?, t.server_name(&spec.target.host)?, t.insecure)),
            None => None,
        };
        Ok(Dialer {
            target: spec.target.clone(),
            tls,
            timeout: spec.opts.timeout.unwrap_or(CONNECT_TIMEOUT),
        })
    }

    /// Connects (and shakes hands) within the connect timeout.
    pub async fn dial(&self) -> CoreResult<Dialed> {
        let stream = tcp_connect(&self.target, self.timeout).await?;
        let _ = stream.set_nodelay(true);
        let (local, remote) = match (stream.local_addr(), stream.peer_addr()) {
            (Ok(l), Ok(r)) => (l, r),
            (Err(e), _) | (_, Err(e)) => {
                return Err(CoreError::new(
                    ErrorCode::ConnectFailed,
                    format!("{}: {e}", self.target),
                ));
            }
        };
        let Some((config, name, insecure)) = &self.tls else {
            let (r, w) = stream.into_split();
            let io = Io::Stream {
                read: ReadSide::Tcp(r),
                write: Box::new(w),
            };
            return Ok(Dialed {
                io,
                local,
                remote,
                tls: false,
                insecure: false,
            });
        };
        let connector = TlsConnector::from(config.clone());
        let hs = tokio::time::timeout(self.timeout, connector.connect(name.clone(), stream)).await;
        match hs {
            Ok(Ok(tls)) => {
                let (r, w) = tokio::io::split(tls);
                let io = Io::Stream {
                    read: ReadSide::Other(Box::new(r)),
                    write: Box::new(w),
                };
                Ok(Dialed {
                    io,
                    local,
                    remote,
                    tls: true,
                    insecure: *insecure,
                })
            }
            Ok(Err(e)) => Err(super::tls::handshake_error(&self.target.to_string(), e)),
            Err(_) => Err(CoreError::new(
                ErrorCode::TlsHandshakeFailed,
                format!("TLS handshake with {} timed out", self.target),
            )),
        }
    }
}

/// `connect --reconnect`: how to get the connection back.
pub(crate) struct Redial {
    pub dialer: Dialer,
    pub backoff: Backoff,
    /// Sent after every (re)connect, EOL included in line mode.
    pub preamble: Option<Bytes>,
}

/// Exponential backoff with jitter between `min` and `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// The shortest `--backoff` minimum: anything less would hammer a peer
/// that refuses at once.
pub const MIN_BACKOFF: Duration = Duration::from_millis(10);

impl Backoff {
    /// Parses `500ms..30s` (or one duration for a fixed delay).
    pub fn parse(text: &str, duration: impl Fn(&str) -> Result<Duration, String>) -> Result<Backoff, String> {
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (duration(a)?, duration(b)?),
            None => {
                let d = duration(text)?;
                (d, d)
            }
        };
        if min < MIN_BACKOFF {
            return Err(format!("{text:?}: the shortest delay must be at least 10ms"));
        }
        if max < min {
            return Err(format!(
                "{text:?}: the longest delay is shorter than the shortest"
            ));
        }
        Ok(Backoff { min, max })
    }

    /// The delay before attempt `n` (1-based): `min × 2^(n-1)` capped at
    /// `max`, then a random half of it taken off ("equal jitter"), so
    /// clients that lost the same peer do not come back in lockstep.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let doubled = self.min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let base = doubled.min(self.max);
        let jitter = jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter / 2.0).max(self.min.min(base))
    }
}

/// Connects to the first address of the host that accepts, within `limit`.
pub(crate) async fn tcp_connect(target: &HostPort, limit: Duration) -> CoreResult<TcpStream> {
    let addrs = addr::resolve(target).await?;
    let attempt = async {
        let mut last = None;
        for a in &addrs {
            match TcpStream::connect(a).await {
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
                super::format_duration(limit)
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            min: ms(500),
            max: ms(30_000),
        };
        let plain: Vec<_> = (1..=9).map(|n| b.delay(n, 0.0)).collect();
        assert_eq!(
            plain,
            [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000].map(ms)
        );
        // Full jitter takes off at most half, never below the minimum.
        assert_eq!(b.delay(4, 1.0), ms(2000));
        assert_eq!(b.delay(1, 1.0), ms(500));
        assert_eq!(b.delay(1000, 0.0), ms(30_000));
    }

    #[test]
    fn backoff_parses_ranges_and_rejects_nonsense() {
        let d = |t: &str| crate::lang::parse_duration(t);
        assert_eq!(
            Backoff::parse("100ms..2s", d),
            Ok(Backoff {
                min: ms(100),
                max: ms(2000)
            })
        );
        assert_eq!(
            Backoff::parse("1s", d).map(|b| (b.min, b.max)),
            Ok((ms(1000), ms(1000)))
        );
        assert!(
            Backoff::parse("0ms..1s", d)
                .unwrap_err()
                .contains("at least 10ms")
        );
        assert!(Backoff::parse("5s..1s", d).unwrap_err().contains("shorter"));
        assert!(Backoff::parse("soon..later", d).is_err());
    }
}
