//! Property tests of the round trips the contract promises: escaping,
//! transcript lines, and line splitting across arbitrary chunk boundaries.

use bytes::Bytes;
use chrono::Utc;
use muxcat::core::escape::{escape_display, escape_transcript, unescape_transcript};
use muxcat::core::framing::{Line, LineSplitter};
use muxcat::lang::decode_payload;
use muxcat::lang::words;
use muxcat::transcript::{self, Mark};
use proptest::prelude::*;

/// Splits `data` at the given cut points (sorted, deduplicated, in range).
fn cut(data: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(Bytes::copy_from_slice(&data[last..p]));
        last = p;
    }
    out.push(Bytes::copy_from_slice(&data[last..]));
    out
}

fn split(chunks: &[Bytes], cap: usize) -> Vec<Line> {
    split_counted(chunks, cap).0
}

/// The lines, and the line-end bytes not yet counted in any line.
fn split_counted(chunks: &[Bytes], cap: usize) -> (Vec<Line>, usize) {
    let mut s = LineSplitter::new(cap);
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, &mut out);
    }
    s.finish(&mut out);
    (out, s.unattributed())
}

/// Bytes heavy in line ends.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()],
        0..300,
    )
}

proptest! {
    #[test]
    fn transcript_escaping_round_trips(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        let enc = escape_transcript(&data);
        prop_assert!(enc.bytes().all(|b| (0x20..0x7f).contains(&b)));
        prop_assert_eq!(unescape_transcript(enc.as_bytes()).unwrap(), data.clone());
        // What a transcript stores decodes to the same bytes too.
        prop_assert_eq!(decode_payload(&enc).unwrap(), data);
    }

    #[test]
    fn display_never_emits_control_characters(data in prop::collection::vec(any::<u8>(), 0..500)) {
        let shown = escape_display(&data);
        prop_assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn transcript_lines_round_trip(chunks in prop::collection::vec((0..3u8, prop::collection::vec(any::<u8>(), 0..200)), 0..20)) {
        let mut text = format!("{}\n", transcript::header("sess-x", "tcp", "a", "b", "line")).into_bytes();
        let marks = [Mark::In, Mark::Out, Mark::Event];
        for (m, data) in &chunks {
            transcript::format_line(&mut text, Utc::now(), marks[*m as usize], data);
        }
        let parsed = transcript::parse(&text, "t").unwrap();
        let got: Vec<(Mark, Vec<u8>)> = parsed.entries.into_iter().map(|e| (e.mark, e.data)).collect();
        let want: Vec<(Mark, Vec<u8>)> = chunks.iter().map(|(m, d)| (marks[*m as usize], d.clone())).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn line_splitting_does_not_depend_on_chunk_boundaries(
        data in line_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        cap in 1usize..64,
    ) {
        let whole = split(&[Bytes::from(data.clone())], cap);
        let (pieces, unattributed) = split_counted(&cut(&data, &cuts), cap);
        let contents = |ls: &[Line]| ls.iter().map(|l| l.content.to_vec()).collect::<Vec<_>>();
        // CR LF split across reads is one terminator whatever the cut.
        prop_assert_eq!(contents(&whole), contents(&pieces));
        // Nothing is lost: contents plus terminators add up to the input.
        let total: usize = pieces.iter().map(|l| l.count).sum();
        prop_assert_eq!(total + unattributed, data.len());
        prop_assert!(pieces.iter().all(|l| l.content.len() <= cap));
        prop_assert!(pieces.iter().all(|l| !l.content.contains(&b'\n') && !l.content.contains(&b'\r')));
    }

    #[test]
    fn word_splitting_never_panics(line in "\\PC{0,80}") {
        let _ = words::split(&line);
        let _ = muxcat::lang::parse_line(&line);
    }
}
