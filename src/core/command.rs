//! The commands the session manager takes, and their option types.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use super::tls::{ClientTls, ServerTls};

/// How received bytes are framed (fixed when a session opens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Line,
    Binary,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Line => "line",
            Mode::Binary => "binary",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "line" => Ok(Mode::Line),
            "binary" => Ok(Mode::Binary),
            _ => Err(format!("{text:?} is not a mode: line or binary")),
        }
    }
}

/// The end of line appended to sends in line mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Eol {
    #[default]
    Lf,
    Crlf,
    Cr,
}

impl Eol {
    pub fn as_str(self) -> &'static str {
        match self {
            Eol::Lf => "lf",
            Eol::Crlf => "crlf",
            Eol::Cr => "cr",
        }
    }

    pub fn bytes(self) -> &'static [u8] {
        match self {
            Eol::Lf => b"\n",
            Eol::Crlf => b"\r\n",
            Eol::Cr => b"\r",
        }
    }
}

impl std::str::FromStr for Eol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "lf" => Ok(Eol::Lf),
            "crlf" => Ok(Eol::Crlf),
            "cr" => Ok(Eol::Cr),
            _ => Err(format!("{text:?} is not an end of line: lf, crlf or cr")),
        }
    }
}

/// How a session is shown (line or hex); a front-end concern kept per session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    #[default]
    Line,
    Hex,
    /// Received bytes as a hex dump, sent ones as text.
    HexIn,
    /// Sent bytes as a hex dump, received ones as text.
    HexOut,
}

impl View {
    pub fn as_str(self) -> &'static str {
        match self {
            View::Line => "line",
            View::Hex => "hex",
            View::HexIn => "hex-in",
            View::HexOut => "hex-out",
        }
    }
}

/// Options every session has.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    pub id: Option<String>,
    pub label: Option<String>,
    pub mode: Mode,
    pub eol: Eol,
    /// Inactivity timeout.
    pub timeout: Option<Duration>,
    /// When the peer ends its output, keep sending until we end ours too
    /// (pipe mode, like netcat); otherwise the session closes at once.
    pub half_open: bool,
    /// `--imap`/`--omap`: display and keyboard line-end maps.
    pub map: super::linemap::LineMap,
    /// `--frame`: how a binary session's stream is cut.
    pub frame: Option<super::frames::FrameSpec>,
    /// `--check`: the checksum every received frame ends with.
    pub check: Option<super::checksum::Checksum>,
    /// `--exec` / `--sh-exec`: a program serves the session (each client
    /// of a listener its own).
    pub exec: Option<Box<super::transport::exec::ExecSpec>>,
    /// `--telnet`: answer Telnet negotiation (refusing every option) and
    /// take IAC sequences out of what is delivered (ncat -t).
    pub telnet: bool,
}

#[derive(Clone, Debug)]
pub struct ConnectSpec {
    /// `HOST:PORT` or `unix:PATH`.
    pub target: super::transport::Target,
    pub opts: SessionOptions,
    pub tls: Option<ClientTls>,
    /// `--reconnect`: dial again after a drop, with this backoff.
    pub reconnect: Option<super::dial::Backoff>,
    /// `--wait`: the first connect is retried too (with the backoff).
    pub wait: bool,
    /// Sent after every (re)connect, EOL already appended in line mode.
    pub preamble: Option<Bytes>,
    /// `-s ADDR` / `-p PORT`: the local address and port to connect from.
    pub source: Option<std::net::SocketAddr>,
    /// `--proxy`: go through a SOCKS or HTTP proxy.
    pub via: Option<super::transport::via::Via>,
}

#[derive(Clone, Debug)]
pub struct ListenSpec {
    /// `[HOST:]PORT` or `unix:PATH`.
    pub bind: super::transport::Target,
    pub opts: SessionOptions,
    pub tls: Option<ServerTls>,
    pub max_connections: usize,
    /// `--allow`/`--deny`: who may connect.
    pub acl: Option<Box<super::acl::AclSpec>>,
}

/// `proxy`: a listener whose clients are each connected to `target`.
#[derive(Clone, Debug)]
pub struct ProxySpec {
    pub listen: ListenSpec,
    pub target: super::transport::Target,
    /// `--tls-out`: TLS to the target.
    pub tls_out: Option<ClientTls>,
}

#[derive(Clone, Debug)]
pub struct UdpSpec {
    /// The socket: bind, destination, multicast and the like.
    pub socket: super::transport::udp::SocketSpec,
    pub opts: SessionOptions,
    /// `--per-peer N`: a listener with a session per sender, at most N.
    pub per_peer: Option<usize>,
    /// `--allow`/`--deny` (per-peer listeners): whose datagrams are taken.
    pub acl: Option<Box<super::acl::AclSpec>>,
}

/// A command for the session manager. Session and listener references are
/// as the user typed them (id, prefix, label or `@N`); `None` means the
/// default one.
#[derive(Clone, Debug)]
pub enum Command {
    Connect(Box<ConnectSpec>),
    Listen(ListenSpec),
    Udp(UdpSpec),
    Send {
        to: Option<String>,
        payload: Bytes,
        /// Do not append the session's EOL in line mode.
        raw: bool,
    },
    WaitFor {
        on: Option<String>,
        timeout: Duration,
        regex: regex::bytes::Regex,
        /// `--partial` / `--fresh`.
        opts: crate::core::session::WaitOptions,
    },
    /// Forget what a session received so far (a key macro's `send`: the
    /// `waitfor` after it sees only what came after it).
    Forget {
        session: Option<String>,
    },
    Accept {
        on: Option<String>,
        timeout: Duration,
    },
    /// Half-close: send FIN, keep receiving.
    HalfClose {
        session: Option<String>,
    },
    Disconnect {
        session: Option<String>,
    },
    Close {
        listener: Option<String>,
    },
    View {
        session: Option<String>,
        view: View,
    },
    Record {
        session: Option<String>,
        /// `None` stops recording.
        file: Option<PathBuf>,
    },
    Sessions,
    Listeners,
    /// `proxy`: listen, and relay each client to a target.
    Proxy(Box<ProxySpec>),
    /// `send --dir c2s`: bytes to a proxy session's server.
    Inject {
        to: Option<String>,
        payload: Bytes,
        raw: bool,
    },
    /// `exec [SESSION] CMD`: a program takes the session's far side.
    Exec {
        session: Option<String>,
        spec: super::transport::exec::ExecSpec,
    },
    /// `hold` / `release`: pause or resume one direction of a proxy session.
    Hold {
        session: Option<String>,
        dir: super::session::RelayDir,
        hold: bool,
    },
    /// A session reference, resolved to its id (for what front ends keep
    /// per session: a `filter`).
    Resolve {
        session: Option<String>,
    },
    /// `on`: arm an auto-reply.
    On(TriggerSpec),
    /// `triggers`: list them.
    Triggers,
    /// `off ID`: remove one.
    Off {
        id: String,
    },
    /// `line`: set a serial port's DTR or RTS.
    Line {
        session: Option<String>,
        line: super::transport::serial::OutputLine,
        action: LineAction,
    },
    /// `break`: hold a serial line in break.
    Break {
        session: Option<String>,
        length: Duration,
    },
    /// `serial --list`: the serial ports present.
    Ports,
    /// `check HOST:PORT…`: which ports open (like `nc -z`).
    Check {
        targets: Vec<super::addr::HostPort>,
        timeout: Duration,
    },
    /// `wait-for HOST:PORT`: until it opens, or `timeout`.
    WaitPort {
        target: super::addr::HostPort,
        timeout: Duration,
    },
}

/// What `line` does to DTR or RTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineAction {
    /// On, off, or (`None`) the other way round.
    Set(Option<bool>),
    /// The other way round for this long, then back.
    Pulse(Duration),
}

/// `break` without a length: 250 ms, as tio and picocom send.
pub const BREAK_LENGTH: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct TriggerSpec {
    /// Session or listener reference; `None`: every session.
    pub on: Option<String>,
    pub regex: regex::bytes::Regex,
    pub reply: Bytes,
    pub raw: bool,
    pub once: bool,
    /// `--crc`: appended to each reply after `$1`… are filled in.
    pub checksum: Option<(super::checksum::Checksum, super::checksum::Range)>,
    /// A reply computed elsewhere (a Lua function): each match is sent
    /// here instead of `reply`.
    pub notify: Option<tokio::sync::mpsc::Sender<super::trigger::TriggerHit>>,
    /// `plot`: matches become `sample` events (no reply).
    pub sample: bool,
    /// A proxy session's direction it watches (`--dir`; None: what the
    /// session receives, c2s for a proxy).
    pub dir: Option<super::session::RelayDir>,
    /// `--rewrite`: matches in the relayed stream are replaced by `reply`
    /// (captures filled in) before they go on.
    pub rewrite: bool,
}

/// What a successful command returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The session opened, accepted or addressed.
    Session(String),
    /// The listener opened.
    Listener(String),
    /// The trigger armed.
    Trigger(String),
    /// `waitfor` matched on the session: the matched line (line mode) or
    /// match (binary mode), byte-exact.
    Matched {
        session: String,
        raw: Bytes,
    },
    /// `sessions`: the listing (also an event).
    Sessions(Vec<super::events::SessionInfo>),
}

impl Command {
    /// Fills an omitted session reference with `id` (the TUI's selection).
    pub fn default_session(&mut self, id: &str) {
        let slot = match self {
            Command::Send { to, .. } | Command::Inject { to, .. } => to,
            Command::WaitFor { on, .. } => on,
            Command::Forget { session } => session,
            Command::Line { session, .. } | Command::Break { session, .. } => session,
            Command::Disconnect { session }
            | Command::HalfClose { session }
            | Command::View { session, .. }
            | Command::Resolve { session }
            | Command::Hold { session, .. }
            | Command::Exec { session, .. }
            | Command::Record { session, .. } => session,
            // A plot is of one session: the selected one by default (a
            // trigger's default is every session).
            Command::On(spec) if spec.sample => &mut spec.on,
            _ => return,
        };
        if slot.is_none() {
            *slot = Some(id.to_string());
        }
    }
}
