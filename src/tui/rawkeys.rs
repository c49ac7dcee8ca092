//! Raw console mode (picocom, tio): a key becomes the bytes a terminal
//! sends for it — Ctrl-C is 0x03, Ctrl-Z 0x1a, arrows and function keys
//! their VT100/xterm escape sequences, Alt a leading ESC.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The bytes for `key`; `enter` is what Enter sends (the session's end of
/// line). None for keys a terminal sends nothing for.
pub fn encode(key: &KeyEvent, enter: &[u8]) -> Option<Vec<u8>> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let mut out = Vec::new();
    if alt {
        out.push(0x1b);
    }
    let seq: &[u8] = match key.code {
        KeyCode::Char(c) if ctrl => {
            out.push(control_byte(c)?);
            return Some(out);
        }
        KeyCode::Char(c) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            return Some(out);
        }
        KeyCode::Enter => enter,
        // DEL, as terminals send for Backspace (`--omap delbs` maps it to BS).
        KeyCode::Backspace => b"\x7f",
        KeyCode::Tab => b"\t",
        KeyCode::BackTab => b"\x1b[Z",
        KeyCode::Esc => b"\x1b",
        KeyCode::Up => b"\x1b[A",
        KeyCode::Down => b"\x1b[B",
        KeyCode::Right => b"\x1b[C",
        KeyCode::Left => b"\x1b[D",
        KeyCode::Home => b"\x1b[H",
        KeyCode::End => b"\x1b[F",
        KeyCode::Insert => b"\x1b[2~",
        KeyCode::Delete => b"\x1b[3~",
        KeyCode::PageUp => b"\x1b[5~",
        KeyCode::PageDown => b"\x1b[6~",
        KeyCode::F(n) => function_key(n)?,
        _ => return None,
    };
    out.extend_from_slice(seq);
    Some(out)
}

/// Ctrl with a key: the control byte (`a`..`z`, `@`, `[`..`_`, `?` as DEL);
/// crossterm reports Ctrl-\ ] ^ _ also as Ctrl-4..7, and Ctrl-@ as Ctrl-Space.
fn control_byte(c: char) -> Option<u8> {
    let c = c.to_ascii_lowercase();
    Some(match c {
        'a'..='z' => c as u8 - b'a' + 1,
        ' ' | '@' | '2' => 0,
        '[' | '3' => 0x1b,
        '\\' | '4' => 0x1c,
        ']' | '5' => 0x1d,
        '^' | '6' => 0x1e,
        '_' | '7' | '/' => 0x1f,
        '?' | '8' => 0x7f,
        // Already a control character (some terminals report it bare).
        c if (c as u32) < 0x20 => c as u8,
        _ => return None,
    })
}

/// xterm's function keys.
fn function_key(n: u8) -> Option<&'static [u8]> {
    Some(match n {
        1 => b"\x1bOP",
        2 => b"\x1bOQ",
        3 => b"\x1bOR",
        4 => b"\x1bOS",
        5 => b"\x1b[15~",
        6 => b"\x1b[17~",
        7 => b"\x1b[18~",
        8 => b"\x1b[19~",
        9 => b"\x1b[20~",
        10 => b"\x1b[21~",
        11 => b"\x1b[23~",
        12 => b"\x1b[24~",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> Vec<u8> {
        encode(&KeyEvent::new(code, mods), b"\r\n").unwrap()
    }

    #[test]
    fn keys_are_the_bytes_a_terminal_sends() {
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        assert_eq!(key(KeyCode::Char('c'), ctrl), b"\x03");
        assert_eq!(key(KeyCode::Char('Z'), ctrl), b"\x1a");
        assert_eq!(key(KeyCode::Char('a'), none), b"a");
        assert_eq!(key(KeyCode::Char('é'), none), "é".as_bytes());
        assert_eq!(key(KeyCode::Char('x'), KeyModifiers::ALT), b"\x1bx");
        assert_eq!(key(KeyCode::Enter, none), b"\r\n");
        assert_eq!(key(KeyCode::Backspace, none), b"\x7f");
        assert_eq!(key(KeyCode::Up, none), b"\x1b[A");
        assert_eq!(key(KeyCode::F(1), none), b"\x1bOP");
        assert_eq!(key(KeyCode::F(12), none), b"\x1b[24~");
        assert_eq!(key(KeyCode::Char('4'), ctrl), b"\x1c");
        assert_eq!(key(KeyCode::Char(' '), ctrl), b"\x00");
        assert!(encode(&KeyEvent::new(KeyCode::F(20), none), b"\n").is_none());
    }
}
