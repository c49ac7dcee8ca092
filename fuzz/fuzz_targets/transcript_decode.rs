//! Transcript reading: any file is read up to its first bad line or
//! refused with a reason naming the line, never a panic; a transcript made
//! of any byte chunks reads back to exactly those bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxcat::transcript::{self, Mark};

/// A fixed timestamp: the format is what is fuzzed, not the clock.
const AT: &str = "2026-11-24T00:00:00.000000Z";

fuzz_target!(|data: &[u8]| {
    // As a file: whatever it holds.
    if let Ok(parsed) = transcript::parse_lenient(data, "fuzz.log") {
        if let Some(e) = &parsed.error {
            assert!(e.contains("fuzz.log"), "{e}");
        }
    }
    // As chunks written by muxcat: the first byte of each piece says which way.
    let mut file = transcript::header("sess-fuzz", "tcp", "a", "b", "line").into_bytes();
    file.push(b'\n');
    let (mut sent, mut received) = (Vec::new(), Vec::new());
    for piece in data.split(|&b| b == 0xff) {
        let Some((&way, chunk)) = piece.split_first() else {
            continue;
        };
        let mark = if way & 1 == 0 { Mark::In } else { Mark::Out };
        let line = format!(
            "{AT} {} {}\n",
            mark.symbol(),
            muxcat::core::escape::escape_transcript(chunk)
        );
        file.extend_from_slice(line.as_bytes());
        match mark {
            Mark::In => received.extend_from_slice(chunk),
            _ => sent.extend_from_slice(chunk),
        }
    }
    let parsed = transcript::parse(&file, "made.log").expect("a transcript muxcat writes reads back");
    assert_eq!(parsed.stream(Mark::In), received);
    assert_eq!(parsed.stream(Mark::Out), sent);
});
