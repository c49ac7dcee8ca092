//! A program as the other end of a session (`--exec`, `--sh-exec`, `exec
//! [SESSION] CMD`; ncat's `-e`/`-c`, socat's `EXEC:`/`SYSTEM:`): what the
//! peer sends goes to its stdin, what it writes to stdout goes to the
//! peer; it learns who the peer is from ncat's `NCAT_*` variables. A
//! program runs only when asked for by name, and through a shell only
//! with `--sh-exec`.

use std::process::Stdio;

use super::{Endpoint, Io, Kind, Link, ReadSide};
use crate::core::error::{CoreError, CoreResult, ErrorCode};

/// What to run, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecSpec {
    pub command: ExecCommand,
    /// `--pty`: on a pseudo-terminal (its own session, the pty its
    /// controlling terminal), for programs that want a terminal.
    pub pty: bool,
}

/// The program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecCommand {
    /// `--exec "PROGRAM ARGS…"`: split like a shell line, run directly.
    Program(Vec<String>),
    /// `--sh-exec "LINE"`: `/bin/sh -c LINE`.
    Shell(String),
}

impl ExecSpec {
    /// `--exec`'s text, split into words (no shell).
    pub fn program(text: &str) -> CoreResult<ExecSpec> {
        let words = shell_words::split(text)
            .map_err(|e| CoreError::new(ErrorCode::CommandInvalid, format!("--exec {text:?}: {e}")))?;
        if words.is_empty() {
            return Err(CoreError::new(
                ErrorCode::CommandInvalid,
                "--exec: no program given",
            ));
        }
        Ok(ExecSpec {
            command: ExecCommand::Program(words),
            pty: false,
        })
    }

    /// `--sh-exec LINE`.
    pub fn shell(line: String) -> ExecSpec {
        ExecSpec {
            command: ExecCommand::Shell(line),
            pty: false,
        }
    }

    /// `--pty`.
    pub fn on_pty(self, pty: bool) -> ExecSpec {
        ExecSpec { pty, ..self }
    }

    /// [`ExecSpec::program`] as a clap value parser.
    pub fn program_arg(text: &str) -> Result<ExecSpec, String> {
        ExecSpec::program(text).map_err(|e| e.text)
    }

    /// How events and listings name it.
    pub fn describe(&self) -> String {
        let command = match &self.command {
            ExecCommand::Program(words) => shell_words::join(words),
            ExecCommand::Shell(line) => format!("sh -c {}", shell_words::quote(line)),
        };
        if self.pty {
            format!("{command} (pty)")
        } else {
            command
        }
    }
}

/// The ends of the session the program serves, for its environment.
pub struct Peers<'a> {
    pub local: &'a Endpoint,
    pub remote: Option<&'a Endpoint>,
    pub proto: &'a str,
}

/// Starts the program; its stdio as a link, and the process (killed when
/// dropped: a session that ends takes its program with it).
pub(crate) fn spawn(spec: &ExecSpec, peers: &Peers) -> CoreResult<(Link, tokio::process::Child)> {
    let mut cmd = match &spec.command {
        ExecCommand::Program(words) => {
            let mut c = tokio::process::Command::new(&words[0]);
            c.args(&words[1..]);
            c
        }
        ExecCommand::Shell(line) => {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.args(["-c", line]);
            c
        }
    };
    // ncat's names, so its -e scripts run unchanged.
    let mut env = |prefix: &str, end: Option<&Endpoint>| match end.and_then(Endpoint::ip) {
        Some(a) => {
            cmd.env(format!("NCAT_{prefix}_ADDR"), a.ip().to_string());
            cmd.env(format!("NCAT_{prefix}_PORT"), a.port().to_string());
        }
        None => {
            if let Some(e) = end {
                cmd.env(format!("NCAT_{prefix}_ADDR"), e.to_string());
            }
        }
    };
    env("REMOTE", peers.remote);
    env("LOCAL", Some(peers.local));
    cmd.env("NCAT_PROTO", peers.proto.to_ascii_uppercase());
    cmd.kill_on_drop(true);
    let cannot = |e: std::io::Error| {
        CoreError::new(ErrorCode::IoError, format!("cannot run {}: {e}", spec.describe()))
    };
    let (read, write, child): (ReadSide, Box<dyn tokio::io::AsyncWrite + Send + Unpin>, _) = if spec.pty {
        let (read, write, child) = pty::spawn(cmd).map_err(cannot)?;
        (ReadSide::Other(Box::new(read)), Box::new(write), child)
    } else {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(cannot)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(CoreError::new(
                ErrorCode::IoError,
                format!("{}: no stdin/stdout", spec.describe()),
            ));
        };
        (ReadSide::Other(Box::new(stdout)), Box::new(stdin), child)
    };
    let name = Endpoint::Device(std::path::PathBuf::from(spec.describe()));
    let link = Link {
        io: Io::Stream { read, write },
        local: name.clone(),
        peer: name,
        kind: Kind::Exec,
        insecure: false,
        cipher: None,
        control: None,
        reset: None,
    };
    Ok((link, child))
}

/// `--pty`: the program on a pseudo-terminal, as it would run in a
/// terminal window (socat's `EXEC:…,pty,setsid,ctty`): stdin, stdout and
/// stderr are the terminal, which is its controlling terminal in a
/// session of its own, so the line discipline echoes and edits, and
/// Ctrl-C and job control work.
mod pty {
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// Starts `cmd` on a new pseudo-terminal (80×24); its two sides and
    /// the process.
    pub fn spawn(
        cmd: tokio::process::Command,
    ) -> std::io::Result<(PtyRead, PtyWrite, tokio::process::Child)> {
        let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
        pty.resize(pty_process::Size::new(24, 80))
            .map_err(std::io::Error::other)?;
        // The terminal side goes with the call: once the program (and what
        // it started) has closed it, reads end.
        let child = pty_process::Command::from(cmd)
            .spawn(pts)
            .map_err(std::io::Error::other)?;
        let (read, write) = pty.into_split();
        Ok((
            PtyRead(read),
            PtyWrite {
                pty: write,
                ended: false,
            },
            child,
        ))
    }

    /// What the program writes to its terminal.
    pub struct PtyRead(pty_process::OwnedReadPty);

    impl AsyncRead for PtyRead {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            match ready!(Pin::new(&mut self.0).poll_read(cx, buf)) {
                // Linux: every copy of the terminal side is closed (the
                // program ended): the end of its output.
                Err(e) if e.raw_os_error() == Some(libc::EIO) => Poll::Ready(Ok(())),
                other => Poll::Ready(other),
            }
        }
    }

    /// What is typed at the program's terminal.
    pub struct PtyWrite {
        pty: pty_process::OwnedWritePty,
        ended: bool,
    }

    impl AsyncWrite for PtyWrite {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.pty).poll_write(cx, data)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.pty).poll_flush(cx)
        }

        /// A terminal has no end of input but the one typed: Ctrl-D (at
        /// the start of a line, a canonical-mode reader's end of file).
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            if !self.ended {
                ready!(Pin::new(&mut self.pty).poll_write(cx, b"\x04"))?;
                self.ended = true;
            }
            Poll::Ready(Ok(()))
        }
    }
}
