//! Keymaps in TOML (CONTRACT section 7): one table per mode, key = action.
//! `default.toml`, `vim.toml` and `emacs.toml` are compiled in; vim and emacs
//! are overlays on the default, and a user file overrides single bindings.

use std::collections::BTreeMap;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub const DEFAULT: &str = include_str!("../../keymaps/default.toml");
pub const VIM: &str = include_str!("../../keymaps/vim.toml");
pub const EMACS: &str = include_str!("../../keymaps/emacs.toml");

/// Declares the key actions once — variant, keymap name, help line — and
/// derives the enum, the list, the names and the descriptions from it (as
/// helix's `static_commands!`), so they never drift apart.
macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $describe:literal;)*) => {
        /// What a key does.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($(#[$doc])* $variant,)*
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The keymap name, e.g. `toggle_hex`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }

            /// One line for the help overlay.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Action::$variant => $describe,)*
                }
            }
        }
    };
}

actions! {
    Quit = "quit", "quit (asks while sessions are live)";
    FocusNext = "focus_next", "focus the next pane";
    FocusPrev = "focus_prev", "focus the previous pane";
    SelectNext = "select_next", "select the next session/listener";
    SelectPrev = "select_prev", "select the previous session/listener";
    CommandBar = "command_bar", "command bar (the command language)";
    Insert = "insert", "type into the selected session";
    RawKeys = "raw_keys", "raw console: each key goes out at once";
    ToggleEcho = "toggle_echo", "local echo of raw keys on / off";
    ToggleDtr = "toggle_dtr", "serial port: toggle DTR";
    ToggleRts = "toggle_rts", "serial port: toggle RTS";
    SendBreak = "send_break", "serial port: send a break (250ms)";
    Normal = "normal", "back to normal mode";
    ToggleHex = "toggle_hex", "line / hex view of the session";
    ToggleSplit = "toggle_split", "hex of received, then of sent, then lines";
    ToggleTimestamps = "toggle_timestamps", "show / hide timestamps";
    ToggleRelativeTime = "toggle_relative_time", "clock time / time since the last chunk";
    Disconnect = "disconnect", "disconnect, asks first (listener: close)";
    Dismiss = "dismiss", "remove a closed session from the list";
    DismissClosed = "dismiss_closed", "remove all closed sessions from the list";
    Filter = "filter", "filter the sessions (label, peer, state)";
    Messages = "messages", "message log: listings, errors, / searches";
    Search = "search", "search the scrollback (regex)";
    SearchNext = "search_next", "next (older) match";
    SearchPrev = "search_prev", "previous (newer) match";
    ScrollUp = "scroll_up", "scroll up a line";
    ScrollDown = "scroll_down", "scroll down a line";
    PageUp = "page_up", "scroll up a page";
    PageDown = "page_down", "scroll down a page";
    HalfPageUp = "half_page_up", "scroll up half a page";
    HalfPageDown = "half_page_down", "scroll down half a page";
    ScrollLeft = "scroll_left", "scroll long lines left (wrap off)";
    ScrollRight = "scroll_right", "scroll long lines right (wrap off)";
    ToggleWrap = "toggle_wrap", "wrap long lines / cut and scroll across";
    SplitVertical = "split_vertical", "split: a new pane beside, same session";
    SplitHorizontal = "split_horizontal", "split: a new pane below, same session";
    Unsplit = "unsplit", "close the focused scrollback pane";
    Copy = "copy", "copy marked lines (clipboard, OSC 52)";
    MarkRange = "mark_range", "mark a line; again: start / end a range";
    ToggleMouse = "toggle_mouse", "mouse on/off (off: terminal selects text)";
    ScrollTop = "scroll_top", "oldest line";
    ScrollBottom = "scroll_bottom", "newest line, follow the tail";
    Help = "help", "this help";
    /// Unbinds a key of the default map.
    None = "none", "nothing";
}

impl Action {
    fn parse(word: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == word)
    }
}

/// The modes that have bindings.
pub const MODES: [&str; 3] = ["normal", "insert", "raw"];

/// A key as written in a keymap (`ctrl-d`, `N`, `pageup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub code: KeyCodeOrd,
    pub mods: u8,
}

/// `KeyCode` with an order, for a stable dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyCodeOrd {
    Char(char),
    F(u8),
    Named(&'static str),
}

const CTRL: u8 = 1;
const ALT: u8 = 2;

const NAMED: [(&str, KeyCode); 16] = [
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("insert", KeyCode::Insert),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("space", KeyCode::Char(' ')),
];

impl Key {
    /// Parses `ctrl-alt-x`, `F5`, `shift-tab`, `N`, `pageup`.
    pub fn parse(text: &str) -> Option<Key> {
        let mut mods = 0;
        let mut rest = text;
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.len() > 1 && lower.starts_with("ctrl-") {
                mods |= CTRL;
                rest = &rest[5..];
            } else if rest.len() > 1 && lower.starts_with("alt-") {
                mods |= ALT;
                rest = &rest[4..];
            } else if lower == "shift-tab" {
                return Some(Key {
                    code: KeyCodeOrd::Named("backtab"),
                    mods,
                });
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCodeOrd::Char(c),
            _ => {
                let lower = rest.to_ascii_lowercase();
                if let Some((name, _)) = NAMED.iter().find(|(n, _)| *n == lower) {
                    if *name == "space" {
                        KeyCodeOrd::Char(' ')
                    } else {
                        KeyCodeOrd::Named(name)
                    }
                } else if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
                    if !(1..=24).contains(&n) {
                        return None;
                    }
                    KeyCodeOrd::F(n)
                } else {
                    return None;
                }
            }
        };
        Some(Key { code, mods })
    }

    /// The key of a terminal key event (shift folded into the character).
    pub fn from_event(ev: &KeyEvent) -> Option<Key> {
        let mut mods = 0;
        if ev.modifiers.contains(KeyModifiers::CONTROL) {
            mods |= CTRL;
        }
        if ev.modifiers.contains(KeyModifiers::ALT) {
            mods |= ALT;
        }
        let code = match ev.code {
            // Terminals send Ctrl-\ Ctrl-] Ctrl-^ Ctrl-_ as the bytes
            // 0x1c-0x1f, which crossterm reports as Ctrl-4..Ctrl-7 (tmux and
            // xterm do), or as the bare control character: both are the
            // key the user pressed.
            KeyCode::Char(c @ '4'..='7') if mods & CTRL != 0 => {
                KeyCodeOrd::Char(legacy_control(c as u8 - b'4' + 0x1c))
            }
            KeyCode::Char(c @ '\x1c'..='\x1f') => {
                mods |= CTRL;
                KeyCodeOrd::Char(legacy_control(c as u8))
            }
            KeyCode::Char(c) => KeyCodeOrd::Char(if mods & CTRL != 0 {
                c.to_ascii_lowercase()
            } else {
                c
            }),
            KeyCode::F(n) => KeyCodeOrd::F(n),
            other => KeyCodeOrd::Named(NAMED.iter().find(|(_, k)| *k == other)?.0),
        };
        Some(Key { code, mods })
    }

    pub fn name(&self) -> String {
        let mut s = String::new();
        if self.mods & CTRL != 0 {
            s.push_str("ctrl-");
        }
        if self.mods & ALT != 0 {
            s.push_str("alt-");
        }
        match self.code {
            KeyCodeOrd::Char(' ') => s.push_str("space"),
            KeyCodeOrd::Char(c) => s.push(c),
            KeyCodeOrd::F(n) => s.push_str(&format!("f{n}")),
            KeyCodeOrd::Named(n) => s.push_str(n),
        }
        s
    }
}

/// The key of a control byte 0x1c-0x1f with Ctrl held: `\\ ] ^ _`.
fn legacy_control(byte: u8) -> char {
    char::from(byte - 0x1c + b'\\')
}

/// A bad keymap file: names the file, the line and the bad word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {what} {word:?}{hint}")]
pub struct KeymapError {
    pub file: String,
    pub line: usize,
    pub what: &'static str,
    pub word: String,
    pub hint: String,
}

/// Every error of a keymap file (or of the files of one load), one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeymapErrors(pub Vec<KeymapError>);

impl std::fmt::Display for KeymapErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for KeymapErrors {}

impl From<KeymapError> for KeymapErrors {
    fn from(e: KeymapError) -> Self {
        KeymapErrors(vec![e])
    }
}

/// The effective bindings, per mode: keys bound to actions, and keys bound
/// to command-language lines (macros: `"f1" = "send AT\\r"`, or a list run
/// one after another).
#[derive(Clone, Debug, Default)]
pub struct Keymap {
    pub modes: BTreeMap<String, BTreeMap<Key, Action>>,
    pub macros: BTreeMap<String, BTreeMap<Key, Vec<String>>>,
}

/// What a keymap value is.
enum Binding {
    Action(Action),
    Macro(Vec<String>),
}

/// A value: an action name, one command line, or a list of command lines.
fn binding(value: &toml::Value) -> Result<Binding, String> {
    let check = |line: &str| match crate::lang::parse_line(line) {
        Ok(Some(_)) => Ok(line.to_string()),
        Ok(None) => Err(line.to_string()),
        Err(_) => Err(line.to_string()),
    };
    match value {
        toml::Value::String(word) => match Action::parse(word) {
            Some(a) => Ok(Binding::Action(a)),
            None => check(word).map(|l| Binding::Macro(vec![l])),
        },
        toml::Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(check).unwrap_or_else(|| Err(v.to_string())))
            .collect::<Result<Vec<_>, _>>()
            .map(Binding::Macro),
        other => Err(other.to_string()),
    }
}

/// The line of `text` where `word` first appears quoted or as a bare key.
fn line_of(text: &str, word: &str) -> usize {
    let quoted = format!("\"{word}\"");
    text.lines()
        .position(|l| l.contains(&quoted) || l.trim_start().starts_with(&format!("{word} ")))
        .map(|i| i + 1)
        .unwrap_or(1)
}

impl Keymap {
    /// The default map with the overlay of `name` (default, vim, emacs) or
    /// of the file `name` names.
    pub fn load(name: Option<&str>) -> Result<Keymap, KeymapErrors> {
        let mut map = Keymap::default();
        map.overlay(DEFAULT, "keymaps/default.toml")?;
        match name {
            None | Some("default") => {}
            Some("vim") => map.overlay(VIM, "keymaps/vim.toml")?,
            Some("emacs") => map.overlay(EMACS, "keymaps/emacs.toml")?,
            Some(path) => map.overlay_file(Path::new(path))?,
        }
        Ok(map)
    }

    /// `load`, then the user's `$XDG_CONFIG_HOME/muxcat/keymap.toml` when
    /// no `--keymap` was given and the file exists.
    pub fn load_with_user(name: Option<&str>) -> Result<Keymap, KeymapErrors> {
        let mut map = Keymap::load(name)?;
        if name.is_none()
            && let Some(dirs) = directories::ProjectDirs::from("", "", "muxcat")
        {
            let user = dirs.config_dir().join("keymap.toml");
            if user.exists() {
                map.overlay_file(&user)?;
            }
        }
        Ok(map)
    }

    pub fn overlay_file(&mut self, path: &Path) -> Result<(), KeymapErrors> {
        let name = path.display().to_string();
        let text = crate::core::files::read_capped(path, crate::core::files::KEYMAP_MAX)
            .and_then(|b| {
                String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .map_err(|e| KeymapError {
                file: name.clone(),
                line: 0,
                what: "cannot read",
                word: name.clone(),
                hint: format!(": {e}"),
            })?;
        self.overlay(&text, &name)
    }

    /// Merges bindings from TOML text over the current ones. Good bindings
    /// apply; every bad one is reported (file, line, word), not only the first.
    pub fn overlay(&mut self, text: &str, file: &str) -> Result<(), KeymapErrors> {
        let err = |line: usize, what: &'static str, word: &str, hint: String| KeymapError {
            file: file.to_string(),
            line,
            what,
            word: word.to_string(),
            hint,
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            // The line the span starts on: newlines before it, plus one.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1);
            err(line, "not valid TOML:", e.message(), String::new())
        })?;
        let mut errors = Vec::new();
        for (mode, bindings) in table {
            if !MODES.contains(&mode.as_str()) {
                errors.push(err(
                    line_of(text, &format!("[{mode}]")),
                    "unknown mode",
                    &mode,
                    format!(" (modes: {})", MODES.join(", ")),
                ));
                continue;
            }
            let toml::Value::Table(bindings) = bindings else {
                errors.push(err(
                    line_of(text, &mode),
                    "not a table of bindings:",
                    &mode,
                    String::new(),
                ));
                continue;
            };
            for (key, value) in bindings {
                let line = line_of(text, &key);
                let Some(parsed) = Key::parse(&key) else {
                    errors.push(err(
                        line,
                        "bad key",
                        &key,
                        " (like \"q\", \"ctrl-d\", \"alt-x\", \"f1\", \"pageup\")".into(),
                    ));
                    continue;
                };
                let bound = match binding(&value) {
                    Ok(bound) => bound,
                    Err(word) => {
                        errors.push(err(
                            line,
                            "unknown action or bad command",
                            &word,
                            " (an action from `muxcat keymap --dump`, or a command line like \"send AT\\\\r\")"
                                .into(),
                        ));
                        continue;
                    }
                };
                let actions = self.modes.entry(mode.clone()).or_default();
                actions.remove(&parsed);
                let macros = self.macros.entry(mode.clone()).or_default();
                macros.remove(&parsed);
                match bound {
                    Binding::Action(Action::None) => {}
                    Binding::Action(action) => {
                        actions.insert(parsed, action);
                    }
                    Binding::Macro(lines) => {
                        macros.insert(parsed, lines);
                    }
                }
            }
        }
        errors.sort_by_key(|e| e.line);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(KeymapErrors(errors))
        }
    }

    pub fn action(&self, mode: &str, key: &Key) -> Option<Action> {
        self.modes.get(mode)?.get(key).copied()
    }

    /// The command lines a key runs, if it is bound to a macro.
    pub fn macro_for(&self, mode: &str, key: &Key) -> Option<&Vec<String>> {
        self.macros.get(mode)?.get(key)
    }

    /// Keys bound to `action` in `mode`, for hints.
    pub fn keys_for(&self, mode: &str, action: Action) -> Vec<String> {
        self.modes
            .get(mode)
            .map(|m| {
                m.iter()
                    .filter(|(_, a)| **a == action)
                    .map(|(k, _)| k.name())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The effective map as TOML.
    pub fn dump(&self) -> String {
        let mut out = String::from("# muxcat effective keymap\n");
        let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
        for mode in MODES {
            out.push_str(&format!("\n[{mode}]\n"));
            for (key, action) in self.modes.get(mode).into_iter().flatten() {
                out.push_str(&format!("{} = {}\n", quote(&key.name()), quote(action.name())));
            }
            for (key, lines) in self.macros.get(mode).into_iter().flatten() {
                let list: Vec<String> = lines.iter().map(|l| quote(l)).collect();
                out.push_str(&format!("{} = [{}]\n", quote(&key.name()), list.join(", ")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_keymaps_parse_without_duplicates() {
        for (name, text) in [("default", DEFAULT), ("vim", VIM), ("emacs", EMACS)] {
            let map = Keymap::load(Some(name)).unwrap();
            assert!(!map.modes["normal"].is_empty(), "{name}");
            // No key written twice in a table (TOML itself rejects that).
            assert!(text.parse::<toml::Table>().is_ok(), "{name}");
        }
        let vim = Keymap::load(Some("vim")).unwrap();
        assert_eq!(
            vim.action("normal", &Key::parse("G").unwrap()),
            Some(Action::ScrollBottom)
        );
        assert_eq!(
            vim.action("normal", &Key::parse("q").unwrap()),
            Some(Action::Quit),
            "vim overlays the default"
        );
    }

    #[test]
    fn keys_parse_and_match_events() {
        let k = Key::parse("ctrl-d").unwrap();
        let ev = KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL);
        assert_eq!(Key::from_event(&ev), Some(k));
        let shift_n = KeyEvent::new(KeyCode::Char('N'), KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&shift_n), Key::parse("N"));
        assert_eq!(
            Key::parse("F5"),
            Some(Key {
                code: KeyCodeOrd::F(5),
                mods: 0
            })
        );
        assert_eq!(Key::parse("shift-tab"), Key::parse("backtab"));
        for bad in ["ctl-d", "pgup", "f99", ""] {
            assert!(Key::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(Key::parse("ctrl-]").unwrap().name(), "ctrl-]");
    }

    #[test]
    fn user_overrides_and_errors_name_file_line_word() {
        let mut map = Keymap::load(None).unwrap();
        map.overlay("[normal]\n\"q\" = \"none\"\n\"Q\" = \"quit\"\n", "mine.toml")
            .unwrap();
        assert_eq!(map.action("normal", &Key::parse("q").unwrap()), None);
        assert_eq!(
            map.action("normal", &Key::parse("Q").unwrap()),
            Some(Action::Quit)
        );
        assert_eq!(
            map.action("normal", &Key::parse("x").unwrap()),
            Some(Action::ToggleHex),
            "others kept"
        );

        let e = map
            .overlay(
                "[normal]\n\"j\" = \"select_next\"\n\"ctl-x\" = \"quit\"\n",
                "u.toml",
            )
            .unwrap_err()
            .0
            .remove(0);
        assert_eq!((e.file.as_str(), e.line, e.word.as_str()), ("u.toml", 3, "ctl-x"));
        assert!(e.to_string().starts_with("u.toml:3: bad key \"ctl-x\""), "{e}");
        let e = map
            .overlay("[normal]\n\"x\" = \"explode\"\n", "u.toml")
            .unwrap_err()
            .0
            .remove(0);
        assert_eq!((e.line, e.word.as_str()), (2, "explode"));
        let e = map
            .overlay("[visual]\n\"x\" = \"quit\"\n", "u.toml")
            .unwrap_err()
            .0
            .remove(0);
        assert_eq!((e.line, e.word.as_str()), (1, "visual"));
        let e = map
            .overlay("[normal]\nx = = 1\n", "u.toml")
            .unwrap_err()
            .0
            .remove(0);
        assert_eq!(e.line, 2, "{e}");
        // A duplicate key is reported on its own line.
        let e = map
            .overlay(
                "[normal]\n\"x\" = \"quit\"\n\"j\" = \"help\"\n\"x\" = \"help\"\n",
                "u.toml",
            )
            .unwrap_err()
            .0
            .remove(0);
        assert_eq!(e.line, 4, "{e}");
        // Every bad binding is reported, in line order; the good ones apply.
        let mut map = Keymap::load(None).unwrap();
        let errors = map
            .overlay(
                "[normal]\n\"ctl-x\" = \"quit\"\n\"Q\" = \"quit\"\n\"z\" = \"explode\"\n",
                "u.toml",
            )
            .unwrap_err();
        let lines: Vec<usize> = errors.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4]);
        assert_eq!(errors.to_string().lines().count(), 2);
        assert_eq!(
            map.action("normal", &Key::parse("Q").unwrap()),
            Some(Action::Quit)
        );
    }

    #[test]
    fn shipped_macro_examples_load() {
        for file in ["macros/at-modem.toml", "macros/modbus.toml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let map = Keymap::load(Some(path.to_str().unwrap())).unwrap();
            assert!(!map.macros["normal"].is_empty(), "{file}");
        }
    }

    #[test]
    fn keys_can_run_command_lines() {
        let mut map = Keymap::load(None).unwrap();
        map.overlay(
            "[normal]\n\"f1\" = \"send AT\\\\r\"\n\"f2\" = [\"send --hex 01 03\", \"waitfor --timeout 1s .\"]\n\"x\" = \"sessions\"\n",
            "m.toml",
        )
        .unwrap();
        let f1 = Key::parse("f1").unwrap();
        assert_eq!(
            map.macro_for("normal", &f1).unwrap(),
            &vec!["send AT\\r".to_string()]
        );
        assert_eq!(
            map.macro_for("normal", &Key::parse("f2").unwrap()).unwrap().len(),
            2
        );
        // A macro replaces an action bound to the same key, and back.
        assert_eq!(map.action("normal", &Key::parse("x").unwrap()), None);
        map.overlay("[normal]\n\"x\" = \"toggle_hex\"\n", "m.toml")
            .unwrap();
        assert!(map.macro_for("normal", &Key::parse("x").unwrap()).is_none());
        // A value that is neither an action nor a command is an error.
        let e = map
            .overlay("[normal]\n\"f3\" = \"sned AT\"\n", "m.toml")
            .unwrap_err()
            .0
            .remove(0);
        assert_eq!((e.line, e.word.as_str()), (2, "sned AT"));
        let e = map
            .overlay("[normal]\n\"f3\" = [\"send ok\", 42]\n", "m.toml")
            .unwrap_err()
            .0
            .remove(0);
        assert_eq!(e.line, 2);
        // Macros survive a dump and reload.
        let mut again = Keymap::default();
        again.overlay(&map.dump(), "dump").unwrap();
        assert_eq!(again.macros, map.macros);
    }

    #[test]
    fn dump_round_trips() {
        let map = Keymap::load(Some("emacs")).unwrap();
        let mut again = Keymap::default();
        again.overlay(&map.dump(), "dump").unwrap();
        assert_eq!(again.modes, map.modes);
    }
}
