//! `muxcat run`: executes a script line by line as it arrives, prints every
//! event (readable or JSON lines) on stdout, and returns the exit status of
//! CONTRACT section 6.

use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

use crate::core::{CoreError, ErrorCode, Event, EventKind, Manager, ManagerConfig};
use crate::lang::{Parsed, parse_line};

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Events as JSON lines instead of readable lines.
    pub json: bool,
    /// Continue after a failed command (exit 1 at the end).
    pub keep_going: bool,
    /// Keep sessions open after the script until interrupted.
    pub stay: bool,
    /// `--record DIR`: a transcript per session.
    pub record_dir: Option<std::path::PathBuf>,
}

/// Exit statuses.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_INTERRUPTED: u8 = 130;

/// Prints events until the channel closes. A closed stdout stops printing,
/// not draining, so sessions never stall on it.
pub async fn print_events<W: Write>(mut events: mpsc::Receiver<Event>, mut out: W, json: bool) {
    let mut broken = false;
    while let Some(ev) = events.recv().await {
        let mut batch = vec![ev];
        while let Ok(ev) = events.try_recv() {
            batch.push(ev);
            if batch.len() >= 256 {
                break;
            }
        }
        if broken {
            continue;
        }
        for ev in &batch {
            let line = if json { ev.to_json() } else { ev.to_readable() };
            if writeln!(out, "{line}").is_err() {
                broken = true;
                break;
            }
        }
        if !broken && out.flush().is_err() {
            broken = true;
        }
    }
}

enum Step {
    Continue,
    Failed,
    Quit,
}

/// Runs a script from `input`, printing events to `out`; returns the exit status.
pub async fn run<R, W>(input: R, out: W, opts: RunOptions) -> u8
where
    R: AsyncBufRead + Unpin,
    W: Write + Send + 'static,
{
    let (manager, events) = Manager::start(ManagerConfig {
        record_dir: opts.record_dir.clone(),
        ..ManagerConfig::default()
    });
    let printer = tokio::spawn(async move { print_events(events, out, opts.json).await });
    let interrupt = shutdown_signal();
    tokio::pin!(interrupt);

    let mut input = input;
    let mut failed = false;
    let mut interrupted = false;
    let mut line_no = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = tokio::select! {
            r = input.read_until(b'\n', &mut buf) => r,
            _ = &mut interrupt => { interrupted = true; break; }
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let err = CoreError::new(ErrorCode::IoError, format!("reading the script failed: {e}"));
                manager.emit(Event::error(err)).await;
                failed = true;
                break;
            }
        }
        line_no += 1;
        let place = format!("line {line_no}");
        let step = tokio::select! {
            s = run_line(&manager, &buf, &place, 0) => s,
            _ = &mut interrupt => { interrupted = true; break; }
        };
        match step {
            Step::Continue => {}
            Step::Quit => break,
            Step::Failed => {
                failed = true;
                if !opts.keep_going {
                    break;
                }
            }
        }
    }
    if opts.stay && !interrupted {
        interrupt.await;
        interrupted = true;
    }
    manager.shutdown().await;
    drop(manager);
    // Every sender is gone once the sessions have ended; the bound only
    // guards against a task that outlives its session.
    let _ = tokio::time::timeout(Duration::from_secs(3), printer).await;
    if interrupted {
        EXIT_INTERRUPTED
    } else if failed {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// How deep `source` may nest (a file sourcing itself stops here).
const MAX_SOURCE_DEPTH: usize = 8;

/// Runs one line; `place` names it in errors (`line 3`, `setup.mux:3`).
async fn run_line(manager: &Manager, raw: &[u8], place: &str, depth: usize) -> Step {
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t.trim_end_matches(['\n', '\r']),
        Err(_) => {
            let err = CoreError::new(ErrorCode::CommandInvalid, format!("{place}: not valid UTF-8"));
            manager.emit(Event::error(err)).await;
            return Step::Failed;
        }
    };
    match parse_line(text) {
        Ok(None) => Step::Continue,
        Ok(Some(Parsed::Quit)) => Step::Quit,
        Ok(Some(Parsed::Sleep(d))) => {
            tokio::time::sleep(d).await;
            Step::Continue
        }
        Ok(Some(Parsed::Help(text))) => {
            manager.emit(Event::new(EventKind::Info(text))).await;
            Step::Continue
        }
        Ok(Some(Parsed::Source(path))) => Box::pin(source(manager, &path, place, depth)).await,
        Ok(Some(Parsed::Core(cmd))) => match manager.execute(cmd).await {
            Ok(_) => Step::Continue,
            Err(_) => Step::Failed,
        },
        Err(mut e) => {
            e.text = format!("{place}: {}", e.text);
            manager.emit(Event::error(e)).await;
            Step::Failed
        }
    }
}

/// `source FILE`: its lines run in order; the first failure fails it.
async fn source(manager: &Manager, path: &std::path::Path, place: &str, depth: usize) -> Step {
    let fail = |text: String| Event::error(CoreError::new(ErrorCode::CommandInvalid, text));
    if depth >= MAX_SOURCE_DEPTH {
        let text = format!(
            "{place}: source {} nests deeper than {MAX_SOURCE_DEPTH}",
            path.display()
        );
        manager.emit(fail(text)).await;
        return Step::Failed;
    }
    let text = match tokio::fs::read(path).await {
        Ok(t) => t,
        Err(e) => {
            manager
                .emit(fail(format!("{place}: cannot read {}: {e}", path.display())))
                .await;
            return Step::Failed;
        }
    };
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let here = format!("{}:{}", path.display(), i + 1);
        match run_line(manager, line, &here, depth + 1).await {
            Step::Continue => {}
            other => return other,
        }
    }
    Step::Continue
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP (the terminal went away).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
