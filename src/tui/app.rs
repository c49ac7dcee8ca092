//! The TUI's model and `update`: core events and key presses change the
//! state; anything that must reach the session manager comes back as an
//! [`Effect`] for the runtime to perform. No terminal I/O here, so every
//! action is unit-tested.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use super::keymap::{Action, Key, Keymap};
use super::scrollback::{Entry, Mark, Scrollback};
use crate::core::events::{CloseReason, short_id};
use crate::core::transport::Kind;
use crate::core::{Event, EventKind, View};

/// Default bounds of one session's scrollback.
pub const SCROLLBACK_LINES: usize = 100_000;
pub const SCROLLBACK_BYTES: usize = 64 * 1024 * 1024;
/// What a closed session keeps of its scrollback (its transcript keeps all).
pub const CLOSED_TAIL_BYTES: usize = 1024 * 1024;
/// What closed sessions keep in all; past it the oldest keep nothing but
/// their last line.
pub const CLOSED_SCROLLBACKS: usize = 32 * 1024 * 1024;
/// Command history kept.
pub const HISTORY: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Insert,
    Command,
    Search,
    Help,
    ConfirmQuit,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "NORMAL",
            Mode::Insert => "INSERT",
            Mode::Command => "COMMAND",
            Mode::Search => "SEARCH",
            Mode::Help => "HELP",
            Mode::ConfirmQuit => "QUIT?",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Listeners,
    Sessions,
    Scrollback,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    Connecting,
    Live,
    /// `connect --reconnect` lost its connection; attempt `attempt` starts at `at`.
    Reconnecting {
        attempt: u32,
        at: DateTime<Utc>,
    },
    Closed(String),
    Failed(String),
}

impl SessionState {
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            SessionState::Live | SessionState::Connecting | SessionState::Reconnecting { .. }
        )
    }

    /// How long until the next reconnect attempt (`4s`, `300ms`), from `now`.
    pub fn reconnect_wait(&self, now: DateTime<Utc>) -> Option<String> {
        let SessionState::Reconnecting { at, .. } = self else {
            return None;
        };
        let ms = (*at - now).num_milliseconds().max(0);
        Some(if ms >= 1000 {
            format!("{}s", (ms + 999) / 1000)
        } else {
            format!("{ms}ms")
        })
    }

    /// "reconnecting in 4s (attempt 3)", counted down from `now`.
    pub fn reconnect_text(&self, now: DateTime<Utc>) -> Option<String> {
        let SessionState::Reconnecting { attempt, .. } = self else {
            return None;
        };
        let wait = self.reconnect_wait(now)?;
        Some(format!("reconnecting in {wait} (attempt {attempt})"))
    }
}

pub struct SessionRow {
    pub id: String,
    pub label: Option<String>,
    pub direction: &'static str,
    pub peer: String,
    pub local: String,
    pub listener_id: Option<String>,
    pub state: SessionState,
    /// The transport, from the event that opened the session.
    pub kind: Kind,
    pub tls: bool,
    pub insecure: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub unread: bool,
    pub scrollback: Scrollback,
}

/// How a pane shows one session: its view, how far it is scrolled back,
/// and the entry the last search found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewState {
    pub view: View,
    /// Rows up from the bottom; 0 follows the tail.
    pub scroll: u64,
    pub found: Option<usize>,
}

/// A pane of the layout: the session it shows, and how it shows each
/// session it has shown (so switching back finds the same view and
/// place, and two panes can show one session each their own way).
#[derive(Clone, Debug, Default)]
pub struct Pane {
    pub session: Option<String>,
    states: HashMap<String, ViewState>,
}

impl Pane {
    pub fn state(&self, id: &str) -> ViewState {
        self.states.get(id).copied().unwrap_or_default()
    }

    pub fn state_mut(&mut self, id: &str) -> &mut ViewState {
        self.states.entry(id.to_string()).or_default()
    }

    /// How it shows the session it shows.
    pub fn shown(&self) -> ViewState {
        self.session
            .as_deref()
            .map(|id| self.state(id))
            .unwrap_or_default()
    }
}

impl SessionRow {
    pub fn short(&self) -> String {
        let s = short_id(&self.id);
        s.strip_prefix("sess-").map(str::to_string).unwrap_or(s)
    }

    /// Rows in `view`.
    pub fn rows(&self, view: View) -> u64 {
        self.scrollback.rows(view)
    }
}

pub struct ListenerRow {
    pub id: String,
    pub label: Option<String>,
    pub addr: String,
    pub tls: bool,
    pub udp: bool,
    pub max: usize,
    pub closed: bool,
}

/// A line editor for the command bar, search and insert mode.
#[derive(Clone, Debug, Default)]
pub struct Input {
    pub text: String,
    /// Cursor, in chars.
    pub cursor: usize,
}

impl Input {
    fn byte_at(&self, char_idx: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_idx)
            .map(|(i, _)| i)
            .unwrap_or(self.text.len())
    }

    pub fn insert(&mut self, c: char) {
        let at = self.byte_at(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub fn delete(&mut self) {
        if self.cursor < self.text.chars().count() {
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub fn set(&mut self, text: &str) {
        self.text = text.to_string();
        self.cursor = text.chars().count();
    }

    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// Common editing keys; false when the key is not one of them.
    fn edit(&mut self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.text.chars().count(),
            KeyCode::Char('u') if ctrl => {
                let at = self.byte_at(self.cursor);
                self.text.drain(..at);
                self.cursor = 0;
            }
            KeyCode::Char('w') if ctrl => {
                while self.cursor > 0 && self.text.chars().nth(self.cursor - 1) == Some(' ') {
                    self.backspace();
                }
                while self.cursor > 0 && self.text.chars().nth(self.cursor - 1) != Some(' ') {
                    self.backspace();
                }
            }
            KeyCode::Char(c) if !ctrl => self.insert(c),
            KeyCode::Backspace => self.backspace(),
            KeyCode::Delete => self.delete(),
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.text.chars().count()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.text.chars().count(),
            _ => return false,
        }
        true
    }
}

/// What the runtime must do for the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A command-language line, with the selected session as the default.
    Run {
        line: String,
        session: Option<String>,
    },
    /// Insert mode: a line typed into a session.
    Send {
        session: String,
        text: String,
    },
    /// A key bound to command lines: run one after another.
    Macro {
        lines: Vec<String>,
        session: Option<String>,
    },
    /// Ctrl-C while a `source` script runs: stop it (not quit).
    StopSource,
    Quit,
}

pub struct App {
    pub listeners: Vec<ListenerRow>,
    pub sessions: Vec<SessionRow>,
    index: HashMap<String, usize>,
    pub selected: Option<usize>,
    /// The layout: the scrollback panes (one for now), `pane` focused. The
    /// focused pane shows the selected session.
    pub panes: Vec<Pane>,
    pub pane: usize,
    pub selected_listener: Option<usize>,
    pub focus: Focus,
    pub mode: Mode,
    pub input: Input,
    pub history: Vec<String>,
    history_pos: Option<usize>,
    pub status: String,
    pub status_error: bool,
    pub timestamps: bool,
    /// Timestamps as time since the previous chunk (`+0.004s`).
    pub relative_time: bool,
    pub search: Option<regex::bytes::Regex>,
    pub keymap: Keymap,
    /// Rows the scrollback pane shows (set from the terminal size).
    pub page: u64,
    pub scrollback_lines: usize,
    pub recording: bool,
    pub quit: bool,
    /// Completion candidates shown under the command bar.
    pub candidates: Vec<String>,
    /// The `source` script running, if any (Ctrl-C stops it).
    pub sourcing: Option<String>,
    /// `help CMD` / `CMD --help`: the usage the help overlay shows instead
    /// of the keys.
    pub help_text: Option<String>,
    /// Closed sessions whose scrollback tail is kept, oldest first, with
    /// what each held when it closed, and their sum.
    closed: std::collections::VecDeque<(String, usize)>,
    closed_held: usize,
}

impl App {
    pub fn new(keymap: Keymap, scrollback_lines: usize) -> App {
        App {
            listeners: Vec::new(),
            sessions: Vec::new(),
            index: HashMap::new(),
            selected: None,
            panes: vec![Pane::default()],
            pane: 0,
            selected_listener: None,
            focus: Focus::Sessions,
            mode: Mode::Normal,
            input: Input::default(),
            history: Vec::new(),
            history_pos: None,
            status: "? help · : command · i insert · q quit".to_string(),
            status_error: false,
            timestamps: true,
            relative_time: false,
            search: None,
            keymap,
            page: 20,
            scrollback_lines,
            recording: false,
            quit: false,
            candidates: Vec::new(),
            sourcing: None,
            help_text: None,
            closed: Default::default(),
            closed_held: 0,
        }
    }

    /// `view` typed in the command bar: applies to the session it names.
    /// A `view` command the core resolved: `id` is the session's full id
    /// (the core's resolver is the only one; ids, labels, prefixes and
    /// `@N` all arrive here as the id they named).
    pub fn set_view(&mut self, id: &str, view: View) {
        if self.index.contains_key(id) {
            let pane = self.pane.min(self.panes.len() - 1);
            let state = self.panes[pane].state_mut(id);
            state.view = view;
            state.scroll = 0;
        }
    }

    /// Shows a command's usage in the help overlay.
    pub fn show_help(&mut self, text: String) {
        self.help_text = Some(text);
        self.mode = Mode::Help;
    }

    pub fn selected_session(&self) -> Option<&SessionRow> {
        self.sessions.get(self.selected?)
    }

    fn selected_mut(&mut self) -> Option<&mut SessionRow> {
        let i = self.selected?;
        self.sessions.get_mut(i)
    }

    pub fn live_sessions(&self) -> usize {
        self.sessions.iter().filter(|s| s.state.is_live()).count()
    }

    pub fn clients_of(&self, listener: &str) -> usize {
        self.sessions
            .iter()
            .filter(|s| s.listener_id.as_deref() == Some(listener) && s.state.is_live())
            .count()
    }

    /// True while a session waits to reconnect (its countdown needs redrawing).
    pub fn reconnecting(&self) -> bool {
        self.sessions
            .iter()
            .any(|s| matches!(s.state, SessionState::Reconnecting { .. }))
    }

    fn set_status(&mut self, text: impl Into<String>, error: bool) {
        self.status = text.into();
        self.status_error = error;
    }

    fn add_session(&mut self, row: SessionRow) -> usize {
        let i = self.sessions.len();
        self.index.insert(row.id.clone(), i);
        self.sessions.push(row);
        // The first session (or the next one when none is selected) is
        // selected; later ones never steal the selection.
        if self.selected.is_none() {
            self.select(Some(i));
        }
        i
    }

    /// Selects a session; the focused pane shows it.
    fn select(&mut self, i: Option<usize>) {
        self.selected = i;
        let id = i.and_then(|i| self.sessions.get(i)).map(|s| s.id.clone());
        if let Some(pane) = self.panes.get_mut(self.pane) {
            pane.session = id;
        }
    }

    /// A session by its full id.
    pub fn session(&self, id: &str) -> Option<&SessionRow> {
        self.sessions.get(*self.index.get(id)?)
    }

    /// The focused pane.
    pub fn focused(&self) -> &Pane {
        &self.panes[self.pane.min(self.panes.len() - 1)]
    }

    /// How the focused pane shows the selected session.
    pub fn shown(&self) -> ViewState {
        self.focused().shown()
    }

    /// The focused pane's state for the selected session, to change it.
    fn shown_mut(&mut self) -> Option<&mut ViewState> {
        let id = self.sessions.get(self.selected?)?.id.clone();
        let pane = self.pane.min(self.panes.len() - 1);
        Some(self.panes[pane].state_mut(&id))
    }

    fn new_row(&self, id: &str, direction: &'static str, peer: String) -> SessionRow {
        SessionRow {
            id: id.to_string(),
            label: None,
            direction,
            peer,
            local: String::new(),
            listener_id: None,
            state: SessionState::Connecting,
            kind: Kind::Tcp,
            tls: false,
            insecure: false,
            bytes_in: 0,
            bytes_out: 0,
            unread: false,
            scrollback: Scrollback::new(self.scrollback_lines, SCROLLBACK_BYTES),
        }
    }

    fn row(&mut self, id: &str) -> Option<&mut SessionRow> {
        let i = *self.index.get(id)?;
        self.sessions.get_mut(i)
    }

    /// Applies one event of the session manager.
    pub fn on_event(&mut self, ev: &Event) {
        if let EventKind::DataBatch(_) = ev.kind {
            for single in ev.clone().expand() {
                self.on_event(&single);
            }
            return;
        }
        let sid = ev.session_id.as_deref();
        match (&ev.kind, sid) {
            (EventKind::Connecting { target }, Some(id)) => {
                let mut row = self.new_row(id, "out", target.to_string());
                row.label = ev.label.clone();
                self.add_session(row);
            }
            (
                EventKind::Connected {
                    remote,
                    local,
                    kind,
                    insecure,
                },
                Some(id),
            ) => {
                if let Some(row) = self.row(id) {
                    row.state = SessionState::Live;
                    row.peer = remote.to_string();
                    row.local = local.to_string();
                    row.kind = *kind;
                    row.tls = kind.is_tls();
                    row.insecure = *insecure;
                }
                self.note(id, ev.timestamp, "connected");
            }
            (EventKind::Accepted { remote, kind }, Some(id)) => {
                let mut row = self.new_row(id, "in", remote.to_string());
                row.state = SessionState::Live;
                row.kind = *kind;
                row.tls = kind.is_tls();
                row.listener_id = ev.listener_id.clone();
                if let Some(l) = self
                    .listeners
                    .iter()
                    .find(|l| Some(&l.id) == ev.listener_id.as_ref())
                {
                    row.local = l.addr.clone();
                }
                let i = self.add_session(row);
                if self.selected != Some(i) {
                    self.sessions[i].unread = true;
                }
                self.note(id, ev.timestamp, &format!("accepted from {remote}"));
            }
            (EventKind::Listening { local, kind, .. }, Some(id)) => {
                // A UDP socket: a session of its own.
                let mut row = self.new_row(id, "udp", "*".to_string());
                row.kind = *kind;
                row.label = ev.label.clone();
                row.state = SessionState::Live;
                row.local = local.to_string();
                self.add_session(row);
            }
            (
                EventKind::Listening {
                    local,
                    kind,
                    max_connections,
                    ..
                },
                None,
            ) => {
                if let Some(id) = &ev.listener_id {
                    self.listeners.push(ListenerRow {
                        id: id.clone(),
                        label: ev.label.clone(),
                        addr: local.to_string(),
                        tls: kind.is_tls(),
                        udp: kind.is_udp(),
                        max: max_connections.unwrap_or(0),
                        closed: false,
                    });
                    if self.selected_listener.is_none() {
                        self.selected_listener = Some(self.listeners.len() - 1);
                    }
                }
            }
            (EventKind::Closed, None) => {
                if let Some(l) = self
                    .listeners
                    .iter_mut()
                    .find(|l| Some(&l.id) == ev.listener_id.as_ref())
                {
                    l.closed = true;
                }
            }
            (
                EventKind::Data {
                    payload,
                    count,
                    from,
                    eol,
                },
                Some(id),
            ) => {
                let selected = self
                    .selected
                    .and_then(|i| self.sessions.get(i))
                    .map(|s| s.id.as_str())
                    == Some(id);
                if let Some(row) = self.row(id) {
                    row.bytes_in += *count as u64;
                    if let (Some(from), "udp") = (from, row.direction) {
                        row.peer = from.to_string();
                    }
                    if !selected {
                        row.unread = true;
                    }
                }
                // With the line's end: the hex view shows exact bytes.
                self.push(id, ev.timestamp, Mark::In, payload, eol);
            }
            (EventKind::Sent { bytes, payload, .. }, Some(id)) => {
                if let Some(row) = self.row(id) {
                    row.bytes_out += *bytes as u64;
                }
                self.push(id, ev.timestamp, Mark::Out, payload, b"");
            }
            (EventKind::Disconnected { reason }, Some(id)) => {
                let why = match &ev.error {
                    Some(e) => format!("{} ({})", reason.as_str(), e.code),
                    None => reason.as_str().to_string(),
                };
                if let Some(row) = self.row(id) {
                    row.state = if *reason == CloseReason::Error {
                        SessionState::Failed(why.clone())
                    } else {
                        SessionState::Closed(why.clone())
                    };
                }
                self.note(id, ev.timestamp, &format!("disconnected {why}"));
                self.retire(id);
            }
            (
                EventKind::Reconnecting {
                    attempt,
                    delay,
                    cause,
                },
                Some(id),
            ) => {
                let at = ev.timestamp + chrono::TimeDelta::from_std(*delay).unwrap_or_default();
                if let Some(row) = self.row(id) {
                    row.state = SessionState::Reconnecting {
                        attempt: *attempt,
                        at,
                    };
                }
                let what = if *attempt <= 1 {
                    "connection lost"
                } else {
                    "reconnect failed"
                };
                let text = format!(
                    "{what}: {cause}; reconnecting in {} (attempt {attempt})",
                    crate::core::format_duration(*delay)
                );
                self.note(id, ev.timestamp, &text);
            }
            (EventKind::Timeout, Some(id)) => self.note(id, ev.timestamp, "timeout (idle)"),
            (EventKind::Eof { note }, Some(id)) => {
                let text = match note {
                    Some(n) => format!("peer ended its output: {n}"),
                    None => "peer ended its output".to_string(),
                };
                self.note(id, ev.timestamp, &text);
            }
            (EventKind::Match { matched, .. }, Some(id)) => {
                self.set_status(format!("match on {}: {matched}", short_id(id)), false);
            }
            (EventKind::Error, _) => {
                if let (Some(err), Some(id)) = (&ev.error, sid) {
                    let failed_open = self
                        .row(id)
                        .is_some_and(|row| row.state == SessionState::Connecting);
                    if failed_open && let Some(row) = self.row(id) {
                        row.state = SessionState::Failed(err.code.to_string());
                    }
                    self.note(id, ev.timestamp, &format!("{}: {}", err.code, err.text));
                }
                if let Some(err) = &ev.error {
                    self.set_status(format!("{}: {}", err.code, err.text), true);
                }
            }
            (EventKind::Sessions(list), _) => {
                self.set_status(format!("{} session(s); see the Sessions pane", list.len()), false);
            }
            (EventKind::Triggers(list), _) => {
                let names: Vec<String> = list
                    .iter()
                    .map(|t| format!("{} /{}/", t.trigger_id, t.regex))
                    .collect();
                self.set_status(format!("{} trigger(s): {}", list.len(), names.join(", ")), false);
            }
            (EventKind::Listeners(list), _) => {
                self.set_status(format!("{} listener(s)", list.len()), false);
            }
            (EventKind::Info(text), _) => {
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
                self.set_status(first.trim().to_string(), false);
            }
            _ => {}
        }
    }

    /// A `*` line in a session's scrollback.
    /// A closed session shrinks to a tail; closed sessions keep at most
    /// [`CLOSED_SCROLLBACKS`] in all, the oldest giving theirs up first.
    fn retire(&mut self, id: &str) {
        let Some(row) = self.row(id) else { return };
        row.scrollback.shrink(CLOSED_TAIL_BYTES);
        let held = row.scrollback.held();
        self.closed.push_back((id.to_string(), held));
        self.closed_held += held;
        while self.closed_held > CLOSED_SCROLLBACKS {
            let Some((oldest, held)) = self.closed.pop_front() else {
                break;
            };
            self.closed_held -= held;
            if let Some(row) = self.row(&oldest) {
                row.scrollback.shrink(1);
            }
        }
    }

    fn note(&mut self, id: &str, at: DateTime<Utc>, text: &str) {
        self.push(id, at, Mark::Event, text.as_bytes(), b"");
    }

    /// Adds `data` + `eol` to a session's scrollback, copied once (a line
    /// must not pin the whole read buffer it came in). Panes scrolled back
    /// on it keep the same rows in view as new ones arrive.
    fn push(&mut self, id: &str, at: DateTime<Utc>, mark: Mark, data: &[u8], eol: &[u8]) {
        let Some(&i) = self.index.get(id) else { return };
        let Some(row) = self.sessions.get_mut(i) else {
            return;
        };
        let scrolled: Vec<(usize, u64)> = self
            .panes
            .iter()
            .enumerate()
            .filter_map(|(p, pane)| {
                let st = pane.states.get(id)?;
                (st.scroll > 0).then(|| (p, row.rows(st.view)))
            })
            .collect();
        let mut copy = Vec::with_capacity(data.len() + eol.len());
        copy.extend_from_slice(data);
        copy.extend_from_slice(eol);
        row.scrollback.push(Entry {
            at,
            mark,
            data: Bytes::from(copy),
        });
        for (p, was) in scrolled {
            let st = self.panes[p].state_mut(id);
            st.scroll += row.rows(st.view).saturating_sub(was);
        }
    }

    /// The result of a command typed in the command bar.
    pub fn on_result(&mut self, line: &str, result: Result<String, String>) {
        match result {
            Ok(done) => self.set_status(format!("ok: {line}{done}"), false),
            Err(e) => self.set_status(e, true),
        }
    }

    /// A key press in the current mode.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        self.candidates.clear();
        match self.mode {
            Mode::Normal | Mode::Help => {
                if self.mode == Mode::Help {
                    // Any key closes the help.
                    self.mode = Mode::Normal;
                    self.help_text = None;
                    return Vec::new();
                }
                if self.sourcing.is_some()
                    && key.code == KeyCode::Char('c')
                    && key.modifiers.contains(KeyModifiers::CONTROL)
                {
                    return vec![Effect::StopSource];
                }
                let Some(k) = Key::from_event(&key) else {
                    return Vec::new();
                };
                if let Some(lines) = self.keymap.macro_for("normal", &k) {
                    return vec![Effect::Macro {
                        lines: lines.clone(),
                        session: self.selected_session().map(|s| s.id.clone()),
                    }];
                }
                match self.keymap.action("normal", &k) {
                    Some(action) => self.apply(action),
                    None => Vec::new(),
                }
            }
            Mode::ConfirmQuit => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.quit = true;
                    vec![Effect::Quit]
                }
                _ => {
                    self.mode = Mode::Normal;
                    self.set_status("quit cancelled", false);
                    Vec::new()
                }
            },
            Mode::Insert => {
                if let Some(action) = Key::from_event(&key).and_then(|k| self.keymap.action("insert", &k)) {
                    return self.apply(action);
                }
                match key.code {
                    KeyCode::Enter => {
                        let text = self.input.take();
                        match self.selected_session() {
                            Some(s) if s.state.is_live() => vec![Effect::Send {
                                session: s.id.clone(),
                                text,
                            }],
                            _ => {
                                self.set_status("no live session selected", true);
                                Vec::new()
                            }
                        }
                    }
                    KeyCode::Esc => self.apply(Action::Normal),
                    _ => {
                        self.input.edit(&key);
                        Vec::new()
                    }
                }
            }
            Mode::Command => self.command_key(key),
            Mode::Search => match key.code {
                KeyCode::Enter => {
                    let text = self.input.take();
                    self.mode = Mode::Normal;
                    match regex::bytes::Regex::new(&text) {
                        Ok(re) => {
                            self.search = Some(re);
                            if let Some(st) = self.shown_mut() {
                                st.found = None;
                            }
                            self.apply(Action::SearchNext)
                        }
                        Err(e) => {
                            self.set_status(format!("REGEX_INVALID: /{text}/: {e}").replace('\n', " "), true);
                            Vec::new()
                        }
                    }
                }
                KeyCode::Esc => {
                    self.input.take();
                    self.mode = Mode::Normal;
                    Vec::new()
                }
                _ => {
                    self.input.edit(&key);
                    Vec::new()
                }
            },
        }
    }

    fn command_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Enter => {
                let line = self.input.take();
                self.mode = Mode::Normal;
                self.history_pos = None;
                if line.trim().is_empty() {
                    return Vec::new();
                }
                if self.history.last() != Some(&line) {
                    self.history.push(line.clone());
                    if self.history.len() > HISTORY {
                        self.history.remove(0);
                    }
                }
                let session = self.selected_session().map(|s| s.id.clone());
                vec![Effect::Run { line, session }]
            }
            KeyCode::Esc => {
                self.input.take();
                self.mode = Mode::Normal;
                self.history_pos = None;
                Vec::new()
            }
            KeyCode::Up => {
                let pos = match self.history_pos {
                    None => self.history.len().checked_sub(1),
                    Some(p) => Some(p.saturating_sub(1)),
                };
                if let Some(p) = pos {
                    self.history_pos = Some(p);
                    let line = self.history[p].clone();
                    self.input.set(&line);
                }
                Vec::new()
            }
            KeyCode::Down => {
                match self.history_pos {
                    Some(p) if p + 1 < self.history.len() => {
                        self.history_pos = Some(p + 1);
                        let line = self.history[p + 1].clone();
                        self.input.set(&line);
                    }
                    _ => {
                        self.history_pos = None;
                        self.input.set("");
                    }
                }
                Vec::new()
            }
            KeyCode::Tab => {
                self.complete();
                Vec::new()
            }
            _ => {
                self.input.edit(&key);
                Vec::new()
            }
        }
    }

    /// Tab: completes the word before the cursor (command names, options,
    /// session and listener ids and labels).
    fn complete(&mut self) {
        let before: String = self.input.text.chars().take(self.input.cursor).collect();
        let start = before.rfind(' ').map(|i| i + 1).unwrap_or(0);
        let word = &before[start..];
        let first_word = start == 0;
        let pool: Vec<String> = if first_word {
            crate::lang::command_names()
        } else if word.starts_with('-') {
            let cmd = before.split_whitespace().next().unwrap_or_default();
            crate::lang::option_names(cmd)
        } else {
            let mut refs: Vec<String> = Vec::new();
            for s in &self.sessions {
                refs.push(s.short());
                refs.extend(s.label.clone());
            }
            for l in &self.listeners {
                refs.push(short_id(&l.id));
                refs.extend(l.label.clone());
            }
            refs
        };
        let matches: Vec<String> = pool.into_iter().filter(|c| c.starts_with(word)).collect();
        let Some(first) = matches.first() else { return };
        let common = matches.iter().fold(first.clone(), |acc, m| {
            acc.chars()
                .zip(m.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect()
        });
        let mut addition: String = common.chars().skip(word.chars().count()).collect();
        if matches.len() == 1 {
            addition.push(' ');
        } else {
            self.candidates = matches;
        }
        for c in addition.chars() {
            self.input.insert(c);
        }
    }

    pub fn on_mouse(&mut self, ev: MouseEvent) {
        match ev.kind {
            MouseEventKind::ScrollUp => {
                self.apply(Action::ScrollUp);
                self.apply(Action::ScrollUp);
                self.apply(Action::ScrollUp);
            }
            MouseEventKind::ScrollDown => {
                self.apply(Action::ScrollDown);
                self.apply(Action::ScrollDown);
                self.apply(Action::ScrollDown);
            }
            _ => {}
        }
    }

    fn scroll_by(&mut self, delta: i64) {
        let page = self.page;
        let view = self.shown().view;
        let Some(rows) = self.selected_session().map(|s| s.rows(view)) else {
            return;
        };
        if let Some(st) = self.shown_mut() {
            // The oldest row at the top of a full page is as far as it goes.
            let max = rows.saturating_sub(page);
            st.scroll = (st.scroll as i64 + delta).clamp(0, max as i64) as u64;
        }
    }

    /// Scrolls so that entry `idx` of the selected session is in view.
    fn reveal(&mut self, idx: usize) {
        let page = self.page.max(1);
        let view = self.shown().view;
        let Some((row, rows)) = self
            .selected_session()
            .map(|s| (s.scrollback.row_of(idx, view).unwrap_or(0), s.rows(view)))
        else {
            return;
        };
        if let Some(st) = self.shown_mut() {
            // Put the row a third of a page from the top when scrolling.
            let from_bottom = rows.saturating_sub(row + 1);
            if from_bottom < st.scroll || from_bottom >= st.scroll + page {
                st.scroll = from_bottom.saturating_sub(page * 2 / 3);
            }
        }
    }

    /// Applies an action (the Elm `update`).
    pub fn apply(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => {
                if self.live_sessions() > 0 {
                    self.mode = Mode::ConfirmQuit;
                    self.set_status(
                        format!(
                            "{} live session(s) will be closed. Quit? (y/n)",
                            self.live_sessions()
                        ),
                        false,
                    );
                } else {
                    self.quit = true;
                    return vec![Effect::Quit];
                }
            }
            Action::FocusNext | Action::FocusPrev => {
                let order = [Focus::Listeners, Focus::Sessions, Focus::Scrollback];
                let i = order.iter().position(|f| *f == self.focus).unwrap_or(0);
                let step = if action == Action::FocusNext {
                    1
                } else {
                    order.len() - 1
                };
                self.focus = order[(i + step) % order.len()];
            }
            Action::SelectNext | Action::SelectPrev => {
                let down = action == Action::SelectNext;
                match self.focus {
                    Focus::Listeners => {
                        self.selected_listener = step(self.selected_listener, self.listeners.len(), down);
                    }
                    Focus::Sessions => {
                        self.select(step(self.selected, self.sessions.len(), down));
                        if let Some(s) = self.selected_mut() {
                            s.unread = false;
                        }
                    }
                    Focus::Scrollback => self.scroll_by(if down { -1 } else { 1 }),
                }
            }
            Action::CommandBar => {
                self.mode = Mode::Command;
                self.input.take();
            }
            Action::Insert => match self.selected_session() {
                Some(s) if s.state.is_live() => {
                    self.mode = Mode::Insert;
                    self.input.take();
                    self.set_status("typing into the session: Enter sends the line, Esc leaves", false);
                }
                _ => self.set_status("no live session selected to type into", true),
            },
            Action::Normal => {
                self.mode = Mode::Normal;
                self.input.take();
            }
            Action::ToggleHex => {
                if let Some(st) = self.shown_mut() {
                    st.view = match st.view {
                        View::Line => View::Hex,
                        _ => View::Line,
                    };
                    st.scroll = 0;
                }
            }
            Action::ToggleSplit => {
                if let Some(st) = self.shown_mut() {
                    st.view = match st.view {
                        View::Line | View::Hex => View::HexIn,
                        View::HexIn => View::HexOut,
                        View::HexOut => View::Line,
                    };
                    st.scroll = 0;
                }
            }
            Action::ToggleTimestamps => self.timestamps = !self.timestamps,
            Action::ToggleRelativeTime => {
                self.relative_time = !self.relative_time;
                self.timestamps = true;
            }
            Action::Disconnect => {
                if let Some(s) = self.selected_session()
                    && s.state.is_live()
                {
                    return vec![Effect::Run {
                        line: format!("disconnect {}", s.id),
                        session: Some(s.id.clone()),
                    }];
                }
                self.set_status("no live session selected", true);
            }
            Action::Dismiss => {
                if let Some(i) = self.selected
                    && !self.sessions[i].state.is_live()
                {
                    self.sessions.remove(i);
                    self.index = self
                        .sessions
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (s.id.clone(), i))
                        .collect();
                    self.select(if self.sessions.is_empty() {
                        None
                    } else {
                        Some(i.min(self.sessions.len() - 1))
                    });
                } else {
                    self.set_status("only closed sessions can be dismissed", true);
                }
            }
            Action::Search => {
                self.mode = Mode::Search;
                self.input.take();
            }
            Action::SearchNext | Action::SearchPrev => {
                let Some(re) = self.search.clone() else {
                    self.set_status("no search yet: / to search", true);
                    return Vec::new();
                };
                let newer = action == Action::SearchPrev;
                let found = self.shown().found;
                let hit = self.selected_session().and_then(|s| {
                    let from = match (found, newer) {
                        (Some(f), false) => f.checked_sub(1)?,
                        (Some(f), true) => f + 1,
                        (None, _) => s.scrollback.len().saturating_sub(1),
                    };
                    s.scrollback.find(&re, from, newer)
                });
                match hit {
                    Some(idx) => {
                        if let Some(st) = self.shown_mut() {
                            st.found = Some(idx);
                        }
                        self.reveal(idx);
                        self.set_status(format!("/{}/ found", re.as_str()), false);
                    }
                    None => self.set_status(format!("/{}/: no more matches", re.as_str()), true),
                }
            }
            Action::ScrollUp => self.scroll_by(1),
            Action::ScrollDown => self.scroll_by(-1),
            Action::PageUp => self.scroll_by(self.page as i64 - 1),
            Action::PageDown => self.scroll_by(-(self.page as i64 - 1)),
            Action::ScrollTop => self.scroll_by(i64::MAX / 2),
            Action::ScrollBottom => {
                if let Some(st) = self.shown_mut() {
                    st.scroll = 0;
                }
            }
            Action::Help => {
                self.help_text = None;
                self.mode = Mode::Help;
            }
            Action::None => {}
        }
        Vec::new()
    }
}

fn step(current: Option<usize>, len: usize, down: bool) -> Option<usize> {
    if len == 0 {
        return None;
    }
    Some(match current {
        None => 0,
        Some(i) if down => (i + 1).min(len - 1),
        Some(i) => i.saturating_sub(1),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::events::CoreError;
    use crate::core::{ErrorCode, Event};

    pub fn app() -> App {
        App::new(Keymap::load(None).unwrap(), 1000)
    }

    pub fn sid(n: u8) -> String {
        format!("sess-{n}{n}{n}{n}{n}{n}{n}{n}-0000-4000-8000-000000000000")
    }

    pub fn connected(app: &mut App, n: u8, label: Option<&str>) {
        let id = sid(n);
        let mut ev = Event::new(EventKind::Connecting {
            target: crate::core::transport::Target::parse_connect("127.0.0.1:7000").unwrap(),
        })
        .session(&id);
        ev.label = label.map(str::to_string);
        app.on_event(&ev);
        app.on_event(
            &Event::new(EventKind::Connected {
                remote: "127.0.0.1:7000".parse().unwrap(),
                local: "127.0.0.1:5000".parse().unwrap(),
                kind: crate::core::transport::Kind::Tcp,
                insecure: false,
            })
            .session(&id),
        );
    }

    pub fn data(app: &mut App, n: u8, text: &[u8]) {
        app.on_event(
            &Event::new(EventKind::Data {
                payload: Bytes::copy_from_slice(text),
                count: text.len() + 1,
                from: None,
                eol: b"\n",
            })
            .session(&sid(n)),
        );
    }

    #[test]
    fn two_panes_show_one_session_each_their_own_way() {
        let mut a = app();
        connected(&mut a, 1, None);
        for i in 0..40 {
            data(
                &mut a,
                1,
                format!("line {i} with some text to take two hex rows").as_bytes(),
            );
        }
        // A second pane on the same session, in hex, scrolled back.
        let mut second = Pane {
            session: Some(sid(1)),
            ..Pane::default()
        };
        *second.state_mut(&sid(1)) = ViewState {
            view: View::Hex,
            scroll: 5,
            found: None,
        };
        a.panes.push(second);
        // The focused pane is untouched: line view, following the tail.
        assert_eq!(a.shown(), ViewState::default());
        a.apply(Action::ScrollUp);
        assert_eq!(a.shown().scroll, 1);
        assert_eq!(a.panes[1].shown().scroll, 5);
        // A new line keeps both scrolled panes on the same rows, each by
        // the rows it adds in its own view (1 line, 5 hex rows).
        data(
            &mut a,
            1,
            b"a new line that is long enough for four hex rows, or so it seems",
        );
        assert_eq!(a.shown().scroll, 2);
        assert_eq!(a.panes[1].shown().scroll, 5 + 5);
        // Switching sessions and back finds the same view and place.
        connected(&mut a, 2, None);
        a.apply(Action::SelectNext);
        assert_eq!(a.focused().session.as_deref(), Some(sid(2).as_str()));
        assert_eq!(a.shown(), ViewState::default());
        a.apply(Action::SelectPrev);
        assert_eq!(a.shown().scroll, 2);
    }

    #[test]
    fn ctrl_bracket_reaches_the_command_bar_in_every_encoding() {
        // tmux and xterm send 0x1d, which crossterm reports as Ctrl-5; some
        // terminals report the control character itself, others Ctrl-].
        let encodings = [
            KeyEvent::new(KeyCode::Char('5'), KeyModifiers::CONTROL),
            KeyEvent::new(KeyCode::Char('\x1d'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Char(']'), KeyModifiers::CONTROL),
        ];
        for key in encodings {
            let mut a = app();
            connected(&mut a, 1, None);
            a.apply(Action::Insert);
            assert_eq!(a.mode, Mode::Insert);
            typed(&mut a, "AT");
            let effects = a.on_key(key);
            assert!(effects.is_empty(), "{key:?} sent {effects:?}");
            assert_eq!(a.mode, Mode::Command, "{key:?}");
            // What follows goes to the command bar, not to the device.
            typed(&mut a, "send AT+SLOW");
            let effects = a.on_key(code(KeyCode::Enter));
            assert_eq!(
                effects,
                vec![Effect::Run {
                    line: "send AT+SLOW".into(),
                    session: Some(sid(1))
                }],
                "{key:?}"
            );
        }
    }

    #[test]
    fn an_accepted_client_says_so_in_its_scrollback_and_source_results_read_well() {
        let mut a = app();
        a.on_event(
            &Event::new(EventKind::Accepted {
                remote: "127.0.0.1:50000".parse().unwrap(),
                kind: crate::core::transport::Kind::Tcp,
            })
            .session(&sid(3)),
        );
        let first = a.sessions[0].scrollback.get(0).unwrap();
        assert_eq!(&first.data[..], b"accepted from 127.0.0.1:50000");
        crate::tui::update::update(
            &mut a,
            crate::tui::update::Msg::SourceDone(Ok("source setup.mux: done".into())),
        );
        assert_eq!(a.status, "ok: source setup.mux: done");
    }

    #[test]
    fn closed_sessions_shrink_to_a_tail_and_are_bounded_in_all() {
        let mut app = app();
        let line = vec![b'x'; 64 * 1024];
        for n in 1..=60u8 {
            connected(&mut app, n, None);
            for _ in 0..48 {
                data(&mut app, n, &line);
            }
            assert!(
                app.sessions
                    .iter()
                    .all(|r| r.scrollback.held() <= SCROLLBACK_BYTES)
            );
            app.on_event(
                &Event::new(EventKind::Disconnected {
                    reason: CloseReason::Remote,
                })
                .session(&sid(n)),
            );
        }
        let held: usize = app.sessions.iter().map(|r| r.scrollback.held()).sum();
        assert!(
            held <= CLOSED_SCROLLBACKS + CLOSED_TAIL_BYTES,
            "closed sessions hold {held} bytes"
        );
        assert!(
            app.sessions
                .iter()
                .all(|r| r.scrollback.held() <= CLOSED_TAIL_BYTES)
        );
        // The newest closed one still shows its tail and the close.
        let last = app.sessions.last().unwrap();
        assert!(last.scrollback.len() > 10);
        // The oldest kept its last line, the close.
        let first = &app.sessions[0];
        assert_eq!(first.scrollback.len(), 1);
        assert!(String::from_utf8_lossy(&first.scrollback.get(0).unwrap().data).contains("disconnected"));
    }

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn code(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn typed(app: &mut App, text: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        for c in text.chars() {
            out.extend(app.on_key(key(c)));
        }
        out
    }

    #[test]
    fn first_session_is_selected_and_later_ones_get_unread() {
        let mut a = app();
        connected(&mut a, 1, Some("dev"));
        assert_eq!(a.selected, Some(0));
        assert_eq!(a.sessions[0].label.as_deref(), Some("dev"));
        assert_eq!(a.sessions[0].state, SessionState::Live);
        connected(&mut a, 2, None);
        data(&mut a, 2, b"hello");
        assert_eq!(a.selected, Some(0), "a new session does not steal the selection");
        assert!(a.sessions[1].unread);
        a.apply(Action::SelectNext);
        assert_eq!(a.selected, Some(1));
        assert!(!a.sessions[1].unread, "selecting reads it");
        a.apply(Action::SelectPrev);
        assert_eq!(a.selected, Some(0));
    }

    #[test]
    fn focus_cycles_and_selects_within_the_focused_pane() {
        let mut a = app();
        assert_eq!(a.focus, Focus::Sessions);
        a.apply(Action::FocusNext);
        assert_eq!(a.focus, Focus::Scrollback);
        a.apply(Action::FocusNext);
        assert_eq!(a.focus, Focus::Listeners);
        a.apply(Action::FocusPrev);
        assert_eq!(a.focus, Focus::Scrollback);
    }

    #[test]
    fn command_bar_runs_lines_with_the_selected_session_and_keeps_history() {
        let mut a = app();
        connected(&mut a, 1, None);
        a.apply(Action::CommandBar);
        assert_eq!(a.mode, Mode::Command);
        typed(&mut a, "send hi");
        let effects = a.on_key(code(KeyCode::Enter));
        assert_eq!(
            effects,
            vec![Effect::Run {
                line: "send hi".into(),
                session: Some(sid(1))
            }]
        );
        assert_eq!(a.mode, Mode::Normal);
        a.apply(Action::CommandBar);
        typed(&mut a, "sessions");
        a.on_key(code(KeyCode::Enter));
        a.apply(Action::CommandBar);
        a.on_key(code(KeyCode::Up));
        assert_eq!(a.input.text, "sessions");
        a.on_key(code(KeyCode::Up));
        assert_eq!(a.input.text, "send hi");
        a.on_key(code(KeyCode::Down));
        assert_eq!(a.input.text, "sessions");
        a.on_key(code(KeyCode::Esc));
        assert_eq!(a.mode, Mode::Normal);
        assert_eq!(a.history, vec!["send hi", "sessions"]);
    }

    #[test]
    fn tab_completes_commands_options_and_sessions() {
        let mut a = app();
        connected(&mut a, 1, Some("router"));
        a.apply(Action::CommandBar);
        typed(&mut a, "disc");
        a.on_key(code(KeyCode::Tab));
        assert_eq!(a.input.text, "disconnect ");
        typed(&mut a, "rou");
        a.on_key(code(KeyCode::Tab));
        assert_eq!(a.input.text, "disconnect router ");
        a.input.set("connect --ti");
        a.on_key(code(KeyCode::Tab));
        assert_eq!(a.input.text, "connect --timeout ");
        a.input.set("s");
        a.on_key(code(KeyCode::Tab));
        assert!(a.candidates.contains(&"send".to_string()) && a.candidates.contains(&"sessions".to_string()));
    }

    #[test]
    fn insert_mode_sends_lines_and_escape_leaves() {
        let mut a = app();
        a.apply(Action::Insert);
        assert_eq!(a.mode, Mode::Normal, "nothing to type into");
        assert!(a.status_error);
        connected(&mut a, 1, None);
        a.apply(Action::Insert);
        assert_eq!(a.mode, Mode::Insert);
        typed(&mut a, "AT+GMR");
        let effects = a.on_key(code(KeyCode::Enter));
        assert_eq!(
            effects,
            vec![Effect::Send {
                session: sid(1),
                text: "AT+GMR".into()
            }]
        );
        assert_eq!(a.mode, Mode::Insert, "stays in insert mode for the next line");
        a.on_key(KeyEvent::new(KeyCode::Char(']'), KeyModifiers::CONTROL));
        assert_eq!(a.mode, Mode::Command, "ctrl-] escapes to the command bar");
        a.on_key(code(KeyCode::Esc));
        a.apply(Action::Insert);
        a.on_key(code(KeyCode::Esc));
        assert_eq!(a.mode, Mode::Normal);
    }

    #[test]
    fn views_and_timestamps_toggle() {
        let mut a = app();
        connected(&mut a, 1, None);
        a.apply(Action::ToggleHex);
        assert_eq!(a.shown().view, View::Hex);
        a.apply(Action::ToggleHex);
        assert_eq!(a.shown().view, View::Line);
        a.apply(Action::ToggleTimestamps);
        assert!(!a.timestamps);
        a.apply(Action::ToggleRelativeTime);
        assert!(a.timestamps && a.relative_time, "relative time shows timestamps");
        a.set_view(&sid(1), View::Hex);
        assert_eq!(a.shown().view, View::Hex);
    }

    #[test]
    fn disconnect_and_dismiss() {
        let mut a = app();
        connected(&mut a, 1, None);
        assert_eq!(
            a.apply(Action::Disconnect),
            vec![Effect::Run {
                line: format!("disconnect {}", sid(1)),
                session: Some(sid(1))
            }]
        );
        a.apply(Action::Dismiss);
        assert_eq!(a.sessions.len(), 1, "live sessions are not dismissed");
        a.on_event(
            &Event::new(EventKind::Disconnected {
                reason: CloseReason::Remote,
            })
            .session(&sid(1)),
        );
        assert_eq!(a.sessions[0].state, SessionState::Closed("remote".into()));
        assert!(a.apply(Action::Disconnect).is_empty());
        a.apply(Action::Dismiss);
        assert!(a.sessions.is_empty());
        assert_eq!(a.selected, None);
    }

    #[test]
    fn search_finds_older_and_newer_matches() {
        let mut a = app();
        connected(&mut a, 1, None);
        for t in ["boot", "ERR 1", "ok", "ERR 2", "ok"] {
            data(&mut a, 1, t.as_bytes());
        }
        a.apply(Action::Search);
        typed(&mut a, "ERR");
        a.on_key(code(KeyCode::Enter));
        // Entry 0 is "* connected", so "ERR 2" is entry 4.
        assert_eq!(a.shown().found, Some(4));
        a.apply(Action::SearchNext);
        assert_eq!(a.shown().found, Some(2));
        a.apply(Action::SearchNext);
        assert!(a.status_error, "no older match");
        a.apply(Action::SearchPrev);
        assert_eq!(a.shown().found, Some(4));
        a.apply(Action::Search);
        typed(&mut a, "(");
        a.on_key(code(KeyCode::Enter));
        assert!(a.status.contains("REGEX_INVALID"));
    }

    #[test]
    fn scrolling_pages_and_follows_the_tail() {
        let mut a = app();
        a.page = 10;
        connected(&mut a, 1, None);
        for i in 0..100 {
            data(&mut a, 1, format!("line {i}").as_bytes());
        }
        a.apply(Action::PageUp);
        assert_eq!(a.shown().scroll, 9);
        data(&mut a, 1, b"new");
        assert_eq!(a.shown().scroll, 10, "scrolled back: the view stays put");
        a.apply(Action::PageDown);
        assert_eq!(a.shown().scroll, 1);
        a.apply(Action::ScrollTop);
        assert_eq!(a.shown().scroll, a.sessions[0].rows(a.shown().view) - 10);
        a.apply(Action::ScrollBottom);
        assert_eq!(a.shown().scroll, 0);
        a.apply(Action::ScrollUp);
        assert_eq!(a.shown().scroll, 1);
        a.apply(Action::ScrollDown);
        assert_eq!(a.shown().scroll, 0);
        a.on_mouse(MouseEvent {
            kind: MouseEventKind::ScrollUp,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        });
        assert_eq!(a.shown().scroll, 3);
    }

    #[test]
    fn quit_asks_while_sessions_are_live() {
        let mut a = app();
        assert_eq!(a.apply(Action::Quit), vec![Effect::Quit]);
        let mut a = app();
        connected(&mut a, 1, None);
        assert!(a.apply(Action::Quit).is_empty());
        assert_eq!(a.mode, Mode::ConfirmQuit);
        a.on_key(key('n'));
        assert_eq!(a.mode, Mode::Normal);
        a.apply(Action::Quit);
        assert_eq!(a.on_key(key('y')), vec![Effect::Quit]);
        assert!(a.quit);
    }

    #[test]
    fn macro_keys_run_their_command_lines_on_the_selected_session() {
        let mut a = app();
        a.keymap
            .overlay("[normal]\n\"f1\" = [\"send AT\", \"waitfor OK\"]\n", "m")
            .unwrap();
        connected(&mut a, 1, None);
        let effects = a.on_key(KeyEvent::new(KeyCode::F(1), KeyModifiers::NONE));
        assert_eq!(
            effects,
            vec![Effect::Macro {
                lines: vec!["send AT".into(), "waitfor OK".into()],
                session: Some(sid(1)),
            }]
        );
    }

    #[test]
    fn help_opens_and_any_key_closes() {
        let mut a = app();
        a.on_key(key('?'));
        assert_eq!(a.mode, Mode::Help);
        a.on_key(key('z'));
        assert_eq!(a.mode, Mode::Normal);
    }

    #[test]
    fn errors_mark_failed_opens_and_show_in_the_status() {
        let mut a = app();
        let id = sid(3);
        a.on_event(
            &Event::new(EventKind::Connecting {
                target: crate::core::transport::Target::parse_connect("h:1").unwrap(),
            })
            .session(&id),
        );
        a.on_event(&Event::error(CoreError::new(ErrorCode::ConnectRefused, "h:1 refused")).session(&id));
        assert_eq!(
            a.sessions[0].state,
            SessionState::Failed("CONNECT_REFUSED".into())
        );
        assert!(a.status_error && a.status.contains("CONNECT_REFUSED"));
    }

    #[test]
    fn listeners_and_their_clients() {
        let mut a = app();
        let mut ev = Event::new(EventKind::Listening {
            local: "0.0.0.0:2323".parse().unwrap(),
            kind: crate::core::transport::Kind::Tls,
            fingerprint: None,
            max_connections: Some(8),
        })
        .listener("lstn-1");
        ev.label = Some("srv".into());
        a.on_event(&ev);
        a.on_event(
            &Event::new(EventKind::Accepted {
                remote: "127.0.0.1:50000".parse().unwrap(),
                kind: crate::core::transport::Kind::Tls,
            })
            .session(&sid(4))
            .listener("lstn-1"),
        );
        assert_eq!(a.listeners[0].max, 8);
        assert_eq!(a.clients_of("lstn-1"), 1);
        assert!(a.sessions[0].tls);
        a.on_event(&Event::new(EventKind::Closed).listener("lstn-1"));
        assert!(a.listeners[0].closed);
    }
}
