//! `muxcat run`: executes a script line by line as it arrives, prints every
//! event (readable or JSON lines) on stdout, and returns the exit status of
//! CONTRACT section 6.

use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::core::files::LINE_MAX;

use crate::core::{CoreError, ErrorCode, Event, EventStream, Manager, ManagerConfig};
use crate::exec::{Executor, Headless, Script, Step};

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
    /// The transcript version recordings write.
    pub transcript_format: crate::transcript::Format,
    /// `--lua-exec`: Lua scripts may run programs.
    pub lua_exec: bool,
    /// `run script.lua` (or `--lua`): the script is this Lua file.
    pub lua_file: Option<std::path::PathBuf>,
}

/// Exit statuses.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_INTERRUPTED: u8 = 130;
/// stdout's reader went away (`| head -1`): the status a shell shows for a
/// program killed by SIGPIPE, which is what nc and friends end with.
pub const EXIT_STDOUT_GONE: u8 = 141;

/// After a first Ctrl-C/SIGTERM started a clean shutdown, a second one
/// ends the process at once (transcripts written out first, at most 1 s),
/// so a shutdown that waits on something stuck can always be cut short.
pub fn exit_on_next_signal(manager: Manager) {
    tokio::spawn(async move {
        shutdown_signal().await;
        manager.flush_transcripts_blocking(Duration::from_secs(1));
        std::process::exit(EXIT_INTERRUPTED.into());
    });
}

/// Events printed per flush at most, counted as the memory they hold.
const PRINT_BATCH: usize = 1 << 20;

/// Prints events until the channel closes. A closed stdout stops printing,
/// not draining, so sessions never stall on it; `gone` is told once.
pub async fn print_events<W: Write>(
    mut events: EventStream,
    out: W,
    json: bool,
    gone: Option<tokio::sync::oneshot::Sender<()>>,
) {
    // One write per batch, not per line (stdout is line-buffered).
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut gone = gone;
    let mut broken = false;
    let mut line = String::new();
    while let Some(ev) = events.recv().await {
        let mut held = crate::core::sink::held_bytes(&ev);
        let mut batch = vec![ev];
        while held < PRINT_BATCH
            && let Ok(ev) = events.try_recv()
        {
            held += crate::core::sink::held_bytes(&ev);
            batch.push(ev);
        }
        if broken {
            continue;
        }
        for ev in &batch {
            ev.for_each_single(|single| {
                if broken {
                    return;
                }
                line.clear();
                line.push_str(&if json {
                    single.to_json()
                } else {
                    single.to_readable()
                });
                line.push('\n');
                broken = out.write_all(line.as_bytes()).is_err();
            });
        }
        if !broken && out.flush().is_err() {
            broken = true;
        }
        if broken && let Some(tell) = gone.take() {
            let _ = tell.send(());
        }
    }
}

/// Runs a script from `input`, printing events to `out`; returns the exit status.
pub async fn run<R, W>(input: R, out: W, opts: RunOptions) -> u8
where
    R: AsyncBufRead + Unpin,
    W: Write + Send + 'static,
{
    let (manager, events) = Manager::start(ManagerConfig {
        record_dir: opts.record_dir.clone(),
        transcript_format: opts.transcript_format,
        ..ManagerConfig::default()
    });
    let (gone_tx, gone) = tokio::sync::oneshot::channel();
    let printer = tokio::spawn(async move { print_events(events, out, opts.json, Some(gone_tx)).await });
    // Ctrl-C/SIGTERM/SIGHUP, or stdout's reader went away (`| head -1`).
    let stop = async {
        tokio::select! {
            _ = shutdown_signal() => EXIT_INTERRUPTED,
            Ok(()) = gone => EXIT_STDOUT_GONE,
        }
    };
    tokio::pin!(stop);

    let executor = Executor::new(manager.clone(), std::sync::Arc::new(Headless(manager.clone())))
        .with_lua_exec(opts.lua_exec);
    let mut script = Script::default();
    let mut input = input;
    let mut failed = false;
    let mut stopped = None;
    let mut line_no = 0usize;
    let mut buf = Vec::new();
    if let Some(path) = &opts.lua_file {
        let step = tokio::select! {
            s = lua_file(&executor, path, &mut script) => Some(s),
            code = &mut stop => { stopped = Some(code); None }
        };
        failed = matches!(step, Some(Step::Failed(_)));
    }
    while opts.lua_file.is_none() {
        buf.clear();
        let read = tokio::select! {
            r = read_line_capped(&mut input, &mut buf) => r,
            code = &mut stop => { stopped = Some(code); break; }
        };
        line_no += 1;
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let err = CoreError::new(
                    ErrorCode::IoError,
                    format!("reading the script failed at line {line_no}: {e}"),
                );
                manager.emit(Event::error(err)).await;
                failed = true;
                break;
            }
        }
        let place = format!("line {line_no}");
        let step = tokio::select! {
            s = executor.run_line(&buf, &place, &mut script, 0) => s,
            code = &mut stop => { stopped = Some(code); break; }
        };
        match step {
            Step::Done(_) => {}
            Step::Quit | Step::Stopped { .. } => break,
            Step::Failed(_) => {
                failed = true;
                if !opts.keep_going {
                    break;
                }
            }
        }
    }
    if opts.stay && stopped.is_none() {
        stopped = Some((&mut stop).await);
    }
    if let Some(code) = stopped {
        // The printer may be stuck on a stdout nobody reads: closing
        // sessions must not wait for it, and a second signal ends it all.
        manager.stop_waiting();
        if code == EXIT_INTERRUPTED {
            exit_on_next_signal(manager.clone());
        }
    }
    manager.shutdown().await;
    // The executor holds handles too: every one must go for the printer to
    // see the end of the events.
    drop(executor);
    drop(manager);
    // Every sender is gone once the sessions have ended; the bound only
    // guards against a task that outlives its session.
    let _ = tokio::time::timeout(Duration::from_secs(3), printer).await;
    match stopped {
        Some(code) => code,
        None if failed => EXIT_FAILED,
        None => EXIT_OK,
    }
}

/// `run script.lua`: the whole file as one Lua chunk.
async fn lua_file(executor: &Executor, path: &std::path::Path, script: &mut Script) -> Step {
    match crate::core::files::read_capped_async(path, crate::core::files::SCRIPT_MAX).await {
        Ok(text) => crate::lua::run(executor, &text, &path.display().to_string(), script, 0).await,
        Err(e) => {
            let err = CoreError::new(
                ErrorCode::CommandInvalid,
                format!("cannot read {}: {e}", path.display()),
            );
            executor.manager().emit(Event::error(err.clone())).await;
            Step::Failed(err)
        }
    }
}

/// Reads one line, `\n` included, into `buf` (0 at the end of the
/// script). A line longer than [`LINE_MAX`] is an error: what follows it
/// cannot be trusted to be the next command (and `/dev/zero` has no end).
async fn read_line_capped<R: AsyncBufRead + Unpin>(
    input: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let available = input.fill_buf().await?;
        if available.is_empty() {
            return Ok(buf.len());
        }
        let (take, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + take > LINE_MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the line is longer than {}; the rest of the script is not read",
                    crate::core::files::size(LINE_MAX as u64)
                ),
            ));
        }
        buf.extend_from_slice(&available[..take]);
        input.consume(take);
        if done {
            return Ok(buf.len());
        }
    }
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP (the terminal went away).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // SIGQUIT too: its default (a core dump) would leave a TUI's
        // terminal in the alternate screen with mouse reporting on.
        let (Ok(mut term), Ok(mut hup), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::quit()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = quit.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
