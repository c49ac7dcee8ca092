//! The terminal UI, in the Elm shape: [`app::App`] is the model, its
//! `on_key`/`on_event`/`apply` are `update`, [`view::view`] draws. This
//! module is the runtime: it owns the terminal, turns terminal input, core
//! events and command results into updates, performs the effects, and draws
//! at most ~60 frames a second — and only when something changed, so an
//! idle TUI uses no CPU.

pub mod app;
pub mod filter;
pub mod highlight;
pub mod input;
pub mod keymap;
pub mod messages;
pub mod panes;
pub mod plot;
pub mod rawkeys;
pub mod scrollback;
pub mod sequences;
pub mod update;
pub mod view;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
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
use crate::exec::{Executor, FrontEnd, Script, Step};
use app::{App, Effect};
use keymap::Keymap;
use update::{Msg, update};

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
    /// `--sequences FILE` for the send panel.
    pub sequences: Option<PathBuf>,
    pub record_dir: Option<PathBuf>,
    /// The transcript version recordings write.
    pub transcript_format: crate::transcript::Format,
    pub scrollback_lines: usize,
    /// `muxcat replay FILE` on a terminal: the transcript, read-only.
    pub replay: Option<ReplayFile>,
    /// `--lua-exec`: Lua scripts may run programs.
    pub lua_exec: bool,
}

/// A transcript to show read-only in the TUI.
pub struct ReplayFile {
    pub name: String,
    pub reader: crate::transcript::Reader<std::io::BufReader<std::fs::File>>,
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
    let mut text = String::new();
    for line in history {
        text.push_str(line);
        text.push('\n');
    }
    let _ = crate::core::files::write_private(&path, text.as_bytes());
}

/// Runs the TUI on the real terminal; returns the exit status.
pub async fn run(opts: TuiOptions) -> u8 {
    // A bad keymap does not keep the TUI from starting: the default keys
    // are used and every error is shown.
    let (keymap, keymap_errors) = match Keymap::load_with_user(opts.keymap.as_deref()) {
        Ok(k) => (k, None),
        Err(e) => (Keymap::load(None).unwrap_or_default(), Some(e)),
    };
    let (manager, events) = Manager::start(ManagerConfig {
        record_dir: opts.record_dir.clone(),
        transcript_format: opts.transcript_format,
        ..ManagerConfig::default()
    });
    let mut app = App::new(keymap, opts.scrollback_lines);
    if let Some(errors) = keymap_errors {
        app.keymap_failed(&errors);
    }
    // The send panel: --sequences FILE, else the user's file if any (and
    // where `seq save` writes).
    let sequences_file = opts.sequences.clone().or_else(|| {
        directories::ProjectDirs::from("", "", "muxcat").map(|d| d.config_dir().join("sequences.toml"))
    });
    if let Some(path) = sequences_file {
        if opts.sequences.is_some() || path.exists() {
            let (seqs, errors) = sequences::Sequences::load(&path);
            app.sequences = seqs;
            app.sequence_errors(&errors);
        } else {
            app.sequences.file = Some(path);
        }
    }
    if let Some(file) = opts.replay {
        app.load_transcript(&file.name, file.reader);
    }
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
        let _ = crossterm::execute!(
            std::io::stdout(),
            crossterm::event::DisableMouseCapture,
            crossterm::event::DisableBracketedPaste
        );
        flusher.flush_transcripts_blocking(std::time::Duration::from_secs(1));
        previous(info);
    }));
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::event::EnableMouseCapture,
        crossterm::event::EnableBracketedPaste
    );
    let startup = Startup {
        initial: opts.initial,
        commands: opts.commands,
        control: Some(Box::new(Stdout)),
        lua_exec: opts.lua_exec,
    };
    let result = run_loop(
        &mut terminal,
        &mut app,
        &manager,
        events,
        EventStream::new(),
        crate::script::shutdown_signal(),
        startup,
    )
    .await;
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::event::DisableMouseCapture,
        crossterm::event::DisableBracketedPaste
    );
    ratatui::restore();
    save_history(&app.history);
    manager.shutdown().await;
    match result {
        // As `run` and pipe mode: an interrupted TUI exits 130.
        Ok(Ended::Interrupted) => crate::script::EXIT_INTERRUPTED,
        Ok(_) => 0,
        Err(e) => {
            eprintln!("muxcat: terminal error: {e}");
            1
        }
    }
}

/// Where tasks report back to the UI loop.
type Results = mpsc::UnboundedSender<Msg>;

/// The TUI's side of the one executor: help goes to the help overlay, a
/// `view` to the pane showing that session.
struct TuiFront(Results);

impl FrontEnd for TuiFront {
    fn help(&self, text: String) -> futures_util::future::BoxFuture<'_, ()> {
        let _ = self.0.send(Msg::Help(text));
        Box::pin(std::future::ready(()))
    }

    fn view(&self, session: &str, view: crate::core::View) {
        let _ = self.0.send(Msg::View(session.to_string(), view));
    }

    fn profile(&self, keymap: Option<String>, sequences: Option<PathBuf>) {
        let _ = self.0.send(Msg::Profile(keymap, sequences));
    }

    fn display(
        &self,
        req: crate::lang::DisplayRequest,
    ) -> futures_util::future::BoxFuture<'_, Result<String, String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.0.send(Msg::Display(req, tx));
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err("the TUI is closing".into())) })
    }

    fn sequence(
        &self,
        req: crate::lang::SeqRequest,
    ) -> futures_util::future::BoxFuture<'_, Result<String, String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.0.send(Msg::Seq(req, tx));
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err("the TUI is closing".into())) })
    }
}

/// A line's result as the status line shows it.
fn describe_step(step: &Step) -> Result<String, String> {
    match step {
        Step::Done(Some(outcome)) => describe(Ok(outcome.clone())),
        Step::Done(None) | Step::Quit => Ok(String::new()),
        Step::Failed(e) => Err(format!("{}: {}", e.code, e.text)),
        Step::Stopped { at } => Err(match at.rsplit_once(':') {
            Some((file, n)) if n.bytes().all(|b| b.is_ascii_digit()) => {
                format!("{file}: stopped at line {n}")
            }
            _ => "stopped".to_string(),
        }),
    }
}

/// Runs `lines` as one script (start-up `-c` commands, a key macro): in
/// order, each waiting for the one before, starting from `session`; the
/// first failure stops it, and so does `run`'s token (Ctrl-C). Each line
/// is reported as it starts, so the status line says what is under way.
fn spawn_script(
    executor: &Executor,
    results: &Results,
    lines: Vec<String>,
    session: Option<String>,
    fresh_sends: bool,
    (run, stop): (u64, CancellationToken),
) {
    let executor = executor.clone();
    let results = results.clone();
    tokio::spawn(async move {
        let mut script = Script::starting_at(session);
        script.fresh_sends = fresh_sends;
        script.stop = Some(stop);
        for line in lines {
            let _ = results.send(Msg::Started(run, line.clone()));
            let step = executor.run_line(line.as_bytes(), &line, &mut script, 0).await;
            report_opened(&results, &step);
            let _ = results.send(Msg::Done(line, describe_step(&step)));
            match step {
                Step::Done(_) => {}
                Step::Quit => {
                    let _ = results.send(Msg::Quit);
                    break;
                }
                Step::Failed(_) | Step::Stopped { .. } => break,
            }
        }
        let _ = results.send(Msg::Finished(run));
    });
}

/// Commands and scripts under way (command-bar lines, key macros,
/// `source`, start-up lines), each stoppable with Ctrl-C.
#[derive(Default)]
struct Running {
    next: u64,
    stops: std::collections::HashMap<u64, CancellationToken>,
}

impl Running {
    fn start(&mut self) -> (u64, CancellationToken) {
        self.next += 1;
        let stop = CancellationToken::new();
        self.stops.insert(self.next, stop.clone());
        (self.next, stop)
    }

    fn finished(&mut self, run: u64) {
        self.stops.remove(&run);
    }

    fn stop_all(&mut self) {
        for (_, stop) in self.stops.drain() {
            stop.cancel();
        }
    }
}

/// What the TUI opens and runs first: `muxcat connect …` on a terminal
/// opens `initial`; `-c` lines run in order after it.
#[derive(Default)]
pub struct Startup {
    pub initial: Option<Command>,
    pub commands: Vec<String>,
    /// What the model asks of the terminal beyond drawing (clipboard,
    /// mouse reporting); none in tests that do not look at it.
    pub control: Option<Box<dyn TermControl>>,
    /// `--lua-exec`: Lua scripts may run programs.
    pub lua_exec: bool,
}

/// Terminal requests beside the drawing.
pub trait TermControl: Send {
    /// Puts text on the clipboard.
    fn copy(&mut self, text: &str);
    /// Turns mouse reporting on or off.
    fn mouse(&mut self, on: bool);
}

/// The real terminal: OSC 52 for the clipboard (it works over SSH and in
/// tmux with `set-clipboard on`), crossterm for the mouse.
pub struct Stdout;

/// The OSC 52 sequence that puts `text` on the clipboard.
pub fn osc52(text: &str) -> String {
    use base64::Engine;
    format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

impl TermControl for Stdout {
    fn copy(&mut self, text: &str) {
        let mut out = std::io::stdout();
        let _ = out.write_all(osc52(text).as_bytes());
        let _ = out.flush();
    }

    fn mouse(&mut self, on: bool) {
        let _ = if on {
            crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)
        } else {
            crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture)
        };
    }
}

/// The Elm loop: terminal input, core events and command results become
/// [`Msg`]s for [`update`], the effects it returns are carried out, and
/// the screen is drawn (at most ~60 times a second, only when something
/// changed). The caller supplies the terminal, the input stream and the
/// shutdown signal, so tests drive it in-process with a `TestBackend`.
pub async fn run_loop<B, I>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    manager: &Manager,
    mut events: crate::core::EventStream,
    mut input: I,
    shutdown: impl Future<Output = ()>,
    startup: Startup,
) -> Result<Ended, B::Error>
where
    B: Backend,
    I: futures_util::Stream<Item = std::io::Result<TermEvent>> + Unpin,
{
    let theme = view::Theme::from_env();
    if let Ok(size) = terminal.size() {
        app.size = (size.width, size.height);
        app.page = view::page_rows(size.height);
    }
    let panic_key = std::env::var_os("MUXCAT_TEST_PANIC").is_some();
    let (results, mut results_rx) = mpsc::unbounded_channel();
    let executor =
        Executor::new(manager.clone(), Arc::new(TuiFront(results.clone()))).with_lua_exec(startup.lua_exec);
    let startup_control = startup.control;
    let mut running = Running::default();
    // Start-up commands run in order, while the UI is already live.
    {
        let executor = executor.clone();
        let results = results.clone();
        let run = running.start();
        tokio::spawn(async move {
            let mut session = None;
            if let Some(cmd) = startup.initial {
                let mut script = Script::default();
                let step = executor.run_command(cmd, &mut script).await;
                let _ = results.send(Msg::Done("open".to_string(), describe_step(&step)));
                session = script.default_session;
            }
            spawn_script(&executor, &results, startup.commands, session, false, run);
        });
    }
    let mut control = startup_control;
    tokio::pin!(shutdown);
    // Rates are measured once a second while data flows (one timer across
    // turns of the loop, so a flood does not keep resetting it).
    let mut rates = tokio::time::interval_at(Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    rates.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut measured = Instant::now();
    let mut dirty = true;
    let mut next_frame = Instant::now();
    while !app.quit {
        if dirty && Instant::now() >= next_frame {
            terminal.draw(|f| view::view(app, f, theme))?;
            dirty = false;
            next_frame = Instant::now() + FRAME;
        }
        let msg = tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    // The hardening tests check that a panic restores the terminal.
                    if panic_key && key.code == crossterm::event::KeyCode::F(12) {
                        panic!("F12 pressed with MUXCAT_TEST_PANIC set");
                    }
                    Msg::Key(key)
                }
                Some(Ok(TermEvent::Mouse(m))) => Msg::Mouse(m),
                Some(Ok(TermEvent::Paste(text))) => Msg::Paste(text),
                Some(Ok(TermEvent::Resize(w, h))) => Msg::Resize(w, h),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ok(Ended::InputClosed),
            },
            ev = events.recv() => {
                let Some(ev) = ev else { return Ok(Ended::InputClosed) };
                // Take what else is queued before drawing, a few
                // milliseconds' worth: a flood costs one frame per batch,
                // and keys still get their turn between batches.
                let budget = Instant::now() + EVENT_BUDGET;
                let mut effects = update(app, Msg::Core(Box::new(ev)));
                while Instant::now() < budget {
                    match events.try_recv() {
                        Ok(ev) => effects.extend(update(app, Msg::Core(Box::new(ev)))),
                        Err(_) => break,
                    }
                }
                perform(&executor, &results, &mut running, &mut control, effects).await;
                dirty = true;
                continue;
            }
            Some(msg) = results_rx.recv() => msg,
            now = rates.tick(), if app.rates_active() => {
                let elapsed = now.saturating_duration_since(measured);
                measured = now;
                Msg::Tick(elapsed)
            }
            _ = tokio::time::sleep_until(next_frame), if dirty => continue,
            // A countdown is on screen (a reconnect, a wait): redraw it.
            _ = tokio::time::sleep(Duration::from_millis(250)), if !dirty && (app.reconnecting() || !app.running.is_empty() || !app.sequence_runs.is_empty()) => {
                dirty = true;
                continue;
            }
            _ = &mut shutdown => return Ok(Ended::Interrupted),
        };
        if let Msg::Finished(run) = msg {
            running.finished(run);
        }
        let effects = update(app, msg);
        perform(&executor, &results, &mut running, &mut control, effects).await;
        dirty = true;
    }
    Ok(Ended::Quit)
}

/// How the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The user quit.
    Quit,
    /// Ctrl-C, SIGTERM or SIGHUP (the shutdown the caller gave).
    Interrupted,
    /// The terminal's input or the core's events ended.
    InputClosed,
}

fn describe(result: crate::core::CoreResult<Outcome>) -> Result<String, String> {
    match result {
        Ok(Outcome::Session(id))
        | Ok(Outcome::Listener(id))
        | Ok(Outcome::Trigger(id))
        | Ok(Outcome::Matched { session: id, .. }) => {
            Ok(format!(" → {}", crate::core::events::short_id(&id)))
        }
        Ok(Outcome::Done | Outcome::Sessions(_)) => Ok(String::new()),
        Err(e) => Err(format!("{}: {}", e.code, e.text)),
    }
}

/// Carries out what `update` asked for.
async fn perform(
    executor: &Executor,
    results: &Results,
    running: &mut Running,
    control: &mut Option<Box<dyn TermControl>>,
    effects: Vec<Effect>,
) {
    for effect in effects {
        match effect {
            Effect::SendKeys { session, bytes } => {
                let cmd = Command::Send {
                    to: Some(session),
                    payload: Bytes::from(bytes),
                    raw: true,
                };
                let pending = executor.manager().submit(cmd).await;
                let results = results.clone();
                tokio::spawn(async move {
                    if let Err(e) = pending.await {
                        let _ = results.send(Msg::Done("key".into(), Err(format!("{}: {}", e.code, e.text))));
                    }
                });
            }
            Effect::RunSequence { name, lines, session } => {
                let run = running.start();
                let _ = results.send(Msg::SequenceRun(name, run.0));
                spawn_script(executor, results, lines, session, true, run);
            }
            Effect::StopRun(run) => {
                if let Some(stop) = running.stops.remove(&run) {
                    stop.cancel();
                }
            }
            Effect::Copy(text) => {
                if let Some(c) = control {
                    c.copy(&text);
                }
            }
            Effect::Mouse(on) => {
                if let Some(c) = control {
                    c.mouse(on);
                }
            }
            // `update` turns Quit into the model's `quit`.
            Effect::Quit => {}
            Effect::StopRunning => running.stop_all(),
            Effect::Send { session, text, bytes } => {
                let raw = bytes.is_some();
                let payload = bytes.unwrap_or_else(|| text.clone().into_bytes());
                let cmd = Command::Send {
                    to: Some(session),
                    payload: Bytes::from(payload),
                    raw,
                };
                // A failed send gives the typed line back.
                let pending = executor.manager().submit(cmd).await;
                let results = results.clone();
                tokio::spawn(async move {
                    // The scrollback shows what was sent; only a failure speaks.
                    if let Err(e) = pending.await {
                        let _ = results.send(Msg::Unsent(text, format!("{}: {}", e.code, e.text)));
                    }
                });
            }
            // A macro's waits see the answers to its own sends.
            Effect::Macro { lines, session } => {
                spawn_script(executor, results, lines, session, true, running.start())
            }
            Effect::Run { line, session } => {
                // Runs until done, failed or stopped (Ctrl-C).
                let sourcing = update::is_source(&line);
                let (run, stop) = running.start();
                let executor = executor.clone();
                let results = results.clone();
                tokio::spawn(async move {
                    let _ = results.send(Msg::Started(run, line.clone()));
                    let mut script = Script::starting_at(session);
                    script.stop = Some(stop);
                    let step = executor
                        .run_line(line.as_bytes(), "command", &mut script, 0)
                        .await;
                    if matches!(step, Step::Quit) {
                        let _ = results.send(Msg::Quit);
                    }
                    report_opened(&results, &step);
                    let result = describe_step(&step);
                    if sourcing {
                        let _ = results.send(Msg::SourceDone(result.map(|_| format!("{line}: done"))));
                    } else {
                        let _ = results.send(Msg::Done(line, result));
                    }
                    let _ = results.send(Msg::Finished(run));
                });
            }
        }
    }
}

/// A session the user opened becomes the selected one; a trigger armed
/// is remembered for completion.
fn report_opened(results: &Results, step: &Step) {
    match step {
        Step::Done(Some(Outcome::Session(id))) => {
            let _ = results.send(Msg::Opened(id.clone()));
        }
        Step::Done(Some(Outcome::Trigger(id))) => {
            let _ = results.send(Msg::Armed(id.clone()));
        }
        _ => {}
    }
}
