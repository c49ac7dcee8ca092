//! Line splitting: whatever the bytes and however they are cut into reads,
//! the lines account for every input byte, no line is longer than the cap,
//! and the lines do not depend on the read boundaries.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use muxcat::core::framing::{Line, LineSplitter};

/// Feeds `stream` in reads whose sizes `seed` picks (0: one read); returns
/// the lines and the line-end bytes not yet counted in one.
fn split(stream: &[u8], seed: u8, cap: usize) -> (Vec<Line>, usize) {
    let mut splitter = LineSplitter::new(cap);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut step = seed as usize;
    while pos < stream.len() {
        step = if seed == 0 {
            stream.len()
        } else {
            (step * 31 + 7) % 13 + 1
        };
        let end = (pos + step).min(stream.len());
        splitter.push(&Bytes::copy_from_slice(&stream[pos..end]), &mut out);
        pos = end;
    }
    splitter.finish(&mut out);
    (out, splitter.unattributed())
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let cap = 1 + (seed as usize % 40);
    let (lines, unattributed) = split(stream, seed, cap);
    let (whole, _) = split(stream, 0, cap);
    let counted: usize = lines.iter().map(|l| l.count).sum();
    assert_eq!(counted + unattributed, stream.len());
    assert!(lines.iter().all(|l| l.content.len() <= cap));
    let contents = |ls: &[Line]| ls.iter().map(|l| l.content.clone()).collect::<Vec<_>>();
    assert_eq!(contents(&lines), contents(&whole));
});
