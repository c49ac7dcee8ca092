//! The terminal UI, in the Elm shape: [`app::App`] is the model, its
//! `on_key`/`on_event`/`apply` are `update`, [`view::view`] draws. This
//! module is the runtime: it owns the terminal, turns terminal input, core
//! events and command results into updates, performs the effects, and draws
//! at most ~60 frames a second — and only when something changed, so an
//! idle TUI uses no CPU.

pub mod app;
pub mod keymap;
pub mod scrollback;
pub mod view;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::{Command, Manager, ManagerConfig, Outcome};
use crate::lang::{Parsed, parse_line};
use app::{App, Effect};
use keymap::Keymap;

/// At most this many frames a second.
const FRAME: Duration = Duration::from_millis(16);
/// How long one turn of the loop may spend taking in queued events.
const EVENT_BUDGET: Duration = Duration::from_millis(8);

pub struct TuiOptions {
    /// A command to open first (`muxcat connect … ` on a terminal).
    pub initial: Option<Command>,
    /// `-c` lines, run in order at start.
    pub commands: Vec<String>,
    pub keymap: Option<String>,
    pub record_dir: Option<PathBuf>,
    pub scrollback_lines: usize,
}

fn history_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "muxcat").map(|d| d.data_dir().join("history"))
}

fn load_history() -> Vec<String> {
    let Some(path) = history_file() else {
        return Vec::new();
    };
    let text = crate::core::files::read_capped(&path, crate::core::files::HISTORY_MAX)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[lines.len().saturating_sub(app::HISTORY)..].to_vec()
}

/// Saves the command history, owner-only.
fn save_history(history: &[String]) {
    let Some(path) = history_file() else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    if let Ok(mut f) = opts.open(path) {
        for line in history {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Runs the TUI on the real terminal; returns the exit status.
pub async fn run(opts: TuiOptions) -> u8 {
    let keymap = match Keymap::load_with_user(opts.keymap.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("muxcat: keymap: {e}");
            return 2;
        }
    };
    let (manager, events) = Manager::start(ManagerConfig {
        record_dir: opts.record_dir.clone(),
        ..ManagerConfig::default()
    });
    let mut app = App::new(keymap, opts.scrollback_lines);
    app.recording = opts.record_dir.is_some();
    app.history = load_history();

    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("muxcat: cannot set up the terminal: {e}");
            return 1;
        }
    };
    // ratatui's hook restores the screen on panic; ours first turns mouse
    // capture off and writes out the transcripts.
    let previous = std::panic::take_hook();
    let flusher = manager.clone();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
        flusher.flush_transcripts_blocking(std::time::Duration::from_secs(1));
        previous(info);
    }));
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture);
    if let Ok(size) = terminal.size() {
        app.page = view::page_rows(size.height);
    }
    let result = run_loop(
        &mut terminal,
        &mut app,
        &manager,
        events,
        opts.initial,
        opts.commands,
    )
    .await;
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    ratatui::restore();
    save_history(&app.history);
    manager.shutdown().await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("muxcat: terminal error: {e}");
            1
        }
    }
}

/// What tasks report back to the UI loop.
enum UiMsg {
    /// A command finished: its line and result.
    Done(String, Result<String, String>),
    /// A start-up `view` command to apply to the model.
    View(String, crate::core::View),
    /// A `source` script ended (or failed, or was stopped).
    SourceDone(Result<String, String>),
}

type Results = mpsc::UnboundedSender<UiMsg>;

async fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    manager: &Manager,
    mut events: crate::core::EventStream,
    initial: Option<Command>,
    commands: Vec<String>,
) -> Result<(), B::Error> {
    let theme = view::Theme::from_env();
    let panic_key = std::env::var_os("MUXCAT_TEST_PANIC").is_some();
    let (results, mut results_rx) = mpsc::unbounded_channel();
    // Start-up commands run in order, while the UI is already live.
    {
        let manager = manager.clone();
        let results = results.clone();
        tokio::spawn(async move {
            if let Some(cmd) = initial {
                let r = manager.execute(cmd).await;
                let _ = results.send(UiMsg::Done("open".to_string(), describe(r)));
            }
            for line in commands {
                match parse_line(&line) {
                    Ok(Some(Parsed::Core(mut cmd))) => {
                        if let Some((target, view)) = prepare(&mut cmd, None) {
                            let _ = results.send(UiMsg::View(target, view));
                        }
                        let r = manager.execute(cmd).await;
                        let _ = results.send(UiMsg::Done(line, describe(r)));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = results.send(UiMsg::Done(line, Err(format!("{}: {}", e.code, e.text))));
                    }
                }
            }
        });
    }
    let mut input = EventStream::new();
    // Stops the running `source` script, if any.
    let mut source_stop: Option<CancellationToken> = None;
    let interrupt = crate::script::shutdown_signal();
    tokio::pin!(interrupt);
    let mut dirty = true;
    let mut next_frame = Instant::now();
    while !app.quit {
        if dirty && Instant::now() >= next_frame {
            terminal.draw(|f| view::view(app, f, theme))?;
            dirty = false;
            next_frame = Instant::now() + FRAME;
        }
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    // The hardening tests check that a panic restores the terminal.
                    if panic_key && key.code == crossterm::event::KeyCode::F(12) {
                        panic!("F12 pressed with MUXCAT_TEST_PANIC set");
                    }
                    let effects = app.on_key(key);
                    perform(app, manager, &results, &mut source_stop, effects).await;
                    dirty = true;
                }
                Some(Ok(TermEvent::Mouse(m))) => {
                    app.on_mouse(m);
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(_, h))) => {
                    app.page = view::page_rows(h);
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                app.on_event(&ev);
                // Take what else is queued before drawing, a few
                // milliseconds' worth: a flood costs one frame per batch,
                // and keys still get their turn between batches.
                let budget = Instant::now() + EVENT_BUDGET;
                while Instant::now() < budget {
                    match events.try_recv() {
                        Ok(ev) => app.on_event(&ev),
                        Err(_) => break,
                    }
                }
                dirty = true;
            }
            Some(msg) = results_rx.recv() => {
                match msg {
                    UiMsg::Done(line, result) => app.on_result(&line, result),
                    UiMsg::View(target, view) => app.set_view(&target, view),
                    UiMsg::SourceDone(result) => {
                        app.sourcing = None;
                        source_stop = None;
                        app.on_result("source", result);
                    }
                }
                dirty = true;
            }
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
            // A reconnect countdown is on screen: redraw it.
            _ = tokio::time::sleep(Duration::from_millis(250)), if !dirty && app.reconnecting() => dirty = true,
            _ = &mut interrupt => break,
        }
    }
    Ok(())
}

fn describe(result: crate::core::CoreResult<Outcome>) -> Result<String, String> {
    match result {
        Ok(Outcome::Session(id)) | Ok(Outcome::Listener(id)) | Ok(Outcome::Trigger(id)) => {
            Ok(format!(" → {}", crate::core::events::short_id(&id)))
        }
        Ok(Outcome::Done) => Ok(String::new()),
        Err(e) => Err(format!("{}: {}", e.code, e.text)),
    }
}

/// Carries out what `update` asked for.
async fn perform(
    app: &mut App,
    manager: &Manager,
    results: &Results,
    source_stop: &mut Option<CancellationToken>,
    effects: Vec<Effect>,
) {
    for effect in effects {
        match effect {
            Effect::Quit => app.quit = true,
            Effect::StopSource => {
                if let Some(stop) = source_stop.take() {
                    stop.cancel();
                }
            }
            Effect::Send { session, text } => {
                let cmd = Command::Send {
                    to: Some(session),
                    payload: Bytes::from(text.into_bytes()),
                    raw: false,
                };
                spawn_command(manager, results, "send".to_string(), cmd).await;
            }
            Effect::Macro { lines, session } => {
                // In order, each waiting for the one before (a send, then a waitfor).
                let manager = manager.clone();
                let results = results.clone();
                tokio::spawn(async move {
                    for line in lines {
                        let Ok(Some(Parsed::Core(mut cmd))) = parse_line(&line) else {
                            continue;
                        };
                        if let Some((target, view)) = prepare(&mut cmd, session.as_ref()) {
                            let _ = results.send(UiMsg::View(target, view));
                        }
                        let r = describe(manager.execute(cmd).await);
                        let failed = r.is_err();
                        let _ = results.send(UiMsg::Done(line, r));
                        if failed {
                            break;
                        }
                    }
                });
            }
            Effect::Run { line, session } => match parse_line(&line) {
                Ok(None) => {}
                Ok(Some(Parsed::Quit)) => {
                    for e in app.apply(keymap::Action::Quit) {
                        if e == Effect::Quit {
                            app.quit = true;
                        }
                    }
                }
                Ok(Some(Parsed::Sleep(_))) => {
                    app.on_result(&line, Err("sleep only makes sense in scripts".into()))
                }
                Ok(Some(Parsed::Help(_))) => app.mode = app::Mode::Help,
                Ok(Some(Parsed::Source(path))) => {
                    if app.sourcing.is_some() {
                        app.on_result(&line, Err("a script is already running (Ctrl-C stops it)".into()));
                    } else {
                        let stop = CancellationToken::new();
                        app.sourcing = Some(path.display().to_string());
                        *source_stop = Some(stop.clone());
                        tokio::spawn(run_source(manager.clone(), results.clone(), path, session, stop));
                        app.on_result(&line, Ok(" — running, Ctrl-C stops it".into()));
                    }
                }
                Ok(Some(Parsed::Core(mut cmd))) => {
                    if let Some((target, view)) = prepare(&mut cmd, session.as_ref()) {
                        app.set_view(&target, view);
                    }
                    spawn_command(manager, results, line, cmd).await;
                }
                Err(e) => app.on_result(&line, Err(format!("{}: {}", e.code, e.text))),
            },
        }
    }
}

/// Fills the selected session into a command that names none, and returns
/// the view a `view` command asks for, to apply to the model as well.
fn prepare(cmd: &mut Command, session: Option<&String>) -> Option<(String, crate::core::View)> {
    if let Some(id) = session {
        cmd.default_session(id);
    }
    match cmd {
        Command::View {
            session: Some(target),
            view,
        } => Some((target.clone(), *view)),
        _ => None,
    }
}

/// `source FILE` in the TUI: the file's commands run in order against the
/// live sessions, their events shown as usual; a failure or Ctrl-C stops it.
async fn run_source(
    manager: Manager,
    results: Results,
    path: PathBuf,
    session: Option<String>,
    stop: CancellationToken,
) {
    let name = path.display().to_string();
    let text = match crate::core::files::read_capped_async(&path, crate::core::files::SCRIPT_MAX)
        .await
        .and_then(|b| {
            String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        }) {
        Ok(t) => t,
        Err(e) => {
            let _ = results.send(UiMsg::SourceDone(Err(format!("cannot read {name}: {e}"))));
            return;
        }
    };
    let failed = |line: usize, e: crate::core::CoreError| {
        let _ = results.send(UiMsg::SourceDone(Err(format!(
            "{name}:{line}: {}: {}",
            e.code, e.text
        ))));
    };
    for (i, line) in text.lines().enumerate() {
        let mut cmd = match parse_line(line) {
            Ok(Some(Parsed::Core(cmd))) => cmd,
            Ok(_) => continue,
            Err(e) => return failed(i + 1, e),
        };
        if let Some((target, view)) = prepare(&mut cmd, session.as_ref()) {
            let _ = results.send(UiMsg::View(target, view));
        }
        let outcome = tokio::select! {
            r = manager.execute(cmd) => r,
            _ = stop.cancelled() => {
                let _ = results.send(UiMsg::SourceDone(Err(format!("{name}: stopped at line {}", i + 1))));
                return;
            }
        };
        if let Err(e) = outcome {
            return failed(i + 1, e);
        }
    }
    let _ = results.send(UiMsg::SourceDone(Ok(format!("{name}: done"))));
}

/// Queues a command in order and reports its result when it completes
/// (a `waitfor` may take a while; the UI does not wait for it).
async fn spawn_command(manager: &Manager, results: &Results, line: String, cmd: Command) {
    let pending = manager.submit(cmd).await;
    let results = results.clone();
    tokio::spawn(async move {
        let r = pending.await;
        let _ = results.send(UiMsg::Done(line, describe(r)));
    });
}
