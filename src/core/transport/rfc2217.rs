//! Network serial ports (`connect --rfc2217 HOST:PORT`): Telnet with the
//! COM-PORT-OPTION of RFC 2217, as ser2net, hub4com and terminal servers
//! speak it. Settings, DTR/RTS and break go to the server as Telnet
//! subnegotiations; its modem-state notifications become the same `modem`
//! events a local port gives; data bytes 0xFF are doubled on the wire and
//! undoubled here, so the stream stays byte-exact.
//!
//! The socket's write half belongs to one task (the pump) that takes data
//! from the session's writer and commands from the control and the reader
//! (answers to the server's negotiation), so a DTR toggle never waits
//! behind a long send, and never splits one.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::serial::{Flow, ModemLines, OutputLine, Parity, PortSettings};
use super::{Io, Kind, Link, ReadSide};
use crate::core::addr::HostPort;
use crate::core::error::{CoreError, CoreResult, ErrorCode};
use crate::core::telnet::{BINARY, DO, Decoder as Telnet, Found, IAC, SB, SE, SGA, WILL, command};

/// RFC 2217's COM-PORT-OPTION.
const COM_PORT: u8 = 44;

/// Client-to-server commands; the server answers each with it + 100.
const SET_BAUDRATE: u8 = 1;
const SET_DATASIZE: u8 = 2;
const SET_PARITY: u8 = 3;
const SET_STOPSIZE: u8 = 4;
const SET_CONTROL: u8 = 5;
const SET_MODEMSTATE_MASK: u8 = 11;
const NOTIFY_MODEMSTATE: u8 = 7;
const SERVER: u8 = 100;

/// Data waiting for the pump, in writes (each at most one read's size).
const DATA_QUEUE: usize = 16;

/// What `connect --rfc2217` dials: the server and the port's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rfc2217Target {
    pub addr: HostPort,
    pub settings: PortSettings,
    pub dtr: Option<bool>,
    pub rts: Option<bool>,
}

/// `IAC SB COM-PORT cmd value IAC SE`, 0xFF in the value doubled.
fn com_port(cmd: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![IAC, SB, COM_PORT, cmd];
    for &b in value {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out.extend_from_slice(&[IAC, SE]);
    out
}

fn control_value(line: OutputLine, on: bool) -> u8 {
    match (line, on) {
        (OutputLine::Dtr, true) => 8,
        (OutputLine::Dtr, false) => 9,
        (OutputLine::Rts, true) => 11,
        (OutputLine::Rts, false) => 12,
    }
}

/// The settings as the commands that set them, in order.
fn settings_commands(s: &PortSettings) -> Vec<(u8, Vec<u8>)> {
    vec![
        (SET_BAUDRATE, s.baud.to_be_bytes().to_vec()),
        (SET_DATASIZE, vec![s.data]),
        (
            SET_PARITY,
            vec![match s.parity {
                Parity::None => 1,
                Parity::Odd => 2,
                Parity::Even => 3,
            }],
        ),
        (SET_STOPSIZE, vec![s.stop]),
        (
            SET_CONTROL,
            vec![match s.flow {
                Flow::None => 1,
                Flow::XonXoff => 2,
                Flow::RtsCts => 3,
            }],
        ),
    ]
}

/// What the decoder found beside data.
#[derive(Debug, PartialEq, Eq)]
enum Notice {
    /// Bytes to send back (answers to the server's negotiation).
    Reply(Vec<u8>),
    /// A COM-PORT subnegotiation from the server: command and value.
    ComPort(u8, Vec<u8>),
    /// The server will not speak COM-PORT-OPTION.
    Refused,
}

/// Telnet from the server: data out, negotiation answered (binary,
/// suppress-go-ahead and COM-PORT agreed, the rest declined), COM-PORT
/// subnegotiations handed over.
#[derive(Debug)]
struct Decoder(Telnet);

impl Default for Decoder {
    fn default() -> Self {
        Decoder(Telnet::wanting(&[BINARY, SGA, COM_PORT]))
    }
}

impl Decoder {
    /// Decodes `input`, appending data bytes to `out`.
    fn feed(&mut self, input: &[u8], out: &mut BytesMut, notices: &mut Vec<Notice>) {
        let mut found = Vec::new();
        self.0.feed(input, out, &mut found);
        notices.extend(found.into_iter().filter_map(|f| match f {
            Found::Reply(bytes) => Some(Notice::Reply(bytes)),
            Found::Sub(sub) => match &sub[..] {
                [COM_PORT, cmd, value @ ..] => Some(Notice::ComPort(*cmd, value.to_vec())),
                _ => None,
            },
            Found::Declined(COM_PORT) => Some(Notice::Refused),
            Found::Declined(_) => None,
        }));
    }
}

/// The port at the server: its settings, the outputs as last set, the
/// inputs as last notified; and the way to send it commands.
pub(crate) struct Remote {
    pub settings: PortSettings,
    commands: mpsc::UnboundedSender<Vec<u8>>,
    lines: Arc<Mutex<ModemLines>>,
}

impl Remote {
    fn send(&self, bytes: Vec<u8>) -> CoreResult<()> {
        self.commands.send(bytes).map_err(|_| {
            CoreError::new(
                ErrorCode::SessionNotConnected,
                "the RFC 2217 connection is closed",
            )
        })
    }

    pub fn line(&self, line: OutputLine) -> Option<bool> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        match line {
            OutputLine::Dtr => lines.dtr,
            OutputLine::Rts => lines.rts,
        }
    }

    pub fn set_line(&self, line: OutputLine, on: bool) -> CoreResult<()> {
        self.send(com_port(SET_CONTROL, &[control_value(line, on)]))?;
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        match line {
            OutputLine::Dtr => lines.dtr = Some(on),
            OutputLine::Rts => lines.rts = Some(on),
        }
        Ok(())
    }

    pub async fn send_break(&self, length: Duration) -> CoreResult<()> {
        self.send(com_port(SET_CONTROL, &[5]))?;
        tokio::time::sleep(length).await;
        self.send(com_port(SET_CONTROL, &[6]))
    }

    pub fn modem(&self) -> ModemLines {
        *self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies a COM-PORT answer of the server to what we know of the port.
fn apply(cmd: u8, value: &[u8], lines: &Mutex<ModemLines>) {
    if cmd == SERVER + NOTIFY_MODEMSTATE
        && let [state, ..] = value
    {
        let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.cts = Some(state & 0x10 != 0);
        lines.dsr = Some(state & 0x20 != 0);
        lines.ri = Some(state & 0x40 != 0);
        lines.dcd = Some(state & 0x80 != 0);
    }
}

/// Connects, agrees on COM-PORT-OPTION and the settings within `limit`,
/// and hands over the link.
pub(crate) async fn dial(
    target: &Rfc2217Target,
    limit: Duration,
    source: Option<std::net::SocketAddr>,
) -> CoreResult<Link> {
    let stream = super::tcp::connect_from(&target.addr, limit, source).await?;
    let _ = stream.set_nodelay(true);
    let (local, peer) = super::tcp::ends(&stream)?;
    let (mut read, mut write) = stream.into_split();
    let mut hello = Vec::new();
    for (verb, option) in [
        (WILL, COM_PORT),
        (WILL, BINARY),
        (DO, BINARY),
        (WILL, SGA),
        (DO, SGA),
    ] {
        hello.extend(command(verb, option));
    }
    for (cmd, value) in settings_commands(&target.settings) {
        hello.extend(com_port(cmd, &value));
    }
    // Every change of CTS, DSR, RI and DCD, reported.
    hello.extend(com_port(SET_MODEMSTATE_MASK, &[0xF0]));
    for (line, on) in [(OutputLine::Dtr, target.dtr), (OutputLine::Rts, target.rts)] {
        if let Some(on) = on {
            hello.extend(com_port(SET_CONTROL, &[control_value(line, on)]));
        }
    }
    let lines = Arc::new(Mutex::new(ModemLines {
        dtr: target.dtr,
        rts: target.rts,
        ..ModemLines::default()
    }));
    let mut decoder = Decoder::default();
    // What our hello already said: the server's answers get no second one.
    decoder.0.answered([
        (WILL, COM_PORT),
        (WILL, BINARY),
        (DO, BINARY),
        (WILL, SGA),
        (DO, SGA),
    ]);
    let early = tokio::time::timeout(
        limit,
        handshake(&mut read, &mut write, &hello, &mut decoder, target, &lines),
    )
    .await
    .unwrap_or_else(|_| {
        Err(CoreError::new(
            ErrorCode::ConnectFailed,
            format!(
                "{}: no RFC 2217 answer to the port settings within {} (is it a COM-PORT-OPTION server?)",
                target.addr,
                crate::core::util::format_duration(limit)
            ),
        ))
    })?;
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (data, data_rx) = mpsc::channel(DATA_QUEUE);
    tokio::spawn(pump(write, data_rx, command_rx));
    let remote = Arc::new(Remote {
        settings: target.settings,
        commands: commands.clone(),
        lines: lines.clone(),
    });
    let reader = TelnetRead {
        inner: read,
        decoder,
        early,
        raw: vec![0; 16 * 1024],
        replies: commands,
        lines,
    };
    Ok(Link {
        io: Io::Stream {
            read: ReadSide::Other(Box::new(reader)),
            write: Box::new(TelnetWrite(PollSender::new(data))),
        },
        local,
        peer,
        kind: Kind::Rfc2217,
        insecure: false,
        cipher: None,
        control: Some(super::Control::Rfc2217(remote)),
        reset: None,
    })
}

/// Sends our side and reads until the server has agreed to COM-PORT and
/// answered the four frame settings; what data came meanwhile is kept.
async fn handshake(
    read: &mut OwnedReadHalf,
    write: &mut OwnedWriteHalf,
    hello: &[u8],
    decoder: &mut Decoder,
    target: &Rfc2217Target,
    lines: &Mutex<ModemLines>,
) -> CoreResult<BytesMut> {
    let io = |e: std::io::Error| CoreError::new(ErrorCode::ConnectFailed, format!("{}: {e}", target.addr));
    write.write_all(hello).await.map_err(io)?;
    let mut early = BytesMut::new();
    let mut answered = [false; 4];
    let mut agreed = false;
    let mut buf = vec![0u8; 4096];
    while !(agreed && answered.iter().all(|a| *a)) {
        let n = read.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err(CoreError::new(
                ErrorCode::ConnectFailed,
                format!(
                    "{}: the server closed the connection during the RFC 2217 handshake",
                    target.addr
                ),
            ));
        }
        let mut notices = Vec::new();
        decoder.feed(&buf[..n], &mut early, &mut notices);
        for notice in notices {
            match notice {
                Notice::Reply(bytes) => {
                    if bytes == command(DO, COM_PORT) || bytes == command(WILL, COM_PORT) {
                        agreed = true;
                    }
                    write.write_all(&bytes).await.map_err(io)?;
                }
                Notice::Refused => {
                    return Err(CoreError::new(
                        ErrorCode::ConnectFailed,
                        format!("{}: the server refuses RFC 2217 (COM-PORT-OPTION)", target.addr),
                    ));
                }
                Notice::ComPort(cmd, value) => {
                    if (SERVER + SET_BAUDRATE..=SERVER + SET_STOPSIZE).contains(&cmd) {
                        // Any answer means the server speaks the option.
                        agreed = true;
                        check_answer(cmd - SERVER, &value, target)?;
                        answered[usize::from(cmd - SERVER - 1)] = true;
                    }
                    apply(cmd, &value, lines);
                }
            }
        }
    }
    Ok(early)
}

/// The server answers a setting with the value it applied: one that
/// differs is refused, naming both.
fn check_answer(cmd: u8, value: &[u8], target: &Rfc2217Target) -> CoreResult<()> {
    let want = settings_commands(&target.settings)
        .into_iter()
        .find(|(c, _)| *c == cmd)
        .map(|(_, v)| v)
        .unwrap_or_default();
    if value == want.as_slice() {
        return Ok(());
    }
    let what = match cmd {
        SET_BAUDRATE => "baud rate",
        SET_DATASIZE => "data bits",
        SET_PARITY => "parity",
        _ => "stop bits",
    };
    Err(CoreError::new(
        ErrorCode::SerialConfigInvalid,
        format!(
            "{}: the server set {what} {} instead of {} ({})",
            target.addr,
            hex::encode(value),
            hex::encode(&want),
            target.settings.describe()
        ),
    ))
}

/// Owns the socket's write half: commands first, then data with 0xFF
/// doubled. Ends when everyone who could send is gone, or on an error
/// (the writer then fails its next send).
async fn pump(
    mut write: OwnedWriteHalf,
    mut data: mpsc::Receiver<Bytes>,
    mut commands: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut escaped = Vec::new();
    let mut commands_open = true;
    loop {
        tokio::select! {
            biased;
            c = commands.recv(), if commands_open => match c {
                Some(bytes) => {
                    if write.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                None => commands_open = false,
            },
            d = data.recv() => match d {
                Some(bytes) => {
                    escaped.clear();
                    for &b in bytes.iter() {
                        escaped.push(b);
                        if b == IAC {
                            escaped.push(IAC);
                        }
                    }
                    if write.write_all(&escaped).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

/// The session's reader: data out of the Telnet stream.
struct TelnetRead {
    inner: OwnedReadHalf,
    decoder: Decoder,
    /// Data that came during the handshake.
    early: BytesMut,
    raw: Vec<u8>,
    replies: mpsc::UnboundedSender<Vec<u8>>,
    lines: Arc<Mutex<ModemLines>>,
}

impl AsyncRead for TelnetRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.early.is_empty() {
                let n = this.early.len().min(buf.remaining());
                buf.put_slice(&this.early.split_to(n));
                return Poll::Ready(Ok(()));
            }
            // At most what fits: decoded data is never longer than the wire's.
            let room = buf.remaining().min(this.raw.len());
            let mut raw = ReadBuf::new(&mut this.raw[..room]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw))?;
            let n = raw.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            let mut notices = Vec::new();
            let mut data = BytesMut::new();
            this.decoder.feed(&this.raw[..n], &mut data, &mut notices);
            for notice in notices {
                match notice {
                    Notice::Reply(bytes) => {
                        let _ = this.replies.send(bytes);
                    }
                    Notice::ComPort(cmd, value) => apply(cmd, &value, &this.lines),
                    Notice::Refused => {}
                }
            }
            if !data.is_empty() {
                buf.put_slice(&data);
                return Poll::Ready(Ok(()));
            }
            // Only Telnet commands: read on (0 bytes would mean the end).
        }
    }
}

/// The session's writer: data into the pump's queue.
struct TelnetWrite(PollSender<Bytes>);

impl AsyncWrite for TelnetWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let gone = || {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the RFC 2217 connection is closed",
            )
        };
        ready!(self.0.poll_reserve(cx)).map_err(|_| gone())?;
        self.0
            .send_item(Bytes::copy_from_slice(data))
            .map_err(|_| gone())?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A serial line has no end of output (the server would take a FIN
    /// for the end of the session).
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::telnet::{DONT, SB_MAX, WONT};

    fn decode(decoder: &mut Decoder, input: &[u8]) -> (Vec<u8>, Vec<Notice>) {
        let mut out = BytesMut::new();
        let mut notices = Vec::new();
        decoder.feed(input, &mut out, &mut notices);
        (out.to_vec(), notices)
    }

    #[test]
    fn data_comes_out_byte_exact_whatever_the_split() {
        // ser2net's greeting, a modem state, then data with 0xFF doubled.
        let wire: Vec<u8> = [
            &[IAC, WILL, SGA, IAC, DO, 1][..],
            &[IAC, SB, COM_PORT, 107, 0x30, IAC, SE],
            b"hi",
            &[IAC, IAC, 0x00],
            b"there",
            &[IAC, SB, COM_PORT, 101, 0, 0, 0x25, 0x80, IAC, SE],
        ]
        .concat();
        for split in 0..wire.len() {
            let mut d = Decoder::default();
            let (mut data, mut notices) = decode(&mut d, &wire[..split]);
            let (more, more_notices) = decode(&mut d, &wire[split..]);
            data.extend(more);
            notices.extend(more_notices);
            assert_eq!(data, b"hi\xff\x00there", "split at {split}");
            assert_eq!(
                notices,
                vec![
                    Notice::Reply(command(DO, SGA)),
                    Notice::Reply(command(WONT, 1)),
                    Notice::ComPort(107, vec![0x30]),
                    Notice::ComPort(101, vec![0, 0, 0x25, 0x80]),
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn negotiation_is_answered_once_and_refusal_is_noticed() {
        let mut d = Decoder::default();
        let (_, first) = decode(&mut d, &[IAC, WILL, BINARY, IAC, WILL, BINARY, IAC, DO, 24]);
        assert_eq!(
            first,
            vec![
                Notice::Reply(command(DO, BINARY)),
                Notice::Reply(command(WONT, 24))
            ]
        );
        let (_, refused) = decode(&mut d, &[IAC, DONT, COM_PORT]);
        assert_eq!(refused, vec![Notice::Refused]);
        // A subnegotiation longer than any real one is cut, not kept.
        let mut flood = vec![IAC, SB, COM_PORT, 107];
        flood.extend(std::iter::repeat_n(7u8, 100_000));
        let (data, notices) = decode(&mut d, &flood);
        assert!(data.is_empty() && notices.is_empty());
        assert!(d.0.held() <= SB_MAX);
    }

    #[test]
    fn commands_double_0xff_in_values() {
        assert_eq!(
            com_port(SET_BAUDRATE, &[0, 0, 0xff, 1]),
            vec![IAC, SB, COM_PORT, 1, 0, 0, 0xff, 0xff, 1, IAC, SE]
        );
        let s = PortSettings::parse_params("9600,7E2").unwrap();
        let cmds = settings_commands(&s);
        assert_eq!(cmds[0], (SET_BAUDRATE, vec![0, 0, 0x25, 0x80]));
        assert_eq!(
            &cmds[1..4],
            &[
                (SET_DATASIZE, vec![7]),
                (SET_PARITY, vec![3]),
                (SET_STOPSIZE, vec![2])
            ]
        );
    }

    #[test]
    fn modem_state_notifications_set_the_input_lines() {
        let lines = Mutex::new(ModemLines::default());
        apply(SERVER + NOTIFY_MODEMSTATE, &[0x80 | 0x10 | 0x01], &lines);
        let l = *lines.lock().unwrap();
        assert_eq!(
            (l.cts, l.dsr, l.ri, l.dcd),
            (Some(true), Some(false), Some(false), Some(true))
        );
    }
}
