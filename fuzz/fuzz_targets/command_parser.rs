//! Any line of the command language: parsed or refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Err(e) = muxcat::lang::parse_line(&line) {
        // Errors name what failed.
        assert!(!e.text.is_empty());
    }
    // Word splitting on its own too (the TUI completes on partial lines).
    let _ = muxcat::lang::words::split(&line);
});
