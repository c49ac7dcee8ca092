//! Serial ports (`serial /dev/ttyUSB0`): local UARTs, USB adapters and
//! pseudo-terminals, like tio and picocom. Modem lines, break, async I/O
//! and the list of ports come from `serial2`/`serial2-tokio`; termios
//! settings from `rustix`, which writes standard speeds as `B9600` (as
//! `stty` and other programs read them) where serial2 always writes the
//! arbitrary-speed form. The port is locked as tio and picocom lock it
//! (flock, and TIOCEXCL so programs that do not flock cannot open it).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Endpoint, Io, Kind, Link, ReadSide};
use crate::core::error::{CoreError, CoreResult, ErrorCode};

/// Parity bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

impl Parity {
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }

    /// The letter of `8N1`.
    fn letter(self) -> char {
        match self {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        }
    }
}

impl std::str::FromStr for Parity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "none" | "n" => Ok(Parity::None),
            "even" | "e" => Ok(Parity::Even),
            "odd" | "o" => Ok(Parity::Odd),
            _ => Err(format!("{text:?} is not a parity: none, even or odd")),
        }
    }
}

/// Flow control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Flow {
    #[default]
    None,
    RtsCts,
    XonXoff,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::None => "none",
            Flow::RtsCts => "rts-cts",
            Flow::XonXoff => "xon-xoff",
        }
    }
}

impl std::str::FromStr for Flow {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(Flow::None),
            "rts-cts" | "hard" | "hw" => Ok(Flow::RtsCts),
            "xon-xoff" | "soft" | "sw" => Ok(Flow::XonXoff),
            _ => Err(format!(
                "{text:?} is not a flow control: none, rts-cts or xon-xoff"
            )),
        }
    }
}

/// How a port is set up: speed, frame and flow control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortSettings {
    pub baud: u32,
    /// Data bits, 5 to 8.
    pub data: u8,
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    pub stop: u8,
    pub flow: Flow,
}

impl Default for PortSettings {
    /// 115200 8N1, no flow control: what boards' consoles speak.
    fn default() -> Self {
        PortSettings {
            baud: 115_200,
            data: 8,
            parity: Parity::None,
            stop: 1,
            flow: Flow::None,
        }
    }
}

impl PortSettings {
    /// tio's compact form: `115200`, `115200,8N1`, `9600,7E2`.
    pub fn parse_params(text: &str) -> Result<PortSettings, String> {
        let bad = || {
            format!(
                "{text:?} is not BAUD[,DPS] (e.g. 115200,8N1: data bits 5-8, parity N/E/O, stop bits 1-2)"
            )
        };
        let (baud, frame) = match text.split_once(',') {
            Some((b, f)) => (b, Some(f)),
            None => (text, None),
        };
        let mut settings = PortSettings {
            baud: parse_baud(baud)?,
            ..PortSettings::default()
        };
        if let Some(frame) = frame {
            let chars: Vec<char> = frame.chars().collect();
            let [d, p, s] = chars[..] else { return Err(bad()) };
            settings.data = parse_data_bits(&d.to_string()).map_err(|_| bad())?;
            settings.parity = p.to_string().parse().map_err(|_| bad())?;
            settings.stop = parse_stop_bits(&s.to_string()).map_err(|_| bad())?;
        }
        Ok(settings)
    }

    /// `115200 8N1`, with the flow control when there is one.
    pub fn describe(&self) -> String {
        let mut out = format!("{} {}{}{}", self.baud, self.data, self.parity.letter(), self.stop);
        if self.flow != Flow::None {
            out.push(' ');
            out.push_str(self.flow.as_str());
        }
        out
    }
}

pub fn parse_baud(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a baud rate (e.g. 115200)")),
    }
}

pub fn parse_data_bits(text: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(n @ 5..=8) => Ok(n),
        _ => Err(format!("{text:?} is not a number of data bits: 5, 6, 7 or 8")),
    }
}

pub fn parse_stop_bits(text: &str) -> Result<u8, String> {
    match text {
        "1" => Ok(1),
        "2" => Ok(2),
        _ => Err(format!("{text:?} is not a number of stop bits: 1 or 2")),
    }
}

/// What a `serial` session opens: the device, its settings, and the
/// modem lines to set once it is open (`None`: as the driver leaves them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialTarget {
    pub path: PathBuf,
    pub settings: PortSettings,
    pub dtr: Option<bool>,
    pub rts: Option<bool>,
}

impl std::fmt::Display for SerialTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

/// A modem output line the user sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLine {
    Dtr,
    Rts,
}

impl OutputLine {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputLine::Dtr => "DTR",
            OutputLine::Rts => "RTS",
        }
    }
}

impl std::str::FromStr for OutputLine {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "dtr" => Ok(OutputLine::Dtr),
            "rts" => Ok(OutputLine::Rts),
            _ => Err(format!("{text:?} is not a modem line: dtr or rts")),
        }
    }
}

/// The modem lines of a port: outputs as last set (`None`: never set
/// here), inputs as last read (`None`: the device cannot tell).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModemLines {
    pub dtr: Option<bool>,
    pub rts: Option<bool>,
    pub cts: Option<bool>,
    pub dsr: Option<bool>,
    pub dcd: Option<bool>,
    pub ri: Option<bool>,
}

impl ModemLines {
    /// `DTR on RTS on CTS off …`, the lines that are known.
    pub fn describe(&self) -> String {
        self.named()
            .iter()
            .filter_map(|(name, v)| v.map(|on| format!("{name} {}", if on { "on" } else { "off" })))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn named(&self) -> [(&'static str, Option<bool>); 6] {
        [
            ("DTR", self.dtr),
            ("RTS", self.rts),
            ("CTS", self.cts),
            ("DSR", self.dsr),
            ("DCD", self.dcd),
            ("RI", self.ri),
        ]
    }
}

/// An open, locked port, shared by the session's reader, writer and
/// modem-line commands.
pub(crate) struct Port {
    port: serial2_tokio::SerialPort,
    /// Holds the flock while the port is open.
    _lock: std::fs::File,
    pub path: PathBuf,
    pub settings: PortSettings,
    /// A pseudo-terminal: no modem lines, no break.
    pty: bool,
    outputs: Mutex<(Option<bool>, Option<bool>)>,
}

impl Port {
    /// Sets DTR or RTS.
    pub fn set_line(&self, line: OutputLine, on: bool) -> CoreResult<()> {
        let port = &self.port;
        let done = match line {
            OutputLine::Dtr => port.set_dtr(on),
            OutputLine::Rts => port.set_rts(on),
        };
        done.map_err(|e| self.line_error(line.as_str(), e))?;
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        match line {
            OutputLine::Dtr => outputs.0 = Some(on),
            OutputLine::Rts => outputs.1 = Some(on),
        }
        Ok(())
    }

    /// The output line as last set here.
    pub fn line(&self, line: OutputLine) -> Option<bool> {
        let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        match line {
            OutputLine::Dtr => outputs.0,
            OutputLine::Rts => outputs.1,
        }
    }

    /// Holds the line in break for `length`.
    pub async fn send_break(&self, length: Duration) -> CoreResult<()> {
        if self.pty {
            return Err(self.unsupported("break"));
        }
        let port = &self.port;
        port.set_break(true).map_err(|e| self.line_error("break", e))?;
        tokio::time::sleep(length).await;
        port.set_break(false).map_err(|e| self.line_error("break", e))
    }

    /// Reads the input lines; `None`: the device has none (a pty).
    pub fn modem(&self) -> Option<ModemLines> {
        let port = &self.port;
        let (dtr, rts) = *self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        Some(ModemLines {
            dtr,
            rts,
            cts: Some(port.read_cts().ok()?),
            dsr: Some(port.read_dsr().ok()?),
            dcd: Some(port.read_cd().ok()?),
            ri: Some(port.read_ri().ok()?),
        })
    }

    fn unsupported(&self, what: &str) -> CoreError {
        CoreError::new(
            ErrorCode::SerialLineUnsupported,
            format!(
                "{}: no {what}: it is a pseudo-terminal, which has no modem lines or break",
                self.path.display()
            ),
        )
    }

    fn line_error(&self, what: &str, e: std::io::Error) -> CoreError {
        if self.pty {
            return self.unsupported(what);
        }
        if e.raw_os_error() == Some(libc::ENOTTY) || e.raw_os_error() == Some(libc::EINVAL) {
            return CoreError::new(
                ErrorCode::SerialLineUnsupported,
                format!(
                    "{}: cannot set {what}: the device has no modem control lines ({e})",
                    self.path.display()
                ),
            );
        }
        CoreError::new(
            ErrorCode::IoError,
            format!("{}: setting {what} failed: {e}", self.path.display()),
        )
    }
}

/// Whether the device's path is there (a USB adapter plugged in).
pub(crate) async fn present(path: &Path) -> bool {
    tokio::fs::metadata(path).await.is_ok()
}

/// How often a `--wait`/`--reconnect` session looks for its device to
/// come back: quick enough that a replug is noticed at once, slow enough
/// to cost nothing.
pub(crate) const PRESENCE_POLL: Duration = Duration::from_millis(200);

/// Waits until the device's path exists.
pub(crate) async fn wait_present(path: &Path) {
    while !present(path).await {
        tokio::time::sleep(PRESENCE_POLL).await;
    }
}

/// Tries of a busy port before it is reported busy (25 ms apart).
const BUSY_TRIES: u32 = 4;

/// Opens, locks and sets up the port.
pub(crate) async fn open(target: &SerialTarget) -> CoreResult<Link> {
    // A lock can outlive its owner by a moment: a process forked elsewhere
    // holds a copy of the descriptor until it runs its program (and the
    // copy goes with close-on-exec). A few short tries tell that from a
    // port that is really held.
    let mut tries = 0;
    let port = loop {
        match open_port(target) {
            Err(e) if e.code == ErrorCode::SerialBusy && tries < BUSY_TRIES => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => break other?,
        }
    };
    let clone = || {
        port.port.try_clone().map_err(|e| {
            CoreError::new(
                ErrorCode::SerialOpenFailed,
                format!("{}: {e}", target.path.display()),
            )
        })
    };
    let (read, write) = (clone()?, clone()?);
    let port = Arc::new(port);
    let path = Endpoint::Device(target.path.clone());
    Ok(Link {
        io: Io::Stream {
            read: ReadSide::Other(Box::new(SerialRead(read))),
            write: Box::new(SerialWrite(write)),
        },
        local: path.clone(),
        peer: path,
        kind: Kind::Serial,
        insecure: false,
        cipher: None,
        control: Some(super::Control::Serial(port)),
        reset: None,
    })
}

/// Opens, locks and sets up the port (in the runtime: `serial2-tokio`
/// registers it with the reactor).
fn open_port(target: &SerialTarget) -> CoreResult<Port> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = &target.path;
    let shown = path.display();
    // The lock first, on a descriptor of its own: a port someone holds is
    // not touched (its settings stay theirs).
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(busy(path)),
        Err(std::fs::TryLockError::Error(e)) => return Err(open_error(path, e)),
    }
    let pty = lock.metadata().map(|m| is_pty(&m)).unwrap_or(false);
    let port =
        serial2_tokio::SerialPort::open(path, serial2::KeepSettings).map_err(|e| open_error(path, e))?;
    // Programs that do not flock (but root's) cannot open it either.
    let _ = rustix::termios::ioctl_tiocexcl(&lock);
    // Settings belong to the device, not the descriptor: set through the lock's.
    configure(&lock, &target.settings, pty)
        .map_err(|text| CoreError::new(ErrorCode::SerialConfigInvalid, format!("{shown}: {text}")))?;
    let port = Port {
        port,
        _lock: lock,
        path: path.clone(),
        settings: target.settings,
        pty,
        outputs: Mutex::new((None, None)),
    };
    for (line, on) in [(OutputLine::Dtr, target.dtr), (OutputLine::Rts, target.rts)] {
        if let Some(on) = on {
            port.set_line(line, on)?;
        }
    }
    Ok(port)
}

fn configure(fd: impl std::os::fd::AsFd, want: &PortSettings, pty: bool) -> Result<(), String> {
    use rustix::termios::{ControlModes as C, InputModes as I, OptionalActions, tcgetattr, tcsetattr};
    if pty && (want.data != 8 || want.parity != Parity::None) {
        return Err(format!(
            "{} is not possible: a pseudo-terminal is always 8 data bits without parity (the kernel fixes them)",
            want.describe()
        ));
    }
    let mut t = tcgetattr(&fd).map_err(|e| format!("reading its settings: {e}"))?;
    t.make_raw();
    t.set_speed(want.baud)
        .map_err(|e| format!("{} baud is not possible: {e}", want.baud))?;
    t.control_modes -= C::CSIZE | C::PARENB | C::PARODD | C::CSTOPB | C::CRTSCTS;
    // CLOCAL: no hangup when DCD drops (a console cable has none), as tio and picocom.
    t.control_modes |= C::CREAD | C::CLOCAL;
    t.control_modes |= match want.data {
        5 => C::CS5,
        6 => C::CS6,
        7 => C::CS7,
        _ => C::CS8,
    };
    match want.parity {
        Parity::None => {}
        Parity::Even => t.control_modes |= C::PARENB,
        Parity::Odd => t.control_modes |= C::PARENB | C::PARODD,
    }
    if want.stop == 2 {
        t.control_modes |= C::CSTOPB;
    }
    t.input_modes -= I::IXON | I::IXOFF | I::IXANY;
    match want.flow {
        Flow::None => {}
        Flow::RtsCts => t.control_modes |= C::CRTSCTS,
        Flow::XonXoff => t.input_modes |= I::IXON | I::IXOFF,
    }
    tcsetattr(&fd, OptionalActions::Now, &t)
        .map_err(|e| format!("the device refused {}: {e}", want.describe()))?;
    // Drivers round speeds they cannot do and drop frames they do not
    // support without a word: check, rather than talk garbage.
    let got = tcgetattr(&fd).map_err(|e| format!("reading its settings back: {e}"))?;
    if got.output_speed() != want.baud {
        return Err(format!(
            "{} baud is not possible (the driver set {})",
            want.baud,
            got.output_speed()
        ));
    }
    let frame = C::CSIZE | C::PARENB | C::PARODD | C::CSTOPB | C::CRTSCTS;
    if got.control_modes & frame != t.control_modes & frame {
        return Err(format!("the device does not do {}", want.describe()));
    }
    Ok(())
}

/// Unix98 pseudo-terminal slaves (`/dev/pts/N`) have majors 136–143.
fn is_pty(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let major = libc::major(meta.rdev());
    (136..=143).contains(&major)
}

fn open_error(path: &Path, e: std::io::Error) -> CoreError {
    let shown = path.display();
    match e.raw_os_error() {
        Some(libc::EBUSY) => busy(path),
        Some(libc::ENOENT) => CoreError::new(
            ErrorCode::SerialOpenFailed,
            format!("{shown}: no such device (unplugged? `serial --list` shows the ports)"),
        ),
        Some(libc::EACCES) => CoreError::new(
            ErrorCode::SerialOpenFailed,
            format!("{shown}: permission denied (is your user in the dialout or uucp group?)"),
        ),
        _ => CoreError::new(ErrorCode::SerialOpenFailed, format!("{shown}: {e}")),
    }
}

fn busy(path: &Path) -> CoreError {
    let holders = holders(path);
    let who = if holders.is_empty() {
        String::new()
    } else {
        format!("; open in {}", holders.join(", "))
    };
    CoreError::new(
        ErrorCode::SerialBusy,
        format!("{}: busy: another program has it locked{who}", path.display()),
    )
}

/// The processes that have `path` open, as `name (pid N)`, from /proc
/// (those of other users are not visible without privileges).
fn holders(path: &Path) -> Vec<String> {
    let Ok(device) = std::fs::canonicalize(path) else {
        return Vec::new();
    };
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == device));
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let this = if pid == me { ", this one" } else { "" };
            found.push(format!("{} (pid {pid}{this})", name.trim()));
        }
    }
    found
}

/// The reading side of a port.
struct SerialRead(serial2_tokio::SerialPort);

impl AsyncRead for SerialRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            // The device went away (unplugged, or the other end of a pty
            // closed): the end of this link, said as such.
            Poll::Ready(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the device went away (unplugged, or the other end of the pty closed)",
                )))
            }
            other => other,
        }
    }
}

/// The writing side of a port.
struct SerialWrite(serial2_tokio::SerialPort);

impl AsyncWrite for SerialWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A serial line has no end of output: what is queued still goes out.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One port of `serial --list`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortInfo {
    pub path: String,
    /// `/dev/serial/by-id/…` names that point at it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_id: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// USB vendor and product ids, `0403:6001`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usb_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

impl PortInfo {
    /// `/dev/ttyUSB0  0403:6001 FTDI FT232R USB UART (serial A1B2C3)  by-id: …`
    pub fn describe(&self) -> String {
        let mut out = self.path.clone();
        let mut add = |s: &str| {
            out.push_str("  ");
            out.push_str(s);
        };
        if let Some(id) = &self.usb_id {
            add(id);
        }
        let names: Vec<&str> = [&self.manufacturer, &self.product]
            .into_iter()
            .filter_map(|s| s.as_deref())
            .collect();
        if !names.is_empty() {
            add(&names.join(" "));
        }
        if let Some(s) = &self.serial {
            add(&format!("serial {s}"));
        }
        if let Some(d) = &self.driver {
            add(&format!("driver {d}"));
        }
        for id in &self.by_id {
            add(id);
        }
        out
    }
}

/// The serial ports present, with what sysfs tells of each.
pub fn list_ports() -> CoreResult<Vec<PortInfo>> {
    let paths = serial2::SerialPort::available_ports()
        .map_err(|e| CoreError::new(ErrorCode::IoError, format!("listing serial ports: {e}")))?;
    let by_id = by_id_names(Path::new("/dev/serial/by-id"));
    let mut ports: Vec<PortInfo> = paths
        .iter()
        .map(|p| describe_port(Path::new("/sys/class/tty"), &by_id, p))
        .collect();
    ports.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ports)
}

/// `(target, name)` of each link in a `/dev/serial/by-id`-style folder.
fn by_id_names(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let target = std::fs::canonicalize(e.path()).ok()?;
            Some((target, e.path().display().to_string()))
        })
        .collect()
}

/// What `tty_class` (`/sys/class/tty`) says of `dev`: its driver, and the
/// USB device it hangs off (the first ancestor with `idVendor`).
fn describe_port(tty_class: &Path, by_id: &[(PathBuf, String)], dev: &Path) -> PortInfo {
    let name = dev.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let device = tty_class.join(&name).join("device");
    let read = |p: PathBuf| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut info = PortInfo {
        path: dev.display().to_string(),
        ..PortInfo::default()
    };
    info.driver = std::fs::read_link(device.join("driver"))
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    let canonical = std::fs::canonicalize(dev).unwrap_or_else(|_| dev.to_path_buf());
    info.by_id = by_id
        .iter()
        .filter(|(target, _)| *target == canonical)
        .map(|(_, name)| name.clone())
        .collect();
    if let Ok(mut at) = std::fs::canonicalize(&device) {
        // Interface, then the USB device: a few levels at most.
        for _ in 0..4 {
            if let (Some(vid), Some(pid)) = (read(at.join("idVendor")), read(at.join("idProduct"))) {
                info.usb_id = Some(format!("{vid}:{pid}"));
                info.manufacturer = read(at.join("manufacturer"));
                info.product = read(at.join("product"));
                info.serial = read(at.join("serial"));
                break;
            }
            if !at.pop() {
                break;
            }
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_params_parse_like_tio() {
        let s = PortSettings::parse_params("9600,7E2").unwrap();
        assert_eq!((s.baud, s.data, s.parity, s.stop), (9600, 7, Parity::Even, 2));
        assert_eq!(s.describe(), "9600 7E2");
        assert_eq!(
            PortSettings::parse_params("115200").unwrap(),
            PortSettings::default()
        );
        assert_eq!(
            PortSettings::parse_params("115200,8n1").unwrap().describe(),
            "115200 8N1"
        );
        for bad in [
            "",
            "fast",
            "0",
            "9600,8N",
            "9600,9N1",
            "9600,8X1",
            "9600,8N3",
            "9600,8N1x",
        ] {
            assert!(PortSettings::parse_params(bad).is_err(), "{bad:?}");
        }
        let flow = PortSettings {
            flow: Flow::RtsCts,
            ..PortSettings::default()
        };
        assert_eq!(flow.describe(), "115200 8N1 rts-cts");
    }

    #[test]
    fn modem_lines_describe_what_is_known() {
        let lines = ModemLines {
            dtr: Some(true),
            cts: Some(false),
            ..ModemLines::default()
        };
        assert_eq!(lines.describe(), "DTR on CTS off");
    }

    /// A USB adapter as sysfs lays it out: the tty's `device` is the USB
    /// interface, whose parent has the ids and strings.
    #[test]
    fn ports_are_described_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let usb = root.path().join("devices/usb1/1-1");
        let iface = usb.join("1-1:1.0");
        std::fs::create_dir_all(&iface).unwrap();
        for (file, text) in [
            ("idVendor", "0403\n"),
            ("idProduct", "6001\n"),
            ("manufacturer", "FTDI\n"),
            ("product", "FT232R USB UART\n"),
            ("serial", "A1B2C3\n"),
        ] {
            std::fs::write(usb.join(file), text).unwrap();
        }
        let drivers = root.path().join("drivers/ftdi_sio");
        std::fs::create_dir_all(&drivers).unwrap();
        std::os::unix::fs::symlink(&drivers, iface.join("driver")).unwrap();
        let class = root.path().join("class/tty/ttyUSB0");
        std::fs::create_dir_all(&class).unwrap();
        std::os::unix::fs::symlink(&iface, class.join("device")).unwrap();
        let dev = root.path().join("ttyUSB0");
        std::fs::write(&dev, "").unwrap();
        let by_id_dir = root.path().join("by-id");
        std::fs::create_dir_all(&by_id_dir).unwrap();
        let link = by_id_dir.join("usb-FTDI_FT232R_USB_UART_A1B2C3-if00-port0");
        std::os::unix::fs::symlink(&dev, &link).unwrap();

        let info = describe_port(&root.path().join("class/tty"), &by_id_names(&by_id_dir), &dev);
        assert_eq!(info.usb_id.as_deref(), Some("0403:6001"));
        assert_eq!(info.manufacturer.as_deref(), Some("FTDI"));
        assert_eq!(info.product.as_deref(), Some("FT232R USB UART"));
        assert_eq!(info.serial.as_deref(), Some("A1B2C3"));
        assert_eq!(info.driver.as_deref(), Some("ftdi_sio"));
        assert_eq!(info.by_id, vec![link.display().to_string()]);
        let line = info.describe();
        assert!(
            line.contains("0403:6001  FTDI FT232R USB UART  serial A1B2C3  driver ftdi_sio"),
            "{line}"
        );

        // A port with nothing behind it: just its path.
        let bare = describe_port(&root.path().join("class/tty"), &[], Path::new("/dev/ttyS9"));
        assert_eq!(bare.describe(), "/dev/ttyS9");
    }
}
