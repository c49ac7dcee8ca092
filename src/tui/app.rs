//! The TUI's model and `update`: core events and key presses change the
//! state; anything that must reach the session manager comes back as an
//! [`Effect`] for the runtime to perform. No terminal I/O here, so every
//! action is unit-tested.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use super::input::Input;
use super::keymap::{Action, Key, Keymap};
use super::messages::Messages;
use super::scrollback::{Entry, Mark, Scrollback, shows_hex};
use super::view::counted;
use crate::core::escape::escape_display;
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
/// Columns ← and → scroll long lines by.
pub const HSCROLL_STEP: u64 = 8;
/// At most this much text goes to the clipboard at once.
pub const COPY_MAX: usize = 1024 * 1024;
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
    /// A destructive key asked first: y/Enter does it, any other key not.
    Confirm,
    /// The message log is open.
    Messages,
    /// Typing the sessions list's filter.
    Filter,
    /// Raw console: every key goes to the session at once.
    Raw,
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
            Mode::Confirm => "CONFIRM",
            Mode::Messages => "MESSAGES",
            Mode::Filter => "FILTER",
            Mode::Raw => "RAW",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Listeners,
    Sessions,
    /// The send panel (shown when there are sequences).
    Sequences,
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
    /// One word for the state, as the filter matches it.
    pub fn word(&self) -> &'static str {
        match self {
            SessionState::Connecting => "connecting",
            SessionState::Live => "live",
            SessionState::Reconnecting { .. } => "reconnecting",
            SessionState::Closed(_) => "closed",
            SessionState::Failed(_) => "failed",
        }
    }

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
    /// `--mode binary`: typed lines get the end of line here, not in the core.
    pub binary: bool,
    /// Raw keys typed into it are shown (local echo); off, only what the
    /// device echoes shows.
    pub echo: bool,
    /// Raw keys sent, not yet seen back as `sent` events (those are not
    /// shown as lines of their own).
    keys_in_flight: std::collections::VecDeque<Bytes>,
    pub eol: crate::core::command::Eol,
    /// `--imap`/`--omap`: how its received line ends show, how typed
    /// ones are sent.
    pub map: crate::core::linemap::LineMap,
    /// A serial port's settings and its modem lines as last reported.
    pub port: Option<crate::core::transport::serial::PortSettings>,
    pub modem: Option<crate::core::transport::serial::ModemLines>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Bytes a second in and out over the last second (0 when idle), and
    /// the counters when they were last measured.
    pub rate: (u64, u64),
    rate_mark: (u64, u64),
    pub unread: bool,
    pub scrollback: Scrollback,
    /// A proxy session's target: what it receives goes there (`→`), what
    /// it sends came from there (`←`).
    pub target: Option<String>,
    /// `filter`: the entries the panes show of it (None: all).
    pub filter: Option<super::filter::LineFilter>,
    /// `plot`: the samples taken from its lines, by plot.
    pub plots: Vec<super::plot::Plot>,
    /// Its rate (in + out, bytes a second) at the last measures, oldest
    /// first: the sessions list's sparkline.
    pub rate_history: std::collections::VecDeque<u64>,
}

/// Rate measures a session keeps for its sparkline.
pub const RATE_HISTORY: usize = 8;

/// How a pane shows one session: its view, how far it is scrolled back,
/// and the entry the last search found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewState {
    pub view: View,
    /// Rows up from the bottom; 0 follows the tail.
    pub scroll: u64,
    pub found: Option<usize>,
    /// Scrolled back past what the scrollback still holds: the lines
    /// that were in view were dropped (the transcript keeps them).
    pub dropped: bool,
    /// Long lines are cut, not wrapped (line view), and scrolled across
    /// by `hscroll` columns.
    pub nowrap: bool,
    pub hscroll: u64,
    /// Marked entries (a click, `v`), anchor and cursor: what `y` copies.
    pub mark: Option<(usize, usize)>,
}

impl ViewState {
    /// Entry indexes move down when the oldest entries are dropped.
    fn entries_dropped(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.found = self.found.and_then(|f| f.checked_sub(n));
        self.mark = self
            .mark
            .and_then(|(a, c)| Some((a.saturating_sub(n), c.checked_sub(n)?)));
    }

    /// The marked entries, oldest first.
    pub fn marked(&self) -> Option<std::ops::RangeInclusive<usize>> {
        self.mark.map(|(a, c)| a.min(c)..=a.max(c))
    }
}

/// A pane of the layout: the session it shows, and how it shows each
/// session it has shown (so switching back finds the same view and
/// place, and two panes can show one session each their own way).
#[derive(Clone, Debug, Default)]
pub struct Pane {
    pub session: Option<String>,
    pub(super) states: HashMap<String, ViewState>,
    /// A merged pane: these sessions' chunks interleaved by time.
    pub merge: Vec<String>,
    /// A merged pane scrolled back: where each session's entries end in
    /// view (counted from the first ever pushed); None follows the tail.
    pub merge_ends: Option<Vec<u64>>,
    /// A merged pane's last search hit: which session, which entry
    /// (counted from the first ever pushed).
    pub merge_found: Option<(usize, u64)>,
}

/// The key of a merged pane's own view state (line or hex).
const MERGED: &str = "";

impl Pane {
    pub fn state(&self, id: &str) -> ViewState {
        self.states.get(id).copied().unwrap_or_default()
    }

    pub fn state_mut(&mut self, id: &str) -> &mut ViewState {
        self.states.entry(id.to_string()).or_default()
    }

    /// How it shows the session it shows (a merged pane: its sessions).
    pub fn shown(&self) -> ViewState {
        if !self.merge.is_empty() {
            return self.state(MERGED);
        }
        self.session
            .as_deref()
            .map(|id| self.state(id))
            .unwrap_or_default()
    }
}

impl SessionRow {
    /// Whether the sessions filter (lower case) keeps this row.
    pub fn matches(&self, filter: &str) -> bool {
        let state = self.state.word();
        [
            self.label.as_deref().unwrap_or(""),
            &self.peer,
            &self.short(),
            state,
            self.direction,
            self.kind.as_str(),
        ]
        .iter()
        .any(|field| field.to_lowercase().contains(filter))
    }

    /// How an entry of this direction is marked: `<` `>` `*`, and for a
    /// proxy `→` (client to server) and `←` (server to client).
    pub fn symbol(&self, mark: Mark) -> char {
        match (mark, self.target.is_some()) {
            (Mark::In, true) => '→',
            (Mark::Out, true) => '←',
            _ => mark.symbol(),
        }
    }

    pub fn short(&self) -> String {
        let s = short_id(&self.id);
        s.strip_prefix("sess-").map(str::to_string).unwrap_or(s)
    }

    /// Rows in `view`; with a filter, one per shown entry (a filtered
    /// pane scrolls by entries in every view).
    pub fn rows(&self, view: View) -> u64 {
        match &self.filter {
            Some(f) => f.rows(),
            None => self.scrollback.rows(view),
        }
    }

    /// The first row of entry `idx` in `view` (a hidden one: the next shown).
    pub fn row_of(&self, idx: usize, view: View) -> Option<u64> {
        match &self.filter {
            Some(f) => Some(f.row_of(idx, &self.scrollback)),
            None => self.scrollback.row_of(idx, view),
        }
    }

    /// The entry, and the row within it, of row `row` of `view`.
    pub fn locate(&self, row: u64, view: View) -> Option<(usize, u64)> {
        match &self.filter {
            Some(f) => f.entry(row, &self.scrollback).map(|i| (i, 0)),
            None => self.scrollback.locate(row, view),
        }
    }

    /// Whether the panes show entry `idx` (a filter may hide it).
    pub fn shows(&self, idx: usize) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.shows(idx, &self.scrollback))
    }

    /// The newest shown entry at or before `from` matching (or the oldest
    /// at or after it, with `newer`).
    pub fn find(&self, re: &regex::bytes::Regex, from: usize, newer: bool) -> Option<usize> {
        let mut at = from;
        loop {
            let i = self.scrollback.find(re, at, newer)?;
            if self.shows(i) {
                return Some(i);
            }
            at = if newer { i + 1 } else { i.checked_sub(1)? };
        }
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
    /// A proxy's: where its clients are relayed to.
    pub target: Option<String>,
}

/// How received bytes join the scrollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrival {
    /// An entry of its own (sent bytes, events, a chunk).
    Whole,
    /// A received line: it completes a pending one, if any.
    Line,
    /// Part of a line still arriving.
    Partial,
}

/// What a confirmation is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask {
    Disconnect(String),
    CloseListener(String),
}

/// What the runtime must do for the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A command-language line, with the selected session as the default.
    Run {
        line: String,
        session: Option<String>,
    },
    /// A sequence of the send panel: its lines, run as a key macro.
    RunSequence {
        name: String,
        lines: Vec<String>,
        session: Option<String>,
    },
    /// Stop one run (a repeating sequence).
    StopRun(u64),
    /// Raw console: a key's bytes, sent as they are.
    SendKeys {
        session: String,
        bytes: Vec<u8>,
    },
    /// Insert mode: a line typed into a session. `bytes`: exactly what to
    /// send (a binary session, where the core appends no end of line, or
    /// one with `--omap`); None: `text`, and the core appends the
    /// session's end of line.
    Send {
        session: String,
        text: String,
        bytes: Option<Vec<u8>>,
    },
    /// A key bound to command lines: run one after another.
    Macro {
        lines: Vec<String>,
        session: Option<String>,
    },
    /// Ctrl-C while commands run (a wait, a macro, `source`): stop them
    /// (not quit).
    StopRunning,
    /// Put text on the clipboard (OSC 52: works over SSH and tmux).
    Copy(String),
    /// Turn the terminal's mouse reporting on or off.
    Mouse(bool),
    Quit,
}

pub struct App {
    pub listeners: Vec<ListenerRow>,
    pub sessions: Vec<SessionRow>,
    index: HashMap<String, usize>,
    pub selected: Option<usize>,
    /// The layout: the scrollback panes, `pane` focused, side by side or
    /// stacked. The focused pane shows the selected session.
    pub panes: Vec<Pane>,
    pub pane: usize,
    pub split_dir: super::panes::SplitDir,
    pub selected_listener: Option<usize>,
    pub focus: Focus,
    pub mode: Mode,
    pub input: Input,
    pub history: Vec<String>,
    history_pos: Option<usize>,
    /// What was typed before ↑: history lines must start with it.
    history_prefix: String,
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
    /// The `source` script running, if any (one at a time).
    pub sourcing: Option<String>,
    /// Commands under way, by run: the line now running and when it
    /// started (the status line shows a wait's pattern and time left).
    pub running: std::collections::BTreeMap<u64, (String, DateTime<Utc>)>,
    /// `help CMD` / `CMD --help`: the usage the help overlay shows instead
    /// of the keys.
    pub help_text: Option<String>,
    /// Closed sessions whose scrollback tail is kept, oldest first, with
    /// what each held when it closed, and their sum.
    closed: std::collections::VecDeque<(String, usize)>,
    closed_held: usize,
    /// What the `Confirm` mode asks about.
    pub asking: Option<Ask>,
    /// The message log (`m`).
    pub messages: Messages,
    /// The sessions list shows only sessions whose label, peer, id or
    /// state contain this (`f`).
    pub filter: String,
    /// Mouse reporting is on (clicks select, the wheel scrolls); off, the
    /// terminal's own selection works without Shift.
    pub mouse: bool,
    /// The terminal's size, for mapping clicks to panes and rows.
    pub size: (u16, u16),
    /// `v` started a range: moving the mark moves its end.
    ranging: bool,
    /// The send panel.
    pub sequences: super::sequences::Sequences,
    /// Sequences running (repeating, or waiting for their answer), by
    /// name: the run and when it started.
    pub sequence_runs: HashMap<String, (u64, DateTime<Utc>)>,
    /// Trigger ids armed from this TUI or listed by `triggers` (for Tab).
    pub triggers: Vec<String>,
    /// A line half typed in insert mode when ctrl-] opened the command bar.
    insert_stash: String,
    /// `/` typed in the message log: the input is its filter.
    pub messages_typing: bool,
    /// Timestamps carry the date (a replayed transcript that spans days).
    pub dates: bool,
    /// Rates are measured (off in screen snapshots, which must not depend
    /// on timing).
    pub measure_rates: bool,
    /// A session opened from the command bar or a macro: selected when
    /// its first event arrives (its result can come first).
    pending_select: Option<String>,
    /// `highlight`: colouring rules for every view.
    pub highlights: super::highlight::Highlights,
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
            split_dir: Default::default(),
            selected_listener: None,
            focus: Focus::Sessions,
            mode: Mode::Normal,
            input: Input::default(),
            history: Vec::new(),
            history_pos: None,
            history_prefix: String::new(),
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
            running: Default::default(),
            help_text: None,
            closed: Default::default(),
            closed_held: 0,
            asking: None,
            pending_select: None,
            messages: Messages::default(),
            filter: String::new(),
            mouse: true,
            size: (80, 24),
            ranging: false,
            messages_typing: false,
            insert_stash: String::new(),
            triggers: Vec::new(),
            sequences: Default::default(),
            sequence_runs: HashMap::new(),
            dates: false,
            measure_rates: true,
            highlights: Default::default(),
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

    /// What runs now, for the status line: the newest line under way; a
    /// wait with its pattern and time left.
    pub fn activity(&self, now: DateTime<Utc>) -> Option<String> {
        let (line, started) = self.running.values().last()?;
        let left = match crate::lang::parse_line(line) {
            Ok(Some(crate::lang::Parsed::Core(crate::core::Command::WaitFor { timeout, .. }))) => {
                let end = *started + chrono::TimeDelta::from_std(timeout).unwrap_or_default();
                let secs = (end - now).num_milliseconds().max(0) as f64 / 1000.0;
                format!(" · {secs:.0}s left")
            }
            _ => String::new(),
        };
        Some(format!("⏳ {line}{left} · ctrl-c cancels"))
    }

    /// Measures each session's rate over the `elapsed` since the last
    /// call (once a second while data flows).
    pub fn tick_rates(&mut self, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64().max(0.001);
        for row in &mut self.sessions {
            let (i, o) = (row.bytes_in, row.bytes_out);
            row.rate = (
                ((i - row.rate_mark.0) as f64 / secs) as u64,
                ((o - row.rate_mark.1) as f64 / secs) as u64,
            );
            row.rate_mark = (i, o);
            if row.rate_history.len() == RATE_HISTORY {
                row.rate_history.pop_front();
            }
            row.rate_history.push_back(row.rate.0 + row.rate.1);
        }
    }

    /// Whether rates need measuring: data moved since the last measure, or
    /// a rate shown is not yet back to 0. Idle, nothing ticks.
    pub fn rates_active(&self) -> bool {
        self.measure_rates
            && self
                .sessions
                .iter()
                .any(|r| r.rate != (0, 0) || r.rate_mark != (r.bytes_in, r.bytes_out))
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

    /// A status line worth keeping: it goes to the message log too (the
    /// status line cuts long ones).
    fn report(&mut self, text: impl Into<String>, error: bool) {
        let text = text.into();
        // A failed command reports its error as an event and as its result.
        if !self.messages.ends_with(&text) {
            self.messages.push(Utc::now(), error, &text);
        }
        self.set_status(text, error);
    }

    /// A listing (`sessions`, `listeners`, `triggers`): into the message
    /// log, which opens on it.
    fn listing(&mut self, ev: &Event, summary: String) {
        // The log has its own time column: the listing without `TIME ID `.
        let text = ev.to_readable();
        let text = text.splitn(3, ' ').nth(2).unwrap_or(&text);
        self.messages.push(ev.timestamp, false, text);
        self.messages.scroll = 0;
        if matches!(self.mode, Mode::Normal) {
            self.mode = Mode::Messages;
        }
        self.set_status(format!("{summary} (m: the message log)"), false);
    }

    fn add_session(&mut self, row: SessionRow) -> usize {
        let i = self.sessions.len();
        self.index.insert(row.id.clone(), i);
        self.sessions.push(row);
        // The first session (or the next one when none is selected) is
        // selected; later ones never steal the selection, unless the user
        // opened it from the command bar.
        if self.selected.is_none() || self.pending_select.as_deref() == Some(&self.sessions[i].id) {
            self.pending_select = None;
            self.select(Some(i));
        }
        i
    }

    /// A session the user opened (command bar, macro): it becomes the
    /// selected one, so the next `waitfor` or `send` goes to it.
    pub fn opened(&mut self, id: &str) {
        match self.index.get(id).copied() {
            Some(i) => {
                self.select(Some(i));
                self.sessions[i].unread = false;
            }
            None => self.pending_select = Some(id.to_string()),
        }
    }

    /// Selects a session; the focused pane shows it.
    fn select(&mut self, i: Option<usize>) {
        self.selected = i;
        // Selecting a session reads it.
        if let Some(row) = i.and_then(|i| self.sessions.get_mut(i)) {
            row.unread = false;
        }
        let id = i.and_then(|i| self.sessions.get(i)).map(|s| s.id.clone());
        if let Some(pane) = self.panes.get_mut(self.pane) {
            // A merged pane given one session shows that one.
            pane.merge.clear();
            pane.merge_ends = None;
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
        let pane = self.pane.min(self.panes.len() - 1);
        if !self.panes[pane].merge.is_empty() {
            return Some(self.panes[pane].state_mut(MERGED));
        }
        let id = self.sessions.get(self.selected?)?.id.clone();
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
            binary: false,
            echo: false,
            keys_in_flight: Default::default(),
            eol: Default::default(),
            map: Default::default(),
            port: None,
            modem: None,
            bytes_in: 0,
            bytes_out: 0,
            rate: (0, 0),
            rate_mark: (0, 0),
            unread: false,
            scrollback: Scrollback::new(self.scrollback_lines, SCROLLBACK_BYTES),
            target: None,
            filter: None,
            plots: Vec::new(),
            rate_history: Default::default(),
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
        self.apply_event(ev, sid);
        if let (Some(framing), Some(id)) = (&ev.framing, sid) {
            self.set_framing(id, framing.clone());
        }
    }

    /// A session's `--mode` and `--eol`: binary sessions open in hex
    /// view (what their users want first) unless a pane already shows
    /// them otherwise.
    fn set_framing(&mut self, id: &str, framing: crate::core::events::Framing) {
        let binary = framing.mode == crate::core::command::Mode::Binary;
        let Some(row) = self.row(id) else { return };
        let first = !row.binary && binary;
        row.binary = binary;
        row.eol = framing.eol;
        row.map = framing.map;
        if first {
            for pane in &mut self.panes {
                pane.states.entry(id.to_string()).or_insert(ViewState {
                    view: View::Hex,
                    ..ViewState::default()
                });
            }
        }
    }

    fn apply_event(&mut self, ev: &Event, sid: Option<&str>) {
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
                    via,
                    cipher,
                },
                Some(id),
            ) => {
                let mut again = false;
                if let Some(row) = self.row(id) {
                    again = matches!(row.state, SessionState::Reconnecting { .. });
                    row.state = SessionState::Live;
                    row.peer = remote.to_string();
                    row.local = local.to_string();
                    row.kind = *kind;
                    row.tls = kind.is_tls();
                    row.insecure = *insecure;
                    row.port = ev.port;
                }
                // As the transcript says it.
                let mut text = if again {
                    format!("reconnected {local} -> {remote}")
                } else {
                    "connected".to_string()
                };
                if let Some(via) = via {
                    text.push_str(&format!(" via {via}"));
                }
                // What was agreed is part of the evidence (an old protocol, a weak suite).
                if let Some(cipher) = cipher {
                    text.push_str(&format!(", tls {cipher}"));
                }
                self.note(id, ev.timestamp, &text);
            }
            (EventKind::Accepted { remote, kind, cipher }, Some(id)) => {
                let proxied = ev.target.is_some();
                let mut row = self.new_row(id, if proxied { "prox" } else { "in" }, remote.to_string());
                row.state = SessionState::Live;
                row.kind = *kind;
                row.target = ev.target.clone();
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
                let mut text = format!("accepted from {remote}");
                if let Some(cipher) = cipher {
                    text.push_str(&format!(", tls {cipher}"));
                }
                self.note(id, ev.timestamp, &text);
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
                        target: ev.target.clone(),
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
                    check,
                },
                Some(id),
            ) => {
                if let (Some(from), Some(row)) = (from, self.row(id))
                    && row.direction == "udp"
                {
                    row.peer = from.to_string();
                }
                // With the line's end: the hex view shows exact bytes. A
                // line shown pending (a prompt) completes in place.
                self.push_received(id, ev.timestamp, payload, eol, *count, false);
                if *check == Some(false) {
                    // Right under the frame, in line and hex views alike.
                    self.note(
                        id,
                        ev.timestamp,
                        "✗ checksum bad: the frame above does not end with its --check sum",
                    );
                }
            }
            (EventKind::DataPartial { payload, count }, Some(id)) => {
                self.push_received(id, ev.timestamp, payload, b"", *count, true);
            }
            (EventKind::Sent { bytes, payload, .. }, Some(id)) => {
                let mut keys = None;
                let mut relayed_lines = false;
                if let Some(row) = self.row(id) {
                    row.bytes_out += *bytes as u64;
                    if row.keys_in_flight.front() == Some(payload) {
                        row.keys_in_flight.pop_front();
                        keys = Some(row.echo);
                    }
                    relayed_lines = row.target.is_some() && !row.binary;
                }
                match keys {
                    // A line-mode proxy's server side: lines, as its client
                    // side is framed (a line may span chunks).
                    None if relayed_lines => {
                        for piece in payload.split_inclusive(|&b| b == b'\n') {
                            self.add_entry(id, ev.timestamp, Mark::Out, piece, b"", Arrival::Partial);
                            if piece.ends_with(b"\n")
                                && let Some(row) = self.row(id)
                            {
                                row.scrollback.end_pending(Mark::Out);
                            }
                        }
                    }
                    // Raw keys: one line as they are typed, with local echo.
                    Some(true) => {
                        self.add_entry(id, ev.timestamp, Mark::Out, payload, b"", Arrival::Partial);
                        if (payload.contains(&b'\r') || payload.contains(&b'\n'))
                            && let Some(row) = self.row(id)
                        {
                            row.scrollback.end_pending(Mark::Out);
                        }
                    }
                    Some(false) => {}
                    None => self.push(id, ev.timestamp, Mark::Out, payload, b""),
                }
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
                let typing_here =
                    self.mode == Mode::Insert && self.selected_session().is_some_and(|s| s.id == id);
                if typing_here {
                    self.report(
                        format!("the session closed ({why}): what you typed stays; Esc leaves"),
                        true,
                    );
                }
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
            (EventKind::Modem(lines), Some(id)) => {
                let Some(row) = self.row(id) else { return };
                let before = row.modem.replace(*lines);
                // What changed (everything, the first time), as a `*` line.
                let changed: Vec<String> = lines
                    .named()
                    .iter()
                    .zip(before.map(|b| b.named()).unwrap_or_default())
                    .filter(|((_, now), (_, was))| now.is_some() && now != was)
                    .map(|((name, now), _)| {
                        format!("{name} {}", if *now == Some(true) { "on" } else { "off" })
                    })
                    .collect();
                if !changed.is_empty() {
                    self.note(id, ev.timestamp, &format!("modem {}", changed.join(" ")));
                }
            }
            (EventKind::Sample { plot, series, values }, Some(id)) => {
                let Some(row) = self.row(id) else { return };
                let at = match row.plots.iter().position(|p| p.id == *plot) {
                    Some(at) => at,
                    None => {
                        row.plots.push(super::plot::Plot::new(plot, series));
                        row.plots.len() - 1
                    }
                };
                row.plots[at].push(ev.timestamp, values);
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
                    self.report(format!("{}: {}", err.code, err.text), true);
                }
            }
            (EventKind::Sessions(list), _) => self.listing(ev, counted(list.len(), "session")),
            (EventKind::Triggers(list), _) => {
                self.triggers = list.iter().map(|t| t.trigger_id.clone()).collect();
                self.listing(ev, counted(list.len(), "trigger"));
            }
            (EventKind::Listeners(list), _) => self.listing(ev, counted(list.len(), "listener")),
            (EventKind::Info(text), _) => {
                // Kept in the message log too (a script's `mux.log`, a
                // trigger armed): the status line shows only the latest.
                self.messages.push(ev.timestamp, false, text);
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
        if let Some(f) = row.filter.as_mut() {
            f.update(&row.scrollback);
        }
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
                if let Some(f) = row.filter.as_mut() {
                    f.update(&row.scrollback);
                }
            }
        }
    }

    fn note(&mut self, id: &str, at: DateTime<Utc>, text: &str) {
        self.push(id, at, Mark::Event, text.as_bytes(), b"");
    }

    /// Adds `data` + `eol` to a session's scrollback, copied once (a line
    /// must not pin the whole read buffer it came in). Panes scrolled back
    /// on it keep the same rows in view as new ones arrive, until the
    /// bounds drop those rows; then the view holds the oldest kept page
    /// and says its lines were dropped.
    fn push(&mut self, id: &str, at: DateTime<Utc>, mark: Mark, data: &[u8], eol: &[u8]) {
        self.add_entry(id, at, mark, data, eol, Arrival::Whole);
    }

    /// Received bytes (`count` of them): a whole line (or chunk), or part of
    /// a line still arriving (`partial`), which later bytes extend and its
    /// end completes. Counted, and unread unless the session is selected.
    fn push_received(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
        data: &[u8],
        eol: &[u8],
        count: usize,
        partial: bool,
    ) {
        let selected = self.selected_session().map(|s| s.id.as_str()) == Some(id);
        if let Some(row) = self.row(id) {
            row.bytes_in += count as u64;
            row.unread |= !selected;
        }
        let arrival = if partial { Arrival::Partial } else { Arrival::Line };
        self.add_entry(id, at, Mark::In, data, eol, arrival);
    }

    fn add_entry(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
        mark: Mark,
        data: &[u8],
        eol: &[u8],
        arrival: Arrival,
    ) {
        let Some(&i) = self.index.get(id) else { return };
        let Some(row) = self.sessions.get_mut(i) else {
            return;
        };
        let mut copy = Vec::with_capacity(data.len() + eol.len());
        copy.extend_from_slice(data);
        copy.extend_from_slice(eol);
        let entry = Entry::new(at, mark, Bytes::from(copy));
        let hex_rows = entry.hex_rows();
        // The rows each pane scrolled back on it shows, before (only those
        // panes: a pane following the tail needs nothing).
        let before: Vec<(usize, u64)> = self
            .panes
            .iter()
            .enumerate()
            .filter_map(|(p, pane)| {
                let st = pane.states.get(id)?;
                (st.scroll > 0).then(|| (p, row.rows(st.view)))
            })
            .collect();
        let dropped = match arrival {
            Arrival::Whole => {
                // A whole sent chunk ends the keys being typed.
                row.scrollback.end_pending(mark);
                row.scrollback.push(entry)
            }
            Arrival::Line => row.scrollback.push_line(entry),
            Arrival::Partial => row.scrollback.push_partial(at, mark, &entry.data),
        } as usize;
        // A filtered pane's rows are the shown entries: how many of those
        // the bounds dropped.
        let filter_dropped = row.filter.as_mut().map(|f| f.update(&row.scrollback));
        for pane in &mut self.panes {
            if let Some(st) = pane.states.get_mut(id) {
                st.entries_dropped(dropped);
            }
        }
        let page = self.page;
        for (p, was) in before {
            let st = self.panes[p].state_mut(id);
            // The new rows go under the view: it moves up by as many (a
            // pending line that grew or completed adds what it grew by).
            let added = if let Some(gone) = filter_dropped {
                (row.rows(st.view) + gone).saturating_sub(was)
            } else if dropped > 0 || arrival == Arrival::Whole {
                if shows_hex(st.view, mark) { hex_rows } else { 1 }
            } else {
                row.rows(st.view).saturating_sub(was)
            };
            st.scroll += added;
            let max = row.rows(st.view).saturating_sub(page);
            if st.scroll > max {
                st.scroll = max;
                st.dropped = true;
            }
        }
    }

    /// The result of a command typed in the command bar.
    pub fn on_result(&mut self, line: &str, result: Result<String, String>) {
        // A plot removed: its chart goes (its samples are of no more use).
        if result.is_ok()
            && let Ok(Some(crate::lang::Parsed::Core(crate::core::Command::Off { id }))) =
                crate::lang::parse_line(line)
        {
            for row in &mut self.sessions {
                row.plots.retain(|p| p.id != id);
            }
        }
        match result {
            Ok(done) => self.report(format!("ok: {line}{done}"), false),
            Err(e) => self.report(e, true),
        }
    }

    /// `highlight …`, `highlights`, `filter …`: the result's text, or why
    /// it failed.
    pub fn on_display(&mut self, req: crate::lang::DisplayRequest) -> Result<String, String> {
        use crate::lang::DisplayRequest;
        match req {
            DisplayRequest::Highlight { regex, colour } => {
                let id = self.highlights.add(&regex, colour.as_deref())?;
                self.report(
                    format!("highlight {id}: /{}/", escape_display(regex.as_bytes())),
                    false,
                );
                Ok(id)
            }
            DisplayRequest::Unhighlight(id) => {
                let n = self.highlights.remove(&id)?;
                self.report(format!("{} removed", counted(n, "highlight")), false);
                Ok(String::new())
            }
            DisplayRequest::Highlights => {
                let text = self.highlights.listing();
                self.messages.push(Utc::now(), false, &text);
                self.set_status(
                    format!(
                        "{} (m shows them)",
                        counted(self.highlights.rules.len(), "highlight")
                    ),
                    false,
                );
                Ok(String::new())
            }
            DisplayRequest::Split { session, horizontal } => {
                let dir = if horizontal {
                    super::panes::SplitDir::Horizontal
                } else {
                    super::panes::SplitDir::Vertical
                };
                let text = self.split(session, dir)?;
                self.report(format!("split: {text}"), false);
                Ok(String::new())
            }
            DisplayRequest::Unsplit => {
                let text = self.unsplit()?;
                self.report(format!("unsplit: {text}"), false);
                Ok(String::new())
            }
            DisplayRequest::Merge(ids) => self.merge(ids),
            DisplayRequest::Filter { session, rule } => {
                let Some(&i) = self.index.get(&session) else {
                    return Err(format!("filter: no session {session} in this view"));
                };
                let row = &mut self.sessions[i];
                row.filter = match rule {
                    Some(rule) => Some(super::filter::LineFilter::new(rule, &row.scrollback)?),
                    None => None,
                };
                // The rows changed: every pane goes back to the tail.
                for pane in &mut self.panes {
                    if let Some(st) = pane.states.get_mut(&session) {
                        st.scroll = 0;
                        st.found = None;
                        st.mark = None;
                    }
                }
                let text = match &self.sessions[i].filter {
                    Some(f) => format!(
                        "filter {} on {}: {} hidden",
                        f.describe(),
                        short_id(&session),
                        counted(f.hidden(&self.sessions[i].scrollback), "line")
                    ),
                    None => format!("filter off on {}", short_id(&session)),
                };
                self.report(text, false);
                Ok(String::new())
            }
        }
    }

    /// `replay FILE`: the transcript as a closed, read-only session, its
    /// lines at their recorded times (with dates when it spans days). The
    /// scrollback's bounds hold: a longer file shows its newest part.
    pub fn load_transcript<R: std::io::BufRead>(&mut self, name: &str, reader: crate::transcript::Reader<R>) {
        // `# muxcat transcript vN SESSION KIND FROM -> TO mode=MODE [dir=in]`:
        // FROM is the side that opened the session, the client when
        // muxcat accepted it (`dir=in`).
        let header: Vec<String> = reader.header.split(' ').map(str::to_string).collect();
        let word = |i: usize| header.get(i).cloned().unwrap_or_default();
        let id = word(4);
        let id = if id.is_empty() { "replay".to_string() } else { id };
        let accepted = header.iter().any(|w| w == "dir=in");
        let (direction, local, peer) = if accepted {
            ("in", word(8), word(6))
        } else {
            ("out", word(6), word(8))
        };
        let mut row = self.new_row(&id, direction, peer);
        row.local = local;
        row.kind = crate::core::transport::Kind::parse(&word(5)).unwrap_or(Kind::Tcp);
        row.tls = row.kind.is_tls();
        let file = std::path::Path::new(name)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        row.label = Some(file.clone());
        row.state = SessionState::Closed("replay (read-only)".into());
        let binary = header.iter().any(|w| w == "mode=binary");
        self.add_session(row);
        if binary {
            self.set_framing(
                &id,
                crate::core::events::Framing {
                    mode: crate::core::command::Mode::Binary,
                    eol: Default::default(),
                    map: Default::default(),
                },
            );
        }
        let (mut first, mut last, mut count, mut error) = (None, None, 0u64, None);
        for entry in reader {
            let e = match entry {
                Ok(e) => e,
                Err(bad) => {
                    error = Some(bad);
                    break;
                }
            };
            let at = DateTime::parse_from_rfc3339(&e.at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default();
            first.get_or_insert(at);
            last = Some(at);
            count += 1;
            if let Some(row) = self.row(&id) {
                match e.mark {
                    Mark::In => row.bytes_in += e.data.len() as u64,
                    Mark::Out => row.bytes_out += e.data.len() as u64,
                    Mark::Event => {}
                }
            }
            self.push(&id, at, e.mark, &e.data, b"");
        }
        self.dates = first.map(|t| t.date_naive()) != last.map(|t| t.date_naive());
        let dropped = self.session(&id).map_or(0, |s| s.scrollback.dropped);
        let mut text = format!("replay {file}: {} read-only", counted(count as usize, "line"));
        if dropped > 0 {
            text.push_str(&format!(
                "; the oldest {dropped} are past the scrollback bound (--scrollback-lines)"
            ));
        }
        match error {
            Some(bad) => self.report(format!("{text}; then {bad}"), true),
            None => self.report(text, false),
        }
        self.focus = Focus::Scrollback;
    }

    /// The keymap had errors: the defaults are in use; each error is in
    /// the message log, the count in the status line.
    pub fn keymap_failed(&mut self, errors: &super::keymap::KeymapErrors) {
        for e in &errors.0 {
            self.messages.push(Utc::now(), true, &format!("keymap: {e}"));
        }
        let first = errors.0.first().map(ToString::to_string).unwrap_or_default();
        self.set_status(
            format!(
                "keymap: {} — the default keys are in use (m: all errors). {first}",
                counted(errors.0.len(), "error")
            ),
            true,
        );
    }

    /// A line typed in insert mode was not sent: it comes back to the
    /// input (unless something else was typed since) with the error.
    pub fn unsent(&mut self, text: String, error: String) {
        if self.mode == Mode::Insert && self.input.text.is_empty() {
            self.input.set(&text);
        }
        self.report(format!("not sent ({error}); the line is kept"), true);
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
                // Ctrl-C cancels what runs (a wait, a macro, a script)
                // before it offers to quit.
                if !self.running.is_empty()
                    && key.code == KeyCode::Char('c')
                    && key.modifiers.contains(KeyModifiers::CONTROL)
                {
                    self.report("cancelled what was running (Ctrl-C)", false);
                    return vec![Effect::StopRunning];
                }
                let Some(k) = Key::from_event(&key) else {
                    return Vec::new();
                };
                // The send panel: Enter sends the highlighted sequence (or
                // stops it repeating); a sequence's own key sends it.
                if self.focus == Focus::Sequences
                    && key.code == KeyCode::Enter
                    && !self.sequences.list.is_empty()
                {
                    return self.send_sequence(self.sequences.selected);
                }
                if let Some(i) = self.sequences.for_key(&k) {
                    return self.send_sequence(i);
                }
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
            Mode::Confirm => {
                let ask = self.asking.take();
                self.mode = Mode::Normal;
                match (key.code, ask) {
                    (KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter, Some(ask)) => {
                        let (line, session) = match ask {
                            Ask::Disconnect(id) => (format!("disconnect {id}"), Some(id)),
                            Ask::CloseListener(id) => (format!("close {id}"), None),
                        };
                        vec![Effect::Run { line, session }]
                    }
                    _ => {
                        self.set_status("cancelled", false);
                        Vec::new()
                    }
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
                    KeyCode::Enter => match self.selected_session() {
                        Some(s) if s.state.is_live() => {
                            let session = s.id.clone();
                            // Enter ends the line in binary sessions too,
                            // with the session's --eol; --omap maps what
                            // is typed (then the bytes go as they are).
                            let exact = s.binary || !s.map.output.is_empty();
                            let map = s.map.clone();
                            let eol = s.eol.bytes();
                            let text = self.input.take();
                            let bytes = exact.then(|| {
                                let mut line = text.clone().into_bytes();
                                line.extend_from_slice(eol);
                                map.map_output(&line).into_owned()
                            });
                            vec![Effect::Send { session, text, bytes }]
                        }
                        // The line stays typed: nothing is lost.
                        _ => {
                            self.set_status(
                                "not sent: the session is closed (the line is kept; Esc leaves)",
                                true,
                            );
                            Vec::new()
                        }
                    },
                    KeyCode::Esc => self.apply(Action::Normal),
                    _ => {
                        self.input.edit(&key);
                        Vec::new()
                    }
                }
            }
            Mode::Command => self.command_key(key),
            Mode::Messages => self.messages_key(key),
            Mode::Raw => self.raw_key(key),
            Mode::Filter => {
                match key.code {
                    KeyCode::Enter => self.mode = Mode::Normal,
                    KeyCode::Esc => {
                        self.input.take();
                        self.mode = Mode::Normal;
                    }
                    _ => {
                        self.input.edit(&key);
                    }
                }
                // The list follows each key typed.
                self.filter = self.input.text.clone();
                if self.mode == Mode::Normal {
                    self.input.take();
                    let shown = self.listed().len();
                    self.set_status(
                        if self.filter.is_empty() {
                            "filter cleared".to_string()
                        } else {
                            format!(
                                "filter {:?}: {shown} of {} (f: change, Esc in f: clear)",
                                self.filter,
                                self.sessions.len()
                            )
                        },
                        false,
                    );
                }
                Vec::new()
            }
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

    /// Raw console: a key bound in `[raw]` acts; any other goes to the
    /// session at once as the bytes a terminal sends for it.
    fn raw_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if let Some(action) = Key::from_event(&key).and_then(|k| self.keymap.action("raw", &k)) {
            return self.apply(action);
        }
        let Some(s) = self.selected_session().filter(|s| s.state.is_live()) else {
            self.set_status("not sent: the session is closed (ctrl-t leaves raw mode)", true);
            return Vec::new();
        };
        let Some(bytes) = super::rawkeys::encode(&key, s.eol.bytes()) else {
            return Vec::new();
        };
        let bytes = s.map.map_output(&bytes).into_owned();
        self.send_keys(bytes)
    }

    /// Raw console: text pasted (bracketed paste) goes out as one write;
    /// in insert mode and the bars it is typed into the input.
    pub fn on_paste(&mut self, text: &str) -> Vec<Effect> {
        match self.mode {
            Mode::Raw => {
                let bytes = match self.selected_session() {
                    Some(s) => s.map.map_output(text.as_bytes()).into_owned(),
                    None => text.as_bytes().to_vec(),
                };
                self.send_keys(bytes)
            }
            Mode::Insert | Mode::Command | Mode::Search | Mode::Filter => {
                // One line: a line end in the paste would send or run it.
                for c in text.chars().filter(|c| !c.is_control()) {
                    self.input.insert(c);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn send_keys(&mut self, bytes: Vec<u8>) -> Vec<Effect> {
        let Some(i) = self.selected else { return Vec::new() };
        let row = &mut self.sessions[i];
        if !row.state.is_live() {
            return Vec::new();
        }
        row.keys_in_flight.push_back(Bytes::copy_from_slice(&bytes));
        // Bounded: a key whose `sent` never comes back is not kept forever.
        if row.keys_in_flight.len() > 1024 {
            row.keys_in_flight.pop_front();
        }
        vec![Effect::SendKeys {
            session: row.id.clone(),
            bytes,
        }]
    }

    /// Sends sequence `i` of the send panel to the selected session, or
    /// stops it if it is running.
    fn send_sequence(&mut self, i: usize) -> Vec<Effect> {
        let Some(seq) = self.sequences.list.get(i) else {
            return Vec::new();
        };
        let name = seq.name.clone();
        if let Some((run, _)) = self.sequence_runs.remove(&name) {
            self.set_status(format!("sequence {name}: stopped"), false);
            return vec![Effect::StopRun(run)];
        }
        let lines = seq.lines();
        let Some(s) = self.selected_session().filter(|s| s.state.is_live()) else {
            self.set_status(format!("sequence {name}: no live session selected"), true);
            return Vec::new();
        };
        let session = Some(s.id.clone());
        let what = match seq.every.as_deref() {
            Some(every) => format!("sequence {name}: every {every} (Enter on it again stops it)"),
            None => format!("sequence {name}: sent"),
        };
        self.set_status(what, false);
        vec![Effect::RunSequence { name, lines, session }]
    }

    /// `seq …` from a command line.
    pub fn on_seq(&mut self, req: crate::lang::SeqRequest) -> Result<String, String> {
        use crate::lang::SeqRequest;
        match req {
            SeqRequest::Add {
                name,
                payload,
                hex,
                key,
                every,
                expect,
            } => {
                let seq = super::sequences::Sequence {
                    name: name.clone(),
                    send: (!hex).then(|| payload.clone()),
                    hex: hex.then_some(payload),
                    key,
                    expect,
                    every,
                };
                self.sequences.add(seq)?;
                Ok(format!(
                    "sequence {name} added ({} in the send panel; seq save keeps them)",
                    self.sequences.list.len()
                ))
            }
            SeqRequest::Remove(name) => {
                let before = self.sequences.list.len();
                self.sequences.list.retain(|s| s.name != name);
                if self.sequences.list.len() == before {
                    return Err(format!("seq rm: no sequence named {name:?}"));
                }
                self.sequences.selected = self
                    .sequences
                    .selected
                    .min(self.sequences.list.len().saturating_sub(1));
                if self.sequences.list.is_empty() && self.focus == Focus::Sequences {
                    self.focus = Focus::Sessions;
                }
                Ok(format!("sequence {name} removed"))
            }
            SeqRequest::Save => self
                .sequences
                .save()
                .map(|path| format!("sequences saved to {}", path.display())),
        }
    }

    /// A profile's keymap (over the defaults) and sequences file (the send
    /// panel); errors go to the message log, the rest applies.
    pub fn apply_profile(&mut self, keymap: Option<String>, sequences: Option<std::path::PathBuf>) {
        if let Some(name) = keymap {
            match Keymap::load(Some(&name)) {
                Ok(map) => self.keymap = map,
                Err(errors) => self.keymap_failed(&errors),
            }
        }
        if let Some(path) = sequences {
            let (seqs, errors) = super::sequences::Sequences::load(&path);
            self.sequences = seqs;
            self.sequence_errors(&errors);
        }
    }

    /// Errors of the sequences file: in the message log, the count in the status.
    pub fn sequence_errors(&mut self, errors: &[String]) {
        for e in errors {
            self.messages.push(Utc::now(), true, &format!("sequences: {e}"));
        }
        if let Some(first) = errors.first() {
            self.set_status(
                format!("sequences: {} (m: all). {first}", counted(errors.len(), "error")),
                true,
            );
        }
    }

    /// Rows of the message log overlay.
    pub fn messages_rows(&self) -> usize {
        self.size.1.saturating_sub(4).max(1) as usize
    }

    /// Keys while the message log is open: scroll, `/` filters, Esc closes.
    fn messages_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let rows = self.messages_rows();
        if self.messages_typing {
            match key.code {
                KeyCode::Enter => {
                    self.messages_typing = false;
                    let text = self.input.take();
                    if text.is_empty() {
                        self.messages.filter = None;
                    } else {
                        match regex::Regex::new(&text) {
                            Ok(re) => self.messages.filter = Some(re),
                            Err(e) => self
                                .set_status(format!("REGEX_INVALID: /{text}/: {e}").replace('\n', " "), true),
                        }
                    }
                    self.messages.scroll = 0;
                }
                KeyCode::Esc => {
                    self.messages_typing = false;
                    self.input.take();
                }
                _ => {
                    self.input.edit(&key);
                }
            }
            return Vec::new();
        }
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('m') => self.mode = Mode::Normal,
            KeyCode::Char('/') => {
                self.messages_typing = true;
                self.input.take();
            }
            KeyCode::Up | KeyCode::Char('k') => self.messages.scroll_by(1, rows),
            KeyCode::Down | KeyCode::Char('j') => self.messages.scroll_by(-1, rows),
            KeyCode::PageUp => self.messages.scroll_by(rows as i64 - 1, rows),
            KeyCode::PageDown => self.messages.scroll_by(-(rows as i64 - 1), rows),
            KeyCode::Home | KeyCode::Char('g') => self.messages.scroll_by(i64::MAX / 2, rows),
            KeyCode::End | KeyCode::Char('G') => self.messages.scroll = 0,
            _ => {}
        }
        Vec::new()
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
            KeyCode::Up | KeyCode::Down => {
                self.history_step(key.code == KeyCode::Up);
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

    /// Tab: completes the word before the cursor with what fits there —
    /// command names, the command's options, sessions, listeners, trigger
    /// ids or the words an option takes — and lists the candidates when
    /// several fit.
    fn complete(&mut self) {
        use crate::lang::complete::{Slot, slot};
        let before: String = self.input.text.chars().take(self.input.cursor).collect();
        let start = before.rfind(' ').map(|i| i + 1).unwrap_or(0);
        let word = before[start..].to_string();
        let typed: Vec<&str> = before[..start].split_whitespace().collect();
        let sessions = |app: &App| -> Vec<String> {
            let mut refs = Vec::new();
            for s in &app.sessions {
                refs.extend(s.label.clone());
                refs.push(s.short());
            }
            refs
        };
        let listeners = |app: &App| -> Vec<String> {
            let mut refs = Vec::new();
            for l in &app.listeners {
                refs.extend(l.label.clone());
                refs.push(short_id(&l.id));
            }
            refs
        };
        let pool: Vec<String> = match slot(&typed, &word) {
            Slot::Command => crate::lang::command_names(),
            Slot::Option(cmd) => crate::lang::option_names(&cmd),
            Slot::Session => sessions(self),
            Slot::Listener => listeners(self),
            Slot::Reference => {
                let mut refs = sessions(self);
                refs.extend(listeners(self));
                refs
            }
            Slot::Trigger => self.triggers.clone(),
            Slot::Values { words, or_session } => {
                let mut pool = words;
                if or_session {
                    pool.extend(sessions(self));
                }
                pool
            }
            Slot::Free => Vec::new(),
        };
        let mut matches: Vec<String> = pool.into_iter().filter(|c| c.starts_with(&word)).collect();
        matches.dedup();
        let Some(first) = matches.first() else {
            self.set_status(format!("nothing to complete for {:?}", word), false);
            return;
        };
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

    /// ↑/↓ in the command bar: the history, only lines starting with what
    /// was typed before the first ↑ (as shells and vim do).
    fn history_step(&mut self, older: bool) {
        if self.history_pos.is_none() {
            if !older {
                return;
            }
            self.history_prefix = self.input.text.clone();
        }
        let prefix = self.history_prefix.clone();
        let fits = |line: &String| line.starts_with(&prefix);
        let found = match (self.history_pos, older) {
            (None, true) => self.history.iter().rposition(fits),
            (Some(p), true) => self.history[..p].iter().rposition(fits).or(Some(p)),
            (Some(p), false) => self.history[p + 1..].iter().position(fits).map(|i| p + 1 + i),
            (None, false) => None,
        };
        match found {
            Some(p) => {
                self.history_pos = Some(p);
                let line = self.history[p].clone();
                self.input.set(&line);
            }
            // Past the newest: back to what was typed.
            None if !older => {
                self.history_pos = None;
                self.input.set(&prefix);
            }
            None => self.set_status(format!("no history line starts with {prefix:?}"), false),
        }
    }

    /// A click selects a listener or session row, marks a scrollback line
    /// (a click while a range is started ends it there), or focuses a
    /// pane; the wheel scrolls.
    pub fn on_mouse(&mut self, ev: MouseEvent) {
        match ev.kind {
            MouseEventKind::ScrollUp => {
                self.scroll_by(3);
            }
            MouseEventKind::ScrollDown => {
                self.scroll_by(-3);
            }
            MouseEventKind::Down(crossterm::event::MouseButton::Left) => {
                if self.mode != Mode::Normal {
                    return;
                }
                match super::view::hit(self, ev.column, ev.row) {
                    super::view::Hit::Listener(i) => {
                        self.focus = Focus::Listeners;
                        self.selected_listener = Some(i);
                    }
                    super::view::Hit::Session(i) => {
                        self.focus = Focus::Sessions;
                        self.select(Some(i));
                        self.sessions[i].unread = false;
                    }
                    super::view::Hit::Entry(idx) => {
                        self.focus = Focus::Scrollback;
                        let ranging = self.ranging;
                        if let Some(st) = self.shown_mut() {
                            st.mark = Some(match (st.mark, ranging) {
                                (Some((anchor, _)), true) => (anchor, idx),
                                _ => (idx, idx),
                            });
                        }
                        self.ranging = false;
                    }
                    super::view::Hit::Sequence(i) => {
                        self.focus = Focus::Sequences;
                        self.sequences.selected = i;
                    }
                    super::view::Hit::ScrollPane(i) => self.focus_pane(i),
                    super::view::Hit::Pane(focus) => self.focus = focus,
                    super::view::Hit::Nothing => {}
                }
            }
            _ => {}
        }
    }

    fn scroll_by(&mut self, delta: i64) {
        if self.merged_focused() {
            self.scroll_merged(delta);
            return;
        }
        let page = self.page;
        let view = self.shown().view;
        let Some(rows) = self.selected_session().map(|s| s.rows(view)) else {
            return;
        };
        if let Some(st) = self.shown_mut() {
            // The oldest row at the top of a full page is as far as it goes.
            let max = rows.saturating_sub(page);
            st.scroll = (st.scroll as i64 + delta).clamp(0, max as i64) as u64;
            st.dropped = false;
        }
    }

    /// Scrolls so that entry `idx` of the selected session is in view.
    fn reveal(&mut self, idx: usize) {
        let page = self.page.max(1);
        let view = self.shown().view;
        let Some((row, rows)) = self
            .selected_session()
            .map(|s| (s.row_of(idx, view).unwrap_or(0), s.rows(view)))
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

    /// Rebuilds the id → row index after rows were removed.
    fn reindex(&mut self) {
        self.index = self
            .sessions
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        self.selected = self.selected.filter(|&i| i < self.sessions.len());
    }

    /// The rows the sessions list shows: all, or those the filter keeps
    /// (the selected one always stays, so the scrollback's session is in
    /// the list).
    pub fn listed(&self) -> Vec<usize> {
        let filter = self.filter.to_lowercase();
        (0..self.sessions.len())
            .filter(|&i| filter.is_empty() || Some(i) == self.selected || self.sessions[i].matches(&filter))
            .collect()
    }

    /// The focused pane's mark moves with the keys (and the view follows).
    fn move_mark(&mut self, down: bool) {
        let len = self.selected_session().map_or(0, |s| s.scrollback.len());
        let ranging = self.ranging;
        let Some(st) = self.shown_mut() else { return };
        let Some((anchor, cursor)) = st.mark else { return };
        let cursor = if down {
            (cursor + 1).min(len.saturating_sub(1))
        } else {
            cursor.saturating_sub(1)
        };
        // Without a range started, the mark is one line that moves.
        st.mark = Some((if ranging { anchor } else { cursor }, cursor));
        self.reveal(cursor);
    }

    /// `v`: marks the newest line in view, or starts (and then ends) a
    /// range from the marked line.
    fn mark_range(&mut self) {
        let page = self.page;
        let Some(s) = self.selected_session() else { return };
        let st = self.shown();
        let bottom = s.rows(st.view).saturating_sub(st.scroll + 1);
        let newest_in_view = s.locate(bottom, st.view).map(|(i, _)| i);
        let _ = page;
        match st.mark {
            Some((_, cursor)) if !self.ranging => {
                self.ranging = true;
                if let Some(st) = self.shown_mut() {
                    st.mark = Some((cursor, cursor));
                }
                self.set_status("range started: j/k (or a click) moves its end, y copies", false);
            }
            Some(_) => {
                self.ranging = false;
                self.set_status("range ended: y copies it", false);
            }
            None => {
                if let (Some(i), Some(st)) = (newest_in_view, self.shown_mut()) {
                    st.mark = Some((i, i));
                }
                self.set_status("line marked: j/k move it, v starts a range, y copies", false);
            }
        }
    }

    /// `y`: the marked lines (or the newest line in view) as text, to the
    /// clipboard. Bytes a terminal would act on are escaped.
    fn copy(&mut self) -> Vec<Effect> {
        let Some(s) = self.selected_session() else {
            self.set_status("nothing to copy: no session selected", true);
            return Vec::new();
        };
        let st = self.shown();
        let range = st.marked().unwrap_or_else(|| {
            let bottom = s.rows(st.view).saturating_sub(st.scroll + 1);
            let i = s.locate(bottom, st.view).map_or(0, |(i, _)| i);
            i..=i
        });
        let mut text = String::new();
        let mut bytes = 0;
        let mut lines = 0;
        for i in range {
            let Some(e) = s.scrollback.get(i) else { break };
            // What a filter hides is not copied: the copy is what shows.
            if !s.shows(i) {
                continue;
            }
            lines += 1;
            let data = e.data.strip_suffix(b"\n").unwrap_or(&e.data);
            let data = data.strip_suffix(b"\r").unwrap_or(data);
            text.push_str(&crate::core::escape::escape_display(data));
            text.push('\n');
            bytes += data.len();
            if text.len() > COPY_MAX {
                text.truncate(COPY_MAX);
                break;
            }
        }
        self.ranging = false;
        self.set_status(
            format!(
                "copied {} ({bytes} bytes) to the clipboard",
                counted(lines, "line")
            ),
            false,
        );
        vec![Effect::Copy(text)]
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
                let mut order = vec![Focus::Listeners, Focus::Sessions, Focus::Scrollback];
                if !self.sequences.list.is_empty() {
                    order.insert(2, Focus::Sequences);
                }
                // Each scrollback pane is a stop of its own.
                let next = action == Action::FocusNext;
                let last = self.panes.len() - 1;
                match self.focus {
                    Focus::Scrollback if next && self.pane < last => return self.focus_then(self.pane + 1),
                    Focus::Scrollback if !next && self.pane > 0 => return self.focus_then(self.pane - 1),
                    _ => {}
                }
                let i = order.iter().position(|f| *f == self.focus).unwrap_or(0);
                let step = if next { 1 } else { order.len() - 1 };
                self.focus = order[(i + step) % order.len()];
                if self.focus == Focus::Scrollback {
                    return self.focus_then(if next { 0 } else { last });
                }
            }
            Action::SelectNext | Action::SelectPrev => {
                let down = action == Action::SelectNext;
                match self.focus {
                    Focus::Listeners => {
                        self.selected_listener = step(self.selected_listener, self.listeners.len(), down);
                    }
                    Focus::Sessions => {
                        let listed = self.listed();
                        let at = self.selected.and_then(|i| listed.iter().position(|&j| j == i));
                        let next = step(at, listed.len(), down).map(|p| listed[p]);
                        self.select(next.or(self.selected));
                        if let Some(s) = self.selected_mut() {
                            s.unread = false;
                        }
                    }
                    Focus::Sequences => {
                        let n = self.sequences.list.len();
                        self.sequences.selected = step(Some(self.sequences.selected), n, down).unwrap_or(0);
                    }
                    // With a mark, the keys move it; without, they scroll.
                    Focus::Scrollback if self.shown().mark.is_some() => self.move_mark(down),
                    Focus::Scrollback => self.scroll_by(if down { -1 } else { 1 }),
                }
            }
            Action::CommandBar => {
                // A line half typed into the session waits for the return
                // to insert mode (ctrl-] in the middle of it loses nothing).
                if self.mode == Mode::Insert {
                    self.insert_stash = self.input.take();
                }
                self.mode = Mode::Command;
                self.input.take();
            }
            Action::Insert => match self.selected_session() {
                Some(s) if s.state.is_live() => {
                    self.mode = Mode::Insert;
                    let stashed = std::mem::take(&mut self.insert_stash);
                    self.input.set(&stashed);
                    self.set_status("typing into the session: Enter sends the line, Esc leaves", false);
                }
                _ => self.set_status("no live session selected to type into", true),
            },
            Action::Normal => {
                self.mode = Mode::Normal;
                self.input.take();
            }
            Action::RawKeys => {
                match self.selected_session() {
                    Some(s) if s.state.is_live() => {
                        self.mode = Mode::Raw;
                        let leave = self.keymap.keys_for("raw", Action::Normal).join(" ");
                        self.set_status(
                        format!("raw console: every key goes to the device; {leave} leaves, ctrl-] command bar"),
                        false,
                    );
                    }
                    _ => self.set_status("no live session selected to type into", true),
                }
            }
            Action::ToggleDtr | Action::ToggleRts | Action::SendBreak => {
                let line = match action {
                    Action::ToggleDtr => "line dtr toggle",
                    Action::ToggleRts => "line rts toggle",
                    _ => "break",
                };
                match self.selected_session() {
                    Some(s) if s.port.is_some() && s.state.is_live() => {
                        return vec![Effect::Run {
                            line: line.to_string(),
                            session: Some(s.id.clone()),
                        }];
                    }
                    Some(s) if s.port.is_some() => self.set_status("the port is not open", true),
                    _ => self.set_status(
                        "DTR, RTS and break are lines of a serial port: select a serial session",
                        true,
                    ),
                }
            }
            Action::ToggleEcho => {
                if let Some(i) = self.selected {
                    let row = &mut self.sessions[i];
                    row.echo = !row.echo;
                    let text = if row.echo {
                        "local echo on: raw keys show as you type them"
                    } else {
                        "local echo off: only what the device echoes shows"
                    };
                    self.set_status(text, false);
                }
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
            // Destructive: asks first (y/Enter), any other key keeps it.
            Action::Disconnect if self.focus == Focus::Listeners => {
                match self.selected_listener.and_then(|i| self.listeners.get(i)) {
                    Some(l) if !l.closed => {
                        let text = format!(
                            "close listener {} ({} client(s) stay open)? (y/n)",
                            l.label.clone().unwrap_or_else(|| l.addr.clone()),
                            self.clients_of(&l.id)
                        );
                        self.asking = Some(Ask::CloseListener(l.id.clone()));
                        self.mode = Mode::Confirm;
                        self.set_status(text, false);
                    }
                    _ => self.set_status("no open listener selected", true),
                }
            }
            Action::Disconnect => match self.selected_session() {
                Some(s) if s.state.is_live() => {
                    let text = format!(
                        "disconnect {} ({})? (y/n)",
                        s.label.clone().unwrap_or_else(|| s.short()),
                        s.peer
                    );
                    self.asking = Some(Ask::Disconnect(s.id.clone()));
                    self.mode = Mode::Confirm;
                    self.set_status(text, false);
                }
                _ => self.set_status("no live session selected", true),
            },
            Action::DismissClosed => {
                let before = self.sessions.len();
                let keep = self.selected_session().map(|s| s.id.clone());
                self.sessions.retain(|s| s.state.is_live());
                self.reindex();
                let gone = before - self.sessions.len();
                let at = keep.and_then(|id| self.index.get(&id).copied());
                self.select(at.or(if self.sessions.is_empty() { None } else { Some(0) }));
                self.set_status(format!("dismissed {}", counted(gone, "closed session")), false);
            }
            Action::Dismiss => {
                if let Some(i) = self.selected
                    && !self.sessions[i].state.is_live()
                {
                    self.sessions.remove(i);
                    self.reindex();
                    let listed = self.listed();
                    let next = listed.iter().find(|&&j| j >= i).or(listed.last()).copied();
                    self.select(next);
                } else {
                    self.set_status("only closed sessions can be dismissed", true);
                }
            }
            Action::Filter => {
                self.mode = Mode::Filter;
                let current = self.filter.clone();
                self.input.set(&current);
            }
            Action::Messages => {
                self.mode = Mode::Messages;
                self.messages.scroll = 0;
            }
            Action::ScrollLeft | Action::ScrollRight => {
                let right = action == Action::ScrollRight;
                if let Some(st) = self.shown_mut() {
                    st.nowrap = true;
                    st.hscroll = if right {
                        st.hscroll + HSCROLL_STEP
                    } else {
                        st.hscroll.saturating_sub(HSCROLL_STEP)
                    };
                }
            }
            Action::ToggleWrap => {
                if let Some(st) = self.shown_mut() {
                    st.nowrap = !st.nowrap;
                    st.hscroll = 0;
                    let text = if st.nowrap {
                        "wrap off: long lines are cut; ← → scroll across"
                    } else {
                        "wrap on"
                    };
                    self.set_status(text, false);
                }
            }
            Action::MarkRange => self.mark_range(),
            Action::Copy => return self.copy(),
            Action::ToggleMouse => {
                self.mouse = !self.mouse;
                self.set_status(
                    if self.mouse {
                        "mouse on: click selects, the wheel scrolls (M: off)"
                    } else {
                        "mouse off: the terminal selects text (M: on)"
                    },
                    false,
                );
                return vec![Effect::Mouse(self.mouse)];
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
                if self.merged_focused() {
                    let found = self.search_merged(&re, newer);
                    match found {
                        true => self.set_status(format!("/{}/ found", re.as_str()), false),
                        false => self.set_status(format!("/{}/: no more matches", re.as_str()), true),
                    }
                    return Vec::new();
                }
                let found = self.shown().found;
                let hit = self.selected_session().and_then(|s| {
                    let from = match (found, newer) {
                        (Some(f), false) => f.checked_sub(1)?,
                        (Some(f), true) => f + 1,
                        (None, _) => s.scrollback.len().saturating_sub(1),
                    };
                    s.find(&re, from, newer)
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
            Action::SplitVertical | Action::SplitHorizontal | Action::Unsplit => {
                let done = match action {
                    Action::SplitVertical => self.split(None, super::panes::SplitDir::Vertical),
                    Action::SplitHorizontal => self.split(None, super::panes::SplitDir::Horizontal),
                    _ => self.unsplit(),
                };
                match done {
                    Ok(text) => self.set_status(text, false),
                    Err(e) => self.set_status(e, true),
                }
            }
            Action::ScrollUp => self.scroll_by(1),
            Action::ScrollDown => self.scroll_by(-1),
            Action::PageUp => self.scroll_by(self.page as i64 - 1),
            Action::PageDown => self.scroll_by(-(self.page as i64 - 1)),
            Action::HalfPageUp => self.scroll_by((self.page as i64 / 2).max(1)),
            Action::HalfPageDown => self.scroll_by(-(self.page as i64 / 2).max(1)),
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

    /// A TCP listener `lstn-N` on port 2323 with `max` clients.
    pub fn listening(app: &mut App, n: u8, label: Option<&str>, max: usize) {
        app.on_event(
            &Event::new(EventKind::Listening {
                local: "0.0.0.0:2323".parse().unwrap(),
                kind: crate::core::transport::Kind::Tcp,
                fingerprint: None,
                max_connections: Some(max),
            })
            .listener(&format!("lstn-{n}"))
            .labelled(label),
        );
    }

    /// Session `n`, accepted from 127.0.0.1:`port` by listener `lstn-1`.
    pub fn accepted(app: &mut App, n: u8, port: u16) {
        app.on_event(
            &Event::new(EventKind::Accepted {
                remote: format!("127.0.0.1:{port}").parse().unwrap(),
                kind: crate::core::transport::Kind::Tcp,
                cipher: None,
            })
            .session(&sid(n))
            .listener("lstn-1"),
        );
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
                via: None,
                cipher: None,
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
                check: None,
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
            ..ViewState::default()
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
            assert_eq!(a.input.text, "", "the bar starts empty");
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
            // Back in insert mode, the half-typed line is still there.
            a.apply(Action::Insert);
            assert_eq!(a.input.text, "AT", "{key:?}");
        }
    }

    #[test]
    fn an_accepted_client_says_so_in_its_scrollback_and_source_results_read_well() {
        let mut a = app();
        a.on_event(
            &Event::new(EventKind::Accepted {
                remote: "127.0.0.1:50000".parse().unwrap(),
                kind: crate::core::transport::Kind::Tcp,
                cipher: None,
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
        // Only what fits where the word is: sessions after --to, never a
        // listener; views after `view`; trigger ids after `off`.
        listening(&mut a, 1, Some("modem"), 8);
        connected(&mut a, 2, Some("modbus"));
        let complete = |a: &mut App, typed: &str| {
            a.input.set(typed);
            a.on_key(code(KeyCode::Tab));
            a.input.text.clone()
        };
        assert_eq!(complete(&mut a, "send --to mo"), "send --to modbus ");
        assert_eq!(complete(&mut a, "close mo"), "close modem ");
        complete(&mut a, "view ");
        for c in ["line", "hex", "hex-in", "hex-out", "router", "modbus"] {
            assert!(a.candidates.contains(&c.to_string()), "{c}: {:?}", a.candidates);
        }
        a.input.set("connect --");
        a.on_key(code(KeyCode::Tab));
        assert!(
            a.candidates.contains(&"--reconnect".to_string()),
            "{:?}",
            a.candidates
        );
        crate::tui::update::update(&mut a, crate::tui::update::Msg::Armed("trg-7".into()));
        a.input.set("off t");
        a.on_key(code(KeyCode::Tab));
        assert_eq!(a.input.text, "off trg-7 ");
    }

    #[test]
    fn a_line_typed_into_a_closed_session_is_kept_with_an_error() {
        let mut a = app();
        connected(&mut a, 1, None);
        a.apply(Action::Insert);
        typed(&mut a, "AT+RST");
        a.on_event(
            &Event::new(EventKind::Disconnected {
                reason: CloseReason::Remote,
            })
            .session(&sid(1)),
        );
        assert!(
            a.status_error && a.status.contains("what you typed stays"),
            "{}",
            a.status
        );
        assert!(a.on_key(code(KeyCode::Enter)).is_empty(), "nothing is sent");
        assert_eq!(a.input.text, "AT+RST");
        assert!(a.status.contains("not sent"), "{}", a.status);
        // A send the core refuses gives the line back too.
        let mut a = app();
        connected(&mut a, 1, None);
        a.apply(Action::Insert);
        typed(&mut a, "hello");
        a.on_key(code(KeyCode::Enter));
        assert_eq!(a.input.text, "");
        a.unsent("hello".into(), "SESSION_CLOSED: gone".into());
        assert_eq!(a.input.text, "hello");
        assert!(
            a.messages
                .shown()
                .iter()
                .any(|m| m.text.contains("SESSION_CLOSED"))
        );
    }

    #[test]
    fn a_session_opened_from_the_bar_becomes_the_selected_one() {
        let mut a = app();
        connected(&mut a, 1, None);
        // The result can come before the session's first event...
        a.opened(&sid(2));
        connected(&mut a, 2, None);
        assert_eq!(a.selected, Some(1));
        // ...or after it.
        connected(&mut a, 3, None);
        assert_eq!(a.selected, Some(1), "others never steal the selection");
        a.opened(&sid(3));
        assert_eq!(a.selected, Some(2));
        assert_eq!(a.focused().session.as_deref(), Some(sid(3).as_str()));
    }

    #[test]
    fn listings_and_errors_go_to_the_message_log() {
        let mut a = app();
        connected(&mut a, 1, Some("modem"));
        a.on_event(&Event::new(EventKind::Sessions(vec![
            crate::core::events::SessionInfo {
                session_id: sid(1),
                label: Some("modem".into()),
                direction: "out",
                listener_id: None,
                local_addr: "127.0.0.1:5000".into(),
                peer: Some("127.0.0.1:7000".into()),
                state: "live".into(),
                tls: false,
                kind: "tcp",
                mode: "line",
                bytes_in: 3,
                bytes_out: 4,
            },
        ])));
        assert_eq!(a.mode, Mode::Messages, "the log opens on a listing");
        assert!(a.messages.shown().iter().any(|m| m.text.contains("label=modem")));
        a.on_key(code(KeyCode::Esc));
        assert_eq!(a.mode, Mode::Normal);
        let long = format!("REGEX_INVALID: on /(/: {}", "error: unclosed group ".repeat(10));
        a.on_result("on ( send x", Err(long.clone()));
        a.apply(Action::Messages);
        assert_eq!(a.messages.shown().last().unwrap().text, long, "kept whole");
        // `/` filters the log.
        typed(&mut a, "/REGEX");
        a.on_key(code(KeyCode::Enter));
        assert_eq!(a.messages.shown().len(), 1);
    }

    #[test]
    fn many_clients_filter_dismiss_all_and_close_a_listener() {
        let mut a = app();
        for n in 1..=6u8 {
            connected(&mut a, n, Some(if n % 2 == 0 { "plc" } else { "cam" }));
        }
        for n in [2u8, 3, 4] {
            a.on_event(
                &Event::new(EventKind::Disconnected {
                    reason: CloseReason::Remote,
                })
                .session(&sid(n)),
            );
        }
        a.apply(Action::Filter);
        typed(&mut a, "plc");
        a.on_key(code(KeyCode::Enter));
        // The selected one stays listed; the others that match.
        assert_eq!(a.listed(), vec![0, 1, 3, 5]);
        a.apply(Action::SelectNext);
        assert_eq!(a.selected, Some(1));
        a.apply(Action::Filter);
        a.on_key(code(KeyCode::Esc));
        assert!(a.filter.is_empty());
        let i = a.selected.unwrap();
        a.sessions[i].unread = true;
        a.apply(Action::DismissClosed);
        assert_eq!(a.sessions.len(), 3);
        assert!(!a.selected_session().unwrap().unread, "the selected one is read");
        assert!(a.sessions.iter().all(|s| s.state.is_live()));
        assert!(a.status.contains("dismissed 3 closed sessions"), "{}", a.status);
        // A listener focused: the disconnect key closes it, asking first.
        listening(&mut a, 1, None, 8);
        a.focus = Focus::Listeners;
        assert!(a.apply(Action::Disconnect).is_empty());
        assert_eq!(a.mode, Mode::Confirm);
        assert_eq!(
            a.on_key(key('y')),
            vec![Effect::Run {
                line: "close lstn-1".into(),
                session: None
            }]
        );
    }

    #[test]
    fn vim_keeps_ctrl_d_and_ctrl_u_for_half_pages() {
        let mut a = App::new(Keymap::load(Some("vim")).unwrap(), 1000);
        a.page = 10;
        connected(&mut a, 1, None);
        for i in 0..100 {
            data(&mut a, 1, format!("line {i}").as_bytes());
        }
        a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(a.shown().scroll, 5);
        let effects = a.on_key(KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL));
        assert!(effects.is_empty());
        assert_eq!(a.shown().scroll, 0);
        assert_eq!(a.sessions[0].state, SessionState::Live);
        // `d` asks before it disconnects.
        assert!(a.on_key(key('d')).is_empty());
        assert_eq!(a.mode, Mode::Confirm);
    }

    #[test]
    fn clicks_select_rows_and_mark_lines_and_y_copies_them() {
        let mut a = app();
        a.size = (120, 30);
        a.page = crate::tui::view::page_rows(30);
        connected(&mut a, 1, Some("one"));
        connected(&mut a, 2, Some("two"));
        data(&mut a, 1, b"first line");
        data(&mut a, 1, b"second line");
        let click = |a: &mut App, column, row| {
            a.on_mouse(MouseEvent {
                kind: MouseEventKind::Down(crossterm::event::MouseButton::Left),
                column,
                row,
                modifiers: KeyModifiers::NONE,
            })
        };
        // The sessions pane starts under the 3-row listeners pane: its
        // first row is row 4.
        click(&mut a, 5, 5);
        assert_eq!(a.selected, Some(1));
        assert_eq!(a.focus, Focus::Sessions);
        click(&mut a, 5, 4);
        assert_eq!(a.selected, Some(0));
        // The scrollback: row 1 is "* connected", 2 and 3 the lines.
        click(&mut a, 60, 2);
        assert_eq!(a.focus, Focus::Scrollback);
        assert_eq!(a.shown().mark, Some((1, 1)));
        assert_eq!(a.apply(Action::Copy), vec![Effect::Copy("first line\n".into())]);
        a.apply(Action::MarkRange);
        click(&mut a, 60, 3);
        assert_eq!(a.shown().marked(), Some(1..=2));
        assert_eq!(
            a.apply(Action::Copy),
            vec![Effect::Copy("first line\nsecond line\n".into())]
        );
        assert!(a.status.contains("copied 2 lines"));
        // The mouse can be handed to the terminal.
        assert_eq!(a.apply(Action::ToggleMouse), vec![Effect::Mouse(false)]);
    }

    #[test]
    fn binary_sessions_open_in_hex_and_enter_sends_their_end_of_line() {
        use crate::core::command::{Eol, Mode as Framing};
        let mut a = app();
        let mut ev = Event::new(EventKind::Accepted {
            remote: "127.0.0.1:50000".parse().unwrap(),
            kind: crate::core::transport::Kind::Tcp,
            cipher: None,
        })
        .session(&sid(1));
        ev.framing = Some(crate::core::events::Framing {
            mode: Framing::Binary,
            eol: Eol::Crlf,
            map: Default::default(),
        });
        a.on_event(&ev);
        assert_eq!(a.shown().view, View::Hex);
        a.apply(Action::Insert);
        typed(&mut a, "AT");
        assert_eq!(
            a.on_key(code(KeyCode::Enter)),
            vec![Effect::Send {
                session: sid(1),
                text: "AT".into(),
                bytes: Some(b"AT\r\n".to_vec()),
            }]
        );
    }

    #[test]
    fn a_transcript_opens_read_only_with_dates_when_it_spans_days() {
        let text = "# muxcat transcript v1 sess-1 tcp 127.0.0.1:5000 -> 127.0.0.1:7000 mode=line\n\
            2026-11-30T23:59:59.000000Z * connected\n\
            2026-11-30T23:59:59.500000Z > AT\\r\\n\n\
            2026-12-01T00:00:00.250000Z < OK\\r\\n\n\
            2026-12-01T00:00:01.000000Z x broken\n";
        let reader = crate::transcript::Reader::new(text.as_bytes(), "t.log").unwrap();
        let mut a = app();
        a.load_transcript("t.log", reader);
        let s = &a.sessions[0];
        assert_eq!(s.scrollback.len(), 3);
        assert_eq!(
            (s.peer.as_str(), s.local.as_str()),
            ("127.0.0.1:7000", "127.0.0.1:5000")
        );
        assert!(!s.state.is_live(), "read-only: nothing can be typed into it");
        assert!(a.dates);
        assert!(
            a.status_error && a.status.contains("3 lines") && a.status.contains("line 5"),
            "{}",
            a.status
        );
        a.apply(Action::Insert);
        assert_eq!(a.mode, Mode::Normal);
        // Search and hex view work as on a live session.
        a.apply(Action::Search);
        typed(&mut a, "OK");
        a.on_key(code(KeyCode::Enter));
        assert_eq!(a.shown().found, Some(2));
        a.apply(Action::ToggleHex);
        assert_eq!(a.shown().view, View::Hex);
        // A session muxcat accepted (v3, `dir=in`): the client is the peer.
        let text = "# muxcat transcript v3 sess-2 tcp 127.0.0.1:52720 -> 127.0.0.1:24444 mode=line dir=in\n\
            2026-12-01T00:00:00.250000Z < hi\\n\n";
        let reader = crate::transcript::Reader::new(text.as_bytes(), "in.log").unwrap();
        a.load_transcript("in.log", reader);
        let s = &a.sessions[1];
        assert_eq!(
            (s.direction, s.peer.as_str(), s.local.as_str()),
            ("in", "127.0.0.1:52720", "127.0.0.1:24444")
        );
    }

    #[test]
    fn raw_keys_go_out_at_once_and_ctrl_t_leaves() {
        let mut a = app();
        connected(&mut a, 1, None);
        a.apply(Action::Insert);
        a.on_key(KeyEvent::new(KeyCode::Char('t'), KeyModifiers::CONTROL));
        assert_eq!(a.mode, Mode::Raw);
        let sent = |effects: Vec<Effect>| match &effects[..] {
            [Effect::SendKeys { bytes, .. }] => bytes.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            sent(a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))),
            b"\x03"
        );
        assert_eq!(sent(a.on_key(key('q'))), b"q", "q is a key like any other");
        assert_eq!(
            sent(a.on_key(code(KeyCode::Enter))),
            b"\n",
            "the session's end of line"
        );
        assert_eq!(
            sent(a.on_paste("line one\nline two")),
            b"line one\nline two",
            "one write"
        );
        // The `sent` events of keys are not lines of their own...
        let before = a.sessions[0].scrollback.len();
        for payload in [&b"\x03"[..], b"q", b"\n", b"line one\nline two"] {
            a.on_event(
                &Event::new(EventKind::Sent {
                    message_id: 1,
                    bytes: payload.len(),
                    payload: Bytes::copy_from_slice(payload),
                    trigger: None,
                })
                .session(&sid(1)),
            );
        }
        assert_eq!(a.sessions[0].scrollback.len(), before);
        assert_eq!(a.sessions[0].bytes_out, 1 + 1 + 1 + 17, "but counted");
        // ...unless local echo is on: then they build a line as typed.
        a.apply(Action::ToggleEcho);
        for c in ["a", "b"] {
            sent(a.on_key(key(c.chars().next().unwrap())));
            a.on_event(
                &Event::new(EventKind::Sent {
                    message_id: 2,
                    bytes: 1,
                    payload: Bytes::copy_from_slice(c.as_bytes()),
                    trigger: None,
                })
                .session(&sid(1)),
            );
        }
        assert_eq!(a.sessions[0].scrollback.len(), before + 1);
        let last = a.sessions[0].scrollback.get(before).unwrap();
        assert_eq!((last.mark, &last.data[..]), (Mark::Out, &b"ab"[..]));
        a.on_key(KeyEvent::new(KeyCode::Char('t'), KeyModifiers::CONTROL));
        assert_eq!(a.mode, Mode::Normal);
    }

    #[test]
    fn the_send_panel_sends_repeats_and_stops_its_sequences() {
        use crate::lang::SeqRequest;
        let mut a = app();
        connected(&mut a, 1, None);
        let add = |a: &mut App, name: &str, payload: &str, every: Option<&str>, key: Option<&str>| {
            a.on_seq(SeqRequest::Add {
                name: name.into(),
                payload: payload.into(),
                hex: false,
                key: key.map(Into::into),
                every: every.map(Into::into),
                expect: None,
            })
        };
        add(&mut a, "version", "AT+GMR\\r", None, Some("f6")).unwrap();
        add(&mut a, "poll", "AT+CSQ", Some("1s"), None).unwrap();
        assert!(
            add(&mut a, "bad", "x", Some("soon"), None).is_err(),
            "checked as the parser runs it"
        );
        // The panel joins the focus cycle.
        a.apply(Action::FocusNext);
        assert_eq!(a.focus, Focus::Sequences);
        assert_eq!(
            a.on_key(code(KeyCode::Enter)),
            vec![Effect::RunSequence {
                name: "version".into(),
                lines: vec!["send AT+GMR\\r".into()],
                session: Some(sid(1)),
            }]
        );
        a.apply(Action::SelectNext);
        let effects = a.on_key(code(KeyCode::Enter));
        assert_eq!(
            effects,
            vec![Effect::RunSequence {
                name: "poll".into(),
                lines: vec!["repeat --every 1s send AT+CSQ".into()],
                session: Some(sid(1)),
            }]
        );
        crate::tui::update::update(&mut a, crate::tui::update::Msg::SequenceRun("poll".into(), 7));
        // Enter again stops it.
        assert_eq!(a.on_key(code(KeyCode::Enter)), vec![Effect::StopRun(7)]);
        // Its key sends one from anywhere.
        a.focus = Focus::Sessions;
        assert!(matches!(
            &a.on_key(KeyEvent::new(KeyCode::F(6), KeyModifiers::NONE))[..],
            [Effect::RunSequence { name, .. }] if name == "version"
        ));
        assert!(a.on_seq(SeqRequest::Remove("nope".into())).is_err());
        a.on_seq(SeqRequest::Remove("version".into())).unwrap();
        assert_eq!(a.sequences.list.len(), 1);
    }

    #[test]
    fn rates_are_measured_while_data_flows_and_stop_when_idle() {
        let mut a = app();
        connected(&mut a, 1, None);
        assert!(!a.rates_active(), "idle: nothing ticks");
        for _ in 0..10 {
            data(&mut a, 1, &[b'x'; 99]);
        }
        assert!(a.rates_active());
        a.tick_rates(std::time::Duration::from_millis(500));
        assert_eq!(a.sessions[0].rate, (2000, 0));
        assert!(a.rates_active(), "a rate shown must come back to 0");
        a.tick_rates(std::time::Duration::from_secs(1));
        assert_eq!(a.sessions[0].rate, (0, 0));
        assert!(!a.rates_active());
    }

    #[test]
    fn history_up_searches_by_the_prefix_typed() {
        let mut a = app();
        a.history = vec![
            "send AT".into(),
            "connect h:1".into(),
            "send ATI".into(),
            "view hex".into(),
        ];
        a.apply(Action::CommandBar);
        typed(&mut a, "send");
        a.on_key(code(KeyCode::Up));
        assert_eq!(a.input.text, "send ATI");
        a.on_key(code(KeyCode::Up));
        assert_eq!(a.input.text, "send AT");
        a.on_key(code(KeyCode::Up));
        assert_eq!(a.input.text, "send AT", "no older one: stays");
        a.on_key(code(KeyCode::Down));
        assert_eq!(a.input.text, "send ATI");
        a.on_key(code(KeyCode::Down));
        assert_eq!(a.input.text, "send", "past the newest: what was typed");
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
                text: "AT+GMR".into(),
                bytes: None,
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
        // The key asks first; anything but y keeps the session.
        assert!(a.apply(Action::Disconnect).is_empty());
        assert_eq!(a.mode, Mode::Confirm);
        assert!(a.on_key(key('n')).is_empty());
        assert_eq!(a.mode, Mode::Normal);
        a.apply(Action::Disconnect);
        assert_eq!(
            a.on_key(key('y')),
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
    fn a_scrolled_back_view_stays_on_its_lines_when_the_scrollback_is_full() {
        let mut a = App::new(Keymap::load(None).unwrap(), 300);
        a.page = 10;
        connected(&mut a, 1, None);
        for i in 0..400 {
            data(&mut a, 1, format!("line {i}").as_bytes());
        }
        a.apply(Action::PageUp);
        let top = |a: &App| {
            let s = &a.sessions[0];
            let row = s.rows(View::Line) - a.shown().scroll - a.page;
            let (idx, _) = s.scrollback.locate(row, View::Line).unwrap();
            String::from_utf8_lossy(&s.scrollback.get(idx).unwrap().data).into_owned()
        };
        let before = top(&a);
        for i in 400..450 {
            data(&mut a, 1, format!("line {i}").as_bytes());
        }
        assert_eq!(top(&a), before, "the same line stays at the top");
        assert!(!a.shown().dropped);
        // Once the lines in view are dropped, the view holds the oldest
        // page and says so.
        for i in 450..800 {
            data(&mut a, 1, format!("line {i}").as_bytes());
        }
        assert!(a.shown().dropped);
        assert_eq!(a.shown().scroll, 300 - 10);
        assert_eq!(top(&a), "line 500\n");
        a.apply(Action::PageDown);
        assert!(!a.shown().dropped, "moving the view clears the note");
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
                cipher: None,
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
