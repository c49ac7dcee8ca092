//! A program as the other end of a session (`--exec`, `--sh-exec`, `exec
//! [SESSION] CMD`; ncat's `-e`/`-c`, socat's `EXEC:`/`SYSTEM:`): what the
//! peer sends goes to its stdin, what it writes to stdout goes to the
//! peer; it learns who the peer is from ncat's `NCAT_*` variables. A
//! program runs only when asked for by name, and through a shell only
//! with `--sh-exec`.

use std::process::Stdio;

use super::{Endpoint, Io, Kind, Link, ReadSide};
use crate::core::error::{CoreError, CoreResult, ErrorCode};

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecSpec {
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
        Ok(ExecSpec::Program(words))
    }

    /// [`ExecSpec::program`] as a clap value parser.
    pub fn program_arg(text: &str) -> Result<ExecSpec, String> {
        ExecSpec::program(text).map_err(|e| e.text)
    }

    /// How events and listings name it.
    pub fn describe(&self) -> String {
        match self {
            ExecSpec::Program(words) => shell_words::join(words),
            ExecSpec::Shell(line) => format!("sh -c {}", shell_words::quote(line)),
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
    let mut cmd = match spec {
        ExecSpec::Program(words) => {
            let mut c = tokio::process::Command::new(&words[0]);
            c.args(&words[1..]);
            c
        }
        ExecSpec::Shell(line) => {
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
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| CoreError::new(ErrorCode::IoError, format!("cannot run {}: {e}", spec.describe())))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(CoreError::new(
            ErrorCode::IoError,
            format!("{}: no stdin/stdout", spec.describe()),
        ));
    };
    let name = Endpoint::Device(std::path::PathBuf::from(spec.describe()));
    let link = Link {
        io: Io::Stream {
            read: ReadSide::Other(Box::new(stdout)),
            write: Box::new(stdin),
        },
        local: name.clone(),
        peer: name,
        kind: Kind::Exec,
        insecure: false,
        control: None,
        reset: None,
    };
    Ok((link, child))
}
