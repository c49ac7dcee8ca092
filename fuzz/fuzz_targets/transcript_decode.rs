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
    // As chunks written by muxcat, in each version: the first byte of each
    // piece says which way.
    for format in [transcript::Format::V1, transcript::Format::V2, transcript::Format::V3] {
        let header = transcript::header("sess-fuzz", "tcp", "a", "b", "line");
        let mut file = format.header(&header).into_bytes();
        file.push(b'\n');
        let (mut sent, mut received) = (Vec::new(), Vec::new());
        for piece in data.split(|&b| b == 0xff) {
            let Some((&way, chunk)) = piece.split_first() else {
                continue;
            };
            let mark = if way & 1 == 0 { Mark::In } else { Mark::Out };
            // v3: the piece repeated to an LZ4-sized chunk, so the frames
            // (made and read back) are fuzzed too; v2 covers short chunks.
            let repeated;
            let chunk = if format == transcript::Format::V3 && !chunk.is_empty() {
                repeated = chunk.repeat(transcript::LZ4_MIN.div_ceil(chunk.len()));
                &repeated[..]
            } else {
                chunk
            };
            transcript::format_line_as(format, &mut file, at(), mark, chunk);
            match mark {
                Mark::In => received.extend_from_slice(chunk),
                _ => sent.extend_from_slice(chunk),
            }
        }
        let parsed = transcript::parse(&file, "made.log").expect("a transcript muxcat writes reads back");
        assert_eq!(parsed.stream(Mark::In), received);
        assert_eq!(parsed.stream(Mark::Out), sent);
    }
});

/// A fixed time: the format is what is fuzzed, not the clock.
fn at() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(AT).map(|t| t.to_utc()).unwrap_or_default()
}
