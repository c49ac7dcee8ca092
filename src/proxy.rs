//! `muxcat proxy LISTEN TARGET` without the TUI: the relay runs in the
//! core at socket speed, and (stderr on a terminal, not `-q`) a trace of
//! both directions goes to stderr as socat `-v` prints it — each chunk
//! timestamped, with its direction and size, escaped (or a hex dump with
//! `--hex`). With `--json` the events go to stderr instead. It serves
//! until interrupted, like `socat TCP-LISTEN:P,fork TCP:target`.

use std::io::{IsTerminal, Write};

use crate::core::{Command, Event, EventKind, Manager, ManagerConfig, Mode};
use crate::lang::proxy::ProxyArgs;
use crate::script::{EXIT_FAILED, EXIT_INTERRUPTED, shutdown_signal};

/// How the trace shows chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trace {
    None,
    Text,
    Hex,
    Json,
}

impl Trace {
    /// `-q`, `--hex`, `--json` and whether stderr is a terminal.
    pub fn choose(quiet: bool, hex: bool, json: bool) -> Trace {
        match (quiet, json, hex) {
            (true, _, _) => Trace::None,
            (false, true, _) => Trace::Json,
            _ if !std::io::stderr().is_terminal() => Trace::None,
            (false, false, true) => Trace::Hex,
            (false, false, false) => Trace::Text,
        }
    }
}

/// Bytes per read of a relay with no trace.
const RELAY_READ: usize = 256 << 10;

pub async fn run(
    args: ProxyArgs,
    trace: Trace,
    record_dir: Option<std::path::PathBuf>,
    transcript_format: crate::transcript::Format,
) -> u8 {
    let mut spec = match args.spec() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("muxcat: {}: {}", e.code, e.text);
            return 2;
        }
    };
    let quiet = trace == Trace::None;
    // Chunks as they come, as socat -v shows them (and with no trace,
    // no lines to cut at all).
    spec.listen.opts.mode = Mode::Binary;
    let config = ManagerConfig {
        record_dir,
        transcript_format,
        bulk: quiet,
        // Fewer, larger reads: a relay at socket speed (one event each).
        read_size: if quiet {
            RELAY_READ
        } else {
            ManagerConfig::default().read_size
        },
        ..ManagerConfig::default()
    };
    let (manager, mut events) = Manager::start(config);
    let started = manager.execute(Command::Proxy(Box::new(spec))).await;
    if started.is_err() {
        // The error event says what failed.
        while let Ok(Some(ev)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), events.recv()).await
        {
            print_event(&ev, trace, true);
        }
        manager.shutdown().await;
        return EXIT_FAILED;
    }
    let interrupted = shutdown_signal();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => break,
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                // A batch of lines is a chunk each in the trace.
                for ev in ev.expand() {
                    print_event(&ev, trace, false);
                }
            }
        }
    }
    crate::script::exit_on_next_signal(manager.clone());
    manager.shutdown().await;
    EXIT_INTERRUPTED
}

/// One event on stderr: errors always (unless `-q`… they still show: a
/// refused target must not pass silently), the rest as the trace wants.
fn print_event(ev: &Event, trace: Trace, failing: bool) {
    let mut err = std::io::stderr().lock();
    let is_error = ev.error.is_some();
    let _ = match trace {
        Trace::Json => writeln!(err, "{}", ev.to_json()),
        Trace::None | Trace::Text | Trace::Hex if is_error || failing => {
            writeln!(err, "muxcat: {}", ev.to_readable())
        }
        Trace::None => Ok(()),
        Trace::Text | Trace::Hex => match relayed(ev) {
            Some((dir, payload)) => write_chunk(&mut err, ev, dir, payload, trace == Trace::Hex),
            None => writeln!(err, "* {}", ev.to_readable()),
        },
    };
}

/// A proxy session's chunk: its direction and bytes.
fn relayed(ev: &Event) -> Option<(&'static str, &[u8])> {
    let dir = ev.dir?;
    match &ev.kind {
        EventKind::Data { payload, .. }
        | EventKind::DataPartial { payload, .. }
        | EventKind::Sent { payload, .. } => Some((dir, payload)),
        _ => None,
    }
}

/// socat `-v`'s form: `> 2026/12/01 23:20:17.954 length=9` then the bytes
/// (escaped text, or a hex dump).
fn write_chunk(
    out: &mut impl Write,
    ev: &Event,
    dir: &str,
    payload: &[u8],
    hex: bool,
) -> std::io::Result<()> {
    let arrow = if dir == "c2s" { '>' } else { '<' };
    let session = ev
        .session_id
        .as_deref()
        .map(crate::core::events::short_id)
        .unwrap_or_default();
    writeln!(
        out,
        "{arrow} {} {dir} {session} length={}",
        ev.timestamp.format("%Y/%m/%d %H:%M:%S%.6f"),
        payload.len()
    )?;
    if hex {
        for (i, row) in payload.chunks(crate::tui::scrollback::HEX_WIDTH).enumerate() {
            let mut line = String::with_capacity(80);
            crate::tui::view::hex_line(row, i * crate::tui::scrollback::HEX_WIDTH, true, &mut line);
            writeln!(out, " {line}")?;
        }
        return Ok(());
    }
    // One row per line of the chunk, escaped (a peer's escape sequences
    // never reach the terminal), the line ends shown.
    for line in payload.split_inclusive(|&b| b == b'\n') {
        writeln!(out, "{}", crate::core::escape::escape_display(line))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_traced_as_socat_v_does_escaped_or_as_hex() {
        let mut ev = Event::new(EventKind::Sent {
            message_id: 1,
            bytes: 12,
            payload: bytes::Bytes::from_static(b"HTTP/1.0 200\r\n\x1b[2J"),
            trigger: None,
        })
        .session("sess-0123456789");
        ev.dir = Some("s2c");
        let (dir, payload) = relayed(&ev).unwrap();
        let mut out = Vec::new();
        write_chunk(&mut out, &ev, dir, payload, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        let head = lines.next().unwrap();
        assert!(
            head.starts_with("< 20") && head.ends_with(" s2c sess-0123456789 length=18"),
            "{head}"
        );
        assert_eq!(lines.next(), Some("HTTP/1.0 200\\r\\n"));
        assert_eq!(lines.next(), Some("\\x1b[2J"));
        let mut out = Vec::new();
        write_chunk(&mut out, &ev, dir, payload, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(" 00000000  48 54 54 50"), "{text}");
        assert!(text.contains(" 00000010  32 4a "), "{text}");
    }
}
