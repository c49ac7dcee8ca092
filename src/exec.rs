//! The one executor of the command language. `muxcat run`, the TUI's
//! command bar, `-c` start-up commands, key macros and `source` all run
//! their lines here, so `sleep`, `source`, `help`, `quit` and every core
//! command behave the same everywhere. A front end supplies only what
//! differs ([`FrontEnd`]): where help text goes and what a `view` does to
//! its screen.

use std::path::Path;

use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::core::files::{SCRIPT_MAX, read_capped_async};
use crate::core::{Command, CoreError, ErrorCode, Event, Manager, Outcome, View};
use crate::lang::{Parsed, parse_line};

/// How deep `source` may nest (a file sourcing itself stops here).
pub const MAX_SOURCE_DEPTH: usize = 8;

/// What differs between front ends.
pub trait FrontEnd: Send + Sync {
    /// Shows the text answering `help` or `CMD --help` (in order with
    /// the events around it).
    fn help(&self, text: String) -> BoxFuture<'_, ()>;
    /// A `view` command changed how a session (its full id) is shown.
    fn view(&self, _session: &str, _view: View) {}
    /// A profile's keymap and sequences file (the TUI applies them; other
    /// front ends have neither).
    fn profile(&self, _keymap: Option<String>, _sequences: Option<std::path::PathBuf>) {}
    /// `highlight …`, `filter …`: how the screen shows text (the TUI's;
    /// without a screen they change nothing, so a profile with them runs
    /// headless too). The result's text, or why it failed.
    fn display(&self, _req: crate::lang::DisplayRequest) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(std::future::ready(Ok(String::new())))
    }
    /// `seq …`: the send panel's sequences (the TUI has them); the
    /// result's text, or why it failed.
    fn sequence(&self, _req: crate::lang::SeqRequest) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(std::future::ready(Err(
            "seq: the send panel is part of the TUI (scripts use repeat and send)".to_string(),
        )))
    }
}

/// `muxcat run`'s front end: help is an `info` event among the others.
pub struct Headless(pub Manager);

impl FrontEnd for Headless {
    fn help(&self, text: String) -> BoxFuture<'_, ()> {
        Box::pin(self.0.emit(Event::new(crate::core::EventKind::Info(text))))
    }

    /// Succeeds (a profile with display rules runs headless too) and says
    /// that nothing changed, so a script's author is not left guessing.
    fn display(&self, req: crate::lang::DisplayRequest) -> BoxFuture<'_, Result<String, String>> {
        let text = format!(
            "{}: only the TUI shows it; nothing to do without a screen",
            req.command()
        );
        Box::pin(async move {
            self.0.emit(Event::new(crate::core::EventKind::Info(text))).await;
            Ok(String::new())
        })
    }
}

/// One running script (a `run` file, a `source` file, a macro, the `-c`
/// commands, a command-bar line): the session its commands default to.
/// It starts as the front end's selected session and then follows the
/// script's own opening commands (`connect`, `udp`, `accept`).
#[derive(Clone, Debug, Default)]
pub struct Script {
    pub default_session: Option<String>,
    /// Stops the script at the line it is on (the TUI's Ctrl-C).
    pub stop: Option<CancellationToken>,
    /// A key macro: each `send` first forgets what the session received,
    /// so a `waitfor` after it matches the answer to this send, not an
    /// older line (scripts keep the no-loss rule).
    pub fresh_sends: bool,
}

impl Script {
    pub fn starting_at(session: Option<String>) -> Script {
        Script {
            default_session: session,
            ..Script::default()
        }
    }
}

/// How a line ended.
#[derive(Debug)]
pub enum Step {
    /// Done; the core command's outcome, if it was one.
    Done(Option<Outcome>),
    /// Failed; the error was also emitted as an `error` event.
    Failed(CoreError),
    /// `quit`.
    Quit,
    /// Stopped (its [`Script::stop`]) while running the line at `at`.
    Stopped { at: String },
}

/// The executor: cheap to clone.
#[derive(Clone)]
pub struct Executor {
    manager: Manager,
    front: Arc<dyn FrontEnd>,
    /// `--lua-exec`: Lua scripts may run programs (`os.execute`, `io.popen`).
    lua_exec: bool,
}

impl Executor {
    pub fn new(manager: Manager, front: Arc<dyn FrontEnd>) -> Executor {
        Executor {
            manager,
            front,
            lua_exec: false,
        }
    }

    /// Lets Lua scripts run programs (`--lua-exec`).
    pub fn with_lua_exec(mut self, allow: bool) -> Executor {
        self.lua_exec = allow;
        self
    }

    pub fn lua_exec(&self) -> bool {
        self.lua_exec
    }

    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// Runs one line; `place` names it in errors (`line 3`, `setup.mux:3`).
    pub async fn run_line(&self, raw: &[u8], place: &str, script: &mut Script, depth: usize) -> Step {
        let Some(stop) = script.stop.clone() else {
            return self.run_line_inner(raw, place, script, depth).await;
        };
        tokio::select! {
            // The innermost line (of nested `source`s) reports the place.
            biased;
            step = self.run_line_inner(raw, place, script, depth) => step,
            _ = stop.cancelled() => Step::Stopped { at: place.to_string() },
        }
    }

    async fn run_line_inner(&self, raw: &[u8], place: &str, script: &mut Script, depth: usize) -> Step {
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t.trim_end_matches(['\n', '\r']),
            Err(_) => {
                return self
                    .fail(CoreError::new(
                        ErrorCode::CommandInvalid,
                        format!("{place}: not valid UTF-8"),
                    ))
                    .await;
            }
        };
        match parse_line(text) {
            Ok(None) => Step::Done(None),
            Ok(Some(Parsed::Quit)) => Step::Quit,
            Ok(Some(Parsed::Sleep(d))) => {
                tokio::time::sleep(d).await;
                Step::Done(None)
            }
            Ok(Some(Parsed::Help(text))) => {
                self.front.help(text).await;
                Step::Done(None)
            }
            Ok(Some(Parsed::Source(path))) => Box::pin(self.source(&path, place, script, depth)).await,
            Ok(Some(Parsed::Lua(chunk))) => {
                Box::pin(crate::lua::run(self, chunk.as_bytes(), "lua", script, depth)).await
            }
            Ok(Some(Parsed::Profile(name))) => Box::pin(self.profile(&name, place, script, depth)).await,
            Ok(Some(Parsed::Seq(req))) => {
                let done = self.front.sequence(req).await;
                self.front_result(done, place).await
            }
            Ok(Some(Parsed::Display(req))) => {
                let done = self.front.display(req).await;
                self.front_result(done, place).await
            }
            Ok(Some(Parsed::Filter { session, rule })) => {
                let id = match self.resolve(session, script).await {
                    Ok(id) => id,
                    Err(step) => return step,
                };
                let done = self
                    .front
                    .display(crate::lang::DisplayRequest::Filter { session: id, rule })
                    .await;
                self.front_result(done, place).await
            }
            Ok(Some(Parsed::Split { session, horizontal })) => {
                let session = match session {
                    Some(r) => match self.resolve(Some(r), script).await {
                        Ok(id) => Some(id),
                        Err(step) => return step,
                    },
                    None => None,
                };
                let done = self
                    .front
                    .display(crate::lang::DisplayRequest::Split { session, horizontal })
                    .await;
                self.front_result(done, place).await
            }
            Ok(Some(Parsed::Merge(refs))) => {
                let mut ids = Vec::with_capacity(refs.len());
                for r in refs {
                    match self.resolve(Some(r), script).await {
                        Ok(id) => ids.push(id),
                        Err(step) => return step,
                    }
                }
                let done = self.front.display(crate::lang::DisplayRequest::Merge(ids)).await;
                self.front_result(done, place).await
            }
            Ok(Some(Parsed::Repeat { every, count, line })) => {
                // Runs until `count` runs, a failure, or the script's stop.
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut done = 0;
                while count.is_none_or(|n| done < n) {
                    ticks.tick().await;
                    match Box::pin(self.run_line_inner(line.as_bytes(), place, script, depth)).await {
                        Step::Done(_) => done += 1,
                        other => return other,
                    }
                }
                Step::Done(None)
            }
            Ok(Some(Parsed::Core(Command::Exec { .. }))) if !self.lua_exec => {
                self.fail(CoreError::new(
                    ErrorCode::CommandInvalid,
                    format!(
                        "{place}: exec runs a program: start muxcat with --allow-exec to let scripts do that"
                    ),
                ))
                .await
            }
            // Lines of a sourced file name their place in errors.
            Ok(Some(Parsed::Core(cmd))) => {
                let place = (depth > 0).then_some(place);
                self.run_command_at(cmd, script, place).await
            }
            Err(mut e) => {
                e.text = format!("{place}: {}", e.text);
                self.fail(e).await
            }
        }
    }

    /// A session reference as the core's resolver names it (ids, labels,
    /// prefixes, `@N`; None: the script's default); the failed step else.
    async fn resolve(&self, session: Option<String>, script: &Script) -> Result<String, Step> {
        match self
            .run_command(Command::Resolve { session }, &mut script.clone())
            .await
        {
            Step::Done(Some(Outcome::Session(id))) => Ok(id),
            other => Err(other),
        }
    }

    /// What a front end answered: an error names the line's place.
    async fn front_result(&self, done: Result<String, String>, place: &str) -> Step {
        match done {
            Ok(_) => Step::Done(None),
            Err(text) => {
                self.fail(CoreError::new(
                    ErrorCode::CommandInvalid,
                    format!("{place}: {text}"),
                ))
                .await
            }
        }
    }

    /// Runs a core command with the script's default session; an opening
    /// command's session becomes the script's default.
    pub async fn run_command(&self, cmd: Command, script: &mut Script) -> Step {
        self.run_command_at(cmd, script, None).await
    }

    async fn run_command_at(&self, mut cmd: Command, script: &mut Script, place: Option<&str>) -> Step {
        if let Some(id) = &script.default_session {
            cmd.default_session(id);
        }
        let opens = matches!(
            cmd,
            Command::Connect(_) | Command::Udp(_) | Command::Accept { .. }
        );
        let view = match &cmd {
            Command::View { view, .. } => Some(*view),
            _ => None,
        };
        if script.fresh_sends
            && let Command::Send { to, .. } = &cmd
        {
            let forget = Command::Forget { session: to.clone() };
            if let Err(e) = self.manager.execute_at(forget, place).await {
                return Step::Failed(e);
            }
        }
        match self.manager.execute_at(cmd, place).await {
            Ok(outcome) => {
                if let Outcome::Session(id) = &outcome {
                    if opens {
                        script.default_session = Some(id.clone());
                    }
                    if let Some(view) = view {
                        self.front.view(id, view);
                    }
                }
                Step::Done(Some(outcome))
            }
            // The manager emitted the error event.
            Err(e) => Step::Failed(e),
        }
    }

    /// `profile NAME`: the profile's lines run as a sourced file's do.
    pub async fn profile(&self, name: &str, place: &str, script: &mut Script, depth: usize) -> Step {
        let invalid = |text: String| CoreError::new(ErrorCode::CommandInvalid, text);
        let Some(path) = crate::profile::locate(name) else {
            return self
                .fail(invalid(format!(
                    "{place}: profile {name:?}: not a profile name or .toml path"
                )))
                .await;
        };
        let text = match read_capped_async(&path, crate::core::files::KEYMAP_MAX).await {
            Ok(t) => t,
            Err(e) => {
                return self
                    .fail(invalid(format!(
                        "{place}: profile {name}: cannot read {}: {e}",
                        path.display()
                    )))
                    .await;
            }
        };
        let profile = match crate::profile::Profile::parse(&String::from_utf8_lossy(&text), &path) {
            Ok(p) => p,
            Err(e) => return self.fail(invalid(format!("{place}: profile {name}: {e}"))).await,
        };
        self.front
            .profile(profile.keymap.clone(), profile.sequences_in(&path));
        let lines = profile.lines();
        self.run_lines(&path, lines.iter().map(|l| l.as_bytes()), script, depth)
            .await
    }

    /// A file's lines (`source`, `profile`), in order, each named
    /// `FILE:N` in errors; the first that does not succeed ends it.
    async fn run_lines<'l>(
        &self,
        path: &Path,
        lines: impl Iterator<Item = &'l [u8]> + Send,
        script: &mut Script,
        depth: usize,
    ) -> Step {
        for (i, line) in lines.enumerate() {
            let here = format!("{}:{}", path.display(), i + 1);
            match Box::pin(self.run_line(line, &here, script, depth + 1)).await {
                Step::Done(_) => {}
                other => return other,
            }
        }
        Step::Done(None)
    }

    /// `source FILE`: its lines run in order; the first failure fails it.
    pub async fn source(&self, path: &Path, place: &str, script: &mut Script, depth: usize) -> Step {
        let invalid = |text: String| CoreError::new(ErrorCode::CommandInvalid, text);
        if depth >= MAX_SOURCE_DEPTH {
            return self
                .fail(invalid(format!(
                    "{place}: source {} nests deeper than {MAX_SOURCE_DEPTH}",
                    path.display()
                )))
                .await;
        }
        let text = match read_capped_async(path, SCRIPT_MAX).await {
            Ok(t) => t,
            Err(e) => {
                return self
                    .fail(invalid(format!("{place}: cannot read {}: {e}", path.display())))
                    .await;
            }
        };
        if crate::lua::is_lua(path) {
            let name = path.display().to_string();
            return Box::pin(crate::lua::run(self, &text, &name, script, depth + 1)).await;
        }
        self.run_lines(path, text.split(|&b| b == b'\n'), script, depth)
            .await
    }

    async fn fail(&self, err: CoreError) -> Step {
        self.manager.emit(Event::error(err.clone())).await;
        Step::Failed(err)
    }
}
