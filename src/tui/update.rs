//! `update`: the one writer of the TUI's model. Every change — a key, a
//! mouse event, a resize, a core event, a command's result — arrives as a
//! [`Msg`]; what the model wants done outside itself comes back as
//! [`Effect`]s for the runtime to carry out.

use crossterm::event::{KeyEvent, MouseEvent};

use super::app::{App, Effect};
use super::keymap::Action;
use super::view;
use crate::core::{Event, View};

/// Everything that can change the model.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// Text pasted (bracketed paste).
    Paste(String),
    /// The terminal's new size: columns, rows.
    Resize(u16, u16),
    /// A line typed in insert mode could not be sent: the text, the error.
    Unsent(String, String),
    /// The command bar or a macro opened this session: select it.
    Opened(String),
    /// A trigger armed from the command bar (for completion).
    Armed(String),
    /// A command line (of a bar line, a macro, `source`, start-up) started.
    Started(u64, String),
    /// That run ended.
    Finished(u64),
    /// A second passed while data flowed: measure rates (the time since
    /// the last measure).
    Tick(std::time::Duration),
    /// `seq …` from a command line, and where its result goes.
    Seq(
        crate::lang::SeqRequest,
        tokio::sync::oneshot::Sender<Result<String, String>>,
    ),
    /// `highlight …`, `filter …` from a command line, and where its result goes.
    Display(
        crate::lang::DisplayRequest,
        tokio::sync::oneshot::Sender<Result<String, String>>,
    ),
    /// A profile's keymap and sequences file.
    Profile(Option<String>, Option<std::path::PathBuf>),
    /// A sequence of the send panel started as this run.
    SequenceRun(String, u64),
    /// An event of the session manager.
    Core(Box<Event>),
    /// A command line finished: its line and result.
    Done(String, Result<String, String>),
    /// A `view` command the core resolved: the session's full id.
    View(String, View),
    /// A `source` script ended (or failed, or was stopped).
    SourceDone(Result<String, String>),
    /// `help` / `CMD --help`: the text to show.
    Help(String),
    /// `quit` from a command line, a macro or a script: asks as `q` does.
    Quit,
}

/// Applies one message; returns what the runtime must do.
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    let effects = match msg {
        Msg::Key(key) => app.on_key(key),
        Msg::Paste(text) => app.on_paste(&text),
        Msg::Mouse(m) => {
            app.on_mouse(m);
            Vec::new()
        }
        Msg::Resize(width, height) => {
            app.size = (width, height);
            app.page = view::page_rows(height);
            Vec::new()
        }
        Msg::Unsent(text, error) => {
            app.unsent(text, error);
            Vec::new()
        }
        Msg::Opened(id) => {
            app.opened(&id);
            Vec::new()
        }
        Msg::Started(run, line) => {
            app.running.insert(run, (line, chrono::Utc::now()));
            Vec::new()
        }
        Msg::Profile(keymap, sequences) => {
            app.apply_profile(keymap, sequences);
            Vec::new()
        }
        Msg::Tick(elapsed) => {
            app.tick_rates(elapsed);
            Vec::new()
        }
        Msg::Finished(run) => {
            app.running.remove(&run);
            app.sequence_runs.retain(|_, (r, _)| *r != run);
            Vec::new()
        }
        Msg::Seq(req, reply) => {
            let _ = reply.send(app.on_seq(req));
            Vec::new()
        }
        Msg::Display(req, reply) => {
            let _ = reply.send(app.on_display(req));
            Vec::new()
        }
        Msg::SequenceRun(name, run) => {
            app.sequence_runs.insert(name, (run, chrono::Utc::now()));
            Vec::new()
        }
        Msg::Armed(id) => {
            if !app.triggers.contains(&id) {
                app.triggers.push(id);
            }
            Vec::new()
        }
        Msg::Core(ev) => {
            app.on_event(&ev);
            Vec::new()
        }
        Msg::Done(line, result) => {
            app.on_result(&line, result);
            Vec::new()
        }
        Msg::View(id, view) => {
            app.set_view(&id, view);
            Vec::new()
        }
        Msg::SourceDone(result) => {
            app.sourcing = None;
            // The result names the script: `ok: source setup.mux: done`.
            app.on_result("", result);
            Vec::new()
        }
        Msg::Help(text) => {
            app.show_help(text);
            Vec::new()
        }
        Msg::Quit => app.apply(Action::Quit),
    };
    effects
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Quit => {
                app.quit = true;
                None
            }
            // One `source` at a time; the status line says it runs.
            Effect::Run { line, session } if is_source(&line) => {
                if app.sourcing.is_some() {
                    app.on_result(&line, Err("a script is already running (Ctrl-C stops it)".into()));
                    return None;
                }
                app.sourcing = Some(line.clone());
                app.on_result(&line, Ok(" — running".into()));
                Some(Effect::Run { line, session })
            }
            other => Some(other),
        })
        .collect()
}

/// A command line that runs a script file.
pub fn is_source(line: &str) -> bool {
    line.split_whitespace().next() == Some("source")
}
