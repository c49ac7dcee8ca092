//! Byte escaping: payload escapes typed by users, hex payloads, the lossless
//! transcript encoding, and the safe display form that never lets a peer's
//! bytes reach a terminal raw.

use std::fmt::Write as _;

use super::events::{CoreError, ErrorCode};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Each byte's transcript form, padded to 4 bytes, and its length.
const ESCAPES: [([u8; 4], u8); 256] = {
    let mut table = [([0u8; 4], 0u8); 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = match byte {
            b'\\' => ([b'\\', b'\\', 0, 0], 2),
            b'\r' => ([b'\\', b'r', 0, 0], 2),
            b'\n' => ([b'\\', b'n', 0, 0], 2),
            b'\t' => ([b'\\', b't', 0, 0], 2),
            0x20..=0x7e => ([byte, 0, 0, 0], 1),
            _ => (
                [b'\\', b'x', HEX[(byte >> 4) as usize], HEX[(byte & 15) as usize]],
                4,
            ),
        };
        b += 1;
    }
    table
};

/// True when none of the 8 bytes needs escaping: each is printable ASCII
/// (0x20..=0x7e) and not a backslash. Bit tricks on a u64 (SWAR).
fn all_plain(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let above_tilde = (word.wrapping_add(ONES) | word) & HIGH;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let has_backslash = backslash.wrapping_sub(ONES) & !backslash & HIGH;
    below_space | above_tilde | has_backslash == 0
}

/// Lossless ASCII encoding (CONTRACT section 5): printable ASCII stays, `\`
/// doubles, CR/LF/TAB become `\r \n \t`, every other byte `\xHH`.
/// Text goes 8 bytes at a time; other bytes through a lookup table.
pub fn escape_transcript_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + bytes.len() / 4);
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let word = <[u8; 8]>::try_from(chunk)
            .map(u64::from_le_bytes)
            .unwrap_or(u64::MAX);
        if all_plain(word) {
            out.extend_from_slice(chunk);
        } else {
            escape_bytes(chunk, out);
        }
    }
    escape_bytes(words.remainder(), out);
}

/// Byte by byte through the table: one fixed 4-byte store per byte.
fn escape_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + bytes.len() * 4, 0);
    let buf = &mut out[start..];
    let mut w = 0;
    for &b in bytes {
        let (code, len) = ESCAPES[b as usize];
        buf[w..w + 4].copy_from_slice(&code);
        w += len as usize;
    }
    out.truncate(start + w);
}

pub fn escape_transcript(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    escape_transcript_into(bytes, &mut out);
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
}

/// Inverse of [`escape_transcript`]. Also accepts `\0`.
pub fn unescape_transcript(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let (byte, used) = decode_escape(&text[i + 1..])?;
        out.push(byte);
        i += 1 + used;
    }
    Ok(out)
}

/// Decodes the escape after a backslash; returns the byte and how many input
/// bytes it used.
fn decode_escape(rest: &[u8]) -> Result<(u8, usize), String> {
    match rest.first() {
        Some(b'r') => Ok((b'\r', 1)),
        Some(b'n') => Ok((b'\n', 1)),
        Some(b't') => Ok((b'\t', 1)),
        Some(b'0') => Ok((0, 1)),
        Some(b'\\') => Ok((b'\\', 1)),
        Some(b'x') => {
            let digits = rest.get(1..3).ok_or("\\x needs two hex digits")?;
            let s = std::str::from_utf8(digits).map_err(|_| "\\x needs two hex digits")?;
            let v = u8::from_str_radix(s, 16).map_err(|_| format!("\\x{s} is not two hex digits"))?;
            Ok((v, 3))
        }
        Some(&c) => Err(format!(
            "unknown escape \\{} (use \\r \\n \\t \\0 \\\\ or \\xHH)",
            char::from(c).escape_default()
        )),
        None => Err("a lone backslash ends the payload (write \\\\ for one)".to_string()),
    }
}

/// Decodes the `send` payload escapes `\r \n \t \0 \\ \xHH`.
pub fn decode_payload(text: &str) -> Result<Vec<u8>, CoreError> {
    unescape_transcript(text.as_bytes())
        .map_err(|e| CoreError::new(ErrorCode::PayloadInvalid, format!("payload {text:?}: {e}")))
}

/// Decodes `send --hex` digits: pairs of hex digits, spaces allowed anywhere
/// between pairs (`de ad be ef`, `deadbeef`).
pub fn decode_hex(text: &str) -> Result<Vec<u8>, CoreError> {
    let digits: String = text.split_whitespace().collect();
    hex::decode(&digits).map_err(|e| {
        CoreError::new(
            ErrorCode::PayloadInvalid,
            format!("hex payload {text:?}: {e} (expected pairs of hex digits like \"de ad be ef\")"),
        )
    })
}

/// Invisible characters that reorder or hide text (bidi overrides, zero
/// widths, the BOM): shown escaped so a line reads as what was received.
fn is_format_trick(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A form safe to print on a terminal: every control character (C0, DEL,
/// C1) is escaped, so no escape sequence from a peer is ever passed through.
/// Valid UTF-8 text stays readable; bytes that are not all UTF-8 are shown
/// as ASCII with `\xHH` for the rest (a binary chunk should not pose as text).
pub fn escape_display(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let text = std::str::from_utf8(bytes).ok();
    let push_byte = |out: &mut String, b: u8| {
        let _ = write!(out, "\\x{b:02x}");
    };
    match text {
        Some(text) => {
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\r' => out.push_str("\\r"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() || is_format_trick(c) => {
                        let mut buf = [0u8; 4];
                        for b in c.encode_utf8(&mut buf).bytes() {
                            push_byte(&mut out, b);
                        }
                    }
                    c => out.push(c),
                }
            }
        }
        None => {
            for &b in bytes {
                match b {
                    b'\\' => out.push_str("\\\\"),
                    b'\r' => out.push_str("\\r"),
                    b'\n' => out.push_str("\\n"),
                    b'\t' => out.push_str("\\t"),
                    0x20..0x7f => out.push(char::from(b)),
                    _ => push_byte(&mut out, b),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_round_trip_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        let enc = escape_transcript(&all);
        assert!(enc.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(unescape_transcript(enc.as_bytes()).unwrap(), all);
    }

    #[test]
    fn word_at_a_time_agrees_with_byte_at_a_time() {
        // Every byte value in every position of a word, among plain text.
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut data = b"abcdefghijklmnop".to_vec();
                data[pos] = b;
                let mut fast = Vec::new();
                escape_transcript_into(&data, &mut fast);
                let mut slow = Vec::new();
                escape_bytes(&data, &mut slow);
                assert_eq!(fast, slow, "byte {b:#x} at {pos}");
            }
        }
    }

    #[test]
    fn payload_escapes() {
        assert_eq!(decode_payload(r"a\r\n\t\0\\\x41").unwrap(), b"a\r\n\t\0\\A");
        let err = decode_payload(r"bad\q").unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadInvalid);
        assert!(err.text.contains("\\q"), "{}", err.text);
        assert!(decode_payload(r"\x4").is_err());
        assert!(decode_payload(r"\xzz").is_err());
        assert!(decode_payload("end\\").is_err());
    }

    #[test]
    fn hex_payloads() {
        assert_eq!(decode_hex("de ad be ef").unwrap(), vec![0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(decode_hex("0102").unwrap(), vec![1, 2]);
        assert_eq!(decode_hex("abc").unwrap_err().code, ErrorCode::PayloadInvalid);
        assert_eq!(decode_hex("zz").unwrap_err().code, ErrorCode::PayloadInvalid);
    }

    #[test]
    fn display_escapes_controls_keeps_text() {
        assert_eq!(escape_display(b"\x1b]0;pwn\x07ok"), "\\x1b]0;pwn\\x07ok");
        assert_eq!(escape_display("température".as_bytes()), "température");
        assert_eq!(escape_display(b"\xff"), "\\xff");
        // Not all UTF-8: no byte poses as a character.
        assert_eq!(escape_display(b"\xde\xad\xbe\xef"), "\\xde\\xad\\xbe\\xef");
        // Bidi overrides cannot reorder what is shown.
        assert_eq!(escape_display("a\u{202E}b".as_bytes()), "a\\xe2\\x80\\xaeb");
        // C1 control U+009B (CSI) is escaped too.
        assert_eq!(escape_display("\u{9b}2J".as_bytes()), "\\xc2\\x9b2J");
    }
}
