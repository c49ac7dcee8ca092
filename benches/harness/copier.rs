//! The least a user-space netcat can do: a blocking read/write loop with a
//! 256 KiB buffer at each end (no event loop, no threads, no pipe resizing).
//! The harness runs itself as both ends to measure what TCP on loopback
//! plus the pipes around it allow, which `head | cat` (one pipe, no
//! socket) overstates.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

const BUF: usize = 256 * 1024;

/// `--copy-listen PORT` (socket → stdout) or `--copy-connect PORT`
/// (stdin → socket): runs that end and returns true; false for any other
/// invocation.
pub fn serve_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let port = args.get(2).and_then(|p| p.parse::<u16>().ok());
    match (args.get(1).map(String::as_str), port) {
        (Some("--copy-listen"), Some(port)) => {
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port))
                && let Ok((sock, _)) = listener.accept()
            {
                copy(sock, std::io::stdout().lock());
            }
            true
        }
        (Some("--copy-connect"), Some(port)) => {
            if let Ok(sock) = TcpStream::connect(("127.0.0.1", port)) {
                copy(std::io::stdin().lock(), &sock);
                let _ = sock.shutdown(Shutdown::Write);
            }
            true
        }
        _ => false,
    }
}

fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buf = vec![0u8; BUF];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.flush();
}
