//! Byte escaping: the lossless transcript encoding (also what `send`
//! payload escapes decode with), and the safe display form that never lets
//! a peer's bytes reach a terminal raw. A leaf: it uses nothing of the core.

use std::fmt::Write as _;

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

/// How many bytes [`escape_transcript_to_slice`] may touch for `n` input
/// bytes: 4 per byte at worst, plus the slack of its fixed-size stores.
pub const fn escaped_room(n: usize) -> usize {
    n * 4 + 68
}

/// Lossless ASCII encoding (CONTRACT section 5): printable ASCII stays, `\`
/// doubles, CR/LF/TAB become `\r \n \t`, every other byte `\xHH`.
pub fn escape_transcript_into(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + escaped_room(bytes.len()), 0);
    let written = escape_transcript_to_slice(bytes, &mut out[start..]);
    out.truncate(start + written);
}

/// [`escape_transcript_into`] for a caller that keeps one buffer of at
/// least [`escaped_room`] bytes (so nothing is zeroed per call); returns how
/// many bytes of `out` hold the encoding.
///
/// Sixteen bytes at a time: a block without escapes is one 16-byte store;
/// in a block with a few, each plain run is one 16-byte store from the input
/// (only the run's length counts) and each escape one 4-byte store; a block
/// of mostly escapes goes to `escape_dense`. Fixed-size stores only, so no
/// call to memcpy on the hot path.
pub fn escape_transcript_to_slice(bytes: &[u8], out: &mut [u8]) -> usize {
    let mut w = 0;
    let mut r = 0;
    // The 16-byte stores of a plain run read up to 16 bytes past the block.
    while r + 32 <= bytes.len() {
        let block: &[u8; 16] = match bytes[r..r + 16].try_into() {
            Ok(b) => b,
            Err(_) => break,
        };
        let mut mask = escape_mask16(block);
        if mask == 0 {
            out[w..w + 16].copy_from_slice(block);
            w += 16;
        } else if more_than_three(mask) {
            w += escape_dense(block, mask, &mut out[w..]);
        } else {
            let mut plain = 0;
            while mask != 0 {
                let at = mask.trailing_zeros() as usize;
                out[w..w + 16].copy_from_slice(&bytes[r + plain..r + plain + 16]);
                w += at - plain;
                let (code, len) = ESCAPES[bytes[r + at] as usize];
                out[w..w + 4].copy_from_slice(&code);
                w += len as usize;
                plain = at + 1;
                mask &= mask - 1;
            }
            out[w..w + 16].copy_from_slice(&bytes[r + plain..r + plain + 16]);
            w += 16 - plain;
        }
        r += 16;
    }
    w + escape_bytes(&bytes[r..], &mut out[w..])
}

/// Bit i set when byte i of the block needs escaping: three SSE2 compares
/// and a movemask (SSE2 is part of every x86-64; `safe_arch` wraps the
/// intrinsics safely).
#[cfg(target_arch = "x86_64")]
fn escape_mask16(block: &[u8; 16]) -> u32 {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, cmp_lt_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let v = load_unaligned_m128i(block);
    // Signed: below 0x20 is the C0 controls and every byte from 0x80.
    let control = cmp_lt_mask_i8_m128i(v, set_splat_i8_m128i(0x20));
    let del = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(0x7f));
    let backslash = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8));
    move_mask_i8_m128i(control | del | backslash) as u32
}

/// The 64 bytes `\xHH…` of a block whose 16 bytes all take that form (a
/// run of zeros, 0xff padding, binary headers), or None: hex digits for
/// all 16 at once and interleaved with the `\x` prefixes, no table.
#[cfg(target_arch = "x86_64")]
#[inline(never)] // out of the text loop, which it would make slower
fn all_hex_form(block: &[u8; 16]) -> Option<[[u8; 16]; 4]> {
    use safe_arch::{
        add_i8_m128i, cmp_eq_mask_i8_m128i, cmp_gt_mask_i8_m128i, cmp_lt_mask_i8_m128i, load_unaligned_m128i,
        move_mask_i8_m128i, set_splat_i8_m128i, set_splat_i16_m128i, shr_imm_u16_m128i, unpack_high_i8_m128i,
        unpack_high_i16_m128i, unpack_low_i8_m128i, unpack_low_i16_m128i,
    };
    let v = load_unaligned_m128i(block);
    let splat = |b: u8| set_splat_i8_m128i(b as i8);
    let hex_form = cmp_lt_mask_i8_m128i(v, splat(0x20)) | cmp_eq_mask_i8_m128i(v, splat(0x7f));
    let short = cmp_eq_mask_i8_m128i(v, splat(b'\r'))
        | cmp_eq_mask_i8_m128i(v, splat(b'\n'))
        | cmp_eq_mask_i8_m128i(v, splat(b'\t'));
    if move_mask_i8_m128i(hex_form) != 0xffff || move_mask_i8_m128i(short) != 0 {
        return None;
    }
    let digit = |n| {
        let letter = cmp_gt_mask_i8_m128i(n, splat(9)) & splat(b'a' - b'0' - 10);
        add_i8_m128i(add_i8_m128i(n, splat(b'0')), letter)
    };
    let high = digit(shr_imm_u16_m128i::<4>(v) & splat(0x0f));
    let low = digit(v & splat(0x0f));
    // h0 l0 h1 l1 …, then each pair behind a `\x`.
    let (first, second) = (unpack_low_i8_m128i(high, low), unpack_high_i8_m128i(high, low));
    let prefix = set_splat_i16_m128i(i16::from_le_bytes([b'\\', b'x']));
    Some([
        unpack_low_i16_m128i(prefix, first).into(),
        unpack_high_i16_m128i(prefix, first).into(),
        unpack_low_i16_m128i(prefix, second).into(),
        unpack_high_i16_m128i(prefix, second).into(),
    ])
}

#[cfg(not(target_arch = "x86_64"))]
fn all_hex_form(_block: &[u8; 16]) -> Option<[[u8; 16]; 4]> {
    None
}

#[cfg(not(target_arch = "x86_64"))]
use escape_mask16_portable as escape_mask16;

/// Bit i set when byte i of the block needs escaping (portable form).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn escape_mask16_portable(block: &[u8; 16]) -> u32 {
    let mut mask = 0u32;
    for (i, &b) in block.iter().enumerate() {
        let needs = (b.wrapping_sub(0x20) > 0x5e) | (b == b'\\');
        mask |= u32::from(needs) << i;
    }
    mask
}

/// A block of mostly escapes: all `\xHH` at once when every byte takes that
/// form, else through the table. Into a fixed 68-byte window
/// and with the offset masked to 6 bits (a no-op: 15 codes take at most 60
/// bytes) so the compiler sees every store in bounds and checks none.
fn escape_dense(block: &[u8; 16], mask: u32, out: &mut [u8]) -> usize {
    let Some(Ok(window)) = out.get_mut(..68).map(<&mut [u8; 68]>::try_from) else {
        return escape_bytes(block, out);
    };
    if mask == 0xffff
        && let Some(codes) = all_hex_form(block)
    {
        window[..64].copy_from_slice(codes.as_flattened());
        return 64;
    }
    let mut w = 0;
    for &b in block {
        let (code, len) = ESCAPES[b as usize];
        let at = w & 63;
        window[at..at + 4].copy_from_slice(&code);
        w += len as usize;
    }
    w
}

/// More than three bits set (no popcnt instruction on baseline x86-64):
/// clears the lowest three and looks at what is left.
fn more_than_three(mask: u32) -> bool {
    let mask = mask & mask.wrapping_sub(1);
    let mask = mask & mask.wrapping_sub(1);
    let mask = mask & mask.wrapping_sub(1);
    mask != 0
}

/// Byte by byte through the table: one fixed 4-byte store per byte.
fn escape_bytes(bytes: &[u8], out: &mut [u8]) -> usize {
    let mut w = 0;
    for &b in bytes {
        let (code, len) = ESCAPES[b as usize];
        out[w..w + 4].copy_from_slice(&code);
        w += len as usize;
    }
    w
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

/// Invisible characters that reorder or hide text (bidi overrides, zero
/// widths, the BOM): shown escaped so a line reads as what was received.
fn is_format_trick(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Text the operator wrote (a command line, a status), safe to print: only
/// control and format characters are escaped, so `send AT\r\n` reads as
/// typed, not with doubled backslashes.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(|c| c.is_control() || is_format_trick(c)) {
        std::borrow::Cow::Owned(escape_display(text.as_bytes()))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// A form safe to print on a terminal: every control character (C0, DEL,
/// C1) is escaped, so no escape sequence from a peer is ever passed through.
/// Valid UTF-8 text stays readable; bytes that are not all UTF-8 are shown
/// as ASCII with `\xHH` for the rest (a binary chunk should not pose as text).
pub fn escape_display(bytes: &[u8]) -> String {
    // Plain printable ASCII (most lines of text) is itself: one pass that
    // vectorizes, one copy.
    if bytes.iter().all(|&b| b.wrapping_sub(0x20) < 0x5f && b != b'\\')
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return text.to_string();
    }
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
    fn block_at_a_time_agrees_with_byte_at_a_time() {
        // Every byte value in every position of a block, among plain text,
        // alone and beside a second escape.
        for b in 0..=255u8 {
            for pos in 0..16 {
                for other in [None, Some((pos + 5) % 16)] {
                    let mut data = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN".to_vec();
                    data[pos] = b;
                    if let Some(at) = other {
                        data[at] = b'\n';
                    }
                    let mut fast = Vec::new();
                    escape_transcript_into(&data, &mut fast);
                    assert_eq!(fast, reference(&data), "byte {b:#x} at {pos}, other {other:?}");
                }
            }
        }
    }

    /// The contract's encoding, one byte at a time, as plainly as it reads.
    fn reference(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x20..=0x7e => out.push(b),
                _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        out
    }

    #[test]
    fn every_density_and_length_agrees_with_the_reference() {
        // Plain text with 0..=8 escapes sprinkled per 8 bytes, every length
        // up to 140 (blocks, the tail and the look-ahead of plain runs).
        let mut x: u32 = 12345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for density in 0..=8u32 {
            for len in 0..140 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        let r = next();
                        if r % 8 < density {
                            (r >> 8) as u8
                        } else {
                            b'a' + (r >> 8) as u8 % 26
                        }
                    })
                    .collect();
                let mut fast = b"prefix ".to_vec();
                escape_transcript_into(&data, &mut fast);
                let mut want = b"prefix ".to_vec();
                want.extend(reference(&data));
                assert_eq!(fast, want, "density {density} len {len}: {data:?}");
            }
        }
    }

    #[test]
    fn blocks_of_hex_escapes_agree_with_the_reference() {
        // Runs of one value, and mixes of the values written as \xHH, with
        // a byte of another form dropped into each position.
        let hex_form: Vec<u8> = (0..=255u8)
            .filter(|&b| !(0x20..0x7f).contains(&b) && !b"\r\n\t".contains(&b))
            .collect();
        let mut blocks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b; 40]).collect();
        blocks.extend(
            hex_form
                .chunks(16)
                .map(|c| c.iter().cycle().take(40).copied().collect()),
        );
        for block in blocks {
            for odd in [None, Some((b'\n', 3)), Some((b'A', 15)), Some((b'\\', 0))] {
                let mut data = block.clone();
                if let Some((b, at)) = odd {
                    data[at] = b;
                }
                let mut fast = Vec::new();
                escape_transcript_into(&data, &mut fast);
                assert_eq!(fast, reference(&data), "{data:?}");
            }
        }
    }

    #[test]
    fn block_masks_agree() {
        for b in 0..=255u8 {
            for pos in 0..16 {
                let mut block = *b"abcdefghijklmnop";
                block[pos] = b;
                assert_eq!(
                    escape_mask16(&block),
                    escape_mask16_portable(&block),
                    "{b:#x} at {pos}"
                );
            }
        }
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
