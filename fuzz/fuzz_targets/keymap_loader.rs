//! Keymap files: any text is loaded or refused with an error naming the
//! file, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use muxcat::tui::keymap::Keymap;

static DEFAULT: OnceLock<Keymap> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut map = DEFAULT
        .get_or_init(|| Keymap::load(None).expect("the built-in keymap loads"))
        .clone();
    if let Err(e) = map.overlay(&text, "fuzz.toml") {
        assert!(e.to_string().contains("fuzz.toml"), "{e}");
    }
    // Whatever was bound, the map still prints.
    let _ = map.dump();
});
