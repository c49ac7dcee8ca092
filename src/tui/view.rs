//! Drawing: `view(&App, frame)` only reads the model. Each pane draws the
//! rows it shows and nothing more, so a frame costs O(visible rows).

use chrono::Utc;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};

use super::app::{App, Focus, Mode, SessionRow, SessionState, ViewState};
use super::keymap::{Action, MODES};
use super::scrollback::{Entry, HEX_WIDTH, Mark, shows_hex};
use crate::core::View;
use crate::core::escape::{escape_controls, escape_display};
use crate::core::events::short_id;

/// Colours, or none with `NO_COLOR`: marks and modifiers still tell things apart.
#[derive(Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub fn from_env() -> Theme {
        Theme {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    fn mark(&self, mark: Mark) -> Style {
        match mark {
            Mark::In => Style::new(),
            Mark::Out => self.fg(Color::Cyan),
            Mark::Event => self.fg(Color::Yellow).add_modifier(Modifier::DIM),
        }
    }

    fn escaped(&self) -> Style {
        self.fg(Color::DarkGray).add_modifier(Modifier::DIM)
    }

    /// Text a `highlight` rule matched: in its colour (bold, underlined
    /// without colours).
    fn highlighted(&self, base: Style, c: Color) -> Style {
        if self.color {
            base.fg(c).add_modifier(Modifier::BOLD)
        } else {
            base.add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        }
    }

    fn border(&self, focused: bool) -> Style {
        if focused {
            self.fg(Color::White).add_modifier(Modifier::BOLD)
        } else {
            self.fg(Color::DarkGray)
        }
    }
}

/// Below this the panes cannot be drawn: a line says so instead.
const MIN_WIDTH: u16 = 30;
const MIN_HEIGHT: u16 = 6;

pub fn view(app: &App, frame: &mut Frame, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        // Sessions go on; only the drawing waits for room.
        let text = format!(
            "muxcat: terminal too small ({}×{}, needs {MIN_WIDTH}×{MIN_HEIGHT})",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    let Some(areas) = areas(app, area) else {
        return;
    };
    draw_listeners(app, frame, areas.listeners, theme);
    draw_sessions(app, frame, areas.sessions, theme);
    if let Some(area) = areas.sequences {
        draw_sequences(app, frame, area, theme);
    }
    draw_scrollback(app, frame, areas.scrollback, theme);
    if let Some(area) = areas.plot {
        draw_plot(app, frame, area, theme);
    }
    draw_status(app, frame, areas.status, theme);
    if !app.candidates.is_empty() && app.mode == Mode::Command {
        draw_candidates(app, frame, areas.status, theme);
    }
    match app.mode {
        Mode::Help => draw_help(app, frame, theme),
        Mode::Messages => draw_messages(app, frame, theme),
        _ => {}
    }
}

/// Where each pane is on a terminal of this size (None: too small). Clicks
/// are mapped with the same layout the drawing uses.
pub struct Areas {
    pub listeners: Rect,
    pub sessions: Rect,
    pub sequences: Option<Rect>,
    pub scrollback: Rect,
    /// The chart of the shown session's plots, under its scrollback.
    pub plot: Option<Rect>,
    pub status: Rect,
}

/// Rows the scrollback keeps above a chart; below this there is no chart.
const PLOT_MIN_HEIGHT: u16 = 8;

pub fn areas(app: &App, area: Rect) -> Option<Areas> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let [main, status] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    // A narrow terminal keeps most of its width for the scrollback.
    let left_width = if main.width < 72 {
        main.width * 2 / 5
    } else {
        (main.width / 3).clamp(24, 44)
    };
    let [left, right] = Layout::horizontal([Constraint::Length(left_width), Constraint::Min(10)]).areas(main);
    let listener_rows = (app.listeners.len() as u16 + 2).min(left.height / 3 + 2).max(3);
    // The send panel, under the sessions, when there are sequences.
    let sequence_rows = match app.sequences.list.len() as u16 {
        0 => 0,
        n => (n + 2).min(left.height / 3).max(3),
    };
    let [lst, sess, seqs] = Layout::vertical([
        Constraint::Length(listener_rows),
        Constraint::Min(3),
        Constraint::Length(sequence_rows),
    ])
    .areas(left);
    // The shown session's plots take the lower part of the right side,
    // when there is room for both.
    let plotted = app
        .focused()
        .session
        .as_deref()
        .and_then(|id| app.session(id))
        .is_some_and(|s| !s.plots.is_empty());
    let (scrollback, plot) = if plotted && right.height >= 2 * PLOT_MIN_HEIGHT {
        let chart = (right.height * 2 / 5).max(PLOT_MIN_HEIGHT);
        let [top, bottom] =
            Layout::vertical([Constraint::Min(PLOT_MIN_HEIGHT), Constraint::Length(chart)]).areas(right);
        (top, Some(bottom))
    } else {
        (right, None)
    };
    Some(Areas {
        listeners: lst,
        sessions: sess,
        sequences: (sequence_rows > 0).then_some(seqs),
        scrollback,
        plot,
        status,
    })
}

/// What a click at (column, row) lands on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    Listener(usize),
    Session(usize),
    Sequence(usize),
    /// An entry of the shown session's scrollback.
    Entry(usize),
    /// A scrollback pane other than the focused one.
    ScrollPane(usize),
    Pane(super::app::Focus),
    Nothing,
}

pub fn hit(app: &App, column: u16, row: u16) -> Hit {
    let Some(a) = areas(app, Rect::new(0, 0, app.size.0, app.size.1)) else {
        return Hit::Nothing;
    };
    let at = Position::new(column, row);
    let inner = |r: Rect| {
        Rect::new(
            r.x + 1,
            r.y + 1,
            r.width.saturating_sub(2),
            r.height.saturating_sub(2),
        )
    };
    if a.listeners.contains(at) {
        let i = inner(a.listeners);
        let range = window(app.listeners.len(), app.selected_listener, i.height as usize);
        return match row.checked_sub(i.y).map(|r| range.start + r as usize) {
            Some(n) if i.contains(at) && range.contains(&n) => Hit::Listener(n),
            _ => Hit::Pane(Focus::Listeners),
        };
    }
    if a.sessions.contains(at) {
        let i = inner(a.sessions);
        let listed = app.listed();
        let sel = app.selected.and_then(|s| listed.iter().position(|&j| j == s));
        let range = window(listed.len(), sel, i.height as usize);
        return match row.checked_sub(i.y).map(|r| range.start + r as usize) {
            Some(n) if i.contains(at) && range.contains(&n) => Hit::Session(listed[n]),
            _ => Hit::Pane(Focus::Sessions),
        };
    }
    if let Some(area) = a.sequences.filter(|r| r.contains(at)) {
        let i = inner(area);
        let seqs = &app.sequences;
        let range = window(seqs.list.len(), Some(seqs.selected), i.height as usize);
        return match row.checked_sub(i.y).map(|r| range.start + r as usize) {
            Some(n) if i.contains(at) && range.contains(&n) => Hit::Sequence(n),
            _ => Hit::Pane(Focus::Sequences),
        };
    }
    if a.scrollback.contains(at) {
        let rects = super::panes::rects(a.scrollback, app.panes.len(), app.split_dir);
        let Some(n) = rects.iter().position(|r| r.contains(at)) else {
            return Hit::Pane(Focus::Scrollback);
        };
        // Another pane (or a merged one): the click focuses it.
        if n != app.pane || app.merged_focused() {
            return Hit::ScrollPane(n);
        }
        let i = inner(rects[n]);
        let shown = app.focused().session.as_deref().and_then(|id| app.session(id));
        if let Some(s) = shown
            && i.contains(at)
        {
            let rows = visible_rows(app, s, app.shown(), i.width as usize, i.height as usize);
            if let Some(r) = rows.get((row - i.y) as usize) {
                return Hit::Entry(r.idx);
            }
        }
        return Hit::Pane(Focus::Scrollback);
    }
    Hit::Nothing
}

/// The scrollback pane's inner height for a terminal of this size.
pub fn page_rows(height: u16) -> u64 {
    height.saturating_sub(3).max(1) as u64
}

fn pane<'a>(title: impl Into<Line<'a>>, focused: bool, theme: Theme) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(theme.border(focused))
        .title(title)
}

/// Shows at most `height` rows around `selected`.
fn window(len: usize, selected: Option<usize>, height: usize) -> std::ops::Range<usize> {
    let height = height.max(1);
    let sel = selected.unwrap_or(0);
    let start = sel.saturating_sub(height - 1).min(len.saturating_sub(height));
    start..(start + height).min(len)
}

fn draw_listeners(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let block = pane(" Listeners ", app.focus == Focus::Listeners, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = Vec::new();
    for i in window(app.listeners.len(), app.selected_listener, inner.height as usize) {
        let l = &app.listeners[i];
        let here = app.selected_listener == Some(i) && app.focus == Focus::Listeners;
        let state = if l.closed { "✗" } else { "●" };
        let name = l.label.clone().unwrap_or_else(|| l.addr.clone());
        // A proxy's listener names its target.
        let name = match &l.target {
            Some(target) => format!("{name} → {target}"),
            None => name,
        };
        let clients = format!("{}/{}", app.clients_of(&l.id), l.max);
        let tag = match (l.tls, l.udp) {
            (true, _) => " TLS",
            (_, true) => " UDP",
            _ => "",
        };
        // Marks (4), the tag, a space and the clients; the name the rest.
        let name_room = (inner.width as usize).saturating_sub(4 + tag.len() + 1 + clients.len());
        let mut style = Style::new();
        if l.closed {
            style = style.add_modifier(Modifier::DIM);
        }
        lines.push(Line::from(vec![
            Span::raw(if here { "▶ " } else { "  " }),
            Span::styled(
                format!("{state} "),
                theme.fg(if l.closed { Color::Red } else { Color::Green }),
            ),
            Span::styled(truncate(&name, name_room), style),
            Span::styled(tag, theme.fg(Color::Magenta)),
            Span::raw(" "),
            Span::styled(clients, style),
        ]));
    }
    if app.listeners.is_empty() {
        lines.push(Line::styled("  :listen PORT", theme.escaped()));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn human(n: u64) -> String {
    match n {
        0..1024 => format!("{n}B"),
        1024..1_048_576 => format!("{}K", n / 1024),
        1_048_576..1_073_741_824 => format!("{}M", n / 1_048_576),
        _ => format!("{}G", n / 1_073_741_824),
    }
}

fn state_mark(s: &SessionRow) -> (&'static str, Color) {
    match &s.state {
        SessionState::Connecting => ("…", Color::Yellow),
        SessionState::Live if s.direction == "udp" => ("○", Color::Green),
        SessionState::Live => ("●", Color::Green),
        SessionState::Reconnecting { .. } => ("↻", Color::Yellow),
        SessionState::Closed(_) | SessionState::Failed(_) => ("✗", Color::Red),
    }
}

fn draw_sessions(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let listed = app.listed();
    let at = app.selected.and_then(|i| listed.iter().position(|&j| j == i));
    // Where the selection is, and how many there are: `12/200`.
    let mut title = match at {
        Some(p) => format!(" Sessions {}/{} ", p + 1, listed.len()),
        None => format!(" Sessions {} ", listed.len()),
    };
    if !app.filter.is_empty() {
        title = format!(
            "{title}of {} · f:{} ",
            app.sessions.len(),
            escape_display(app.filter.as_bytes())
        );
    }
    let block = pane(title, app.focus == Focus::Sessions, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = Vec::new();
    let width = inner.width as usize;
    for p in window(listed.len(), at, inner.height as usize) {
        let i = listed[p];
        lines.push(session_line(
            &app.sessions[i],
            app.selected == Some(i),
            width,
            theme,
        ));
    }
    if app.sessions.is_empty() {
        lines.push(Line::styled("  :connect HOST:PORT", theme.escaped()));
    } else if listed.is_empty() {
        lines.push(Line::styled("  nothing matches the filter (f)", theme.escaped()));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// One row of the sessions list, fitted to `width`: the selection and
/// unread marks and the state always show; then the peer (with its port:
/// clients of one host differ by it) and label; the counters, the short id
/// and the direction only while the name keeps room.
fn session_line(s: &SessionRow, here: bool, width: usize, theme: Theme) -> Line<'static> {
    let (mark, color) = state_mark(s);
    // ↻4s: the countdown to the next reconnect attempt.
    let wait = s.state.reconnect_wait(Utc::now()).unwrap_or_default();
    let state = format!(" {mark}{wait}");
    // While data flows, the rates; idle, the totals.
    let bytes = if s.rate != (0, 0) {
        format!(" {}/s {}/s", human(s.rate.0), human(s.rate.1))
    } else {
        format!(" {}/{}", human(s.bytes_in), human(s.bytes_out))
    };
    // While data flows: the rate over the last seconds.
    let spark = if s.rate != (0, 0) {
        sparkline(&s.rate_history)
    } else {
        String::new()
    };
    let id = format!("{} ", s.short());
    let dir = format!("{:<4}", s.direction);
    // Marks (3) + state; the peer (with its port) comes first, then the
    // counters, then the label, then the short id and the direction.
    let peer_want = s.peer.chars().count().clamp(12, 22);
    let whole_name = match &s.label {
        Some(label) => label.chars().count() + 1 + s.peer.chars().count(),
        None => s.peer.chars().count(),
    }
    .clamp(12, 30);
    let fixed = 3 + state.chars().count();
    let mut room = width.saturating_sub(fixed);
    let mut take = |text: &str, name_want: usize| {
        let fits = room >= text.chars().count() + name_want;
        if fits {
            room -= text.chars().count();
        }
        fits
    };
    // In order of use; once one does not fit, the rest do not show.
    let show_bytes = take(&bytes, peer_want);
    let show_spark = show_bytes && !spark.is_empty() && take(&spark, peer_want);
    let show_id = show_bytes && take(&id, whole_name);
    let show_dir = show_id && take(&dir, whole_name);
    // A label keeps up to 8 columns; the peer takes what it needs of the
    // rest (cut in the host, never the port); the label gets what is left.
    let name = match &s.label {
        Some(label) => {
            let label_min = label.chars().count().min(8);
            let peer_room = room.saturating_sub(label_min + 1);
            if peer_room >= 6 {
                let peer = fit_peer(&s.peer, peer_room);
                let label = truncate(label, room - peer.chars().count() - 1);
                format!("{label} {peer}")
            } else {
                truncate(label, room)
            }
        }
        None => fit_peer(&s.peer, room),
    };
    let mut style = Style::new();
    if !s.state.is_live() {
        style = style.add_modifier(Modifier::DIM);
    }
    if here {
        style = style.add_modifier(Modifier::REVERSED);
    }
    let mut spans = vec![
        Span::styled(if here { "▶" } else { " " }, style),
        Span::styled(if s.unread { "✱" } else { " " }, theme.fg(Color::Yellow)),
        Span::styled(" ", style),
    ];
    if show_id {
        spans.push(Span::styled(id, style));
    }
    if show_dir {
        spans.push(Span::styled(dir, style));
    }
    spans.push(Span::styled(format!("{name:<room$}"), style));
    spans.push(Span::styled(state, theme.fg(color)));
    if show_bytes {
        spans.push(Span::styled(bytes, style));
    }
    if show_spark {
        spans.push(Span::styled(spark, theme.fg(Color::Green)));
    }
    Line::from(spans)
}

/// The receive and send rate over the last measures, ` ▁▃█▅`, scaled to
/// its highest; empty when nothing moved in them.
pub fn sparkline(rates: &std::collections::VecDeque<u64>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = rates.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return String::new();
    }
    let mut out = String::from(" ");
    for &r in rates {
        out.push(BARS[((r * 7).div_ceil(max)) as usize]);
    }
    out
}

/// A peer address in `max` columns, its port kept: `127.0.…:50412`.
fn fit_peer(peer: &str, max: usize) -> String {
    if peer.chars().count() <= max {
        return peer.to_string();
    }
    match peer.rsplit_once(':') {
        Some((host, port)) if port.len() + 2 < max => {
            let host = truncate(host, max - port.len() - 1);
            format!("{host}:{port}")
        }
        _ => truncate(peer, max),
    }
}

/// The send panel: name, key, payload; `⟳1s` repeating, `▶` running.
fn draw_sequences(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let block = pane(" Send ", app.focus == Focus::Sequences, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let seqs = &app.sequences;
    let width = inner.width as usize;
    let mut lines = Vec::new();
    for i in window(seqs.list.len(), Some(seqs.selected), inner.height as usize) {
        let seq = &seqs.list[i];
        let here = i == seqs.selected && app.focus == Focus::Sequences;
        let running = app.sequence_runs.get(&seq.name);
        let mut tags = String::new();
        if let Some(k) = &seq.key {
            tags.push_str(&format!(" [{k}]"));
        }
        if let Some(every) = &seq.every {
            tags.push_str(&format!(" ⟳{every}"));
        }
        if let Some((_, started)) = running {
            // The countdown to the next send of a repeating one.
            let next = seq.interval().map(|every| {
                let every = every.as_millis().max(1) as i64;
                let gone = (Utc::now() - *started).num_milliseconds().max(0);
                every - gone % every
            });
            match next {
                Some(ms) => tags.push_str(&format!(" next {:.1}s", ms as f64 / 1000.0)),
                None => tags.push_str(" …"),
            }
        }
        let mut style = Style::new();
        if here {
            style = style.add_modifier(Modifier::REVERSED);
        }
        let name = truncate(&seq.name, 16);
        let room = width.saturating_sub(2 + name.chars().count() + 1 + tags.chars().count());
        let preview = truncate(&escape_controls(&seq.preview()), room);
        lines.push(Line::from(vec![
            Span::styled(
                if running.is_some() { "▶ " } else { "  " },
                theme.fg(Color::Green),
            ),
            Span::styled(format!("{name} "), style.add_modifier(Modifier::BOLD)),
            Span::styled(format!("{preview:<room$}"), style),
            Span::styled(tags, theme.fg(Color::Cyan)),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else if max == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// A session as one pane shows it.
struct Shown<'a> {
    row: &'a SessionRow,
    state: ViewState,
    /// Text rows show their time (the pane is wide enough).
    stamps: bool,
}

fn scrollback_title(s: &SessionRow, st: ViewState, app: &App) -> String {
    let mut parts = vec![short_id(&s.id)];
    // Second: what shows is not all there is.
    if let Some(f) = &s.filter {
        parts.push(format!(
            "filter {}: {} hidden",
            f.describe(),
            f.hidden(&s.scrollback)
        ));
    }
    // First: it explains why nothing arrives.
    parts.extend(s.state.reconnect_text(Utc::now()));
    match &s.port {
        // A serial port: the device, its settings and its modem lines.
        Some(port) => {
            parts.push(s.peer.clone());
            parts.push(port.describe());
            parts.push(match &s.modem {
                Some(m) => modem_flags(m),
                None => "no modem lines".to_string(),
            });
        }
        None => {
            parts.push(s.direction.to_string());
            let route = match (s.direction, &s.target) {
                // A proxy: client → this proxy → target.
                (_, Some(target)) => format!("{} → {} → {}", s.peer, s.local, target),
                ("in", None) => format!("{} → {}", s.peer, s.local),
                _ => format!("{} → {}", if s.local.is_empty() { "…" } else { &s.local }, s.peer),
            };
            parts.push(route);
        }
    }
    parts.push(st.view.as_str().to_string());
    if !s.map.is_empty() {
        parts.push(s.map.describe());
    }
    match &s.state {
        SessionState::Closed(why) => parts.push(format!("closed {why}")),
        SessionState::Failed(why) => parts.push(format!("failed {why}")),
        _ => {}
    }
    if s.tls {
        parts.push(if s.insecure {
            "TLS (insecure)".into()
        } else {
            "TLS".into()
        });
    }
    if app.recording {
        parts.push("● rec".into());
    }
    if st.scroll > 0 {
        parts.push(format!("↑{}", st.scroll));
    }
    if st.dropped {
        // The lines that were in view are gone from memory.
        parts.push("oldest lines dropped (scrollback full)".into());
    }
    format!(" {} ", parts.join(" · "))
}

/// `DTR● RTS● CTS○`: ● on, ○ off, the lines that are known.
fn modem_flags(m: &crate::core::transport::serial::ModemLines) -> String {
    m.named()
        .iter()
        .filter_map(|(name, v)| v.map(|on| format!("{name}{}", if on { '●' } else { '○' })))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scrollback area: its panes, side by side or stacked.
fn draw_scrollback(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let rects = super::panes::rects(area, app.panes.len(), app.split_dir);
    for (i, r) in rects.into_iter().enumerate() {
        draw_pane(app, frame, r, i, theme);
    }
}

/// Scrollback pane `i`: the session it shows, and how.
fn draw_pane(app: &App, frame: &mut Frame, area: Rect, i: usize, theme: Theme) {
    let focused = app.focus == Focus::Scrollback && i == app.pane;
    let layout = &app.panes[i];
    if !layout.merge.is_empty() {
        return draw_merged(app, frame, area, layout, focused, theme);
    }
    let shown = layout.session.as_deref().and_then(|id| app.session(id));
    let Some(s) = shown else {
        let block = pane(" Scrollback ", focused, theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let hint = vec![
            Line::raw("No session yet. Press : and type a command, for example:"),
            Line::raw(""),
            Line::styled("  listen 7000", theme.fg(Color::Cyan)),
            Line::styled("  connect 127.0.0.1:7000", theme.fg(Color::Cyan)),
            Line::styled("  udp --to 127.0.0.1:5000 0", theme.fg(Color::Cyan)),
            Line::raw(""),
            Line::raw("? shows every key."),
        ];
        frame.render_widget(Paragraph::new(hint), inner);
        return;
    };
    let st = layout.state(&s.id);
    let block = pane(scrollback_title(s, st, app), focused, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let rows = visible_rows(app, s, st, width, inner.height as usize);
    let shown = Shown {
        row: s,
        state: st,
        stamps: stamps(app, width),
    };
    let lines: Vec<Line> = rows
        .into_iter()
        .filter_map(|r| {
            let e = s.scrollback.get(r.idx)?;
            Some(match r.text {
                None => hex_row(app, &shown, r.idx, e, r.sub, width, theme),
                Some(piece) => line_row(app, &shown, r.idx, e, r.sub == 0, &piece, theme),
            })
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Colours of a merged pane's sessions, in turn: the plots' series colours.
const MERGE_COLOURS: &[Color] = &super::plot::SERIES_COLOURS;

/// A merged pane: its sessions' chunks interleaved by time, each row
/// prefixed with its session's short label in that session's colour.
fn draw_merged(
    app: &App,
    frame: &mut Frame,
    area: Rect,
    layout: &super::app::Pane,
    focused: bool,
    theme: Theme,
) {
    let members = super::panes::members(app, layout);
    let labels: Vec<String> = members
        .iter()
        .zip(&layout.merge)
        .map(|(m, id)| match m {
            Some(s) => truncate(s.label.as_deref().unwrap_or(&s.short()), 10),
            None => truncate(&short_id(id), 10),
        })
        .collect();
    let width_of_label = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut title = format!(" merged: {}", labels.join(" · "));
    if layout.merge_ends.is_some() {
        title.push_str(" · ↑ scrolled back");
    }
    title.push(' ');
    let block = pane(title, focused, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let text_width = (inner.width as usize).saturating_sub(width_of_label + 1);
    let stamps = stamps(app, text_width);
    let prefix = if stamps { time_width(app) + 2 } else { 2 };
    let view = layout.shown().view;
    let height = inner.height as usize;
    // Entries from the newest up: a text row each, or their hex rows.
    let mut lines: std::collections::VecDeque<Line> = std::collections::VecDeque::with_capacity(height);
    for r in super::panes::merged_rows(app, layout, height).into_iter().rev() {
        if lines.len() >= height {
            break;
        }
        let Some(s) = members[r.member] else { continue };
        let Some(e) = s.scrollback.get(r.idx) else {
            continue;
        };
        let found = layout.merge_found == Some((r.member, s.scrollback.dropped + r.idx as u64));
        let shown = Shown {
            row: s,
            state: ViewState {
                found: found.then_some(r.idx),
                ..ViewState::default()
            },
            stamps,
        };
        let colour = MERGE_COLOURS[r.member % MERGE_COLOURS.len()];
        let label = |first: bool| {
            let text = if first { labels[r.member].as_str() } else { "" };
            Span::styled(
                format!("{text:<width_of_label$} "),
                theme.fg(colour).add_modifier(Modifier::BOLD),
            )
        };
        let mut rows: Vec<Line> = if shows_hex(view, e.mark) {
            (0..e.hex_rows().min(height as u64))
                .map(|sub| hex_row(app, &shown, r.idx, e, sub, text_width, theme))
                .collect()
        } else {
            let piece = pieces(&shown_bytes(s, e), text_width.saturating_sub(prefix).max(1), 1, 0)
                .into_iter()
                .next()
                .unwrap_or_default();
            vec![line_row(app, &shown, r.idx, e, true, &piece, theme)]
        };
        for (sub, line) in rows.iter_mut().enumerate() {
            line.spans.insert(0, label(sub == 0));
        }
        for line in rows.into_iter().rev() {
            lines.push_front(line);
        }
    }
    while lines.len() > height {
        lines.pop_front();
    }
    let lines: Vec<Line> = lines.into();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The shown session's plots over the window that ends now (following
/// the tail) or at the newest line in view (scrolled back).
fn draw_plot(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let Some(s) = app.focused().session.as_deref().and_then(|id| app.session(id)) else {
        return;
    };
    let st = app.shown();
    let bottom = s.rows(st.view).saturating_sub(st.scroll + 1);
    let scrolled = (st.scroll > 0)
        .then(|| s.locate(bottom, st.view))
        .flatten()
        .and_then(|(i, _)| s.scrollback.get(i))
        .map(|e| e.at);
    let end = scrolled.unwrap_or_else(Utc::now);
    super::plot::draw(frame, area, &s.plots, end, scrolled.is_none(), theme.color);
}

/// One row of the scrollback pane: entry `idx`, and which part of it — a
/// hex row (`text` None, `sub` its row) or a piece of its text (`sub` 0
/// for the first, which carries the time and mark).
pub struct RowRef {
    pub idx: usize,
    pub sub: u64,
    pub text: Option<String>,
}

/// Columns before a text row's text: the time (if shown) and the mark.
fn text_prefix(app: &App, width: usize) -> usize {
    if stamps(app, width) {
        time_width(app) + 2
    } else {
        2
    }
}

/// Whether text rows in a pane this wide show their time: a narrow pane
/// keeps its columns for the text.
fn stamps(app: &App, width: usize) -> bool {
    app.timestamps && width >= time_width(app) + 2 + 24
}

/// The rows a pane `width`×`height` shows of session `s` in state `st`:
/// O(visible rows) entries looked at, each escaped no further than it can
/// show. In line view with wrap on (the default) a long line takes several
/// rows (at most a pane's worth); the view scrolls by lines then.
pub fn visible_rows(app: &App, s: &SessionRow, st: ViewState, width: usize, height: usize) -> Vec<RowRef> {
    let text_width = width.saturating_sub(text_prefix(app, width)).max(1);
    let total = s.rows(st.view);
    let bottom = total.saturating_sub(st.scroll);
    let mut rows = std::collections::VecDeque::with_capacity(height);
    if (st.view == View::Line && !st.nowrap) || s.filter.is_some() {
        // Entries from the bottom up, until the pane is full: a wrapped
        // line view, or a filtered one (its rows are the shown entries).
        let mut at = bottom;
        while rows.len() < height && at > 0 {
            at -= 1;
            let Some((idx, _)) = s.locate(at, st.view) else {
                break;
            };
            let Some(e) = s.scrollback.get(idx) else { break };
            if shows_hex(st.view, e.mark) {
                for sub in (0..e.hex_rows()).rev().take(height - rows.len()) {
                    rows.push_front(RowRef { idx, sub, text: None });
                }
                continue;
            }
            let text = if st.nowrap {
                pieces(&shown_bytes(s, e), text_width, 1, st.hscroll as usize)
            } else {
                pieces(&shown_bytes(s, e), text_width, height, 0)
            };
            for (sub, piece) in text.into_iter().enumerate().rev() {
                rows.push_front(RowRef {
                    idx,
                    sub: sub as u64,
                    text: Some(piece),
                });
            }
        }
        while rows.len() > height {
            rows.pop_front();
        }
        return rows.into();
    }
    let top = bottom.saturating_sub(height as u64);
    for row in top..bottom {
        let Some((idx, sub)) = s.locate(row, st.view) else {
            continue;
        };
        let Some(e) = s.scrollback.get(idx) else { continue };
        let text = (!shows_hex(st.view, e.mark)).then(|| {
            pieces(&shown_bytes(s, e), text_width, 1, st.hscroll as usize)
                .into_iter()
                .next()
                .unwrap_or_default()
        });
        rows.push_back(RowRef { idx, sub, text });
    }
    rows.into()
}

/// An entry's bytes as the line view shows them: received ones through
/// the session's `--imap` (the hex view and the transcript keep them raw).
fn shown_bytes<'a>(s: &SessionRow, e: &'a Entry) -> std::borrow::Cow<'a, [u8]> {
    match e.mark {
        // A line's own end is not shown (nor mapped); the bytes before it are.
        Mark::In if !s.map.input.is_empty() => {
            let body = e.data.strip_suffix(b"\n").unwrap_or(&e.data);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            std::borrow::Cow::Owned(s.map.map_input(body).into_owned())
        }
        _ => std::borrow::Cow::Borrowed(&e.data[..]),
    }
}

/// An entry's text, escaped, in rows of `width` columns: at most
/// `max_rows` of them, starting `skip` columns in. An escape (`\x1b`)
/// never splits across rows; `…` ends the last row when more follows and
/// starts the first when columns were skipped.
fn pieces(data: &[u8], width: usize, max_rows: usize, skip: usize) -> Vec<String> {
    // A line's end is not shown in line view (hex view keeps it).
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    let data = data.strip_suffix(b"\r").unwrap_or(data);
    // Every byte is at least one column: no more bytes than can show.
    let budget = skip + width * max_rows + 1;
    let cut = data.len() > budget;
    text_rows(
        &escape_display(&data[..data.len().min(budget)]),
        cut,
        width,
        max_rows,
        skip,
    )
}

/// Safe (escaped) text in rows of `width` columns, as [`pieces`]; `cut`:
/// more follows that is not in `text`.
fn text_rows(text: &str, cut: bool, width: usize, max_rows: usize, skip: usize) -> Vec<String> {
    let mut tokens = escape_tokens(text).peekable();
    let mut skipped = 0;
    while skipped < skip {
        match tokens.next() {
            Some(t) => skipped += t.chars().count(),
            None => break,
        }
    }
    let mut rows: Vec<String> = Vec::new();
    let mut row = String::new();
    let mut used = 0;
    if skip > 0 {
        row.push('…');
        used = 1;
    }
    let mut more = cut;
    while let Some(token) = tokens.peek() {
        let w = token.chars().count();
        if used + w > width && used > 0 {
            if rows.len() + 1 == max_rows {
                more = true;
                break;
            }
            // Break after the last space when it is not far back, so
            // words stay whole.
            match row.rfind(' ').map(|i| i + 1) {
                Some(at) if at < row.len() && row[at..].chars().count() < width / 3 => {
                    let tail = row.split_off(at);
                    rows.push(std::mem::replace(&mut row, tail));
                    used = row.chars().count();
                }
                _ => {
                    rows.push(std::mem::take(&mut row));
                    used = 0;
                }
            }
        }
        // A row that wrapped does not start with the space it broke at.
        if !(used == 0 && !rows.is_empty() && *token == " ") {
            row.push_str(token);
            used += w;
        }
        tokens.next();
    }
    if more {
        // The last column says the line goes on.
        while used + 1 > width && row.pop().is_some() {
            used -= 1;
        }
        row.push('…');
    }
    rows.push(row);
    rows
}

/// Escaped text as tokens: one character, or one escape (`\x1b`, `\n`).
fn escape_tokens(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let c = rest.chars().next()?;
        let len = if c == '\\' {
            match rest.as_bytes().get(1) {
                Some(b'x') => 4.min(rest.len()),
                Some(_) => 2,
                None => 1,
            }
        } else {
            c.len_utf8()
        };
        let (token, tail) = rest.split_at(len);
        rest = tail;
        Some(token)
    })
}

/// The time column: clock time, or (relative) time since the previous
/// chunk; blank on a row that continues an entry. Dates show when the
/// scrollback spans days (a replayed transcript).
fn time_span(app: &App, e: &Entry, prev: Option<&Entry>, first: bool, show: bool) -> Span<'static> {
    if !show {
        return Span::raw("");
    }
    if !first {
        return Span::raw(" ".repeat(time_width(app)));
    }
    let text = if app.relative_time {
        let gap = prev
            .map(|p| (e.at - p.at).num_microseconds().unwrap_or(0))
            .unwrap_or(0);
        format!("{:>12} ", format!("+{:.3}s", gap as f64 / 1e6))
    } else if app.dates {
        format!("{} ", e.at.format("%Y-%m-%d %H:%M:%S%.3f"))
    } else {
        format!("{} ", e.at.format("%H:%M:%S%.3f"))
    };
    Span::styled(text, Style::new().add_modifier(Modifier::DIM))
}

/// Columns of the time column.
fn time_width(app: &App) -> usize {
    match (app.timestamps, app.dates && !app.relative_time) {
        (false, _) => 0,
        (true, false) => 13,
        (true, true) => 24,
    }
}

fn highlight(app: &App, s: &Shown, idx: usize, e: &Entry, style: Style, theme: Theme) -> Style {
    let marked = s.state.marked().is_some_and(|r| r.contains(&idx));
    let style = if marked {
        if theme.color {
            style.bg(Color::Blue)
        } else {
            style.add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        }
    } else {
        style
    };
    if s.state.found == Some(idx) {
        style.add_modifier(Modifier::REVERSED)
    } else if app.search.as_ref().is_some_and(|re| re.is_match(&e.data)) {
        style.add_modifier(Modifier::UNDERLINED)
    } else {
        style
    }
}

/// One text row: the time and mark on an entry's first row, then a piece
/// of its escaped text, escapes dimmed.
fn line_row(
    app: &App,
    s: &Shown,
    idx: usize,
    e: &Entry,
    first: bool,
    piece: &str,
    theme: Theme,
) -> Line<'static> {
    let style = highlight(app, s, idx, e, theme.mark(e.mark), theme);
    let mut spans = vec![
        time_span(
            app,
            e,
            idx.checked_sub(1).and_then(|i| s.row.scrollback.get(i)),
            first,
            s.stamps,
        ),
        Span::styled(
            if first {
                format!("{} ", s.row.symbol(e.mark))
            } else {
                "  ".into()
            },
            style,
        ),
    ];
    let colours = if app.highlights.is_empty() {
        Vec::new()
    } else {
        app.highlights.in_text(piece)
    };
    spans.extend(escaped_spans(piece, style, theme, &colours));
    // A line still arriving (a prompt): it has no end yet.
    if s.row.scrollback.is_pending(idx) {
        spans.push(Span::styled("▏", theme.escaped()));
    }
    Line::from(spans)
}

/// Splits escaped text into plain and dimmed escape spans; `colours`
/// (by byte of `text`, or empty) are the highlights.
fn escaped_spans(text: &str, style: Style, theme: Theme, colours: &[Option<Color>]) -> Vec<Span<'static>> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut at = 0;
    for token in escape_tokens(text) {
        let colour = colours.get(at).copied().flatten();
        at += token.len();
        let token_style = match (colour, token.len() > 1 && token.starts_with('\\')) {
            (Some(c), _) => theme.highlighted(style, c),
            (None, true) => theme.escaped(),
            (None, false) => style,
        };
        // Runs of one style are one span.
        match spans.last_mut() {
            Some(last) if last.style == token_style => last.content.to_mut().push_str(token),
            _ => spans.push(Span::styled(token.to_string(), token_style)),
        }
    }
    spans
}

/// Formats one hex dump row: offset, up to 16 bytes as hex (8 + 8), ASCII
/// gutter. No allocation beyond `out`, no formatting machinery: this runs
/// for every visible row of every frame.
/// Every byte's two hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [DIGITS[b >> 4], DIGITS[b & 15]];
        b += 1;
    }
    t
};

pub fn hex_line(bytes: &[u8], offset: usize, wide_offset: bool, out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Built as ASCII bytes in a fixed buffer, then appended once.
    let mut row = [b' '; 8 + 2 + HEX_WIDTH * 3 + 1 + 2 + HEX_WIDTH];
    let digits = if wide_offset { 8 } else { 6 };
    for i in 0..digits {
        row[i] = DIGITS[(offset >> ((digits - 1 - i) * 4)) & 15];
    }
    let hex = digits + 2;
    let gutter = hex + HEX_WIDTH * 3 + 1;
    row[gutter] = b'|';
    let shown = bytes.len().min(HEX_WIDTH);
    for (i, &b) in bytes[..shown].iter().enumerate() {
        let at = hex + i * 3 + usize::from(i >= 8);
        row[at..at + 2].copy_from_slice(&HEX_PAIRS[b as usize]);
        row[gutter + 1 + i] = if (0x20..0x7f).contains(&b) { b } else { b'.' };
    }
    let end = gutter + 1 + shown;
    row[end] = b'|';
    // Only ASCII was written.
    out.push_str(std::str::from_utf8(&row[..=end]).unwrap_or_default());
}

/// Width of a hex row without the timestamp: mark, offset, 16 bytes, gutter.
const HEX_ROW: usize = 2 + 10 + 16 * 3 + 1 + 18;

/// One hex-view row: offset, 16 bytes in hex (8 + 8), ASCII gutter. On a
/// narrow pane the timestamps go first, then two offset digits, so the
/// gutter stays whole.
fn hex_row(
    app: &App,
    s: &Shown,
    idx: usize,
    e: &Entry,
    sub: u64,
    width: usize,
    theme: Theme,
) -> Line<'static> {
    let style = highlight(app, s, idx, e, theme.mark(e.mark), theme);
    let start = sub as usize * HEX_WIDTH;
    let bytes = e
        .data
        .get(start..(start + HEX_WIDTH).min(e.data.len()))
        .unwrap_or(&[]);
    let first = sub == 0;
    let mark = if first {
        format!("{} ", s.row.symbol(e.mark))
    } else {
        "  ".to_string()
    };
    let stamp = if app.timestamps && width >= HEX_ROW + time_width(app) {
        time_span(
            app,
            e,
            idx.checked_sub(1).and_then(|i| s.row.scrollback.get(i)),
            first,
            true,
        )
    } else {
        Span::raw("")
    };
    if e.mark == Mark::Event {
        // Events are text, not data: show them as such.
        return Line::from(vec![
            stamp,
            Span::styled(mark, style),
            Span::styled(
                truncate(
                    &escape_display(&e.data[..e.data.len().min(width * 4)]),
                    width.saturating_sub(2),
                ),
                style,
            ),
        ]);
    }
    let mut detail = String::with_capacity(80);
    let wide = width >= HEX_ROW;
    hex_line(bytes, (e.offset as usize).wrapping_add(start), wide, &mut detail);
    let mut spans = vec![stamp, Span::styled(mark, style)];
    if app.highlights.is_empty() {
        spans.push(Span::styled(detail, style));
    } else {
        let colours = app.highlights.in_bytes(&e.data, start..start + bytes.len());
        spans.extend(hex_spans(detail, wide, &colours, style, theme));
    }
    Line::from(spans)
}

/// A hex row in spans: the hex digits and gutter character of each
/// highlighted byte in its colour.
fn hex_spans(
    detail: String,
    wide: bool,
    colours: &[Option<Color>],
    style: Style,
    theme: Theme,
) -> Vec<Span<'static>> {
    let hex = if wide { 10 } else { 8 };
    let gutter = hex + HEX_WIDTH * 3 + 1;
    let mut by_column: Vec<Option<Color>> = vec![None; detail.len()];
    for (i, c) in colours.iter().enumerate() {
        let at = hex + i * 3 + usize::from(i >= 8);
        for col in [at, at + 1, gutter + 1 + i] {
            if let Some(slot) = by_column.get_mut(col) {
                *slot = *c;
            }
        }
    }
    let mut spans: Vec<Span<'static>> = Vec::new();
    // `detail` is ASCII: a byte is a column.
    for (col, ch) in detail.char_indices() {
        let s = match by_column[col] {
            Some(c) => theme.highlighted(style, c),
            None => style,
        };
        match spans.last_mut() {
            Some(last) if last.style == s => last.content.to_mut().push(ch),
            _ => spans.push(Span::styled(ch.to_string(), s)),
        }
    }
    spans
}

fn draw_status(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let mode_style = match app.mode {
        Mode::Insert => theme.fg(Color::Black).bg(Color::Green),
        Mode::Command | Mode::Search => theme.fg(Color::Black).bg(Color::Cyan),
        Mode::ConfirmQuit | Mode::Confirm => theme.fg(Color::Black).bg(Color::Red),
        Mode::Filter | Mode::Messages => theme.fg(Color::Black).bg(Color::Cyan),
        Mode::Raw => theme.fg(Color::Black).bg(Color::Magenta),
        _ => theme.fg(Color::Black).bg(Color::Gray),
    }
    .add_modifier(Modifier::BOLD);
    // The counters give way to the message on a narrow terminal.
    let counters = match area.width {
        100.. => format!(
            "{} · {}{} · ? help · q quit ",
            counted(app.sessions.len(), "session"),
            counted(app.listeners.len(), "listener"),
            if app.recording { " · rec on" } else { "" }
        ),
        60..100 => format!(
            "{}s {}l{} ",
            app.sessions.len(),
            app.listeners.len(),
            if app.recording { " rec" } else { "" }
        ),
        _ => String::new(),
    };
    let mode = format!(" {} ", app.mode.name());
    let (prefix, body, style) = match app.mode {
        Mode::Command => (":", app.input.text.clone(), Style::new()),
        Mode::Search => ("/", app.input.text.clone(), Style::new()),
        Mode::Insert => ("> ", app.input.text.clone(), Style::new()),
        Mode::Filter => ("filter: ", app.input.text.clone(), Style::new()),
        Mode::Messages if app.messages_typing => ("/", app.input.text.clone(), Style::new()),
        Mode::Messages => (
            "",
            "↑↓ PgUp PgDn scroll · / search · Esc closes".to_string(),
            Style::new(),
        ),
        _ => (
            "",
            app.status.clone(),
            if app.status_error {
                theme.fg(Color::Red).add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            },
        ),
    };
    // Typing into a session: an error (it closed, a send failed) takes the
    // counters' place, so the typed line and the reason show together.
    let activity = app.activity(Utc::now());
    let (counters, counters_style) = if app.mode == Mode::Insert && app.status_error {
        let text = truncate(&escape_controls(&app.status), area.width as usize / 2);
        (
            format!("{text} "),
            theme.fg(Color::Red).add_modifier(Modifier::BOLD),
        )
    } else if let Some(what) = activity {
        // Under way (a wait, a macro, a script), and how to stop it.
        let text = truncate(&escape_controls(&what), area.width as usize / 2);
        (
            format!("{text} "),
            theme.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        )
    } else {
        (counters, Style::new().add_modifier(Modifier::DIM))
    };
    let room = (area.width as usize).saturating_sub(mode.chars().count() + counters.chars().count() + 2);
    // As typed: only control characters escaped (`send AT\r` stays so).
    let shown = truncate(&escape_controls(&body), room.saturating_sub(prefix.len()));
    let pad = room.saturating_sub(prefix.len() + shown.chars().count());
    let line = Line::from(vec![
        Span::styled(mode.clone(), mode_style),
        Span::raw(" "),
        Span::styled(format!("{prefix}{shown}"), style),
        Span::raw(" ".repeat(pad + 1)),
        Span::styled(counters, counters_style),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let typing = matches!(
        app.mode,
        Mode::Command | Mode::Search | Mode::Insert | Mode::Filter
    ) || (app.mode == Mode::Messages && app.messages_typing);
    if typing {
        let x = area.x + mode.chars().count() as u16 + 1 + prefix.len() as u16 + app.input.cursor as u16;
        frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
    }
}

/// Tab's candidates, in a row above the status line.
fn draw_candidates(app: &App, frame: &mut Frame, status: Rect, theme: Theme) {
    let Some(y) = status.y.checked_sub(1) else { return };
    let row = Rect::new(status.x, y, status.width, 1);
    let text = truncate(&app.candidates.join("  "), status.width as usize);
    frame.render_widget(Clear, row);
    frame.render_widget(
        Paragraph::new(Line::styled(text, theme.fg(Color::Cyan)))
            .style(Style::new().add_modifier(Modifier::BOLD)),
        row,
    );
}

/// The message log, over the panes: time, text; errors in red.
fn draw_messages(app: &App, frame: &mut Frame, theme: Theme) {
    let area = frame.area();
    let popup = Rect::new(area.x, area.y, area.width, area.height.saturating_sub(1));
    frame.render_widget(Clear, popup);
    let mut title = format!(" Messages {} ", app.messages.len());
    if let Some(re) = &app.messages.filter {
        title.push_str(&format!(
            "· /{}/ {} ",
            escape_display(re.as_str().as_bytes()),
            app.messages.shown().len()
        ));
    }
    let block = pane(title, true, theme);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let width = inner.width as usize;
    let height = inner.height as usize;
    // Long messages wrap (the status line cut them): the newest at the
    // bottom, as many as fit.
    let mut lines: std::collections::VecDeque<Line> = std::collections::VecDeque::new();
    for m in app.messages.window(height).into_iter().rev() {
        let style = if m.error {
            theme.fg(Color::Red)
        } else {
            Style::new()
        };
        let rows = text_rows(
            &escape_controls(&m.text),
            false,
            width.saturating_sub(9).max(1),
            height,
            0,
        );
        for (i, row) in rows.into_iter().enumerate().rev() {
            let time = if i == 0 {
                format!("{} ", m.at.format("%H:%M:%S"))
            } else {
                " ".repeat(9)
            };
            lines.push_front(Line::from(vec![
                Span::styled(time, Style::new().add_modifier(Modifier::DIM)),
                Span::styled(row, style),
            ]));
        }
        if lines.len() >= height {
            break;
        }
    }
    while lines.len() > height {
        lines.pop_front();
    }
    let lines: Vec<Line> = lines.into();
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled("no messages yet", theme.escaped())),
            inner,
        );
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

fn draw_help(app: &App, frame: &mut Frame, theme: Theme) {
    let area = frame.area();
    let title = if app.help_text.is_some() {
        " Help "
    } else {
        " Keys "
    };
    // The commands, from the parser, so they never drift from the language.
    let mut commands = vec![Line::styled(
        "command bar: Enter runs · ↑↓ history · Tab completes",
        theme.escaped(),
    )];
    for row in wrap_words(
        &format!("commands: {}", crate::lang::command_names().join(" ")),
        56,
    ) {
        commands.push(Line::styled(row, theme.escaped()));
    }
    commands.push(Line::styled(
        "help COMMAND (or COMMAND --help) shows its usage",
        theme.escaped(),
    ));
    commands.push(Line::raw(""));
    commands.push(Line::styled("any key closes this help", theme.escaped()));
    let mut columns: Vec<Vec<Line>> = Vec::new();
    // A usage is as wide as its lines (up to two help columns).
    let mut width = HELP_WIDTH;
    if let Some(text) = &app.help_text {
        width = text
            .lines()
            .map(|l| l.chars().count() as u16 + 2)
            .max()
            .unwrap_or(0)
            .clamp(HELP_WIDTH, 2 * HELP_WIDTH);
        // The usage comes from the parser: shown as written (`\r` stays
        // `\r`), escaped only if a line holds a control character.
        let mut lines: Vec<Line> = text
            .lines()
            .map(|l| match l.chars().any(char::is_control) {
                true => Line::raw(crate::core::escape::escape_display(l.as_bytes())),
                false => Line::raw(l.to_string()),
            })
            .collect();
        lines.push(Line::raw(""));
        lines.extend(commands);
        columns.push(lines);
    } else {
        let modes: Vec<Vec<Line>> = MODES.iter().map(|&mode| mode_keys(app, mode, theme)).collect();
        if area.width >= 2 * HELP_WIDTH {
            // Side by side: normal mode's keys, then the rest and the commands.
            let mut modes = modes.into_iter();
            columns.push(modes.next().unwrap_or_default());
            let mut right: Vec<Line> = modes.flatten().collect();
            right.extend(commands);
            columns.push(right);
        } else {
            // One column: the commands first, the key lists are what a
            // short terminal cuts.
            let mut lines = commands;
            lines.push(Line::raw(""));
            lines.extend(modes.into_iter().flatten());
            columns.push(lines);
        }
    }
    let w = (width * columns.len() as u16).min(area.width);
    let tallest = columns.iter().map(Vec::len).max().unwrap_or(0);
    // The status line stays visible under it.
    let h = (tallest as u16 + 2).min(area.height.saturating_sub(1)).max(1);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    frame.render_widget(Clear, popup);
    let block = pane(title, true, theme);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let width = inner.width / columns.len().max(1) as u16;
    for (i, lines) in columns.into_iter().enumerate() {
        let column = Rect::new(inner.x + width * i as u16, inner.y, width, inner.height);
        frame.render_widget(Paragraph::new(lines), column);
    }
}

/// Width of one column of the help overlay.
const HELP_WIDTH: u16 = 60;

/// The keys of one mode, grouped by action in the order they are declared.
fn mode_keys(app: &App, mode: &str, theme: Theme) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled(
        format!("{mode} mode"),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    for &action in Action::ALL {
        let keys = app.keymap.keys_for(mode, action);
        if keys.is_empty() {
            continue;
        }
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<14} ", keys.join(" ")), theme.fg(Color::Cyan)),
            Span::raw(action.describe()),
        ]));
    }
    for (key, commands) in app.keymap.macros.get(mode).into_iter().flatten() {
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<15}", key.name()), theme.fg(Color::Cyan)),
            Span::raw(truncate(&commands.join(" ; "), 40)),
        ]));
    }
    lines.push(Line::raw(""));
    lines
}

/// `1 session`, `2 sessions`.
pub fn counted(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Splits text into rows of at most `width` columns at spaces.
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut rows = vec![String::new()];
    for word in text.split(' ') {
        let row = rows.last().map(String::len).unwrap_or(0);
        if row > 0 && row + 1 + word.len() > width {
            rows.push(String::new());
        }
        if let Some(row) = rows.last_mut() {
            if !row.is_empty() {
                row.push(' ');
            }
            row.push_str(word);
        }
    }
    rows
}

/// The buffer as plain text, one line per row (tests and screenshots).
pub fn buffer_text(buf: &ratatui::buffer::Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Event, EventKind, View};
    use crate::tui::app::tests::{app, connected, data, sid};
    use chrono::Utc;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn render(app: &App) -> String {
        render_at(app, 120, 32)
    }

    fn render_at(app: &App, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| view(app, f, Theme { color: true })).unwrap();
        buffer_text(term.backend().buffer())
    }

    #[test]
    fn empty_screen_shows_how_to_start() {
        let screen = render(&app());
        assert!(screen.contains("Listeners") && screen.contains("Sessions 0"));
        assert!(screen.contains("No session yet"));
        assert!(screen.contains(" NORMAL "));
        assert!(screen.contains("0 sessions · 0 listeners"));
    }

    #[test]
    fn panes_show_listeners_sessions_and_line_view() {
        let mut a = app();
        let mut ev = Event::new(EventKind::Listening {
            local: "0.0.0.0:2323".parse().unwrap(),
            kind: crate::core::transport::Kind::Tls,
            fingerprint: None,
            max_connections: Some(128),
        })
        .listener("lstn-1");
        ev.label = Some("board".into());
        a.on_event(&ev);
        connected(&mut a, 1, Some("router"));
        data(&mut a, 1, b"WELCOME to dev-board v2.1");
        a.on_event(
            &Event::new(EventKind::Sent {
                message_id: 1,
                bytes: 12,
                payload: bytes::Bytes::from_static(b"AT+VERSION?\n"),
                trigger: None,
            })
            .session(&sid(1)),
        );
        let screen = render(&a);
        assert!(screen.contains("● board TLS 0/128"), "{screen}");
        assert!(
            screen.contains("▶  router 127.0.0.1:7000     ● 26B/12B"),
            "{screen}"
        );
        assert!(screen.contains("< WELCOME to dev-board v2.1"), "{screen}");
        assert!(screen.contains("> AT+VERSION?"), "{screen}");
        assert!(
            !screen.contains("AT+VERSION?\\n"),
            "line ends are not shown in line view"
        );
        assert!(
            screen.contains("sess-11111111 · out · 127.0.0.1:5000 → 127.0.0.1:7000 · line"),
            "{screen}"
        );
    }

    fn render_buffer(app: &App, w: u16, h: u16) -> ratatui::buffer::Buffer {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| view(app, f, Theme { color: true })).unwrap();
        term.backend().buffer().clone()
    }

    /// The colour of the first cell showing `text`.
    fn colour_of(buf: &ratatui::buffer::Buffer, text: &str) -> Option<Color> {
        let screen = buffer_text(buf);
        let (y, line) = screen.lines().enumerate().find(|(_, l)| l.contains(text))?;
        let x = line[..line.find(text)?].chars().count() as u16;
        buf[(x, y as u16)].style().fg.filter(|&c| c != Color::Reset)
    }

    fn display(a: &mut App, req: crate::lang::DisplayRequest) -> Result<String, String> {
        a.on_display(req)
    }

    /// `highlight`: matches take the rule's colour in the line view and in
    /// the hex view (hex digits and gutter), rules are listed and removed.
    #[test]
    fn highlights_colour_matches_in_every_view() {
        use crate::lang::DisplayRequest::*;
        let mut a = app();
        connected(&mut a, 1, None);
        data(&mut a, 1, b"temp=21 ERROR overheat");
        display(
            &mut a,
            Highlight {
                regex: "ERROR".into(),
                colour: Some("red".into()),
            },
        )
        .unwrap();
        display(
            &mut a,
            Highlight {
                regex: r"\d+".into(),
                colour: None,
            },
        )
        .unwrap();
        let buf = render_buffer(&a, 120, 32);
        assert_eq!(
            colour_of(&buf, "ERROR"),
            Some(Color::Red),
            "{}",
            buffer_text(&buf)
        );
        assert_eq!(colour_of(&buf, "21 "), Some(Color::Cyan));
        assert_eq!(colour_of(&buf, "overheat"), None);
        a.set_view(&sid(1), View::Hex);
        let buf = render_buffer(&a, 120, 32);
        // "ERROR" is bytes 8..13: hex `45 52 52 4f 52`, gutter `ERROR`.
        assert_eq!(
            colour_of(&buf, "45 52 52 4f 52"),
            Some(Color::Red),
            "{}",
            buffer_text(&buf)
        );
        assert_eq!(colour_of(&buf, "ERROR"), Some(Color::Red));
        assert_eq!(colour_of(&buf, "74 65"), None);
        assert!(display(&mut a, Unhighlight("hl-7".into())).is_err());
        display(&mut a, Highlights).unwrap();
        assert!(
            a.messages.ends_with("  hl-2 /\\\\d+/ cyan"),
            "{:?}",
            a.messages.shown()
        );
        display(&mut a, Unhighlight("all".into())).unwrap();
        let buf = render_buffer(&a, 120, 32);
        assert_eq!(colour_of(&buf, "ERROR"), None);
    }

    /// `filter`: only matching lines (and events) show, the title says how
    /// many are hidden, new lines follow the rule, scrolling and search go
    /// over the shown lines; `filter off` shows everything again.
    #[test]
    fn a_filter_shows_matching_lines_and_counts_the_hidden_ones() {
        use crate::lang::{DisplayRequest::Filter, FilterRule};
        let mut a = app();
        connected(&mut a, 1, None);
        for i in 0..200 {
            let line = if i % 10 == 0 {
                format!("WARN {i}")
            } else {
                format!("debug {i}")
            };
            data(&mut a, 1, line.as_bytes());
        }
        let rule = |regex: &str, invert| {
            Some(FilterRule {
                regex: regex.into(),
                invert,
            })
        };
        display(
            &mut a,
            Filter {
                session: sid(1),
                rule: rule("^WARN", false),
            },
        )
        .unwrap();
        let screen = render(&a);
        assert!(screen.contains("filter /^WARN/: 180 hidden"), "{screen}");
        assert!(
            screen.contains("< WARN 190") && screen.contains("< WARN 0"),
            "{screen}"
        );
        assert!(screen.contains("* connected"), "events always show: {screen}");
        assert!(!screen.contains("debug"), "{screen}");
        data(&mut a, 1, b"WARN late");
        data(&mut a, 1, b"debug late");
        let screen = render(&a);
        assert!(
            screen.contains("< WARN late") && screen.contains("181 hidden"),
            "{screen}"
        );
        // It scrolls over the shown lines only.
        a.apply(crate::tui::keymap::Action::ScrollTop);
        assert_eq!(a.shown().scroll, a.sessions[0].rows(View::Line) - a.page);
        assert!(a.shown().scroll < 5);
        display(
            &mut a,
            Filter {
                session: sid(1),
                rule: rule("^WARN", true),
            },
        )
        .unwrap();
        let screen = render(&a);
        assert!(
            screen.contains("< debug late") && !screen.contains("WARN late"),
            "{screen}"
        );
        a.search = Some(regex::bytes::Regex::new("WARN|debug 19[0-9]").unwrap());
        a.apply(crate::tui::keymap::Action::SearchNext);
        let found = a.shown().found.unwrap();
        assert_eq!(
            &a.sessions[0].scrollback.get(found).unwrap().data[..],
            b"debug 199\n"
        );
        display(
            &mut a,
            Filter {
                session: sid(1),
                rule: None,
            },
        )
        .unwrap();
        let screen = render(&a);
        assert!(
            screen.contains("< WARN late") && !screen.contains("hidden"),
            "{screen}"
        );
    }

    /// `plot`: samples draw as a chart under the scrollback with the last,
    /// lowest and highest value; a small terminal keeps the scrollback.
    #[test]
    fn plots_draw_under_the_scrollback() {
        let mut a = app();
        connected(&mut a, 1, None);
        let now = Utc::now();
        for (i, v) in [20.5, 23.0, 21.0].into_iter().enumerate() {
            data(&mut a, 1, format!("temp={v}").as_bytes());
            let mut ev = Event::new(EventKind::Sample {
                plot: "plot-1".into(),
                series: vec!["1".into()],
                values: vec![Some(v)],
            })
            .session(&sid(1));
            ev.timestamp = now - chrono::TimeDelta::seconds(3 - i as i64);
            a.on_event(&ev);
        }
        let screen = render(&a);
        assert!(screen.contains("plot-1: 21 (min 20.5 max 23)"), "{screen}");
        assert!(
            screen.contains("-10s") && screen.contains("now"),
            "a young plot spans 10 s: {screen}"
        );
        assert!(screen.contains("< temp=21"), "{screen}");
        assert!(
            screen.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)),
            "braille: {screen}"
        );
        let small = render_at(&a, 60, 16);
        assert!(!small.contains("plot-1"), "{small}");
        a.on_result("off plot-1", Ok(String::new()));
        assert!(!render(&a).contains("plot-1:"));
    }

    /// A proxy session: both directions by arrow, the route in the title,
    /// the listener naming its target.
    #[test]
    fn a_proxy_session_shows_both_directions_by_arrow() {
        let mut a = app();
        let mut ev = Event::new(EventKind::Listening {
            local: "127.0.0.1:8080".parse().unwrap(),
            kind: crate::core::transport::Kind::Tcp,
            fingerprint: None,
            max_connections: Some(128),
        })
        .listener("lstn-1");
        ev.target = Some("device:80".into());
        a.on_event(&ev);
        let mut ev = Event::new(EventKind::Accepted {
            remote: "127.0.0.1:40000".parse().unwrap(),
            kind: crate::core::transport::Kind::Proxy,
            cipher: None,
        })
        .session(&sid(1))
        .listener("lstn-1");
        ev.target = Some("device:80".into());
        a.on_event(&ev);
        let mut ev = Event::new(EventKind::Data {
            payload: bytes::Bytes::from_static(b"GET / HTTP/1.0"),
            count: 16,
            from: None,
            eol: b"\r\n",
            check: None,
        })
        .session(&sid(1));
        ev.dir = Some("c2s");
        a.on_event(&ev);
        let mut ev = Event::new(EventKind::Sent {
            message_id: 1,
            bytes: 17,
            payload: bytes::Bytes::from_static(b"HTTP/1.0 200 OK\r\nServer: x\r\n"),
            trigger: None,
        })
        .session(&sid(1));
        ev.dir = Some("s2c");
        a.on_event(&ev);
        let screen = render(&a);
        assert!(screen.contains("127.0.0.1:8080 → device:80"), "{screen}");
        assert!(
            screen.contains("prox · 127.0.0.1:40000 → 127.0.0.1:8080 → device:80"),
            "{screen}"
        );
        assert!(screen.contains("→ GET / HTTP/1.0"), "{screen}");
        assert!(screen.contains("← HTTP/1.0 200 OK"), "{screen}");
        assert!(
            screen.contains("← Server: x"),
            "a chunk of lines is a row per line: {screen}"
        );
    }

    /// Split panes: each shows its own session its own way, the focused
    /// one framed bold, a click focuses another; a merged pane interleaves
    /// two sessions by time, each row labelled; any size draws, 4 panes.
    #[test]
    fn split_and_merged_panes_draw_at_every_size() {
        let mut a = app();
        connected(&mut a, 1, Some("alpha"));
        connected(&mut a, 2, Some("beta"));
        data(&mut a, 1, b"from alpha 1");
        data(&mut a, 2, b"from beta 1");
        data(&mut a, 1, b"from alpha 2");
        a.split(Some(sid(2)), crate::tui::panes::SplitDir::Vertical)
            .unwrap();
        a.set_view(&sid(2), View::Hex);
        let screen = render(&a);
        assert!(
            screen.contains("< from alpha 2") && screen.contains("66 72 6f 6d 20 62 65 74"),
            "{screen}"
        );
        assert_eq!(a.pane, 1);
        // A click in the left pane focuses it (and selects its session).
        a.size = (120, 32);
        a.on_mouse(crossterm::event::MouseEvent {
            kind: crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left),
            column: 50,
            row: 10,
            modifiers: crossterm::event::KeyModifiers::NONE,
        });
        assert_eq!((a.pane, a.selected), (0, Some(0)));
        a.merge(vec![sid(1), sid(2)]).unwrap();
        let screen = render(&a);
        assert!(screen.contains("merged: alpha · beta"), "{screen}");
        // In time order, across the two sessions.
        let at = |t: &str| screen.find(t).unwrap_or_else(|| panic!("{t}: {screen}"));
        assert!(at("alpha < from alpha 1") < at("beta  < from beta 1"));
        assert!(at("beta  < from beta 1") < at("alpha < from alpha 2"));
        // Search goes over the merged entries; the hit is shown reversed.
        a.search = Some(regex::bytes::Regex::new("alpha 1").unwrap());
        a.apply(crate::tui::keymap::Action::SearchNext);
        assert!(a.focused().merge_found.is_some(), "{}", a.status);
        a.apply(crate::tui::keymap::Action::SearchNext);
        assert!(a.status.contains("no more matches"), "{}", a.status);
        // Its own view: hex, each row labelled.
        a.apply(crate::tui::keymap::Action::ToggleHex);
        assert_eq!(a.shown().view, View::Hex);
        let screen = render(&a);
        assert!(screen.contains("beta  < 0000"), "{screen}");
        a.split(None, crate::tui::panes::SplitDir::Horizontal).unwrap();
        assert_eq!(a.panes.len(), 4);
        for w in 1..=60 {
            for h in 1..=16 {
                render_at(&a, w, h);
            }
        }
    }

    #[test]
    fn the_sessions_list_shows_a_rate_sparkline_while_data_flows() {
        let mut a = app();
        connected(&mut a, 1, None);
        for n in [100u64, 400, 800, 200] {
            a.sessions[0].bytes_in += n;
            a.tick_rates(std::time::Duration::from_secs(1));
        }
        let screen = render(&a);
        assert!(screen.contains("▂▅█▃"), "{screen}");
        a.tick_rates(std::time::Duration::from_secs(1));
        assert!(!render(&a).contains("█"), "idle: no sparkline");
    }

    /// `--check`: a frame whose checksum is bad is flagged under it, in the
    /// hex view too.
    #[test]
    fn a_bad_checksum_is_flagged_under_its_frame() {
        let mut a = app();
        connected(&mut a, 1, None);
        a.on_event(
            &Event::new(EventKind::Data {
                payload: bytes::Bytes::from_static(b"\x01\x03\x02\x00\x2b\x39\x9b"),
                count: 7,
                from: None,
                eol: b"",
                check: Some(false),
            })
            .session(&sid(1)),
        );
        let screen = render_at(&a, 120, 20);
        assert!(screen.contains("* ✗ checksum bad"), "{screen}");
        a.apply(Action::ToggleHex);
        let screen = render_at(&a, 120, 20);
        assert!(screen.contains("01 03 02 00 2b 39 9b"), "{screen}");
        assert!(screen.contains("✗ checksum bad"), "{screen}");
    }

    /// A TLS link through a proxy: its connected line names the proxy and
    /// what was agreed, as the transcript and `run` do.
    #[test]
    fn a_connected_line_names_the_proxy_and_the_cipher() {
        use crate::core::addr::HostPort;
        use crate::core::transport::via::{ProxyDns, ProxyType, Via};
        let mut a = app();
        let id = sid(1);
        a.on_event(
            &Event::new(EventKind::Connecting {
                target: crate::core::transport::Target::parse_connect("device.lan:443").unwrap(),
            })
            .session(&id),
        );
        a.on_event(
            &Event::new(EventKind::Connected {
                remote: crate::core::transport::Endpoint::Name(HostPort {
                    host: "device.lan".into(),
                    port: 443,
                }),
                local: "127.0.0.1:5000".parse().unwrap(),
                kind: crate::core::transport::Kind::Tls,
                insecure: false,
                via: Some(Box::new(Via {
                    kind: ProxyType::Socks5,
                    proxy: HostPort {
                        host: "127.0.0.1".into(),
                        port: 1080,
                    },
                    auth: None,
                    dns: ProxyDns::Remote,
                })),
                cipher: Some("TLSv1.3 TLS13_AES_256_GCM_SHA384".into()),
            })
            .session(&id),
        );
        let screen = render_at(&a, 160, 20);
        assert!(
            screen
                .contains("connected via socks5 proxy 127.0.0.1:1080, tls TLSv1.3 TLS13_AES_256_GCM_SHA384"),
            "{screen}"
        );
    }

    /// A client a TLS listener accepted: its first line names what the
    /// handshake agreed on, as an outbound session's does.
    #[test]
    fn an_accepted_line_names_the_cipher() {
        let mut a = app();
        a.on_event(
            &Event::new(EventKind::Accepted {
                remote: "127.0.0.1:50000".parse().unwrap(),
                kind: crate::core::transport::Kind::Tls,
                cipher: Some("TLSv1.3 TLS13_CHACHA20_POLY1305_SHA256".into()),
            })
            .session(&sid(1)),
        );
        let screen = render_at(&a, 160, 20);
        assert!(
            screen.contains("accepted from 127.0.0.1:50000, tls TLSv1.3 TLS13_CHACHA20_POLY1305_SHA256"),
            "{screen}"
        );
    }

    /// A serial session: the title names the device, its settings and
    /// its modem lines; changes are `*` lines; the keys set the lines.
    #[test]
    fn a_serial_session_shows_its_settings_and_modem_lines() {
        use crate::core::transport::serial::{ModemLines, PortSettings};
        use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let mut a = app();
        let id = sid(1);
        a.on_event(
            &Event::new(EventKind::Connecting {
                target: crate::core::transport::Target::parse_connect("127.0.0.1:1").unwrap(),
            })
            .session(&id),
        );
        let mut opened = Event::new(EventKind::Connected {
            remote: crate::core::transport::Endpoint::Device("/dev/ttyUSB0".into()),
            local: crate::core::transport::Endpoint::Device("/dev/ttyUSB0".into()),
            kind: crate::core::transport::Kind::Serial,
            insecure: false,
            via: None,
            cipher: None,
        })
        .session(&id);
        opened.port = Some(PortSettings::parse_params("9600,8E1").unwrap());
        a.on_event(&opened);
        let screen = render_at(&a, 140, 20);
        assert!(
            screen.contains("sess-11111111 · /dev/ttyUSB0 · 9600 8E1 · no modem lines · line"),
            "{screen}"
        );
        let lines = |dtr, cts| ModemLines {
            dtr: Some(dtr),
            rts: Some(true),
            cts: Some(cts),
            dsr: Some(false),
            dcd: Some(false),
            ri: Some(false),
        };
        a.on_event(&Event::new(EventKind::Modem(lines(true, false))).session(&id));
        a.on_event(&Event::new(EventKind::Modem(lines(false, true))).session(&id));
        let screen = render_at(&a, 140, 20);
        assert!(
            screen.contains("9600 8E1 · DTR○ RTS● CTS● DSR○ DCD○ RI○"),
            "{screen}"
        );
        assert!(
            screen.contains("* modem DTR on RTS on CTS off DSR off DCD off RI off"),
            "{screen}"
        );
        assert!(screen.contains("* modem DTR off CTS on"), "{screen}");
        // alt-d, alt-r, alt-b: the lines and break of the selected port.
        let alt = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT);
        for (key, line) in [('d', "line dtr toggle"), ('r', "line rts toggle"), ('b', "break")] {
            let effects = a.on_key(alt(key));
            assert!(
                matches!(&effects[..], [crate::tui::app::Effect::Run { line: l, session: Some(s) }] if l == line && *s == id),
                "{effects:?}"
            );
        }
        // Not on a network session.
        connected(&mut a, 2, None);
        a.apply(Action::SelectNext);
        assert!(a.on_key(alt('d')).is_empty());
        assert!(render_at(&a, 140, 20).contains("select a serial session"));
    }

    #[test]
    fn a_reconnecting_session_shows_its_countdown_and_the_gap() {
        let mut a = app();
        connected(&mut a, 1, Some("plc"));
        data(&mut a, 1, b"before the reboot");
        a.on_event(
            &Event::new(EventKind::Reconnecting {
                attempt: 3,
                delay: std::time::Duration::from_secs(4),
                cause: "127.0.0.1:7000 refused the connection".into(),
            })
            .session(&sid(1)),
        );
        assert!(a.reconnecting(), "the countdown needs redrawing");
        assert!(a.sessions[0].state.is_live());
        let screen = render_at(&a, 160, 32);
        assert!(screen.contains("plc"), "{screen}");
        assert!(screen.contains(" ↻4s 18B/0B"), "{screen}");
        assert!(
            screen.contains("sess-11111111 · reconnecting in 4s (attempt 3) · out"),
            "{screen}"
        );
        assert!(
            screen.contains("reconnect failed: 127.0.0.1:7000 refused the connection; reconnecting in 4s"),
            "{screen}"
        );
        a.on_event(
            &Event::new(EventKind::Connected {
                remote: "127.0.0.1:7000".parse().unwrap(),
                local: "127.0.0.1:5002".parse().unwrap(),
                kind: crate::core::transport::Kind::Tcp,
                insecure: false,
                via: None,
                cipher: None,
            })
            .session(&sid(1)),
        );
        assert!(!a.reconnecting());
        assert_eq!(a.sessions.len(), 1);
        let screen = render(&a);
        assert!(
            !screen.contains("· reconnecting in") && !screen.contains('↻'),
            "{screen}"
        );
        assert!(
            screen.contains("* reconnected 127.0.0.1:5002 -> 127.0.0.1:7000"),
            "{screen}"
        );
    }

    #[test]
    fn a_per_peer_udp_listener_lists_its_senders() {
        let mut a = app();
        a.on_event(
            &Event::new(EventKind::Listening {
                local: "0.0.0.0:5683".parse().unwrap(),
                kind: crate::core::transport::Kind::Udp,
                fingerprint: None,
                max_connections: Some(64),
            })
            .listener("lstn-9"),
        );
        for (n, port) in [(1u8, 40001u16), (2, 40002)] {
            a.on_event(
                &Event::new(EventKind::Accepted {
                    remote: format!("127.0.0.1:{port}").parse().unwrap(),
                    kind: crate::core::transport::Kind::UdpPeer,
                    cipher: None,
                })
                .session(&sid(n))
                .listener("lstn-9"),
            );
        }
        let screen = render(&a);
        assert!(screen.contains("● 0.0.0.0:5683 UDP 2/64"), "{screen}");
        assert!(screen.contains("127.0.0.1:40001 → 0.0.0.0:5683"), "{screen}");
        assert!(
            screen.contains(" ✱ 22222222 127.0.0.1:40002    ● 0B/0B"),
            "the unread mark shows: {screen}"
        );
    }

    #[test]
    fn split_view_dumps_received_bytes_and_shows_sent_text() {
        let mut a = app();
        connected(&mut a, 1, None);
        a.on_event(
            &Event::new(EventKind::Sent {
                message_id: 1,
                bytes: 12,
                payload: bytes::Bytes::from_static(b"READ 40001\r\n"),
                trigger: None,
            })
            .session(&sid(1)),
        );
        data(&mut a, 1, b"\x01\x03\x02\x00\x2a\xb8\x44 and some more bytes");
        a.apply(crate::tui::keymap::Action::ToggleSplit);
        assert_eq!(a.shown().view, View::HexIn);
        let screen = render_at(&a, 160, 32);
        assert!(screen.contains("> READ 40001"), "sent as text: {screen}");
        assert!(
            screen
                .contains("< 00000000  01 03 02 00 2a b8 44 20  61 6e 64 20 73 6f 6d 65 |....*.D and some|"),
            "received as hex: {screen}"
        );
        assert!(screen.contains("00000010  20 6d 6f 72 65"), "{screen}");
        assert!(screen.contains("* connected"), "events as text: {screen}");
        assert!(screen.contains("· hex-in"), "{screen}");
        a.apply(crate::tui::keymap::Action::ToggleSplit);
        let screen = render_at(&a, 160, 32);
        assert!(
            screen.contains("> 00000000  52 45 41 44"),
            "sent as hex: {screen}"
        );
        assert!(screen.contains("< \\x01\\x03"), "received as text: {screen}");
        a.apply(crate::tui::keymap::Action::ToggleSplit);
        assert_eq!(a.shown().view, View::Line);
    }

    #[test]
    fn hex_view_layout() {
        let mut a = app();
        connected(&mut a, 1, None);
        data(&mut a, 1, b"WELCOME to dev-board v2.1");
        a.apply(crate::tui::keymap::Action::ToggleHex);
        // Wide: timestamp, 8-digit offset, 16 bytes, gutter.
        let screen = render_at(&a, 160, 32);
        assert!(
            screen
                .contains(" < 00000000  57 45 4c 43 4f 4d 45 20  74 6f 20 64 65 76 2d 62 |WELCOME to dev-b|"),
            "{screen}"
        );
        assert!(
            screen.contains("               00000010  6f 61 72 64 20 76 32 2e  31 0a"),
            "{screen}"
        );
        assert!(screen.contains("|oard v2.1.|"), "{screen}");
        // Narrow: no timestamps, shorter offsets, the gutter stays whole.
        let screen = render(&a);
        assert!(screen.contains("< 000000  57 45 4c 43"), "{screen}");
        assert!(screen.contains("|WELCOME to dev-b|"), "{screen}");
    }

    #[test]
    fn peer_escape_sequences_are_shown_escaped() {
        let mut a = app();
        connected(&mut a, 1, None);
        data(&mut a, 1, b"\x1b[31mALARM\x1b[0m temp=81\x07\x1b]0;title\x07");
        let mut term = Terminal::new(TestBackend::new(120, 32)).unwrap();
        term.draw(|f| view(&a, f, Theme { color: true })).unwrap();
        let buf = term.backend().buffer();
        let screen = buffer_text(buf);
        assert!(
            screen.contains("< \\x1b[31mALARM\\x1b[0m temp=81\\x07\\x1b]0;title\\x07"),
            "{screen}"
        );
        // No cell holds a control character.
        assert!(
            buf.content()
                .iter()
                .all(|c| !c.symbol().chars().any(char::is_control))
        );
    }

    #[test]
    fn rendering_is_bounded_by_the_visible_rows() {
        let mut a = App::new(crate::tui::keymap::Keymap::load(None).unwrap(), 200_000);
        connected(&mut a, 1, None);
        for i in 0..100_000 {
            data(&mut a, 1, format!("line {i}").as_bytes());
        }
        let screen = render(&a);
        assert!(screen.contains("< line 99999"), "{screen}");
        assert!(!screen.contains("< line 99000"));
        a.apply(crate::tui::keymap::Action::ScrollTop);
        let screen = render(&a);
        assert!(
            screen.contains("* connected") && screen.contains("< line 0"),
            "{screen}"
        );
    }

    #[test]
    fn relative_timestamps_show_the_gap_to_the_previous_chunk() {
        let mut a = app();
        connected(&mut a, 1, None);
        data(&mut a, 1, b"first");
        a.apply(crate::tui::keymap::Action::ToggleRelativeTime);
        let screen = render(&a);
        assert!(screen.contains("     +0.000s * connected"), "{screen}");
        assert!(screen.contains("s < first"), "{screen}");
        assert!(
            !screen.contains(&format!("{} ", Utc::now().format("%H:%M"))),
            "{screen}"
        );
    }

    #[test]
    fn every_size_down_to_one_by_one_draws() {
        let mut a = app();
        crate::tui::app::tests::connected(&mut a, 1, Some("board"));
        crate::tui::app::tests::data(&mut a, 1, b"a line of device output that is long enough to wrap");
        for mode in [
            None,
            Some(crate::tui::keymap::Action::Help),
            Some(crate::tui::keymap::Action::Messages),
            Some(crate::tui::keymap::Action::ToggleWrap),
            Some(crate::tui::keymap::Action::ToggleHex),
            Some(crate::tui::keymap::Action::CommandBar),
        ] {
            if let Some(action) = mode {
                a.apply(action);
            }
            for w in 1..=40 {
                for h in 1..=12 {
                    let screen = render_at(&a, w, h);
                    if w < MIN_WIDTH || h < MIN_HEIGHT {
                        assert!(screen.starts_with('m') || w < 2, "{w}x{h}: {screen}");
                    }
                }
            }
        }
        let screen = render_at(&a, 80, 2);
        assert!(screen.contains("terminal too small (80×2"), "{screen}");
    }

    #[test]
    fn long_lines_wrap_at_words_and_scroll_across_with_wrap_off() {
        assert_eq!(pieces(b"abc def ghi\r\n", 8, 5, 0), ["abc def ", "ghi"]);
        assert_eq!(pieces(b"abcdefghij", 4, 2, 0), ["abcd", "efg…"]);
        // An escape never splits across rows.
        assert_eq!(pieces(b"ab\x1bcd", 4, 3, 0), ["ab", "\\x1b", "cd"]);
        // Wrap off: one row from `skip` columns in, marked at both ends.
        assert_eq!(pieces(b"0123456789abcdef", 6, 1, 4), ["…4567…"]);
        let mut a = app();
        connected(&mut a, 1, None);
        let long: String = (0..40).map(|i| format!("word{i:02} ")).collect();
        data(&mut a, 1, long.as_bytes());
        let screen = render_at(&a, 100, 20);
        assert!(screen.contains("word00") && screen.contains("word39"), "{screen}");
        a.apply(crate::tui::keymap::Action::ToggleWrap);
        let screen = render_at(&a, 100, 20);
        assert!(
            screen.contains("word00") && !screen.contains("word39"),
            "{screen}"
        );
        for _ in 0..30 {
            a.apply(crate::tui::keymap::Action::ScrollRight);
        }
        let screen = render_at(&a, 100, 20);
        assert!(
            !screen.contains("word00") && screen.contains("word39"),
            "{screen}"
        );
    }

    #[test]
    fn a_binary_chunk_in_hex_counts_offsets_over_the_stream_and_events_are_one_row() {
        let mut a = app();
        connected(&mut a, 1, None);
        data(&mut a, 1, &[0xaa; 20]);
        a.on_event(
            &Event::error(crate::core::events::CoreError::new(
                crate::core::ErrorCode::RecordFailed,
                "a long error text that is much longer than sixteen bytes",
            ))
            .session(&sid(1)),
        );
        data(&mut a, 1, &[0xbb; 4]);
        a.apply(crate::tui::keymap::Action::ToggleHex);
        let screen = render_at(&a, 160, 32);
        assert_eq!(
            screen.matches("RECORD_FAILED").count(),
            2,
            "once in the pane, once in the status: {screen}"
        );
        // 20 bytes then 1 (the line end) came before: the next chunk starts at 0x15.
        assert!(screen.contains("00000015  bb bb bb bb"), "{screen}");
    }

    /// The screens of issue 15's fixes, as snapshots (fixed ids and ports,
    /// no clock: nothing to filter).
    #[test]
    fn snapshots_of_the_fixed_screens() {
        let mut a = app();
        a.timestamps = false;
        crate::tui::app::tests::listening(&mut a, 1, Some("srv"), 200);
        for (n, port) in [(1u8, 50001u16), (2, 50002), (3, 50003)] {
            crate::tui::app::tests::accepted(&mut a, n, port);
            data(&mut a, n, format!("hello from {port}").as_bytes());
        }
        let long: String = (0..30).map(|i| format!("word{i:02} ")).collect();
        data(&mut a, 1, long.as_bytes());
        // The unread marks, the peers' ports, the position: at 80 and 40 columns.
        insta::assert_snapshot!("sessions_80x16", render_at(&a, 80, 16));
        insta::assert_snapshot!("sessions_40x12", render_at(&a, 40, 12));
        // Hex view: event lines are one row; offsets run over the stream.
        a.apply(crate::tui::keymap::Action::ToggleHex);
        insta::assert_snapshot!("hex_offsets_100x16", render_at(&a, 100, 16));
        // The message log with a listing.
        a.on_result(
            "sessions",
            Err(format!("REGEX_INVALID: on /(/: {}", "unclosed group ".repeat(6))),
        );
        a.apply(crate::tui::keymap::Action::Messages);
        insta::with_settings!({filters => vec![(r"\d\d:\d\d:\d\d", "HH:MM:SS")]}, {
            insta::assert_snapshot!("message_log_60x12", render_at(&a, 60, 12));
        });
    }

    #[test]
    fn a_prompt_shows_at_once_and_completes_in_place() {
        let mut a = app();
        a.timestamps = false;
        connected(&mut a, 1, None);
        let partial = |a: &mut App, text: &'static [u8]| {
            a.on_event(
                &Event::new(EventKind::DataPartial {
                    payload: bytes::Bytes::from_static(text),
                    count: text.len(),
                })
                .session(&sid(1)),
            )
        };
        partial(&mut a, b"login: ");
        let screen = render(&a);
        assert!(screen.contains("< login: ▏"), "{screen}");
        assert_eq!(a.sessions[0].bytes_in, 7, "counted when it arrives");
        a.on_event(
            &Event::new(EventKind::Sent {
                message_id: 1,
                bytes: 6,
                payload: bytes::Bytes::from_static(b"admin\n"),
                trigger: None,
            })
            .session(&sid(1)),
        );
        partial(&mut a, b"admin");
        a.on_event(
            &Event::new(EventKind::Data {
                payload: bytes::Bytes::from_static(b"login: admin"),
                count: 2,
                from: None,
                eol: b"\r\n",
                check: None,
            })
            .session(&sid(1)),
        );
        let screen = render(&a);
        // In place: before the sent line, whole, no longer pending.
        let prompt = screen.find("< login: admin").expect(&screen);
        let sent = screen.find("> admin").expect(&screen);
        assert!(prompt < sent && !screen.contains('▏'), "{screen}");
        assert_eq!(a.sessions[0].bytes_in, 14);
        a.apply(crate::tui::keymap::Action::ToggleHex);
        let screen = render(&a);
        assert!(
            screen.contains("6c 6f 67 69 6e 3a 20 61  64 6d 69 6e 0d 0a"),
            "{screen}"
        );
    }

    #[test]
    fn imap_changes_what_the_line_view_shows_not_the_bytes() {
        let mut a = app();
        a.timestamps = false;
        connected(&mut a, 1, None);
        a.sessions[0].map.input = crate::core::linemap::parse_input("igncr").unwrap();
        data(&mut a, 1, b"a\rb");
        let screen = render(&a);
        assert!(screen.contains("< ab "), "{screen}");
        assert!(screen.contains("imap=igncr"), "{screen}");
        a.apply(crate::tui::keymap::Action::ToggleHex);
        assert!(render(&a).contains("61 0d 62"), "hex shows the raw bytes");
    }

    #[test]
    fn the_message_log_wraps_long_errors_whole() {
        let mut a = app();
        let long = format!(
            "REGEX_INVALID: on /(/: {} end-of-text",
            "unclosed group ".repeat(8)
        );
        a.on_result("on ( send x", Err(long));
        a.apply(crate::tui::keymap::Action::Messages);
        let screen = render_at(&a, 60, 16);
        assert!(
            screen.contains("REGEX_INVALID") && screen.contains("end-of-text"),
            "{screen}"
        );
        assert!(screen.contains(" MESSAGES "), "{screen}");
    }

    #[test]
    fn help_lists_the_active_keymap() {
        let mut a = app();
        a.apply(crate::tui::keymap::Action::Help);
        let screen = render(&a);
        assert!(screen.contains("normal mode") && screen.contains("insert mode"));
        assert!(screen.contains("line / hex view of the session"));
        assert!(screen.contains("ctrl-]"));
    }

    #[test]
    fn status_line_shows_mode_input_and_errors() {
        let mut a = app();
        a.apply(crate::tui::keymap::Action::CommandBar);
        for c in "send hi".chars() {
            a.on_key(crossterm::event::KeyEvent::new(
                crossterm::event::KeyCode::Char(c),
                crossterm::event::KeyModifiers::NONE,
            ));
        }
        let screen = render(&a);
        assert!(screen.contains(" COMMAND  :send hi"), "{screen}");
        // Echoed as typed: backslashes are not doubled, controls escaped.
        a.mode = Mode::Normal;
        a.on_result("send AT\\r\\n", Ok(String::new()));
        assert!(render(&a).contains("ok: send AT\\r\\n "), "{}", render(&a));
        a.on_result("send \x1b[2J", Ok(String::new()));
        assert!(render(&a).contains("ok: send \\x1b[2J"));
        a.mode = Mode::Command;
        a.on_result("x", Err("SESSION_NOT_FOUND: no session".into()));
        a.mode = Mode::Normal;
        assert!(render(&a).contains("SESSION_NOT_FOUND: no session"));
    }
}
