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
use crate::core::escape::escape_display;
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
    let [main, status] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let left_width = (main.width / 3).clamp(24, 40).min(main.width);
    let [left, right] = Layout::horizontal([Constraint::Length(left_width), Constraint::Min(10)]).areas(main);
    let listener_rows = (app.listeners.len() as u16 + 2).min(left.height / 3 + 2).max(3);
    let [lst, sess] = Layout::vertical([Constraint::Length(listener_rows), Constraint::Min(3)]).areas(left);
    draw_listeners(app, frame, lst, theme);
    draw_sessions(app, frame, sess, theme);
    draw_scrollback(app, frame, right, theme);
    draw_status(app, frame, status, theme);
    if app.mode == Mode::Help {
        draw_help(app, frame, theme);
    }
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
        let clients = format!("{}/{}", app.clients_of(&l.id), l.max);
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
            Span::styled(truncate(&name, inner.width.saturating_sub(14) as usize), style),
            Span::styled(
                match (l.tls, l.udp) {
                    (true, _) => " TLS",
                    (_, true) => " UDP",
                    _ => "",
                },
                theme.fg(Color::Magenta),
            ),
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
    let title = format!(" Sessions {} ", app.sessions.len());
    let block = pane(title, app.focus == Focus::Sessions, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = Vec::new();
    for i in window(app.sessions.len(), app.selected, inner.height as usize) {
        let s = &app.sessions[i];
        let here = app.selected == Some(i);
        let (mark, color) = state_mark(s);
        let name = s.label.clone().unwrap_or_else(|| s.peer.clone());
        // ↻4s: the countdown to the next reconnect attempt.
        let wait = s.state.reconnect_wait(Utc::now()).unwrap_or_default();
        let bytes = format!("{}/{}", human(s.bytes_in), human(s.bytes_out));
        let fixed = 2 + 9 + 4 + 2 + wait.len() + bytes.len() + 2;
        let name = truncate(&name, (inner.width as usize).saturating_sub(fixed));
        let mut style = Style::new();
        if !s.state.is_live() {
            style = style.add_modifier(Modifier::DIM);
        }
        if here {
            style = style.add_modifier(Modifier::REVERSED);
        }
        let width = (inner.width as usize).saturating_sub(fixed);
        lines.push(Line::from(vec![
            Span::styled(if here { "▶ " } else { "  " }, style),
            Span::styled(format!("{} ", s.short()), style),
            Span::styled(format!("{:<4}", s.direction), style),
            Span::styled(format!("{name:<width$}"), style),
            Span::styled(format!(" {mark}{wait}"), theme.fg(color)),
            Span::styled(format!(" {bytes}"), style),
            Span::styled(if s.unread { " ✱" } else { "  " }, theme.fg(Color::Yellow)),
        ]));
    }
    if app.sessions.is_empty() {
        lines.push(Line::styled("  :connect HOST:PORT", theme.escaped()));
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
}

fn scrollback_title(s: &SessionRow, st: ViewState, app: &App) -> String {
    let mut parts = vec![short_id(&s.id)];
    // First: it explains why nothing arrives.
    parts.extend(s.state.reconnect_text(Utc::now()));
    parts.push(s.direction.to_string());
    let route = match s.direction {
        "in" => format!("{} → {}", s.peer, s.local),
        _ => format!("{} → {}", if s.local.is_empty() { "…" } else { &s.local }, s.peer),
    };
    parts.push(route);
    parts.push(st.view.as_str().to_string());
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
    format!(" {} ", parts.join(" · "))
}

fn draw_scrollback(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let focused = app.focus == Focus::Scrollback;
    // The focused pane: the session it shows, and how.
    let layout = app.focused();
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
    let s = Shown { row: s, state: st };
    let height = inner.height as u64;
    let total = s.row.rows(st.view);
    let bottom = total.saturating_sub(st.scroll);
    let top = bottom.saturating_sub(height);
    let width = inner.width as usize;
    let mut lines = Vec::with_capacity(height as usize);
    for row in top..bottom {
        let line = s.row.scrollback.locate(row, st.view).and_then(|(idx, sub)| {
            let e = s.row.scrollback.get(idx)?;
            Some(if shows_hex(st.view, e.mark) {
                hex_row(app, &s, idx, e, sub, width, theme)
            } else {
                line_row(app, &s, idx, e, width, theme)
            })
        });
        lines.extend(line);
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The time column: clock time, or (relative) time since the previous
/// chunk; blank on a hex row that continues a chunk.
fn time_span(app: &App, e: &Entry, prev: Option<&Entry>, first: bool) -> Span<'static> {
    if !app.timestamps {
        return Span::raw("");
    }
    if !first {
        return Span::raw(" ".repeat(13));
    }
    let text = if app.relative_time {
        let gap = prev
            .map(|p| (e.at - p.at).num_microseconds().unwrap_or(0))
            .unwrap_or(0);
        format!("{:>12} ", format!("+{:.3}s", gap as f64 / 1e6))
    } else {
        format!("{} ", e.at.format("%H:%M:%S%.3f"))
    };
    Span::styled(text, Style::new().add_modifier(Modifier::DIM))
}

fn highlight(app: &App, s: &Shown, idx: usize, e: &Entry, style: Style) -> Style {
    if s.state.found == Some(idx) {
        style.add_modifier(Modifier::REVERSED)
    } else if app.search.as_ref().is_some_and(|re| re.is_match(&e.data)) {
        style.add_modifier(Modifier::UNDERLINED)
    } else {
        style
    }
}

/// One line-view row: escaped bytes shown dimmed, cut to the pane width.
fn line_row(app: &App, s: &Shown, idx: usize, e: &Entry, width: usize, theme: Theme) -> Line<'static> {
    let style = highlight(app, s, idx, e, theme.mark(e.mark));
    let mut spans = vec![
        time_span(
            app,
            e,
            idx.checked_sub(1).and_then(|i| s.row.scrollback.get(i)),
            true,
        ),
        Span::styled(format!("{} ", e.mark.symbol()), style),
    ];
    // A line's end is not shown in line view (hex view keeps it).
    let data = e.data.strip_suffix(b"\n").unwrap_or(&e.data);
    let data = data.strip_suffix(b"\r").unwrap_or(data);
    // Only as many bytes as can show: O(width), not O(line length).
    let shown = &data[..data.len().min(width * 4 + 4)];
    let text = escape_display(shown);
    let budget = width.saturating_sub(15);
    spans.extend(escaped_spans(&truncate(&text, budget), style, theme));
    Line::from(spans)
}

/// Splits escaped text into plain and dimmed escape spans.
fn escaped_spans(text: &str, style: Style, theme: Theme) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let mut esc = String::from('\\');
            match chars.next() {
                Some('x') => {
                    esc.push('x');
                    esc.extend(chars.next());
                    esc.extend(chars.next());
                }
                Some(n) => esc.push(n),
                None => {}
            }
            if !plain.is_empty() {
                spans.push(Span::styled(std::mem::take(&mut plain), style));
            }
            spans.push(Span::styled(esc, theme.escaped()));
        } else {
            plain.push(c);
        }
    }
    if !plain.is_empty() {
        spans.push(Span::styled(plain, style));
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
    let style = highlight(app, s, idx, e, theme.mark(e.mark));
    let start = sub as usize * HEX_WIDTH;
    let bytes = e
        .data
        .get(start..(start + HEX_WIDTH).min(e.data.len()))
        .unwrap_or(&[]);
    let first = sub == 0;
    let mark = if first {
        format!("{} ", e.mark.symbol())
    } else {
        "  ".to_string()
    };
    let stamp = if app.timestamps && width >= HEX_ROW + 13 {
        time_span(
            app,
            e,
            idx.checked_sub(1).and_then(|i| s.row.scrollback.get(i)),
            first,
        )
    } else {
        Span::raw("")
    };
    if e.mark == Mark::Event {
        // Events are text, not data: show them as such.
        return Line::from(vec![
            stamp,
            Span::styled(mark, style),
            Span::styled(escape_display(&e.data), style),
        ]);
    }
    let mut detail = String::with_capacity(80);
    hex_line(bytes, start, width >= HEX_ROW, &mut detail);
    Line::from(vec![
        stamp,
        Span::styled(mark, style),
        Span::styled(detail, style),
    ])
}

fn draw_status(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let mode_style = match app.mode {
        Mode::Insert => theme.fg(Color::Black).bg(Color::Green),
        Mode::Command | Mode::Search => theme.fg(Color::Black).bg(Color::Cyan),
        Mode::ConfirmQuit => theme.fg(Color::Black).bg(Color::Red),
        _ => theme.fg(Color::Black).bg(Color::Gray),
    }
    .add_modifier(Modifier::BOLD);
    let counters = format!(
        "{} · {}{} · ? help · q quit ",
        counted(app.sessions.len(), "session"),
        counted(app.listeners.len(), "listener"),
        if app.recording { " · rec on" } else { "" }
    );
    let mode = format!(" {} ", app.mode.name());
    let (prefix, body, style) = match app.mode {
        Mode::Command => (":", app.input.text.clone(), Style::new()),
        Mode::Search => ("/", app.input.text.clone(), Style::new()),
        Mode::Insert => ("> ", app.input.text.clone(), Style::new()),
        _ if !app.candidates.is_empty() => ("", app.candidates.join("  "), Style::new()),
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
    let room = (area.width as usize).saturating_sub(mode.chars().count() + counters.chars().count() + 2);
    let shown = truncate(
        &escape_display(body.as_bytes()),
        room.saturating_sub(prefix.len()),
    );
    let pad = room.saturating_sub(prefix.len() + shown.chars().count());
    let line = Line::from(vec![
        Span::styled(mode.clone(), mode_style),
        Span::raw(" "),
        Span::styled(format!("{prefix}{shown}"), style),
        Span::raw(" ".repeat(pad + 1)),
        Span::styled(counters, Style::new().add_modifier(Modifier::DIM)),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    if matches!(app.mode, Mode::Command | Mode::Search | Mode::Insert) {
        let x = area.x + mode.chars().count() as u16 + 1 + prefix.len() as u16 + app.input.cursor as u16;
        frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
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
    let h = (tallest as u16 + 2).min(area.height);
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
            Span::styled(format!("  {:<15}", keys.join(" ")), theme.fg(Color::Cyan)),
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
fn counted(n: usize, what: &str) -> String {
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
        assert!(screen.contains("▶ 11111111 out router"), "{screen}");
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
            })
            .session(&sid(1)),
        );
        assert!(!a.reconnecting());
        assert_eq!(a.sessions.len(), 1);
        let screen = render(&a);
        assert!(
            !screen.contains("reconnecting in 4s (attempt") && !screen.contains('↻'),
            "{screen}"
        );
        assert!(screen.contains("* connected"), "{screen}");
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
                })
                .session(&sid(n))
                .listener("lstn-9"),
            );
        }
        let screen = render(&a);
        assert!(screen.contains("● 0.0.0.0:5683 UDP 2/64"), "{screen}");
        assert!(screen.contains("127.0.0.1:40001 → 0.0.0.0:5683"), "{screen}");
        assert!(screen.contains("22222222 in  127.0.0.1:400"), "{screen}");
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
        a.on_result("x", Err("SESSION_NOT_FOUND: no session".into()));
        a.mode = Mode::Normal;
        assert!(render(&a).contains("SESSION_NOT_FOUND: no session"));
    }
}
