//! A serial port's modem lines and break: `line dtr off`, `break`, and the
//! watch that reports CTS, DSR, DCD and RI as they change.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Session;
use crate::core::command::LineAction;
use crate::core::events::{CoreError, CoreResult, ErrorCode, EventKind};
use crate::core::transport::Control;
use crate::core::transport::serial::{ModemLines, OutputLine};

/// How often the input lines are read while a port is open.
const MODEM_POLL: Duration = Duration::from_millis(100);

impl Session {
    /// The current link's control, or why there is none.
    fn control(&self) -> CoreResult<Control> {
        let state = self.lock();
        if let Some(c) = &state.control {
            return Ok(c.clone());
        }
        let why = if state.closed.is_some() || state.link.down.is_some() {
            return Err(CoreError::new(
                ErrorCode::SessionNotConnected,
                format!("{}: the port is not open", self.id),
            ));
        } else {
            format!(
                "{} is a {} session: it has no modem lines or break",
                self.id,
                self.kind.as_str()
            )
        };
        Err(CoreError::new(ErrorCode::SerialLineUnsupported, why))
    }

    /// `line dtr|rts on|off|toggle|pulse DUR`.
    pub async fn set_line(self: &Arc<Self>, line: OutputLine, action: LineAction) -> CoreResult<()> {
        let control = self.control()?;
        let name = line.as_str();
        match action {
            LineAction::Set(on) => {
                let on = control.set_line(line, on)?;
                self.lines_changed(&control, &format!("{name} {}", on_off(on)))
                    .await;
            }
            LineAction::Pulse(length) => {
                let on = control.set_line(line, None)?;
                self.lines_changed(&control, &format!("{name} {} (pulse)", on_off(on)))
                    .await;
                tokio::time::sleep(length).await;
                // The port may have gone meanwhile: nothing to put back.
                let Ok(control) = self.control() else {
                    return Ok(());
                };
                let back = control.set_line(line, Some(!on))?;
                self.lines_changed(&control, &format!("{name} {}", on_off(back)))
                    .await;
            }
        }
        Ok(())
    }

    /// `break [DUR]`: the line held in break for `length`.
    pub async fn send_break(self: &Arc<Self>, length: Duration) -> CoreResult<()> {
        let control = self.control()?;
        control.send_break(length).await?;
        self.record_event(&format!("break {}", crate::core::util::format_duration(length)))
            .await;
        Ok(())
    }

    /// An output was set: the transcript and a `modem` event say so.
    async fn lines_changed(&self, control: &Control, what: &str) {
        self.record_event(what).await;
        let lines = control.modem().unwrap_or_else(|| outputs_only(control));
        self.emit(EventKind::Modem(lines)).await;
    }

    /// Reads the input lines every [`MODEM_POLL`] while the link lives; a
    /// `modem` event when they change (and first when the port opens). A
    /// device without modem lines (a pty) is read once.
    pub(super) async fn watch_modem(self: Arc<Self>, control: Control, link: CancellationToken) {
        let mut last: Option<ModemLines> = None;
        loop {
            let Some(now) = control.modem() else { return };
            // Outputs are reported where they are set (`line`).
            let inputs = |l: &ModemLines| (l.cts, l.dsr, l.dcd, l.ri);
            if last.is_none_or(|l| inputs(&l) != inputs(&now)) {
                self.record_event(&format!("modem {}", now.describe())).await;
                self.emit(EventKind::Modem(now)).await;
                last = Some(now);
            }
            tokio::select! {
                _ = link.cancelled() => return,
                _ = tokio::time::sleep(MODEM_POLL) => {}
            }
        }
    }
}

/// The outputs as set, for devices whose inputs cannot be read.
fn outputs_only(control: &Control) -> ModemLines {
    ModemLines {
        dtr: control.line(OutputLine::Dtr),
        rts: control.line(OutputLine::Rts),
        ..ModemLines::default()
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}
