//! Events: everything that happens, in the envelope of CONTRACT section 3
//! (the error codes of section 4 are the leaf module `error`).

use std::net::SocketAddr;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::escape::escape_display;
use super::transport::{Endpoint, Kind, Target};

pub use super::addr::join_host_port;
pub use super::error::{CoreError, CoreResult, ErrorCode};

/// Why a session ended (the `reason` of `disconnected`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Local,
    Remote,
    Timeout,
    Error,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Local => "local",
            CloseReason::Remote => "remote",
            CloseReason::Timeout => "timeout",
            CloseReason::Error => "error",
        }
    }
}

/// One row of the `sessions` listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `out`, `in` or `udp`.
    pub direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_id: Option<String>,
    pub local_addr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    pub state: String,
    pub tls: bool,
    /// The transport: tcp, tls, udp, udp-peer, unix.
    pub kind: &'static str,
    pub mode: &'static str,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One row of the `listeners` listing.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerInfo {
    pub listener_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub local_addr: String,
    pub tls: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub udp: bool,
    pub clients: usize,
    pub max_connections: usize,
    pub state: &'static str,
}

/// What happened; the `event` field and its extra fields.
#[derive(Clone, Debug)]
pub enum EventKind {
    Connecting {
        target: Target,
    },
    /// An outbound link is open; `kind` says which transport.
    Connected {
        remote: Endpoint,
        local: Endpoint,
        kind: Kind,
        insecure: bool,
        /// `--proxy`: the proxy the link goes through.
        via: Option<Box<crate::core::transport::via::Via>>,
        /// TLS: the version and cipher suite agreed on.
        cipher: Option<String>,
    },
    /// A listener (or a UDP socket, `kind` udp) is bound.
    Listening {
        local: Endpoint,
        kind: Kind,
        /// The connection limit (listeners only).
        max_connections: Option<usize>,
        /// SHA-256 of a self-signed certificate made for this listener.
        fingerprint: Option<String>,
    },
    Accepted {
        remote: Endpoint,
        kind: Kind,
        /// TLS: the version and cipher suite the handshake agreed on.
        cipher: Option<String>,
    },
    /// Received bytes: one line (without its terminator) in line mode, one
    /// chunk in binary mode, one datagram for UDP. `count` is the number of
    /// received bytes this event accounts for, terminator included.
    Data {
        payload: Bytes,
        count: usize,
        from: Option<SocketAddr>,
        /// Line mode: the terminator the line ended with (front ends that
        /// show exact bytes use it; not in the JSON).
        eol: &'static [u8],
        /// `--check`: whether the frame ends with its checksum (`crcOk`).
        check: Option<bool>,
    },
    /// Bytes handed to the kernel. `payload` is for front ends that show
    /// them (not in the JSON, which carries the count).
    /// Several `data` events (lines of one read) in one: front ends that
    /// show events one by one use [`Event::expand`]; the JSON and readable
    /// forms are those of the single events, one per line.
    DataBatch(Vec<DataLine>),
    /// Line mode: received bytes of a line whose end has not arrived (a
    /// prompt, `login: `): the bytes since the last report, shown at once.
    /// When the line ends, its `data` event carries the whole line and
    /// counts only the bytes not counted here. JSON: `data` with
    /// `"partial": true`.
    DataPartial {
        payload: Bytes,
        count: usize,
    },
    Sent {
        message_id: u64,
        bytes: usize,
        payload: Bytes,
        /// The trigger that sent it, if one did.
        trigger: Option<String>,
    },
    Match {
        lines: Vec<String>,
        matched: String,
        /// The matched bytes exactly (not in the JSON, which has `matched`).
        raw: Bytes,
    },
    Disconnecting,
    /// The peer ended its output; the session can still send (a half-open
    /// session). `note` says how it ended when that matters (a TLS peer
    /// that closed without `close_notify`).
    Eof {
        note: Option<String>,
    },
    Disconnected {
        reason: CloseReason,
    },
    /// `connect --reconnect`: the connection was lost (or the previous
    /// attempt failed, `cause` says which); attempt `attempt` starts after `delay`.
    Reconnecting {
        attempt: u32,
        delay: std::time::Duration,
        cause: String,
    },
    Closed,
    Timeout,
    Error,
    Sessions(Vec<SessionInfo>),
    Listeners(Vec<ListenerInfo>),
    Triggers(Vec<super::trigger::TriggerInfo>),
    /// Free text answering `help`.
    Info(String),
    /// A serial port's modem lines: when the inputs change (polled), when
    /// an output is set, and once when the port opens.
    Modem(super::transport::serial::ModemLines),
    /// `serial --list`: the ports present.
    Ports(Vec<super::transport::serial::PortInfo>),
    /// `plot`: the numbers a received line held, one per series.
    Sample {
        plot: String,
        series: Vec<String>,
        values: Vec<Option<f64>>,
    },
    /// `check`/`wait-for`: a port tried; why it is not open.
    Check {
        target: super::addr::HostPort,
        open: bool,
        reason: Option<String>,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Connecting { .. } => "connecting",
            EventKind::Connected { .. } => "connected",
            EventKind::Listening { .. } => "listening",
            EventKind::Accepted { .. } => "accepted",
            EventKind::Data { .. } | EventKind::DataBatch(_) | EventKind::DataPartial { .. } => "data",
            EventKind::Sent { .. } => "sent",
            EventKind::Match { .. } => "match",
            EventKind::Disconnecting => "disconnecting",
            EventKind::Eof { .. } => "eof",
            EventKind::Disconnected { .. } => "disconnected",
            EventKind::Reconnecting { .. } => "reconnecting",
            EventKind::Closed => "closed",
            EventKind::Timeout => "timeout",
            EventKind::Error => "error",
            EventKind::Sessions(_) => "sessions",
            EventKind::Listeners(_) => "listeners",
            EventKind::Triggers(_) => "triggers",
            EventKind::Info(_) => "info",
            EventKind::Modem(_) => "modem",
            EventKind::Ports(_) => "ports",
            EventKind::Check { .. } => "check",
            EventKind::Sample { .. } => "sample",
        }
    }
}

/// How a session frames, ends and maps lines (`--mode`, `--eol`,
/// `--imap`/`--omap`), on the events that open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Framing {
    pub mode: crate::core::command::Mode,
    pub eol: crate::core::command::Eol,
    pub map: crate::core::linemap::LineMap,
}

/// One line of a [`EventKind::DataBatch`].
#[derive(Clone, Debug)]
pub struct DataLine {
    pub payload: Bytes,
    pub count: usize,
    pub eol: &'static [u8],
}

/// The event envelope.
#[derive(Clone, Debug)]
pub struct Event {
    pub timestamp: DateTime<Utc>,
    pub kind: EventKind,
    pub session_id: Option<String>,
    pub listener_id: Option<String>,
    /// The `--label` of the session or listener, on the events that open it.
    pub label: Option<String>,
    /// How the session frames and ends lines (`--mode`, `--eol`), on the
    /// events that open a session: front ends show binary ones as hex and
    /// end a typed line with the session's end of line.
    pub framing: Option<Framing>,
    /// A serial port's settings, on the events that open it.
    pub port: Option<super::transport::serial::PortSettings>,
    /// A proxy's target, on the events that open its listener and sessions.
    pub target: Option<String>,
    /// A proxy session's direction of a `data` or `sent` event: `c2s`
    /// (from its client, on to the server) or `s2c`.
    pub dir: Option<&'static str>,
    pub error: Option<CoreError>,
}

impl Event {
    pub fn new(kind: EventKind) -> Self {
        Event {
            timestamp: Utc::now(),
            kind,
            session_id: None,
            listener_id: None,
            label: None,
            framing: None,
            port: None,
            target: None,
            dir: None,
            error: None,
        }
    }

    pub fn labelled(mut self, label: Option<&str>) -> Self {
        self.label = label.map(str::to_string);
        self
    }

    pub fn error(err: CoreError) -> Self {
        Event::new(EventKind::Error).with_error(err)
    }

    pub fn session(mut self, id: &str) -> Self {
        self.session_id = Some(id.to_string());
        self
    }

    pub fn session_opt(mut self, id: Option<&str>) -> Self {
        self.session_id = id.map(str::to_string);
        self
    }

    pub fn listener(mut self, id: &str) -> Self {
        self.listener_id = Some(id.to_string());
        self
    }

    pub fn listener_opt(mut self, id: Option<&str>) -> Self {
        self.listener_id = id.map(str::to_string);
        self
    }

    pub fn with_error(mut self, err: CoreError) -> Self {
        self.error = Some(err);
        self
    }

    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }

    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Single events: a batch becomes one `data` event per line (same
    /// timestamp, session and listener); anything else is itself.
    pub fn expand(self) -> Vec<Event> {
        match &self.kind {
            EventKind::DataBatch(lines) => lines.iter().map(|l| self.single(l)).collect(),
            _ => vec![self],
        }
    }

    /// The `data` event of one line of this batch.
    fn single(&self, l: &DataLine) -> Event {
        Event {
            timestamp: self.timestamp,
            kind: EventKind::Data {
                payload: l.payload.clone(),
                count: l.count,
                from: None,
                eol: l.eol,
                check: None,
            },
            session_id: self.session_id.clone(),
            listener_id: self.listener_id.clone(),
            label: None,
            framing: None,
            port: None,
            target: None,
            dir: self.dir,
            error: None,
        }
    }

    /// Calls `f` with each single event (a batch: one per line, made one
    /// at a time, so a batch of 64 Ki lines never exists twice in memory).
    pub fn for_each_single(&self, mut f: impl FnMut(&Event)) {
        let EventKind::DataBatch(lines) = &self.kind else {
            f(self);
            return;
        };
        for l in lines {
            f(&self.single(l));
        }
    }

    /// A batch formatted as its single events, one per line.
    fn each_line(&self, format: fn(&Event) -> String) -> String {
        let mut out = Vec::new();
        self.for_each_single(|e| out.push(format(e)));
        out.join("\n")
    }

    /// One JSON object, as printed by `--json` (a batch: one per line).
    pub fn to_json(&self) -> String {
        if let EventKind::DataBatch(_) = self.kind {
            return self.each_line(Event::to_json);
        }
        // Serialising our own types to a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The readable one-line form printed by `run` without `--json`:
    /// `03:44:01.123 sess-1a2b3c4d connected 127.0.0.1:2323`.
    /// Peer bytes are escaped so they never reach the terminal raw.
    pub fn to_readable(&self) -> String {
        if let EventKind::DataBatch(_) = self.kind {
            return self.each_line(Event::to_readable);
        }
        let mut out = String::with_capacity(96);
        {
            // `format("%H:%M:%S%.3f")` parses its pattern every time (and
            // `write!` pads through the formatter): a flood of data lines
            // spent a tenth of `run` on the time alone.
            use chrono::Timelike;
            let t = self.timestamp;
            let ms = t.timestamp_subsec_millis().min(999);
            let digits = [
                t.hour() / 10,
                t.hour() % 10,
                10,
                t.minute() / 10,
                t.minute() % 10,
                10,
                t.second() / 10,
                t.second() % 10,
                11,
                ms / 100,
                ms / 10 % 10,
                ms % 10,
            ];
            out.extend(digits.iter().map(|&d| match d {
                10 => ':',
                11 => '.',
                d => char::from(b'0' + d as u8),
            }));
        }
        out.push(' ');
        match (&self.session_id, &self.listener_id) {
            (Some(s), _) => out.push_str(&short_id(s)),
            (None, Some(l)) => out.push_str(&short_id(l)),
            (None, None) => out.push('-'),
        }
        out.push(' ');
        match &self.kind {
            EventKind::Connecting { target } => out.push_str(&format!(
                "connecting {}",
                escape_display(target.to_string().as_bytes())
            )),
            EventKind::Connected {
                remote,
                local,
                kind,
                insecure,
                via,
                cipher,
            } => {
                out.push_str(&format!(
                    "connected {} (local {}",
                    escape_display(remote.to_string().as_bytes()),
                    escape_display(local.to_string().as_bytes())
                ));
                if kind.is_tls() {
                    out.push_str(", tls");
                    if let Some(cipher) = cipher {
                        out.push_str(&format!(" {cipher}"));
                    }
                }
                if let Some(port) = &self.port {
                    out.push_str(&format!(", {}", port.describe()));
                }
                if let Some(via) = via {
                    out.push_str(&format!(", via {}", escape_display(via.to_string().as_bytes())));
                }
                if *insecure {
                    out.push_str(", INSECURE: certificate not verified");
                }
                out.push(')');
            }
            EventKind::Listening {
                local,
                kind,
                fingerprint,
                ..
            } => {
                out.push_str(&format!(
                    "listening {}",
                    escape_display(local.to_string().as_bytes())
                ));
                if kind.is_udp() {
                    out.push_str(" udp");
                }
                if kind.is_tls() {
                    out.push_str(" tls");
                }
                if let Some(fp) = fingerprint {
                    out.push_str(&format!(" self-signed sha256={fp}"));
                }
            }
            EventKind::Accepted { remote, cipher, .. } => {
                out.push_str(&format!(
                    "accepted {}",
                    escape_display(remote.to_string().as_bytes())
                ));
                if let Some(l) = &self.listener_id {
                    out.push_str(&format!(" on {}", short_id(l)));
                }
                if let Some(cipher) = cipher {
                    out.push_str(&format!(" (tls {cipher})"));
                }
            }
            EventKind::Data {
                payload, from, check, ..
            } => {
                // A proxy session's: `c2s …`.
                match self.dir {
                    Some(dir) => out.push_str(&format!("{dir} ")),
                    None => out.push_str("< "),
                }
                if let Some(from) = from {
                    out.push_str(&format!("[{from}] "));
                }
                out.push_str(&escape_display(payload));
                if *check == Some(false) {
                    out.push_str("  (checksum bad)");
                }
            }
            // `<…`: the line goes on (its end has not arrived).
            EventKind::DataPartial { payload, .. } => {
                out.push_str("<… ");
                out.push_str(&escape_display(payload));
            }
            // A proxy session's relayed bytes, by direction.
            EventKind::Sent { payload, .. } if self.dir.is_some() => {
                out.push_str(&format!("{} ", self.dir.unwrap_or_default()));
                out.push_str(&escape_display(payload));
            }
            EventKind::Sent {
                message_id,
                bytes,
                trigger,
                ..
            } => {
                out.push_str(&format!("> sent {bytes} bytes (message {message_id})"));
                if let Some(t) = trigger {
                    out.push_str(&format!(" by {t}"));
                }
            }
            EventKind::Match { matched, lines, .. } => {
                out.push_str(&format!("match {:?}", matched));
                if !lines.is_empty() {
                    out.push_str(&format!(" after {} line(s)", lines.len()));
                }
            }
            EventKind::DataBatch(_) => {}
            EventKind::Disconnecting => out.push_str("disconnecting"),
            EventKind::Eof { note } => {
                out.push_str("eof (the peer ended its output)");
                if let Some(note) = note {
                    out.push_str(&format!(": {}", escape_display(note.as_bytes())));
                }
            }
            EventKind::Disconnected { reason } => out.push_str(&format!("disconnected {}", reason.as_str())),
            EventKind::Reconnecting {
                attempt,
                delay,
                cause,
            } => out.push_str(&format!(
                "reconnecting in {} (attempt {attempt}): {}",
                super::util::format_duration(*delay),
                escape_display(cause.as_bytes())
            )),
            EventKind::Closed => out.push_str("closed"),
            EventKind::Timeout => out.push_str("timeout"),
            EventKind::Error => out.push_str("error"),
            EventKind::Sessions(list) => {
                out.push_str(&format!("sessions ({})", list.len()));
                for s in list {
                    out.push_str(&format!(
                        "\n  {} {:<3} {} {} {} in={} out={}{}",
                        short_id(&s.session_id),
                        s.direction,
                        s.peer.as_deref().unwrap_or("-"),
                        s.state,
                        s.mode,
                        s.bytes_in,
                        s.bytes_out,
                        s.label
                            .as_deref()
                            .map(|l| format!(" label={}", escape_display(l.as_bytes())))
                            .unwrap_or_default()
                    ));
                }
            }
            EventKind::Triggers(list) => {
                out.push_str(&format!("triggers ({})", list.len()));
                for t in list {
                    out.push_str(&format!(
                        "\n  {} on {} /{}/ -> {}{} (fired {})",
                        t.trigger_id,
                        short_id(&t.on),
                        escape_display(t.regex.as_bytes()),
                        t.reply,
                        if t.once { " once" } else { "" },
                        t.fired
                    ));
                }
            }
            EventKind::Listeners(list) => {
                out.push_str(&format!("listeners ({})", list.len()));
                for l in list {
                    out.push_str(&format!(
                        "\n  {} {}{} {}/{} {}",
                        short_id(&l.listener_id),
                        l.local_addr,
                        if l.tls { " tls" } else { "" },
                        l.clients,
                        l.max_connections,
                        l.state
                    ));
                }
            }
            EventKind::Info(text) => out.push_str(text),
            EventKind::Modem(lines) => {
                out.push_str("modem ");
                out.push_str(&lines.describe());
            }
            EventKind::Sample { plot, series, values } => {
                out.push_str(&format!("sample {plot}"));
                for (name, value) in series.iter().zip(values) {
                    match value {
                        Some(v) => out.push_str(&format!(" {}={v}", escape_display(name.as_bytes()))),
                        None => out.push_str(&format!(" {}=-", escape_display(name.as_bytes()))),
                    }
                }
            }
            EventKind::Check { target, open, reason } => {
                out.push_str(&format!(
                    "check {} {}",
                    escape_display(target.to_string().as_bytes()),
                    if *open { "open" } else { "closed" }
                ));
                if let Some(why) = reason {
                    out.push_str(&format!(": {}", escape_display(why.as_bytes())));
                }
            }
            EventKind::Ports(list) => {
                out.push_str(&format!("ports ({})", list.len()));
                for p in list {
                    out.push_str("\n  ");
                    out.push_str(&escape_display(p.describe().as_bytes()));
                }
            }
        }
        if let Some(err) = &self.error {
            out.push_str(&format!(" {}: {}", err.code, escape_display(err.text.as_bytes())));
        }
        out
    }
}

/// `sess-1a2b3c4d-…` shortens to `sess-1a2b3c4d`; ids forced with `--id` stay whole.
pub fn short_id(id: &str) -> String {
    for prefix in ["sess-", "lstn-"] {
        if let Some(rest) = id.strip_prefix(prefix)
            && rest.len() == 36
            && uuid::Uuid::parse_str(rest).is_ok()
        {
            return format!("{prefix}{}", &rest[..8]);
        }
    }
    id.to_string()
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "timestamp",
            &self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
        )?;
        map.serialize_entry("status", if self.is_error() { "error" } else { "ok" })?;
        map.serialize_entry("event", self.kind.name())?;
        if let Some(s) = &self.session_id {
            map.serialize_entry("sessionId", s)?;
        }
        if let Some(l) = &self.listener_id {
            map.serialize_entry("listenerId", l)?;
        }
        if let Some(l) = &self.label {
            map.serialize_entry("label", l)?;
        }
        if let Some(f) = &self.framing {
            map.serialize_entry("mode", f.mode.as_str())?;
            map.serialize_entry("eol", f.eol.as_str())?;
            if !f.map.input.is_empty() {
                map.serialize_entry("imap", &f.map.input_names())?;
            }
            if !f.map.output.is_empty() {
                map.serialize_entry("omap", &f.map.output_names())?;
            }
        }
        if let Some(port) = &self.port {
            map.serialize_entry("baud", &port.baud)?;
            map.serialize_entry("dataBits", &port.data)?;
            map.serialize_entry("parity", port.parity.as_str())?;
            map.serialize_entry("stopBits", &port.stop)?;
            map.serialize_entry("flow", port.flow.as_str())?;
        }
        if let Some(err) = &self.error {
            map.serialize_entry("errorCode", err.code.as_str())?;
            map.serialize_entry("errorText", &err.text)?;
        }
        if let Some(target) = &self.target {
            map.serialize_entry("target", target)?;
        }
        if let Some(dir) = self.dir {
            map.serialize_entry("dir", dir)?;
        }
        match &self.kind {
            EventKind::Connecting { target } => match target {
                Target::Ip(hp) => {
                    map.serialize_entry("host", &hp.host)?;
                    map.serialize_entry("port", &hp.port)?;
                }
                Target::Unix(path) => map.serialize_entry("path", &path.display().to_string())?,
                Target::Serial(port) => map.serialize_entry("path", &port.path.display().to_string())?,
                Target::Rfc2217(t) => {
                    map.serialize_entry("host", &t.addr.host)?;
                    map.serialize_entry("port", &t.addr.port)?;
                }
            },
            EventKind::Connected {
                remote,
                local,
                kind,
                insecure,
                via,
                cipher,
            } => {
                serialize_endpoint(&mut map, "remote", remote)?;
                if let Some(cipher) = cipher {
                    map.serialize_entry("tlsCipher", cipher)?;
                }
                if let Some(via) = via {
                    map.serialize_entry("proxy", &via.proxy.to_string())?;
                    map.serialize_entry("proxyType", via.kind.as_str())?;
                }
                map.serialize_entry("localAddr", &local.to_string())?;
                map.serialize_entry("tls", &kind.is_tls())?;
                if kind.is_tls() {
                    map.serialize_entry("insecure", insecure)?;
                }
                map.serialize_entry("kind", kind.as_str())?;
            }
            EventKind::Listening {
                local,
                kind,
                fingerprint,
                max_connections,
            } => {
                serialize_endpoint(&mut map, "local", local)?;
                map.serialize_entry("tls", &kind.is_tls())?;
                if kind.is_udp() {
                    map.serialize_entry("udp", &true)?;
                }
                map.serialize_entry("kind", kind.as_str())?;
                if let Some(max) = max_connections {
                    map.serialize_entry("maxConnections", max)?;
                }
                if let Some(fp) = fingerprint {
                    map.serialize_entry("fingerprint", fp)?;
                }
            }
            EventKind::Accepted { remote, kind, cipher } => {
                serialize_endpoint(&mut map, "remote", remote)?;
                if let Some(cipher) = cipher {
                    map.serialize_entry("tlsCipher", cipher)?;
                }
                map.serialize_entry("kind", kind.as_str())?;
            }
            EventKind::Data {
                payload,
                count,
                from,
                check,
                ..
            } => {
                map.serialize_entry("bytes", count)?;
                if let Some(ok) = check {
                    map.serialize_entry("crcOk", ok)?;
                }
                match std::str::from_utf8(payload) {
                    Ok(text) => map.serialize_entry("text", text)?,
                    Err(_) => map.serialize_entry("hex", &hex::encode(payload))?,
                }
                if let Some(from) = from {
                    map.serialize_entry("remoteHost", &from.ip().to_string())?;
                    map.serialize_entry("remotePort", &from.port())?;
                }
            }
            EventKind::DataPartial { payload, count } => {
                map.serialize_entry("bytes", count)?;
                match std::str::from_utf8(payload) {
                    Ok(text) => map.serialize_entry("text", text)?,
                    Err(_) => map.serialize_entry("hex", &hex::encode(payload))?,
                }
                map.serialize_entry("partial", &true)?;
            }
            EventKind::Sent {
                message_id,
                bytes,
                trigger,
                payload,
            } => {
                map.serialize_entry("messageId", message_id)?;
                map.serialize_entry("bytes", bytes)?;
                if let Some(t) = trigger {
                    map.serialize_entry("triggerId", t)?;
                }
                // A proxy's relayed bytes are data, as received bytes are.
                if self.dir.is_some() {
                    match std::str::from_utf8(payload) {
                        Ok(text) => map.serialize_entry("text", text)?,
                        Err(_) => map.serialize_entry("hex", &hex::encode(payload))?,
                    }
                }
            }
            EventKind::Match { lines, matched, .. } => {
                map.serialize_entry("lines", lines)?;
                map.serialize_entry("match", matched)?;
            }
            EventKind::Disconnected { reason } => {
                map.serialize_entry("reason", reason.as_str())?;
            }
            EventKind::Eof { note } => {
                if let Some(note) = note {
                    map.serialize_entry("note", note)?;
                }
            }
            EventKind::Reconnecting {
                attempt,
                delay,
                cause,
            } => {
                map.serialize_entry("attempt", attempt)?;
                map.serialize_entry("delayMs", &(delay.as_millis() as u64))?;
                map.serialize_entry("cause", cause)?;
            }
            EventKind::Sessions(list) => map.serialize_entry("sessions", list)?,
            EventKind::Listeners(list) => map.serialize_entry("listeners", list)?,
            EventKind::Triggers(list) => map.serialize_entry("triggers", list)?,
            EventKind::Info(text) => map.serialize_entry("text", text)?,
            EventKind::Modem(lines) => {
                for (name, value) in lines.named() {
                    if let Some(on) = value {
                        map.serialize_entry(&name.to_ascii_lowercase(), &on)?;
                    }
                }
            }
            EventKind::Ports(list) => map.serialize_entry("ports", list)?,
            EventKind::Sample { plot, series, values } => {
                map.serialize_entry("plot", plot)?;
                map.serialize_entry("series", series)?;
                map.serialize_entry("values", values)?;
            }
            EventKind::Check { target, open, reason } => {
                map.serialize_entry("host", &target.host)?;
                map.serialize_entry("port", &target.port)?;
                map.serialize_entry("open", open)?;
                if let Some(why) = reason {
                    map.serialize_entry("reason", why)?;
                }
            }
            EventKind::DataBatch(_)
            | EventKind::Disconnecting
            | EventKind::Closed
            | EventKind::Timeout
            | EventKind::Error => {}
        }
        map.end()
    }
}

/// An endpoint as the contract's fields: `{side}Host` and `{side}Port`
/// for IP, `{side}Path` for a Unix socket.
fn serialize_endpoint<M: SerializeMap>(map: &mut M, side: &str, end: &Endpoint) -> Result<(), M::Error> {
    match end {
        Endpoint::Ip(a) => {
            map.serialize_entry(&format!("{side}Host"), &a.ip().to_string())?;
            map.serialize_entry(&format!("{side}Port"), &a.port())
        }
        Endpoint::Unix(path) => map.serialize_entry(
            &format!("{side}Path"),
            &path.as_ref().map(|p| p.display().to_string()),
        ),
        Endpoint::Device(path) => map.serialize_entry(&format!("{side}Path"), &path.display().to_string()),
        Endpoint::Name(hp) => {
            map.serialize_entry(&format!("{side}Host"), &hp.host)?;
            map.serialize_entry(&format!("{side}Port"), &hp.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_envelope_has_contract_fields() {
        let ev = Event::new(EventKind::Connected {
            remote: "127.0.0.1:2323".parse().unwrap(),
            local: "127.0.0.1:50432".parse().unwrap(),
            kind: crate::core::transport::Kind::Tcp,
            insecure: false,
            via: None,
            cipher: None,
        })
        .session("sess-1");
        let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(v["status"], "ok");
        assert_eq!(v["event"], "connected");
        assert_eq!(v["sessionId"], "sess-1");
        assert_eq!(v["remoteHost"], "127.0.0.1");
        assert_eq!(v["remotePort"], 2323);
        assert_eq!(v["localAddr"], "127.0.0.1:50432");
        assert_eq!(v["tls"], false);
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-23T03:44:01.123Z".len());
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn error_event_carries_code_and_text() {
        let ev = Event::error(CoreError::new(ErrorCode::ConnectRefused, "refused by x"));
        let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorCode"], "CONNECT_REFUSED");
        assert_eq!(v["errorText"], "refused by x");
    }

    #[test]
    fn data_is_text_or_hex() {
        let text = Event::new(EventKind::Data {
            payload: Bytes::from_static(b"hi"),
            count: 3,
            from: None,
            eol: b"\n",
            check: None,
        });
        let v: serde_json::Value = serde_json::from_str(&text.to_json()).unwrap();
        assert_eq!(v["text"], "hi");
        assert_eq!(v["bytes"], 3);
        let bin = Event::new(EventKind::Data {
            payload: Bytes::from_static(b"\xff\x00"),
            count: 2,
            from: None,
            eol: b"",
            check: None,
        });
        let v: serde_json::Value = serde_json::from_str(&bin.to_json()).unwrap();
        assert_eq!(v["hex"], "ff00");
        assert!(v.get("text").is_none());
    }

    #[test]
    fn readable_escapes_terminal_sequences() {
        let ev = Event::new(EventKind::Data {
            payload: Bytes::from_static(b"\x1b[2Jboom"),
            count: 8,
            from: None,
            eol: b"",
            check: None,
        })
        .session("sess-1a2b3c4d-0000-4000-8000-000000000000");
        let line = ev.to_readable();
        assert!(line.contains("sess-1a2b3c4d < \\x1b[2Jboom"), "{line}");
        assert!(!line.contains('\x1b'));
    }
}
