//! Payload escapes and hex: decode anything without panicking, and the
//! transcript escaping round-trips every byte string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxcat::core::escape::{escape_display, escape_transcript, unescape_transcript};
use muxcat::lang::{decode_hex, decode_payload};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = decode_payload(&text);
    if let Ok(bytes) = decode_hex(&text) {
        assert!(bytes.len() * 2 <= text.len());
    }
    let escaped = escape_transcript(data);
    assert!(escaped.bytes().all(|b| (0x20..0x7f).contains(&b)), "{escaped:?}");
    assert_eq!(unescape_transcript(escaped.as_bytes()).as_deref(), Ok(data));
    let shown = escape_display(data);
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
});
