//! Unix domain stream sockets: `connect unix:/path`, `listen unix:/path`
//! (like `ncat -U` and socat's `UNIX-CONNECT`/`UNIX-LISTEN`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};

use super::{Endpoint, Io, Kind, Link, ReadSide};
use crate::core::error::{CoreError, CoreResult, ErrorCode};

/// Connects to the socket at `path` within `limit`.
pub(crate) async fn dial(path: &Path, limit: Duration) -> CoreResult<Link> {
    let shown = path.display();
    let stream = match tokio::time::timeout(limit, UnixStream::connect(path)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(CoreError::new(
                ErrorCode::ConnectRefused,
                format!("unix:{shown} refused the connection (nothing listens there)"),
            ));
        }
        Ok(Err(e)) => {
            return Err(CoreError::new(
                ErrorCode::ConnectFailed,
                format!("cannot connect to unix:{shown}: {e}"),
            ));
        }
        Err(_) => {
            return Err(CoreError::new(
                ErrorCode::ConnectFailed,
                format!(
                    "connecting to unix:{shown} timed out after {}",
                    crate::core::util::format_duration(limit)
                ),
            ));
        }
    };
    let mut link = link(stream)?;
    link.peer = Endpoint::Unix(Some(path.to_path_buf()));
    Ok(link)
}

/// A connected Unix stream as a link.
pub(crate) fn link(stream: UnixStream) -> CoreResult<Link> {
    let name = |a: std::io::Result<tokio::net::unix::SocketAddr>| {
        Endpoint::Unix(a.ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)))
    };
    let (local, peer) = (name(stream.local_addr()), name(stream.peer_addr()));
    let (r, w) = stream.into_split();
    Ok(Link {
        io: Io::Stream {
            read: ReadSide::Other(Box::new(r)),
            write: Box::new(w),
        },
        local,
        peer,
        kind: Kind::Unix,
        insecure: false,
        cipher: None,
        control: None,
        reset: None,
    })
}

/// A listening Unix socket; its file is removed when it closes (as socat
/// does), never before it is bound: an existing path is not ours to delete.
pub(crate) struct UnixBound {
    pub listener: UnixListener,
    pub path: PathBuf,
}

impl Drop for UnixBound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub(crate) fn bind(path: &Path) -> CoreResult<UnixBound> {
    let listener = UnixListener::bind(path).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AddrInUse {
            "the path already exists (remove a stale socket first)".to_string()
        } else {
            e.to_string()
        };
        CoreError::new(
            ErrorCode::BindFailed,
            format!("cannot listen on unix:{}: {why}", path.display()),
        )
    })?;
    Ok(UnixBound {
        listener,
        path: path.to_path_buf(),
    })
}
