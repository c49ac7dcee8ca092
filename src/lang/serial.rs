//! The serial commands of the language: `serial` (its options are the
//! `muxcat serial` subcommand's too), `line` and `break`.

use std::time::Duration;

use clap::Args;

use super::{SessionArgs, invalid, parse_backoff, parse_duration};
use crate::core::command::{BREAK_LENGTH, Command, ConnectSpec, LineAction};
use crate::core::dial::Backoff;
use crate::core::transport::Target;
use crate::core::transport::serial::{
    Flow, OutputLine, Parity, PortSettings, SerialTarget, parse_baud, parse_data_bits, parse_stop_bits,
};
use crate::core::{CoreError, CoreResult, ErrorCode};

/// Between attempts to reopen a serial port that is there but fails to
/// open (udev still setting its permissions, another program holding
/// it); while it is unplugged, its path is watched instead.
pub const SERIAL_BACKOFF: Backoff = Backoff {
    min: Duration::from_millis(250),
    max: Duration::from_secs(2),
};

fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" | "1" | "high" => Ok(true),
        "off" | "0" | "low" => Ok(false),
        _ => Err(format!("{text:?} is not on or off")),
    }
}

/// A serial port's settings and modem lines: `serial`'s options, and
/// `connect --rfc2217`'s.
#[derive(Args, Clone, Debug, Default)]
pub struct PortArgs {
    /// Speed in baud (default 115200)
    #[arg(long, value_name = "N", value_parser = parse_baud)]
    pub baud: Option<u32>,
    /// Data bits (default 8)
    #[arg(long, value_name = "5|6|7|8", value_parser = parse_data_bits)]
    pub data: Option<u8>,
    /// Parity (default none)
    #[arg(long, value_name = "none|even|odd", value_parser = str::parse::<Parity>)]
    pub parity: Option<Parity>,
    /// Stop bits (default 1)
    #[arg(long, value_name = "1|2", value_parser = parse_stop_bits)]
    pub stop: Option<u8>,
    /// Flow control (default none)
    #[arg(long, value_name = "none|rts-cts|xon-xoff", value_parser = str::parse::<Flow>)]
    pub flow: Option<Flow>,
    /// All at once, as tio writes them: 115200,8N1 (the options above override it)
    #[arg(long, value_name = "BAUD,DPS", value_parser = PortSettings::parse_params)]
    pub params: Option<PortSettings>,
    /// Set DTR once the port is open (default: as the driver leaves it, on)
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    pub dtr: Option<bool>,
    /// Set RTS once the port is open
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    pub rts: Option<bool>,
}

impl PortArgs {
    /// `--params`, then the single options over it.
    pub fn settings(&self) -> PortSettings {
        let mut settings = self.params.unwrap_or_default();
        settings.baud = self.baud.unwrap_or(settings.baud);
        settings.data = self.data.unwrap_or(settings.data);
        settings.parity = self.parity.unwrap_or(settings.parity);
        settings.stop = self.stop.unwrap_or(settings.stop);
        settings.flow = self.flow.unwrap_or(settings.flow);
        settings
    }

    /// Whether any was given (they need a serial port).
    pub fn any(&self) -> bool {
        self.baud.is_some()
            || self.data.is_some()
            || self.parity.is_some()
            || self.stop.is_some()
            || self.flow.is_some()
            || self.params.is_some()
            || self.dtr.is_some()
            || self.rts.is_some()
    }
}

/// `serial`: a serial port (or pseudo-terminal) as a session.
#[derive(Args, Clone, Debug)]
pub struct SerialArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub port: PortArgs,
    /// Reopen the port after it goes away (an adapter unplugged): same session, same transcript
    #[arg(long)]
    pub reconnect: bool,
    /// Delays between attempts to reopen a port that is there but fails to open
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_backoff)]
    pub backoff: Option<Backoff>,
    /// Wait for the device to appear if it is not there yet (a board not plugged in)
    #[arg(long)]
    pub wait: bool,
    /// Send this after every (re)open (escapes as in send; EOL appended in line mode)
    #[arg(long, value_name = "PAYLOAD")]
    pub preamble: Option<String>,
    /// List the serial ports present (USB ids, serial numbers, /dev/serial/by-id names)
    #[arg(long, exclusive = true)]
    pub list: bool,
    /// The port: /dev/ttyUSB0, /dev/serial/by-id/…, a pseudo-terminal
    #[arg(value_name = "DEVICE", required_unless_present = "list")]
    pub device: Option<String>,
}

impl SerialArgs {
    /// The command: open the port, or list the ports.
    pub fn command(&self) -> CoreResult<Command> {
        match self.spec()? {
            Some(spec) => Ok(Command::Connect(Box::new(spec))),
            None => Ok(Command::Ports),
        }
    }

    /// What opening the port takes; `None` for `--list`.
    pub fn spec(&self) -> CoreResult<Option<ConnectSpec>> {
        let Some(device) = self.device.as_deref().filter(|_| !self.list) else {
            return Ok(None);
        };
        if device.is_empty() {
            return Err(CoreError::new(
                ErrorCode::SerialOpenFailed,
                "serial: the device path is empty",
            ));
        }
        let opts = self.session.options();
        let preamble = super::preamble(self.preamble.as_deref(), &opts)?;
        let backoff = self.backoff.unwrap_or(SERIAL_BACKOFF);
        Ok(Some(ConnectSpec {
            source: None,
            via: None,
            target: Target::Serial(Box::new(SerialTarget {
                path: device.into(),
                settings: self.port.settings(),
                dtr: self.port.dtr,
                rts: self.port.rts,
            })),
            opts,
            tls: None,
            reconnect: self.reconnect.then_some(backoff),
            wait: self.wait,
            preamble,
        }))
    }
}

/// `line [SESSION] dtr|rts on|off|toggle|pulse [DUR]`.
pub fn lower_line(args: Vec<String>) -> CoreResult<Command> {
    const USAGE: &str = "Usage: line [SESSION] dtr|rts on|off|toggle|pulse [DUR]";
    let mut args = std::collections::VecDeque::from(args);
    let session = match args.front() {
        Some(first) if first.parse::<OutputLine>().is_err() => args.pop_front(),
        _ => None,
    };
    let line = args
        .pop_front()
        .ok_or_else(|| invalid(format!("line: which line? {USAGE}")))?
        .parse::<OutputLine>()
        .map_err(|e| invalid(format!("line: {e}. {USAGE}")))?;
    let action = match (args.pop_front().as_deref(), args.pop_front()) {
        (Some("toggle"), None) => LineAction::Set(None),
        (Some("pulse"), length) => {
            let length = match length {
                Some(t) => parse_duration(&t).map_err(|e| invalid(format!("line: {e}. {USAGE}")))?,
                None => Duration::from_millis(100),
            };
            LineAction::Pulse(length)
        }
        (Some(word), None) => LineAction::Set(Some(
            on_off(word).map_err(|e| invalid(format!("line: {e}. {USAGE}")))?,
        )),
        _ => return Err(invalid(format!("line: too many or too few words. {USAGE}"))),
    };
    if !args.is_empty() {
        return Err(invalid(format!("line: too many words. {USAGE}")));
    }
    Ok(Command::Line {
        session,
        line,
        action,
    })
}

/// `break [SESSION] [DUR]`: a lone word that reads as a duration is one.
pub fn lower_break(args: Vec<String>) -> CoreResult<Command> {
    const USAGE: &str = "Usage: break [SESSION] [DUR]";
    let (session, length) = match args.as_slice() {
        [] => (None, None),
        [one] => match parse_duration(one) {
            Ok(d) => (None, Some(d)),
            Err(_) => (Some(one.clone()), None),
        },
        [session, length] => (
            Some(session.clone()),
            Some(parse_duration(length).map_err(|e| invalid(format!("break: {e}. {USAGE}")))?),
        ),
        _ => return Err(invalid(format!("break: too many words. {USAGE}"))),
    };
    let length = length.unwrap_or(BREAK_LENGTH);
    if length > Duration::from_secs(10) {
        return Err(invalid(format!(
            "break: {} is longer than 10s. {USAGE}",
            crate::core::format_duration(length)
        )));
    }
    Ok(Command::Break { session, length })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::{Parsed, parse_line};

    fn core(line: &str) -> Command {
        match parse_line(line) {
            Ok(Some(Parsed::Core(c))) => c,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        parse_line(line).unwrap_err().text
    }

    #[test]
    fn serial_options_build_the_port() {
        let Command::Connect(spec) =
            core("serial --params 9600,7E2 --baud 19200 --flow rts-cts --dtr off --reconnect /dev/ttyUSB0")
        else {
            panic!()
        };
        let Target::Serial(port) = &spec.target else {
            panic!()
        };
        // --baud overrides --params; the rest of --params stays.
        assert_eq!(port.settings.describe(), "19200 7E2 rts-cts");
        assert_eq!((port.dtr, port.rts), (Some(false), None));
        assert_eq!(spec.reconnect, Some(SERIAL_BACKOFF));
        assert!(!spec.wait);
        let Command::Connect(spec) = core("serial --wait /dev/ttyACM0") else {
            panic!()
        };
        assert!(spec.wait && spec.reconnect.is_none());
        assert!(matches!(core("serial --list"), Command::Ports));
        for bad in [
            "serial",
            "serial --baud fast /dev/x",
            "serial --data 9 /dev/x",
            "serial --parity mark /dev/x",
            "serial --stop 3 /dev/x",
            "serial --params 9600,8N /dev/x",
            "serial --list /dev/x",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn line_takes_an_optional_session() {
        assert!(matches!(
            core("line dtr off"),
            Command::Line {
                session: None,
                line: OutputLine::Dtr,
                action: LineAction::Set(Some(false))
            }
        ));
        assert!(matches!(
            core("line board RTS toggle"),
            Command::Line { session: Some(s), line: OutputLine::Rts, action: LineAction::Set(None) } if s == "board"
        ));
        let Command::Line {
            action: LineAction::Pulse(d),
            ..
        } = core("line @1 dtr pulse 250ms")
        else {
            panic!()
        };
        assert_eq!(d, Duration::from_millis(250));
        let Command::Line {
            action: LineAction::Pulse(d),
            ..
        } = core("line dtr pulse")
        else {
            panic!()
        };
        assert_eq!(d, Duration::from_millis(100));
        assert!(error("line dtr").contains("Usage: line"));
        assert!(error("line cts on").contains("not a modem line"));
        assert!(error("line dtr maybe").contains("not on or off"));
        assert!(error("line s dtr on extra").contains("too many"));
    }

    #[test]
    fn break_takes_a_session_or_a_length() {
        assert!(matches!(core("break"), Command::Break { session: None, length } if length == BREAK_LENGTH));
        assert!(
            matches!(core("break 500ms"), Command::Break { session: None, length } if length == Duration::from_millis(500))
        );
        assert!(
            matches!(core("break board"), Command::Break { session: Some(s), length } if s == "board" && length == BREAK_LENGTH)
        );
        assert!(
            matches!(core("break board 1s"), Command::Break { session: Some(_), length } if length == Duration::from_secs(1))
        );
        assert!(error("break board soon").contains("Usage: break"));
        assert!(error("break 1m").contains("longer than 10s"));
    }
}
