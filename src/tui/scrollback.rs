//! A session's scrollback: bounded in entries and bytes. For the hex views
//! each entry's extra rows (a chunk of 40 bytes is 3 hex rows: 2 extra) are
//! kept as prefix sums per direction, so any visible row of any view
//! (line, hex, hex for one direction only) is found by binary search:
//! drawing costs O(visible rows), never O(scrollback).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};

use crate::core::View;
pub use crate::transcript::Mark;

/// Bytes per hex dump row.
pub const HEX_WIDTH: usize = 16;

#[derive(Clone, Debug)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub mark: Mark,
    pub data: Bytes,
    /// Where `data` starts in its direction's stream (bytes received or
    /// sent before it), so hex offsets count over the session as a dump
    /// of the stream would. Set by [`Scrollback::push`].
    pub offset: u64,
}

impl Entry {
    pub fn new(at: DateTime<Utc>, mark: Mark, data: Bytes) -> Entry {
        Entry {
            at,
            mark,
            data,
            offset: 0,
        }
    }

    /// Rows in a hex dump; an event line is text, one row.
    pub fn hex_rows(&self) -> u64 {
        match self.mark {
            Mark::Event => 1,
            _ => self.data.len().div_ceil(HEX_WIDTH).max(1) as u64,
        }
    }
}

/// Whether `view` shows entries of this direction as a hex dump (the
/// others as text lines): all in `hex`, received only in `hex-in`, sent
/// only in `hex-out`, none in `line`.
pub fn shows_hex(view: View, mark: Mark) -> bool {
    match view {
        View::Line => false,
        View::Hex => true,
        View::HexIn => mark == Mark::In,
        View::HexOut => mark == Mark::Out,
    }
}

/// What one entry costs beyond its bytes: the entry, its prefix sums and
/// its allocation. A flood of empty lines is bounded by memory this way.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>() + std::mem::size_of::<Extra>() + 32;

fn held(entry: &Entry) -> usize {
    entry.data.len() + ENTRY_OVERHEAD
}

/// Hex rows beyond an entry's first, summed per direction (in, out, event).
type Extra = [u64; 3];

/// 0 for received, 1 for sent, none for events.
fn direction(mark: Mark) -> Option<usize> {
    match mark {
        Mark::In => Some(0),
        Mark::Out => Some(1),
        Mark::Event => None,
    }
}

fn slot(mark: Mark) -> usize {
    match mark {
        Mark::In => 0,
        Mark::Out => 1,
        Mark::Event => 2,
    }
}

#[derive(Debug)]
pub struct Scrollback {
    entries: VecDeque<Entry>,
    /// Extra rows before each entry, counted from the first entry ever pushed.
    extra_before: VecDeque<Extra>,
    extra_end: Extra,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// Entries dropped from memory (a recording keeps them).
    pub dropped: u64,
    /// Bytes received and sent so far: the next entry's offset.
    streamed: [u64; 2],
    /// The line still arriving in each direction (a prompt received; keys
    /// typed in raw mode with local echo), by its number counted from the
    /// first entry ever pushed: it grows, then completes in place.
    pending: [Option<u64>; 2],
    /// The entry the last change added or changed, by its number counted
    /// from the first entry ever pushed (what a line filter looks at).
    changed: Option<u64>,
}

impl Scrollback {
    pub fn new(max_entries: usize, max_bytes: usize) -> Scrollback {
        Scrollback {
            entries: VecDeque::new(),
            extra_before: VecDeque::new(),
            extra_end: [0; 3],
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
            dropped: 0,
            streamed: [0; 2],
            pending: [None; 2],
            changed: None,
        }
    }

    /// Adds the newest entry; returns how many entries the bounds dropped.
    pub fn push(&mut self, mut entry: Entry) -> u64 {
        let dropped = self.dropped;
        if let Some(n) = [Mark::In, Mark::Out].iter().position(|&m| m == entry.mark) {
            entry.offset = self.streamed[n];
            self.streamed[n] += entry.data.len() as u64;
        }
        self.extra_before.push_back(self.extra_end);
        self.extra_end[slot(entry.mark)] += entry.hex_rows() - 1;
        self.bytes += held(&entry);
        self.entries.push_back(entry);
        self.changed = Some(self.dropped + self.entries.len() as u64 - 1);
        self.trim();
        self.dropped - dropped
    }

    /// Bytes of a line that has not ended (received or typed): they extend
    /// that direction's pending entry, or start one.
    pub fn push_partial(&mut self, at: DateTime<Utc>, mark: Mark, data: &[u8]) -> u64 {
        if let Some(idx) = self.pending_index(mark) {
            // Grown in place when nothing else holds the bytes (the usual
            // case), so a line trickling in costs its length, not its square.
            self.replace(idx, |held| {
                let mut grown = held
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                grown.extend_from_slice(data);
                grown.freeze()
            });
            return 0;
        }
        let dropped = self.push(Entry::new(at, mark, Bytes::copy_from_slice(data)));
        if let Some(k) = direction(mark) {
            self.pending[k] = Some(self.dropped + self.entries.len() as u64 - 1);
        }
        dropped
    }

    /// A line ended: it completes its direction's pending entry in place
    /// (its time is when it started), or is pushed as a new one.
    pub fn push_line(&mut self, entry: Entry) -> u64 {
        match self.pending_index(entry.mark) {
            Some(idx) => {
                if let Some(k) = direction(entry.mark) {
                    self.pending[k] = None;
                }
                self.replace(idx, |_| entry.data);
                0
            }
            None => self.push(entry),
        }
    }

    /// Ends a direction's pending line as it is (typed keys reached a line end).
    pub fn end_pending(&mut self, mark: Mark) {
        if let Some(k) = direction(mark) {
            self.pending[k] = None;
        }
    }

    /// Whether entry `idx` is a line still arriving.
    pub fn is_pending(&self, idx: usize) -> bool {
        [Mark::In, Mark::Out]
            .iter()
            .any(|&m| self.pending_index(m) == Some(idx))
    }

    fn pending_index(&self, mark: Mark) -> Option<usize> {
        let abs = self.pending[direction(mark)?]?;
        let idx = abs.checked_sub(self.dropped)? as usize;
        (idx < self.entries.len()).then_some(idx)
    }

    /// Replaces an entry's bytes, keeping the bookkeeping right: bytes
    /// held, the hex rows of the entries after it, the stream offsets.
    fn replace(&mut self, idx: usize, make: impl FnOnce(Bytes) -> Bytes) {
        let old_rows = self.entries[idx].hex_rows();
        let old = std::mem::take(&mut self.entries[idx].data);
        let old_len = old.len();
        let data = make(old);
        self.bytes = self.bytes - old_len + data.len();
        let mark = self.entries[idx].mark;
        self.entries[idx].data = data;
        let new_rows = self.entries[idx].hex_rows();
        self.changed = Some(self.dropped + idx as u64);
        if let Some(n) = [Mark::In, Mark::Out].iter().position(|&m| m == mark) {
            self.streamed[n] = self.streamed[n] - old_len as u64 + self.entries[idx].data.len() as u64;
        }
        if new_rows != old_rows {
            let k = slot(mark);
            for extra in self.extra_before.iter_mut().skip(idx + 1) {
                extra[k] = extra[k] + new_rows - old_rows;
            }
            self.extra_end[k] = self.extra_end[k] + new_rows - old_rows;
        }
        self.trim();
    }

    /// Drops the oldest entries past the bounds (the newest one stays).
    fn trim(&mut self) {
        while self.entries.len() > self.max_entries || (self.bytes > self.max_bytes && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= held(&old);
                self.extra_before.pop_front();
                self.dropped += 1;
            }
        }
        if self.entries.capacity() > 2 * self.entries.len() + 64 {
            self.entries.shrink_to_fit();
            self.extra_before.shrink_to_fit();
        }
    }

    /// Keeps the newest entries that fit in `max_bytes` from now on (a
    /// closed session keeps a tail; its transcript keeps everything).
    pub fn shrink(&mut self, max_bytes: usize) {
        self.max_bytes = self.max_bytes.min(max_bytes.max(1));
        self.trim();
    }

    /// The entry the last change added or changed, counted from the first
    /// entry ever pushed (subtract [`Scrollback::dropped`] for its index).
    pub fn changed(&self) -> Option<u64> {
        self.changed
    }

    /// Memory held by the entries, in bytes.
    pub fn held(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&Entry> {
        self.entries.get(i)
    }

    /// Extra rows `view` shows in the sums `at`, relative to the oldest kept entry.
    fn shown_extra(&self, at: &Extra, view: View) -> u64 {
        let base = self.extra_before.front().unwrap_or(&self.extra_end);
        [Mark::In, Mark::Out, Mark::Event]
            .into_iter()
            .filter(|&m| shows_hex(view, m))
            .map(|m| at[slot(m)] - base[slot(m)])
            .sum()
    }

    /// Rows of the scrollback in `view`.
    pub fn rows(&self, view: View) -> u64 {
        self.entries.len() as u64 + self.shown_extra(&self.extra_end, view)
    }

    /// The first row of entry `idx` in `view`.
    pub fn row_of(&self, idx: usize, view: View) -> Option<u64> {
        Some(idx as u64 + self.shown_extra(self.extra_before.get(idx)?, view))
    }

    /// The entry and the row within it of row `row` of `view`.
    pub fn locate(&self, row: u64, view: View) -> Option<(usize, u64)> {
        if row >= self.rows(view) {
            return None;
        }
        // The last entry starting at or before `row` (row_of is monotonic).
        let (mut lo, mut hi) = (0, self.entries.len());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.row_of(mid, view)? <= row {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some((lo, row - self.row_of(lo, view)?))
    }

    /// Index of the newest entry at or before `from` matching, searching
    /// towards older entries (or newer ones with `newer`).
    pub fn find(&self, re: &regex::bytes::Regex, from: usize, newer: bool) -> Option<usize> {
        if newer {
            (from..self.entries.len()).find(|&i| re.is_match(&self.entries[i].data))
        } else {
            (0..=from.min(self.entries.len().checked_sub(1)?))
                .rev()
                .find(|&i| re.is_match(&self.entries[i].data))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry::new(Utc::now(), Mark::In, Bytes::from(vec![b'a'; n]))
    }

    #[test]
    fn hex_rows_are_located_by_prefix_sums() {
        let mut sb = Scrollback::new(100, 1 << 20);
        sb.push(entry(3)); // 1 row
        sb.push(entry(40)); // 3 rows
        sb.push(entry(0)); // 1 row
        assert_eq!(sb.rows(View::Hex), 5);
        assert_eq!(sb.rows(View::Line), 3);
        assert_eq!(sb.locate(0, View::Hex), Some((0, 0)));
        assert_eq!(sb.locate(1, View::Hex), Some((1, 0)));
        assert_eq!(sb.locate(3, View::Hex), Some((1, 2)));
        assert_eq!(sb.locate(4, View::Hex), Some((2, 0)));
        assert_eq!(sb.locate(5, View::Hex), None);
        assert_eq!(sb.row_of(2, View::Hex), Some(4));
        assert_eq!(sb.locate(2, View::Line), Some((2, 0)));
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let mut sb = Scrollback::new(3, 1 << 20);
        for _ in 0..10 {
            sb.push(entry(20));
        }
        assert_eq!(sb.len(), 3);
        assert_eq!(sb.dropped, 7);
        assert_eq!(sb.rows(View::Hex), 6);
        assert_eq!(sb.locate(0, View::Hex), Some((0, 0)));
        assert_eq!(sb.locate(5, View::Hex), Some((2, 1)));
        // Bytes count what an entry holds, its bookkeeping included.
        let mut sb = Scrollback::new(1000, 2 * (40 + ENTRY_OVERHEAD));
        for _ in 0..10 {
            sb.push(entry(40));
        }
        assert_eq!(sb.len(), 2);
        // A flood of empty lines is bounded by memory too.
        let mut sb = Scrollback::new(1_000_000, 1 << 20);
        for _ in 0..100_000 {
            sb.push(entry(0));
        }
        assert!(sb.held() <= 1 << 20);
        assert_eq!(sb.len(), (1 << 20) / ENTRY_OVERHEAD);
    }

    #[test]
    fn split_views_dump_one_direction_only() {
        let mut sb = Scrollback::new(100, 1 << 20);
        let push =
            |sb: &mut Scrollback, mark, n| sb.push(Entry::new(Utc::now(), mark, Bytes::from(vec![b'a'; n])));
        push(&mut sb, Mark::Out, 40); // 3 hex rows
        push(&mut sb, Mark::In, 20); // 2 hex rows
        push(&mut sb, Mark::Event, 33); // text: one row in every view
        push(&mut sb, Mark::In, 1);
        assert_eq!(sb.rows(View::Hex), 3 + 2 + 1 + 1);
        assert_eq!(sb.rows(View::HexIn), 1 + 2 + 1 + 1);
        assert_eq!(sb.rows(View::HexOut), 3 + 1 + 1 + 1);
        // hex-in: the sent chunk is one text row, the received one two hex rows.
        assert_eq!(sb.locate(0, View::HexIn), Some((0, 0)));
        assert_eq!(sb.locate(2, View::HexIn), Some((1, 1)));
        assert_eq!(sb.locate(3, View::HexIn), Some((2, 0)));
        assert_eq!(sb.locate(4, View::HexIn), Some((3, 0)));
        assert_eq!(sb.locate(3, View::HexOut), Some((1, 0)));
        assert_eq!(sb.row_of(3, View::HexOut), Some(5));
        // Dropping old entries keeps every view's rows right.
        let mut small = Scrollback::new(2, 1 << 20);
        push(&mut small, Mark::In, 40);
        push(&mut small, Mark::Out, 40);
        push(&mut small, Mark::In, 17);
        assert_eq!(small.rows(View::HexIn), 1 + 2);
        assert_eq!(small.rows(View::HexOut), 3 + 1);
        assert_eq!(small.locate(3, View::HexOut), Some((1, 0)));
    }

    #[test]
    fn hex_offsets_count_each_direction_over_the_session() {
        let mut sb = Scrollback::new(2, 1 << 20);
        let mut push = |mark, n| sb.push(Entry::new(Utc::now(), mark, Bytes::from(vec![b'a'; n])));
        push(Mark::In, 20);
        push(Mark::Out, 5);
        push(Mark::Event, 50);
        push(Mark::In, 7);
        push(Mark::Out, 3);
        // The first two entries were dropped; offsets still count them.
        assert_eq!(sb.get(0).map(|e| (e.mark, e.offset)), Some((Mark::In, 20)));
        assert_eq!(sb.get(1).map(|e| (e.mark, e.offset)), Some((Mark::Out, 5)));
    }

    #[test]
    fn search_both_ways() {
        let mut sb = Scrollback::new(100, 1 << 20);
        for t in ["alpha", "beta", "alpha2", "gamma"] {
            sb.push(Entry::new(Utc::now(), Mark::In, Bytes::from(t)));
        }
        let re = regex::bytes::Regex::new("alpha").unwrap();
        assert_eq!(sb.find(&re, 3, false), Some(2));
        assert_eq!(sb.find(&re, 1, false), Some(0));
        assert_eq!(sb.find(&re, 1, true), Some(2));
        assert_eq!(sb.find(&re, 3, true), None);
    }
}
