//! The command language (CONTRACT section 2): one parser for scripts, `-c`,
//! and the TUI command bar. Lines split into words ([`words`]), then clap
//! parses the words, so every command gets options, usage and `help`.

pub mod complete;
pub mod payload;
pub mod proxy;
pub mod serial;
pub mod words;

pub use payload::{decode_hex, decode_payload};
pub use serial::SerialArgs;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};

use crate::core::addr::{parse_bind, parse_host_port};
use crate::core::command::{
    Command, ConnectSpec, Eol, ListenSpec, Mode, SessionOptions, TriggerSpec, UdpSpec, View,
};
use crate::core::dial::Backoff;
use crate::core::tls::{ClientTls, ServerTls};
use crate::core::transport::Target;
use crate::core::{CoreError, CoreResult, ErrorCode};

/// Default `waitfor` and `accept` timeout.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A parsed line: a command for the session manager, or one the front end
/// handles itself.
#[derive(Debug)]
pub enum Parsed {
    Core(Command),
    Sleep(Duration),
    Quit,
    /// `help` output to show.
    Help(String),
    /// `source FILE`: run a script file's lines here.
    Source(PathBuf),
    /// `seq …`: the TUI's send panel.
    Seq(SeqRequest),
    /// `profile NAME`: open what a profile file describes.
    Profile(String),
    /// `repeat [--every DUR] [--count N] COMMAND…`: the command line, run
    /// `count` times (or until stopped), `every` apart.
    Repeat {
        every: Duration,
        count: Option<u64>,
        line: String,
    },
    /// `lua CHUNK`: the rest of the line, as Lua.
    Lua(String),
    /// `highlight …`, `highlights`: the TUI's colouring rules.
    Display(DisplayRequest),
    /// `filter [SESSION] [-v] REGEX|off`: which lines the TUI shows of a
    /// session (resolved by the core, then handed to the front end).
    Filter {
        session: Option<String>,
        rule: Option<FilterRule>,
    },
    /// `split [--horizontal] [SESSION]`: a new pane (the session resolved
    /// by the core when named).
    Split {
        session: Option<String>,
        horizontal: bool,
    },
    /// `merge SESSION…`: a pane interleaving them (each resolved).
    Merge(Vec<String>),
}

/// Colours a highlight may take (besides `#rrggbb`).
pub const COLOURS: &[&str] = &[
    "red",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "white",
    "gray",
    "black",
    "light-red",
    "light-green",
    "light-yellow",
    "light-blue",
    "light-magenta",
    "light-cyan",
];

/// `highlight …`: a change to how the TUI colours text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisplayRequest {
    /// Colour matches of `regex` (None: the next colour of the palette).
    Highlight { regex: String, colour: Option<String> },
    /// Remove a rule by id, or `all`.
    Unhighlight(String),
    /// List the rules.
    Highlights,
    /// A session's (full id) line filter, or none.
    Filter {
        session: String,
        rule: Option<FilterRule>,
    },
    /// A new pane showing this session (None: the focused pane's).
    Split {
        session: Option<String>,
        horizontal: bool,
    },
    /// Close the focused pane.
    Unsplit,
    /// A pane interleaving these sessions (full ids) by time.
    Merge(Vec<String>),
}

impl DisplayRequest {
    /// The command that asked for it.
    pub fn command(&self) -> &'static str {
        match self {
            DisplayRequest::Highlight { .. } | DisplayRequest::Unhighlight(_) => "highlight",
            DisplayRequest::Highlights => "highlights",
            DisplayRequest::Filter { .. } => "filter",
            DisplayRequest::Split { .. } => "split",
            DisplayRequest::Unsplit => "unsplit",
            DisplayRequest::Merge(_) => "merge",
        }
    }
}

/// `filter REGEX` (shows matching lines) or `filter -v REGEX` (hides them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterRule {
    pub regex: String,
    pub invert: bool,
}

/// `seq …`: a change to the TUI's send panel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeqRequest {
    Add {
        name: String,
        /// As `send` takes it (escapes), or hex digits with `hex`.
        payload: String,
        hex: bool,
        key: Option<String>,
        every: Option<String>,
        expect: Option<String>,
    },
    Remove(String),
    Save,
}

/// `repeat` without `--every`.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(1);

/// Parses `500ms`, `5s`, `2m`, `1h`, `1.5s`; a bare number is milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 500ms, 5s, 2m)"))?;
    let scale = match unit {
        "" | "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Options every session takes.
#[derive(Args, Clone, Debug, Default)]
pub struct SessionArgs {
    /// Use this id instead of a generated `sess-<uuid>`
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// A name to refer to the session by
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// How received bytes are framed: lines, or chunks as they arrive
    #[arg(long, value_name = "line|binary", default_value = "line", value_parser = str::parse::<Mode>)]
    pub mode: Mode,
    /// End of line appended to each send in line mode
    #[arg(long, value_name = "lf|crlf|cr", default_value = "lf", value_parser = str::parse::<Eol>)]
    pub eol: Eol,
    /// Close the session after this long without traffic (e.g. 30s); bounds the connect too (ncat -i, --idle-timeout)
    #[arg(long, short = 'i', visible_alias = "idle-timeout", value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// nc -w: connect and idle timeout in seconds (a bare number is seconds here, as nc takes it)
    #[arg(short = 'w', value_name = "SECS", value_parser = parse_seconds, conflicts_with = "timeout")]
    pub wait_secs: Option<Duration>,
    /// How received line ends are shown: crlf,crcrlf,igncr,icrnl,inlcr (display only)
    #[arg(long, value_name = "MAP,...", value_parser = |t: &str| crate::core::linemap::parse_input(t).map(|_| t.to_string()))]
    pub imap: Option<String>,
    /// How typed line ends and Backspace are sent: onlcr,ocrnl,delbs (typing only)
    #[arg(long, value_name = "MAP,...", value_parser = |t: &str| crate::core::linemap::parse_output(t).map(|_| t.to_string()))]
    pub omap: Option<String>,
    /// Cut received bytes into frames (binary mode): idle:DUR, len:N, delim:HEX, [start:HEX,]len-at:N[,len-size:1|2|4][,le][,len-adds:N]
    #[arg(long, value_name = "SPEC", value_parser = |t: &str| crate::core::frames::FrameSpec::parse(t, parse_duration))]
    pub frame: Option<crate::core::frames::FrameSpec>,
    /// Check the checksum each received frame ends with (binary mode; data events say crcOk)
    #[arg(long, value_name = "NAME", value_parser = crate::core::checksum::Checksum::parse)]
    pub check: Option<crate::core::checksum::Checksum>,
    /// Run PROGRAM with its stdin/stdout joined to the session, each client its own (split like a shell line, no shell; ncat -e)
    #[arg(long, short = 'e', value_name = "PROGRAM", value_parser = crate::core::transport::exec::ExecSpec::program_arg, group = "program")]
    pub exec: Option<crate::core::transport::exec::ExecSpec>,
    /// Run LINE through /bin/sh -c, joined to the session as --exec (ncat -c, socat SYSTEM:)
    #[arg(long, value_name = "LINE", group = "program")]
    pub sh_exec: Option<String>,
    /// Run the --exec/--sh-exec program on a pseudo-terminal (shells, REPLs, anything that wants a terminal; socat EXEC:…,pty,setsid,ctty)
    #[arg(long, requires = "program")]
    pub pty: bool,
    /// Answer Telnet negotiation (refusing every option) and take its commands out of what is shown and delivered (ncat -t; the transcript keeps them)
    #[arg(long, short = 't')]
    pub telnet: bool,
}

impl SessionArgs {
    pub(crate) fn options(&self) -> SessionOptions {
        SessionOptions {
            id: self.id.clone(),
            label: self.label.clone(),
            // Frames and their checksums are bytes: binary mode.
            mode: if self.frame.is_some() || self.check.is_some() {
                Mode::Binary
            } else {
                self.mode
            },
            eol: self.eol,
            timeout: self.timeout.or(self.wait_secs),
            half_open: false,
            frame: self.frame.clone(),
            check: self.check,
            exec: self
                .exec
                .clone()
                .or_else(|| {
                    self.sh_exec
                        .clone()
                        .map(crate::core::transport::exec::ExecSpec::shell)
                })
                .map(|spec| Box::new(spec.on_pty(self.pty))),
            telnet: self.telnet,
            // Checked when parsed (value_parser).
            map: crate::core::linemap::LineMap {
                input: crate::core::linemap::parse_input(self.imap.as_deref().unwrap_or_default())
                    .unwrap_or_default(),
                output: crate::core::linemap::parse_output(self.omap.as_deref().unwrap_or_default())
                    .unwrap_or_default(),
            },
        }
    }
}

/// `connect`: one outbound TCP or TLS session.
#[derive(Args, Clone, Debug)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// Speak TLS (verifies the server against the system roots and --ca)
    #[arg(long)]
    pub tls: bool,
    /// Also trust this CA certificate (PEM)
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca: Option<PathBuf>,
    /// Server name to send and verify (default: HOST)
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub sni: Option<String>,
    /// Accept any server certificate (shown in the session's status)
    #[arg(long, requires = "tls")]
    pub insecure: bool,
    /// Client certificate (PEM), for servers that require one
    #[arg(long, value_name = "FILE", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM)
    #[arg(long, value_name = "FILE", requires_all = ["tls", "cert"])]
    pub key: Option<PathBuf>,
    /// Connect from this local address (nc -s, ncat -s)
    #[arg(long, short = 's', value_name = "ADDR")]
    pub source: Option<std::net::IpAddr>,
    /// Connect from this local port (nc -p, ncat -p)
    #[arg(long, short = 'p', value_name = "PORT")]
    pub source_port: Option<u16>,
    /// Go through this proxy: HOST[:PORT] (default port 3128 for http, 1080 for SOCKS; ncat --proxy)
    #[arg(long, value_name = "HOST[:PORT]", conflicts_with = "nc_proxy")]
    pub proxy: Option<String>,
    /// nc -x: as --proxy, but SOCKS5 unless -X names another type
    #[arg(short = 'x', value_name = "HOST[:PORT]", hide = true)]
    pub nc_proxy: Option<String>,
    /// The proxy's protocol (default http; nc's -x: socks5)
    #[arg(long, short = 'X', value_name = "TYPE", value_enum)]
    pub proxy_type: Option<crate::core::transport::via::ProxyType>,
    /// Credentials for the proxy: USER:PASS (http, socks5) or USER (socks4); default $NCAT_PROXY_AUTH
    #[arg(long, value_name = "USER[:PASS]")]
    pub proxy_auth: Option<String>,
    /// Who resolves the target's name: the proxy (remote, default), muxcat (local), local then the proxy (both), or nobody (none)
    #[arg(long, value_name = "WHERE", value_enum, default_value_t)]
    pub proxy_dns: crate::core::transport::via::ProxyDns,
    /// Reconnect after the peer closes or the connection fails (same session, same transcript)
    #[arg(long)]
    pub reconnect: bool,
    /// Delays between attempts: doubling from MIN to MAX, with jitter
    #[arg(long, value_name = "MIN..MAX", requires = "reconnect", value_parser = parse_backoff)]
    pub backoff: Option<Backoff>,
    /// Send this after every (re)connect (escapes as in send; EOL appended in line mode)
    #[arg(long, value_name = "PAYLOAD")]
    pub preamble: Option<String>,
    /// Keep trying the first connect too (a board not powered yet), with the backoff; disconnect stops it
    #[arg(long, requires = "reconnect")]
    pub wait: bool,
    /// The server is an RFC 2217 serial port server (ser2net, a terminal server): the port options below set the port
    #[arg(long, conflicts_with = "tls")]
    pub rfc2217: bool,
    #[command(flatten)]
    pub port: serial::PortArgs,
    /// Where to connect: name, IPv4 or IPv6 in brackets, and port; or unix:PATH
    #[arg(value_name = "HOST:PORT|unix:PATH")]
    pub target: String,
}

/// `--preamble`: its escapes decoded, the session's end of line after it
/// in line mode.
fn preamble(text: Option<&str>, opts: &SessionOptions) -> CoreResult<Option<Bytes>> {
    let Some(text) = text else { return Ok(None) };
    let mut bytes = decode_payload(text)?;
    if opts.mode == Mode::Line {
        bytes.extend_from_slice(opts.eol.bytes());
    }
    Ok(Some(Bytes::from(bytes)))
}

fn parse_backoff(text: &str) -> Result<Backoff, String> {
    Backoff::parse(text, parse_duration)
}

impl ConnectArgs {
    pub fn spec(&self) -> CoreResult<ConnectSpec> {
        let opts = self.session.options();
        let preamble = preamble(self.preamble.as_deref(), &opts)?;
        let target = if self.rfc2217 {
            Target::Rfc2217(Box::new(crate::core::transport::rfc2217::Rfc2217Target {
                addr: parse_host_port(&self.target)?,
                settings: self.port.settings(),
                dtr: self.port.dtr,
                rts: self.port.rts,
            }))
        } else if self.port.any() {
            return Err(invalid(
                "connect: --baud, --params, --dtr and the like set a serial port: add --rfc2217 for a serial port server (or use `serial DEVICE`)",
            ));
        } else {
            Target::parse_connect(&self.target)?
        };
        let source = match (self.source, self.source_port) {
            (None, None) => None,
            (addr, port) => Some(std::net::SocketAddr::new(
                addr.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                port.unwrap_or(0),
            )),
        };
        Ok(ConnectSpec {
            source,
            via: self.via()?,
            target,
            reconnect: self.reconnect.then(|| self.backoff.unwrap_or_default()),
            wait: self.wait,
            preamble,
            opts,
            tls: self.tls.then(|| ClientTls {
                ca: self.ca.clone(),
                sni: self.sni.clone(),
                insecure: self.insecure,
                cert: self.cert.clone(),
                key: self.key.clone(),
            }),
        })
    }
}

impl ConnectArgs {
    /// `--proxy` (or nc's `-x`) and its type, credentials and DNS.
    fn via(&self) -> CoreResult<Option<crate::core::transport::via::Via>> {
        use crate::core::transport::via::{ProxyType, Via};
        let (proxy, default_kind) = match (&self.proxy, &self.nc_proxy) {
            (Some(p), _) => (p, ProxyType::Http),
            (None, Some(p)) => (p, ProxyType::Socks5),
            (None, None) => {
                if self.proxy_type.is_some() || self.proxy_auth.is_some() {
                    return Err(invalid(
                        "connect: --proxy-type and --proxy-auth need --proxy HOST[:PORT]",
                    ));
                }
                return Ok(None);
            }
        };
        let kind = self.proxy_type.unwrap_or(default_kind);
        Ok(Some(Via {
            kind,
            proxy: Via::parse_proxy(proxy, kind)?,
            // As ncat: the variable keeps the password out of `ps`.
            auth: self
                .proxy_auth
                .clone()
                .or_else(|| std::env::var("NCAT_PROXY_AUTH").ok().filter(|a| !a.is_empty())),
            dns: self.proxy_dns,
        }))
    }
}

/// `listen`: a TCP or TLS listener; each client is a session.
#[derive(Args, Clone, Debug)]
pub struct ListenArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// Speak TLS (self-signed certificate unless --cert/--key)
    #[arg(long)]
    pub tls: bool,
    /// Server certificate chain (PEM)
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub cert: Option<PathBuf>,
    /// Server private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM)
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca: Option<PathBuf>,
    /// Clients served at once; one more is accepted and closed at once
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_connections: usize,
    #[command(flatten)]
    pub acl: AclArgs,
    /// Address to listen on (no host: IPv4 and IPv6; port 0 picks one); or unix:PATH
    #[arg(value_name = "[HOST:]PORT|unix:PATH")]
    pub bind: String,
}

impl ListenArgs {
    pub fn spec(&self) -> CoreResult<ListenSpec> {
        Ok(ListenSpec {
            bind: Target::parse(&self.bind, |t| parse_bind(t, crate::core::addr::ANY_HOST))?,
            opts: self.session.options(),
            tls: self.tls.then(|| ServerTls {
                cert: self.cert.clone(),
                key: self.key.clone(),
                client_ca: self.ca.clone(),
            }),
            max_connections: self.max_connections,
            acl: self.acl.spec(),
        })
    }
}

/// `--allow`/`--deny`: who may connect to a listener (ncat's options).
#[derive(Args, Clone, Debug, Default)]
pub struct AclArgs {
    /// Only these clients may connect: addresses, CIDR ranges, host names (comma-separated; repeatable)
    #[arg(long, value_name = "HOSTS")]
    pub allow: Vec<String>,
    /// These clients may not connect (wins over --allow)
    #[arg(long, value_name = "HOSTS")]
    pub deny: Vec<String>,
    /// --allow, from a file (one per line, # comments)
    #[arg(long, value_name = "FILE")]
    pub allowfile: Vec<PathBuf>,
    /// --deny, from a file
    #[arg(long, value_name = "FILE")]
    pub denyfile: Vec<PathBuf>,
}

impl AclArgs {
    /// None when no list was given.
    pub fn spec(&self) -> Option<Box<crate::core::acl::AclSpec>> {
        let spec = crate::core::acl::AclSpec {
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            allow_files: self.allowfile.clone(),
            deny_files: self.denyfile.clone(),
        };
        (!spec.is_empty()).then(|| Box::new(spec))
    }
}

/// `udp`: one UDP socket; each datagram is one `data` event.
#[derive(Args, Clone, Debug)]
pub struct UdpArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// Join this multicast group
    #[arg(long, value_name = "GROUP")]
    pub multicast: Option<std::net::IpAddr>,
    /// Interface address for multicast (e.g. 127.0.0.1); default: the bound one
    #[arg(long, value_name = "ADDR")]
    pub iface: Option<std::net::IpAddr>,
    /// Share the port with other sockets (SO_REUSEADDR + SO_REUSEPORT)
    #[arg(long)]
    pub reuse: bool,
    /// Allow sending to broadcast addresses
    #[arg(long)]
    pub broadcast: bool,
    /// Time to live (hops) of sent datagrams, multicast included
    #[arg(long, value_name = "N")]
    pub ttl: Option<u32>,
    /// Send to this address (default: reply to the last sender)
    #[arg(long, value_name = "HOST:PORT")]
    pub to: Option<String>,
    /// Talk to --to only: receive nothing else, and report ICMP "port unreachable"
    #[arg(long, requires = "to")]
    pub connect: bool,
    /// A session per sender (like a listener); idle ones close after --timeout
    #[arg(long, conflicts_with_all = ["to", "connect"])]
    pub per_peer: bool,
    /// With --per-peer: senders served at once; datagrams of more are dropped
    #[arg(long, value_name = "N", default_value_t = 128, requires = "per_peer")]
    pub max_connections: usize,
    /// Who may send (--per-peer listeners): as listen's --allow/--deny; others' datagrams are dropped
    #[command(flatten)]
    pub acl: AclArgs,
    /// Send from (bind) this address (nc -u -s): instead of HOST in [HOST:]PORT
    #[arg(long, short = 's', value_name = "ADDR")]
    pub source: Option<std::net::IpAddr>,
    /// Send from (bind) this port (nc -u -p): instead of [HOST:]PORT
    #[arg(long, short = 'p', value_name = "PORT")]
    pub source_port: Option<u16>,
    /// Address to bind and receive on (no host: IPv4 and IPv6; port 0 picks one); with -s/-p it may be left out
    #[arg(value_name = "[HOST:]PORT", required_unless_present_any = ["source", "source_port"])]
    pub bind: Option<String>,
}

impl UdpArgs {
    /// `[HOST:]PORT`, or what `-s`/`-p` give (nc's way of naming the
    /// local end of a UDP "connection").
    fn bind_text(&self) -> CoreResult<String> {
        match (&self.bind, self.source, self.source_port) {
            (Some(bind), None, None) => Ok(bind.clone()),
            (Some(_), _, _) => Err(invalid(
                "udp: give the address to bind as [HOST:]PORT or as -s ADDR -p PORT, not both",
            )),
            (None, addr, port) => Ok(match addr {
                Some(a) => crate::core::addr::join_host_port(&a.to_string(), port.unwrap_or(0)),
                None => port.unwrap_or(0).to_string(),
            }),
        }
    }

    pub fn spec(&self) -> CoreResult<UdpSpec> {
        let default_host = match self.multicast {
            Some(std::net::IpAddr::V6(_)) => "::",
            Some(std::net::IpAddr::V4(_)) => "0.0.0.0",
            None => crate::core::addr::ANY_HOST,
        };
        Ok(UdpSpec {
            socket: crate::core::transport::udp::SocketSpec {
                bind: parse_bind(&self.bind_text()?, default_host)?,
                to: self.to.as_deref().map(parse_host_port).transpose()?,
                multicast: self.multicast,
                iface: self.iface,
                reuse: self.reuse,
                broadcast: self.broadcast,
                ttl: self.ttl,
                connect: self.connect,
            },
            opts: self.session.options(),
            per_peer: self.per_peer.then_some(self.max_connections),
            acl: match self.acl.spec() {
                Some(_) if !self.per_peer => {
                    return Err(invalid(
                        "udp: --allow/--deny/--allowfile/--denyfile choose the senders of a --per-peer listener: add --per-peer",
                    ));
                }
                acl => acl,
            },
        })
    }
}

/// `help lua`: the API, one example per function.
const LUA_HELP: &str = r#"The mux API (Lua 5.4; durations: seconds or "500ms"; Rust regexes):
  s = mux.connect("127.0.0.1:7000", {label = "plc", reconnect = true})
  l = mux.listen("7000", {max_connections = 4})
  u = mux.udp("0", {to = "127.0.0.1:5000"})
  p = mux.serial("/dev/ttyUSB0", {params = "115200,8N1"})
  s:send("AT")              (line mode adds the end of line; {raw = true})
  s:sendhex("01 03 00 00 00 0a c5 cd")
  i, m, caps = s:expect({"^OK", "ERROR (\\d+)"}, 5)
                            (index, match, caps[1], caps.line; or
                             nil, "timeout")
  s:expect("login: $", 2, {partial = true, fresh = true})
  s:close()  s:shutdown()  s:record("board.log")  s:sendbreak()
  s:line("dtr", "pulse", 0.1)
  c = l:accept(10)          l:close()
  mux.on(l, "^GET (\\w+)", function(s, m) return "V " .. m[1] end)
  mux.every(1, function() s:sendhex("01 03 00 00 00 01 84 0a") end)
  mux.sleep(0.5)  mux.serve()  mux.sessions()  mux.log("text", 42)
  mux.command("view @1 hex")
  mux.hex("\1\2")  mux.unhex("de ad")  b, v = mux.crc("crc16-modbus", d)
Errors are tables {code, text, where}:
  local ok, e = pcall(mux.connect, "127.0.0.1:1")  -- e.code
Run a file with `muxcat run x.lua` or `source x.lua`; a line with
`lua CHUNK`. os.execute and io.popen need muxcat --lua-exec."#;

#[derive(Parser, Debug)]
#[command(
    name = "muxcat",
    multicall = true,
    disable_help_flag = true,
    color = clap::ColorChoice::Never,
    // Usage text is shown in the TUI's help overlay and in `run` output:
    // one width for both, whatever the terminal.
    term_width = 78
)]
struct Line {
    #[command(subcommand)]
    command: LangCommand,
}

#[derive(Subcommand, Debug)]
enum LangCommand {
    /// Open a TCP or TLS connection
    Connect(ConnectArgs),
    /// Listen for TCP or TLS clients
    Listen(ListenArgs),
    /// Open a UDP socket
    Udp(UdpArgs),
    /// Relay each client to a target and watch both directions: proxy [options] [HOST:]PORT TARGET_HOST:PORT
    #[command(after_help = PROXY_HELP)]
    Proxy(proxy::ProxyArgs),
    /// Pause one direction of a proxy session (its bytes wait in the kernel): hold [SESSION] c2s|s2c
    Hold {
        #[arg(value_name = "[SESSION] c2s|s2c", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Let a held direction of a proxy session go on: release [SESSION] c2s|s2c
    Release {
        #[arg(value_name = "[SESSION] c2s|s2c", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Open a serial port (or list them: serial --list)
    #[command(
        after_help = "Examples:\n  serial /dev/ttyUSB0\n  serial --params 9600,7E1 --label plc /dev/ttyS0\n  serial --reconnect --wait /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A1B2C3-if00-port0\n  serial --list"
    )]
    Serial(SerialArgs),
    /// Set a serial port's DTR or RTS: line [SESSION] dtr|rts on|off|toggle|pulse [DUR]
    #[command(
        after_help = "Examples:\n  line dtr off\n  line board rts toggle\n  line dtr pulse 100ms     reset a board wired to DTR"
    )]
    Line {
        #[arg(value_name = "[SESSION] dtr|rts on|off|toggle|pulse [DUR]", num_args = 1..=4, required = true)]
        args: Vec<String>,
    },
    /// Is a port open? Connect and close at once, like nc -z: check [--timeout DUR] HOST:PORT|HOST:LOW-HIGH...
    #[command(
        after_help = "Examples:\n  check 127.0.0.1:22\n  check --timeout 500ms device.local:20-25 device.local:502"
    )]
    Check {
        /// Per port (default 3s)
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[arg(value_name = "HOST:PORT|HOST:LOW-HIGH", required = true)]
        targets: Vec<String>,
    },
    /// Wait until a port opens (a device booting): wait-for [--timeout DUR] HOST:PORT
    #[command(
        name = "wait-for",
        after_help = "Example:\n  wait-for --timeout 60s 192.168.1.50:23"
    )]
    WaitPort {
        /// Give up after this long (default 30s)
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[arg(value_name = "HOST:PORT")]
        target: String,
    },
    /// Hold a serial line in break: break [SESSION] [DUR] (default 250ms)
    Break {
        #[arg(value_name = "[SESSION] [DUR]", num_args = 0..=2)]
        args: Vec<String>,
    },
    /// Send bytes: words joined by spaces, escapes \r \n \t \0 \\ \xHH
    Send {
        /// Session to send to (default: the current one)
        #[arg(long, value_name = "SESSION")]
        to: Option<String>,
        /// The payload is hex digits (`de ad be ef`), sent exactly
        #[arg(long)]
        hex: bool,
        /// Do not append the session's end of line in line mode
        #[arg(long)]
        raw: bool,
        /// A proxy session: to its server (c2s, as if its client sent it) or its client (s2c, the default)
        #[arg(long, value_name = "c2s|s2c", value_parser = ["c2s", "s2c"])]
        dir: Option<String>,
        #[command(flatten)]
        crc: CrcArgs,
        #[arg(value_name = "PAYLOAD", trailing_var_arg = true, allow_hyphen_values = true)]
        payload: Vec<String>,
    },
    /// Wait until a received line matches REGEX (a line still arriving, such as a prompt, matches once the session is quiet for 100ms)
    #[command(alias = "expect")]
    Waitfor {
        /// Session to watch (default: the current one)
        #[arg(long, value_name = "SESSION")]
        on: Option<String>,
        /// Give up after this long (default 10s)
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// Match the line still arriving (a prompt) at once, without waiting for quiet
        #[arg(long)]
        partial: bool,
        /// Only what arrives from now on (not what came before this command)
        #[arg(long)]
        fresh: bool,
        /// A Rust regex; several words are joined by spaces
        #[arg(
            value_name = "REGEX",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        regex: Vec<String>,
    },
    /// Wait for a client of a listener and make it the current session
    Accept {
        /// Listener (default: the one opened last)
        #[arg(long, value_name = "LISTENER")]
        on: Option<String>,
        /// Give up after this long (default 10s)
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
    /// Half-close a session: send FIN (end of output), keep receiving
    Shutdown {
        #[arg(value_name = "SESSION")]
        session: Option<String>,
    },
    /// Close a session
    Disconnect {
        #[arg(value_name = "SESSION")]
        session: Option<String>,
    },
    /// Close a listener (its clients stay open)
    Close {
        #[arg(value_name = "LISTENER")]
        listener: Option<String>,
    },
    /// Show a session as lines or as a hex dump (hex-in / hex-out: one direction only)
    View {
        #[arg(value_name = "[SESSION] line|hex|hex-in|hex-out", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Record a session's transcript: record [SESSION] FILE|off
    Record {
        #[arg(value_name = "[SESSION] FILE|off", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// List sessions
    Sessions,
    /// List listeners
    Listeners,
    /// Answer received lines matching REGEX: on [--on REF] [--once] REGEX send PAYLOAD...
    #[command(
        after_help = "Examples:\n  on '^AT\\+GMR$' send 'AT version:2.2.0\\r\\nOK'\n  on --on dev-board '^GET (\\w+)$' send 'VALUE $1=42'\n  on --hex '(?-u)^\\x01\\x03' send 01 03 02 00 2a"
    )]
    On {
        /// Only this session, or every client of this listener (default: every session)
        #[arg(long, value_name = "SESSION|LISTENER")]
        on: Option<String>,
        /// Fire once, then disarm
        #[arg(long)]
        once: bool,
        /// The reply is hex digits, sent exactly
        #[arg(long)]
        hex: bool,
        /// Do not append the session's end of line in line mode
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        crc: CrcArgs,
        /// A proxy session's direction: c2s (what its client sends, the
        /// default; answers go to the client) or s2c (what its server sends;
        /// answers go to the server)
        #[arg(long, value_name = "c2s|s2c", value_parser = ["c2s", "s2c"])]
        dir: Option<String>,
        /// Rewrite the proxy's relayed stream: on --dir s2c --rewrite REGEX REPLACEMENT
        #[arg(long)]
        rewrite: bool,
        /// Rust regex; received lines (or chunks, or datagrams) that match fire
        #[arg(value_name = "REGEX", allow_hyphen_values = true)]
        regex: String,
        /// The word `send` (with --rewrite: the replacement's first word)
        #[arg(value_name = "send")]
        action: String,
        /// The reply, like `send`; $1…$9 and ${name} are the regex's captures
        #[arg(value_name = "PAYLOAD", trailing_var_arg = true, allow_hyphen_values = true)]
        payload: Vec<String>,
    },
    /// Draw the numbers in a session's matching lines over time: plot [SESSION] REGEX (each capture group a series; `sample` events)
    #[command(
        after_help = "Each received line (or frame) that matches gives a sample: the number in each\ncapture group (named groups name their series), or the whole match without\ngroups. The TUI draws them under the scrollback; --json consumers get `sample`\nevents. `triggers` lists plots, `off PLOT` removes one.\n\nExamples:\n  plot 'temp=(\\d+\\.\\d+)'\n  plot sensor 'T=(?P<temp>\\S+) H=(?P<humidity>\\S+)'"
    )]
    Plot {
        #[arg(value_name = "[SESSION] REGEX", num_args = 1..=2, required = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Colour matches in every view: highlight REGEX [COLOUR]; highlight --rm ID|all; highlights lists
    #[command(after_help = HIGHLIGHT_HELP)]
    Highlight {
        /// Remove the rule with this id (`all`: every rule)
        #[arg(long, value_name = "ID|all", conflicts_with = "args")]
        rm: Option<String>,
        #[arg(value_name = "REGEX [COLOUR]", num_args = 1..=2, required_unless_present = "rm", allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// List the highlight rules
    Highlights,
    /// Split the scrollback area: a new pane showing SESSION (default: the focused pane's), side by side or --horizontal (stacked)
    Split {
        /// Stack the panes (default: side by side)
        #[arg(long)]
        horizontal: bool,
        #[arg(value_name = "SESSION")]
        session: Option<String>,
    },
    /// Close the focused scrollback pane
    Unsplit,
    /// A pane that interleaves sessions' chunks by time: merge SESSION SESSION...
    Merge {
        #[arg(value_name = "SESSION", num_args = 2.., required = true)]
        sessions: Vec<String>,
    },
    /// Show only a session's lines that match: filter [SESSION] [-v] REGEX; filter [SESSION] off
    #[command(
        after_help = "Nothing is dropped: the scrollback and the transcript keep every line, and\nthe title says how many lines the filter hides. Event lines (`*`) always show.\n\nExamples:\n  filter 'ERROR|WARN'\n  filter -v '^DEBUG'\n  filter sensor off"
    )]
    Filter {
        /// Hide the matching lines instead
        #[arg(short = 'v', long)]
        invert: bool,
        /// A regex starting with `-` goes after `--`: filter -- -ERR
        #[arg(value_name = "[SESSION] REGEX|off", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// List the armed triggers (and plots)
    Triggers,
    /// Hand a session to a program: its stdin gets what the peer sends, its stdout goes to the peer (needs --allow-exec)
    #[command(
        after_help = "The program is split like a shell line and run directly; --sh runs it with\n/bin/sh -c. It sees ncat's NCAT_REMOTE_ADDR, NCAT_REMOTE_PORT, NCAT_LOCAL_ADDR,\nNCAT_LOCAL_PORT and NCAT_PROTO. The session stays in view: what passes shows as\nalways. When the program ends its output, the session closes.\n\nExamples:\n  exec board 'sz firmware.bin'\n  exec --sh 'while read l; do echo \"ack $l\"; done'\n  exec --pty 'bash -i'"
    )]
    Exec {
        /// Run it through /bin/sh -c
        #[arg(long)]
        sh: bool,
        /// Run it on a pseudo-terminal (a shell, a REPL)
        #[arg(long)]
        pty: bool,
        #[arg(value_name = "[SESSION] CMD", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Disarm a trigger or remove a plot
    Off {
        #[arg(value_name = "TRIGGER")]
        id: String,
    },
    /// Pause the script
    Sleep {
        #[arg(value_name = "DUR", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Run a command again and again: repeat [--every DUR] [--count N] send PAYLOAD... (until stopped without --count)
    #[command(
        after_help = "Examples:\n  repeat --every 1s send AT+CSQ\n  repeat --count 3 --every 500ms send --hex 01 03 00 00 00 0a c5 cd"
    )]
    Repeat {
        /// Time between runs (default 1s)
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        every: Option<Duration>,
        /// Stop after N runs (default: until stopped, Ctrl-C in the TUI)
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// The command to run, e.g. `send AT`
        #[arg(
            value_name = "COMMAND",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        command: Vec<String>,
    },
    /// Open what a profile describes (address, options, label, triggers, commands; in the TUI its keymap and sequences)
    #[command(
        after_help = "NAME is $XDG_CONFIG_HOME/muxcat/profiles/NAME.toml, or a path to a .toml file.\nExample profile:\n  connect = \"127.0.0.1:7000\"\n  options = \"--reconnect --wait --omap onlcr\"\n  label = \"board\"\n  triggers = [\"'^login: ' send admin\"]\n  sequences = \"board-seqs.toml\""
    )]
    Profile {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// The TUI's send panel of saved sequences: seq add|rm|save
    #[command(
        subcommand,
        after_help = "Examples:\n  seq add version AT+GMR\\r\n  seq add --hex --every 1s poll 01 03 00 00 00 0a c5 cd\n  seq save"
    )]
    Seq(SeqAction),
    /// Run Lua: lua CHUNK (the rest of the line); a .lua file with source or run
    #[command(after_help = LUA_HELP)]
    Lua {
        #[arg(value_name = "CHUNK", trailing_var_arg = true, allow_hyphen_values = true)]
        chunk: Vec<String>,
    },
    /// Run the commands of a script file, in order; a .lua file runs as Lua (in the TUI: Ctrl-C stops it)
    Source {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// End the script (or the TUI)
    Quit,
}

#[derive(Subcommand, Debug)]
enum SeqAction {
    /// Add (or replace) a sequence: its name and payload
    Add {
        /// The payload is hex digits
        #[arg(long)]
        hex: bool,
        /// A normal-mode key that sends it (`f5`)
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Repeat it this often until stopped
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        every: Option<Duration>,
        /// Wait for this regex after sending
        #[arg(long, value_name = "REGEX")]
        expect: Option<String>,
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(
            value_name = "PAYLOAD",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        payload: Vec<String>,
    },
    /// Remove a sequence
    Rm {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Write the sequences to their file
    Save,
}

/// `--crc NAME [--crc-range START..END]`: a checksum appended to a payload.
#[derive(Args, Clone, Debug, Default)]
struct CrcArgs {
    /// Append this checksum: crc16-modbus, crc16-xmodem, crc16-ccitt-false, crc16-kermit, crc32, crc8, xor8, sum8, lrc (:le/:be for the byte order)
    #[arg(long, value_name = "NAME", value_parser = crate::core::checksum::Checksum::parse)]
    crc: Option<crate::core::checksum::Checksum>,
    /// Checksum only these bytes of the payload (e.g. 1.. skips a start byte)
    #[arg(long, value_name = "START..END", requires = "crc", value_parser = crate::core::checksum::Range::parse)]
    crc_range: Option<crate::core::checksum::Range>,
}

impl CrcArgs {
    fn spec(&self) -> Option<(crate::core::checksum::Checksum, crate::core::checksum::Range)> {
        self.crc.map(|c| (c, self.crc_range.unwrap_or_default()))
    }
}

fn invalid(text: impl Into<String>) -> CoreError {
    CoreError::new(ErrorCode::CommandInvalid, text)
}

/// clap's message as one line: the error, then the usage.
fn clap_error_text(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses one line. `Ok(None)` for blank and comment lines.
pub fn parse_line(line: &str) -> CoreResult<Option<Parsed>> {
    // `lua CHUNK`: Lua's own quoting, not the shell's.
    if let Some(chunk) = line.trim_start().strip_prefix("lua")
        && chunk.starts_with([' ', '\t'])
        && !matches!(chunk.trim(), "--help" | "-h")
    {
        return Ok(Some(Parsed::Lua(chunk.trim().to_string())));
    }
    let mut words = words::split(line).map_err(|e| invalid(format!("{e} in {line:?}")))?;
    if words.is_empty() {
        return Ok(None);
    }
    // `CMD --help` is `help CMD`: the usage, never a payload (`send --help`
    // would otherwise send the bytes `--help`).
    if words.len() == 2 && matches!(words[1].as_str(), "--help" | "-h") && words[0] != "help" {
        words = vec!["help".to_string(), words.swap_remove(0)];
    }
    let parsed = match Line::try_parse_from(&words) {
        Ok(parsed) => parsed,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    Ok(Some(Parsed::Help(e.render().to_string())))
                }
                _ => Err(invalid(clap_error_text(&e))),
            };
        }
    };
    lower(parsed.command).map(Some)
}

/// nc's `-w 3`: seconds (a duration with a unit works too).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
        Ok(_) => Err(format!("{text:?} is not a number of seconds")),
        Err(_) => parse_duration(text),
    }
}

/// A colour name of [`COLOURS`] or `#rrggbb`.
pub fn valid_colour(c: &str) -> bool {
    COLOURS.contains(&c)
        || c.strip_prefix('#')
            .is_some_and(|hex| hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

const PROXY_HELP: &str = "Each client is connected to the target and the pair is one session of kind\nproxy: what the client sends (c2s) is its received data, what it gets (s2c)\nits sent data, both in its scrollback and its transcript (`<` c2s, `>` s2c;\nreplay --raw c2s|s2c). A FIN from one side half-closes the other, a reset\nresets it; a target that cannot be reached closes the client with an error.\n--tls-in terminates the clients' TLS here, --tls-out speaks TLS to the\ntarget; without them bytes pass as they come.\n\nExamples:\n  proxy 8080 device.local:80\n  proxy --tls-in --cert me.pem --key me.key --tls-out --insecure 8443 device:443\n  send --dir c2s 'GET / HTTP/1.0\\r\\n'       (to the server, as if from the client)\n  hold s2c                                   (then: release s2c)";

const HIGHLIGHT_HELP: &str = "Rules apply to every session and every view (line view: the text as shown;\nhex view: the bytes). Without a colour each rule takes the next of a palette.\nColours: red green yellow blue magenta cyan white gray black, light-red …\nlight-cyan, or #rrggbb. A profile's lines may hold highlight rules.\n\nExamples:\n  highlight ERROR red\n  highlight 'temp=\\d+' cyan\n  highlight --rm hl-1";

fn compile_regex(command: &str, pattern: &str) -> CoreResult<regex::bytes::Regex> {
    regex::bytes::Regex::new(pattern).map_err(|e| {
        CoreError::new(
            ErrorCode::RegexInvalid,
            format!("{command} /{pattern}/: {}", e.to_string().replace('\n', " ")),
        )
    })
}

/// `[SESSION] VALUE`: one or two words.
fn session_and_value(args: Vec<String>) -> (Option<String>, String) {
    let mut args = args.into_iter();
    match (args.next(), args.next()) {
        (Some(a), Some(b)) => (Some(a), b),
        (Some(a), None) => (None, a),
        _ => (None, String::new()),
    }
}

fn lower(cmd: LangCommand) -> CoreResult<Parsed> {
    let core = |c| Ok(Parsed::Core(c));
    match cmd {
        LangCommand::Connect(a) => core(Command::Connect(Box::new(a.spec()?))),
        LangCommand::Listen(a) => core(Command::Listen(a.spec()?)),
        LangCommand::Proxy(a) => core(Command::Proxy(Box::new(a.spec()?))),
        LangCommand::Hold { args } => core(proxy::lower_hold(args, true)?),
        LangCommand::Release { args } => core(proxy::lower_hold(args, false)?),
        LangCommand::Udp(a) => core(Command::Udp(a.spec()?)),
        LangCommand::Serial(a) => core(a.command()?),
        LangCommand::Line { args } => core(serial::lower_line(args)?),
        LangCommand::Check { timeout, targets } => {
            let mut all = Vec::new();
            for t in &targets {
                all.extend(crate::core::probe::parse_targets(t)?);
            }
            if all.len() > crate::core::probe::MAX_PORTS {
                return Err(invalid(format!(
                    "check: {} ports, at most {} in one check",
                    all.len(),
                    crate::core::probe::MAX_PORTS
                )));
            }
            core(Command::Check {
                targets: all,
                timeout: timeout.unwrap_or(Duration::from_secs(3)),
            })
        }
        LangCommand::WaitPort { timeout, target } => core(Command::WaitPort {
            target: parse_host_port(&target)?,
            timeout: timeout.unwrap_or(Duration::from_secs(30)),
        }),
        LangCommand::Break { args } => core(serial::lower_break(args)?),
        LangCommand::Send {
            to,
            hex,
            raw,
            dir,
            crc,
            payload,
        } => {
            let text = payload.join(" ");
            let mut bytes = if hex {
                decode_hex(&text)?
            } else {
                decode_payload(&text)?
            };
            if let Some((sum, range)) = crc.spec() {
                crate::core::checksum::append(&mut bytes, sum, range);
            }
            let payload = Bytes::from(bytes);
            // Hex payloads are sent exactly, with no end of line.
            let raw = raw || hex;
            core(match dir.as_deref() {
                Some("c2s") => Command::Inject { to, payload, raw },
                _ => Command::Send { to, payload, raw },
            })
        }
        LangCommand::Waitfor {
            on,
            timeout,
            partial,
            fresh,
            regex,
        } => {
            let regex = compile_regex("waitfor", &regex.join(" "))?;
            core(Command::WaitFor {
                on,
                timeout: timeout.unwrap_or(DEFAULT_WAIT),
                regex,
                opts: crate::core::session::WaitOptions { partial, fresh },
            })
        }
        LangCommand::Accept { on, timeout } => core(Command::Accept {
            on,
            timeout: timeout.unwrap_or(DEFAULT_WAIT),
        }),
        LangCommand::Shutdown { session } => core(Command::HalfClose { session }),
        LangCommand::Disconnect { session } => core(Command::Disconnect { session }),
        LangCommand::Close { listener } => core(Command::Close { listener }),
        LangCommand::View { args } => {
            let (session, value) = session_and_value(args);
            let Some(view) = [View::Line, View::Hex, View::HexIn, View::HexOut]
                .into_iter()
                .find(|v| v.as_str() == value)
            else {
                return Err(invalid(format!(
                    "view: {value:?} is not line, hex, hex-in or hex-out. Usage: view [SESSION] line|hex|hex-in|hex-out"
                )));
            };
            core(Command::View { session, view })
        }
        LangCommand::Record { args } => {
            let (session, value) = session_and_value(args);
            let file = (value != "off").then(|| PathBuf::from(value));
            core(Command::Record { session, file })
        }
        LangCommand::On {
            on,
            once,
            hex,
            raw,
            crc,
            dir,
            rewrite,
            regex,
            action,
            payload,
        } => {
            let text = if rewrite {
                // The replacement: every word after the regex.
                std::iter::once(action)
                    .chain(payload)
                    .collect::<Vec<_>>()
                    .join(" ")
            } else if action == "send" {
                payload.join(" ")
            } else {
                return Err(invalid(format!(
                    "on: {action:?} after the regex: expected `send PAYLOAD` (or --rewrite REGEX REPLACEMENT)"
                )));
            };
            let reply = if hex {
                decode_hex(&text)?
            } else {
                decode_payload(&text)?
            };
            let regex = compile_regex("on", &regex)?;
            core(Command::On(TriggerSpec {
                on,
                regex,
                reply: Bytes::from(reply),
                raw: raw || hex,
                once,
                checksum: crc.spec(),
                notify: None,
                sample: false,
                dir: dir.as_deref().and_then(crate::core::session::RelayDir::parse),
                rewrite,
            }))
        }
        LangCommand::Plot { args } => {
            let (on, pattern) = session_and_value(args);
            let regex = compile_regex("plot", &pattern)?;
            core(Command::On(TriggerSpec {
                on,
                regex,
                reply: Bytes::new(),
                raw: true,
                once: false,
                checksum: None,
                notify: None,
                sample: true,
                dir: None,
                rewrite: false,
            }))
        }
        LangCommand::Highlight { rm: Some(id), .. } => Ok(Parsed::Display(DisplayRequest::Unhighlight(id))),
        LangCommand::Highlight { rm: None, args } => {
            let mut args = args.into_iter();
            let regex = args.next().unwrap_or_default();
            compile_regex("highlight", &regex)?;
            let colour = args.next().map(|c| c.to_ascii_lowercase());
            if let Some(c) = &colour
                && !valid_colour(c)
            {
                return Err(invalid(format!(
                    "highlight: {c:?} is not a colour: {} or #rrggbb",
                    COLOURS.join(", ")
                )));
            }
            Ok(Parsed::Display(DisplayRequest::Highlight { regex, colour }))
        }
        LangCommand::Highlights => Ok(Parsed::Display(DisplayRequest::Highlights)),
        LangCommand::Split { horizontal, session } => Ok(Parsed::Split { session, horizontal }),
        LangCommand::Unsplit => Ok(Parsed::Display(DisplayRequest::Unsplit)),
        LangCommand::Merge { sessions } => Ok(Parsed::Merge(sessions)),
        LangCommand::Filter { invert, args } => {
            let (session, value) = session_and_value(args);
            let rule = if value == "off" {
                None
            } else {
                compile_regex("filter", &value)?;
                Some(FilterRule { regex: value, invert })
            };
            Ok(Parsed::Filter { session, rule })
        }
        LangCommand::Exec { sh, pty, args } => {
            let (session, line) = session_and_value(args);
            let spec = if sh {
                crate::core::transport::exec::ExecSpec::shell(line)
            } else {
                crate::core::transport::exec::ExecSpec::program(&line)?
            };
            core(Command::Exec {
                session,
                spec: spec.on_pty(pty),
            })
        }
        LangCommand::Triggers => core(Command::Triggers),
        LangCommand::Off { id } => core(Command::Off { id }),
        LangCommand::Sessions => core(Command::Sessions),
        LangCommand::Listeners => core(Command::Listeners),
        LangCommand::Sleep { duration } => Ok(Parsed::Sleep(duration)),
        LangCommand::Profile { name } => Ok(Parsed::Profile(name)),
        LangCommand::Seq(action) => Ok(Parsed::Seq(match action {
            SeqAction::Add {
                hex,
                key,
                every,
                expect,
                name,
                payload,
            } => SeqRequest::Add {
                name,
                payload: payload.join(" "),
                hex,
                key,
                every: every.map(|d| format!("{}ms", d.as_millis())),
                expect,
            },
            SeqAction::Rm { name } => SeqRequest::Remove(name),
            SeqAction::Save => SeqRequest::Save,
        })),
        LangCommand::Repeat {
            every,
            count,
            command,
        } => {
            let line = words::join(&command);
            // One command a time: not a script, not itself.
            match parse_line(&line)? {
                Some(Parsed::Core(_)) => {}
                _ => {
                    return Err(invalid(format!(
                        "repeat runs one session command (like `send AT`), not {line:?}"
                    )));
                }
            }
            if every.is_some_and(|d| d.is_zero()) || count == Some(0) {
                return Err(invalid(
                    "repeat: --every must be more than 0 and --count at least 1",
                ));
            }
            Ok(Parsed::Repeat {
                every: every.unwrap_or(DEFAULT_EVERY),
                count,
                line,
            })
        }
        LangCommand::Source { file } => Ok(Parsed::Source(file)),
        LangCommand::Lua { chunk } => Ok(Parsed::Lua(chunk.join(" "))),
        LangCommand::Quit => Ok(Parsed::Quit),
    }
}

/// The long options of a command, for completion.
pub fn option_names(command: &str) -> Vec<String> {
    use clap::CommandFactory;
    Line::command()
        .find_subcommand(command)
        .map(|c| {
            c.get_arguments()
                .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                .collect()
        })
        .unwrap_or_default()
}

/// The names of the commands, for completion and help.
pub fn command_names() -> Vec<String> {
    use clap::CommandFactory;
    Line::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Parsed {
        parse_line(line).unwrap().unwrap()
    }

    fn err(line: &str) -> CoreError {
        parse_line(line).unwrap_err()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn blank_and_comment_lines() {
        assert!(parse_line("").unwrap().is_none());
        assert!(parse_line("  # just a comment").unwrap().is_none());
    }

    #[test]
    fn connect_with_options() {
        let Parsed::Core(Command::Connect(spec)) =
            parse("connect --label dev --tls --sni example.org --mode binary --timeout 5s [::1]:443")
        else {
            panic!("not a connect")
        };
        let Target::Ip(target) = &spec.target else {
            panic!("not an IP target")
        };
        assert_eq!(target.host, "::1");
        assert_eq!(target.port, 443);
        assert_eq!(spec.opts.label.as_deref(), Some("dev"));
        assert_eq!(spec.opts.mode, Mode::Binary);
        assert_eq!(spec.opts.timeout, Some(Duration::from_secs(5)));
        assert_eq!(spec.tls.unwrap().sni.as_deref(), Some("example.org"));
    }

    #[test]
    fn send_payloads() {
        let Parsed::Core(Command::Send { payload, raw, to }) = parse(r"send --to dev AT\r hello") else {
            panic!()
        };
        assert_eq!(&payload[..], b"AT\r hello");
        assert!(!raw);
        assert_eq!(to.as_deref(), Some("dev"));
        let Parsed::Core(Command::Send { payload, raw, .. }) = parse("send --hex de ad be ef") else {
            panic!()
        };
        assert_eq!(&payload[..], &[0xde, 0xad, 0xbe, 0xef]);
        assert!(raw);
        let Parsed::Core(Command::Send { payload, .. }) = parse("send -1 --not-an-option") else {
            panic!()
        };
        assert_eq!(&payload[..], b"-1 --not-an-option");
    }

    #[test]
    fn error_codes() {
        let e = err("frobnicate now");
        assert_eq!(e.code, ErrorCode::CommandInvalid);
        assert!(e.text.contains("frobnicate"), "{}", e.text);
        let e = err("connect --bogus 127.0.0.1:1");
        assert_eq!(e.code, ErrorCode::CommandInvalid);
        assert!(e.text.contains("Usage: connect"), "{}", e.text);
        assert_eq!(err("connect nohostport").code, ErrorCode::AddressInvalid);
        assert_eq!(err("listen 99999").code, ErrorCode::AddressInvalid);
        assert_eq!(err("send bad\\q").code, ErrorCode::PayloadInvalid);
        assert_eq!(err("send --hex xyz").code, ErrorCode::PayloadInvalid);
        assert_eq!(err("waitfor (unclosed").code, ErrorCode::RegexInvalid);
        assert_eq!(err("waitfor --timeout soon x").code, ErrorCode::CommandInvalid);
        assert_eq!(err("view hex line extra").code, ErrorCode::CommandInvalid);
        assert_eq!(err("view sideways").code, ErrorCode::CommandInvalid);
        assert_eq!(
            err("connect --insecure 127.0.0.1:1").code,
            ErrorCode::CommandInvalid
        );
        assert_eq!(err("send 'unclosed").code, ErrorCode::CommandInvalid);
        assert_eq!(err("sleep").code, ErrorCode::CommandInvalid);
    }

    #[test]
    fn expect_is_waitfor_and_help_works() {
        assert!(matches!(
            parse("expect ^OK$"),
            Parsed::Core(Command::WaitFor { .. })
        ));
        let Parsed::Help(text) = parse("help send") else {
            panic!()
        };
        assert!(text.contains("--hex"), "{text}");
        assert!(command_names().contains(&"waitfor".to_string()));
        // `CMD --help` prints the usage and sends nothing.
        for line in ["send --help", "send -h", "waitfor --help", "on --help"] {
            let Parsed::Help(text) = parse(line) else {
                panic!("{line} is not help")
            };
            assert!(text.contains("Usage"), "{line}: {text}");
        }
        // A payload that merely contains the word is still a payload.
        assert!(matches!(
            parse("send hello --help"),
            Parsed::Core(Command::Send { .. })
        ));
    }

    #[test]
    fn view_and_record_take_an_optional_session() {
        let Parsed::Core(Command::View { session, view }) = parse("view @1 hex") else {
            panic!()
        };
        assert_eq!((session.as_deref(), view), (Some("@1"), View::Hex));
        let Parsed::Core(Command::View { session, view }) = parse("view hex-in") else {
            panic!()
        };
        assert_eq!((session, view), (None, View::HexIn));
        let Parsed::Core(Command::Record { session, file }) = parse("record off") else {
            panic!()
        };
        assert_eq!((session, file), (None, None));
    }
}
