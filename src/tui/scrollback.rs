//! A session's scrollback: bounded in entries and bytes, with the hex-dump
//! row count of every entry kept as prefix sums so any visible hex row is
//! found by binary search — drawing costs O(visible rows), never O(scrollback).

use std::collections::VecDeque;

use bytes::Bytes;
use chrono::{DateTime, Utc};

pub use crate::transcript::Mark;

/// Bytes per hex dump row.
pub const HEX_WIDTH: usize = 16;

#[derive(Clone, Debug)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub mark: Mark,
    pub data: Bytes,
}

impl Entry {
    pub fn hex_rows(&self) -> u64 {
        self.data.len().div_ceil(HEX_WIDTH).max(1) as u64
    }
}

#[derive(Debug)]
pub struct Scrollback {
    entries: VecDeque<Entry>,
    /// Hex rows before each entry, counted from the first entry ever pushed.
    hex_before: VecDeque<u64>,
    hex_end: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// Entries dropped from memory (a recording keeps them).
    pub dropped: u64,
}

impl Scrollback {
    pub fn new(max_entries: usize, max_bytes: usize) -> Scrollback {
        Scrollback {
            entries: VecDeque::new(),
            hex_before: VecDeque::new(),
            hex_end: 0,
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
            dropped: 0,
        }
    }

    pub fn push(&mut self, entry: Entry) {
        self.hex_before.push_back(self.hex_end);
        self.hex_end += entry.hex_rows();
        self.bytes += entry.data.len();
        self.entries.push_back(entry);
        while self.entries.len() > self.max_entries || (self.bytes > self.max_bytes && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.data.len();
                self.hex_before.pop_front();
                self.dropped += 1;
            }
        }
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

    fn hex_base(&self) -> u64 {
        self.hex_before.front().copied().unwrap_or(self.hex_end)
    }

    /// Rows of the hex view.
    pub fn hex_rows(&self) -> u64 {
        self.hex_end - self.hex_base()
    }

    /// The entry and the row within it of hex view row `row`.
    pub fn hex_locate(&self, row: u64) -> Option<(usize, u64)> {
        let abs = self.hex_base() + row;
        if abs >= self.hex_end {
            return None;
        }
        // The last entry starting at or before `abs`.
        let idx = self.hex_before.partition_point(|&b| b <= abs).checked_sub(1)?;
        Some((idx, abs - self.hex_before[idx]))
    }

    /// The first hex row of entry `idx`.
    pub fn hex_row_of(&self, idx: usize) -> Option<u64> {
        Some(self.hex_before.get(idx)? - self.hex_base())
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
        Entry {
            at: Utc::now(),
            mark: Mark::In,
            data: Bytes::from(vec![b'a'; n]),
        }
    }

    #[test]
    fn hex_rows_are_located_by_prefix_sums() {
        let mut sb = Scrollback::new(100, 1 << 20);
        sb.push(entry(3)); // 1 row
        sb.push(entry(40)); // 3 rows
        sb.push(entry(0)); // 1 row
        assert_eq!(sb.hex_rows(), 5);
        assert_eq!(sb.hex_locate(0), Some((0, 0)));
        assert_eq!(sb.hex_locate(1), Some((1, 0)));
        assert_eq!(sb.hex_locate(3), Some((1, 2)));
        assert_eq!(sb.hex_locate(4), Some((2, 0)));
        assert_eq!(sb.hex_locate(5), None);
        assert_eq!(sb.hex_row_of(2), Some(4));
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let mut sb = Scrollback::new(3, 1 << 20);
        for _ in 0..10 {
            sb.push(entry(20));
        }
        assert_eq!(sb.len(), 3);
        assert_eq!(sb.dropped, 7);
        assert_eq!(sb.hex_rows(), 6);
        assert_eq!(sb.hex_locate(0), Some((0, 0)));
        assert_eq!(sb.hex_locate(5), Some((2, 1)));
        let mut sb = Scrollback::new(1000, 100);
        for _ in 0..10 {
            sb.push(entry(40));
        }
        assert_eq!(sb.len(), 2);
    }

    #[test]
    fn search_both_ways() {
        let mut sb = Scrollback::new(100, 1 << 20);
        for t in ["alpha", "beta", "alpha2", "gamma"] {
            sb.push(Entry {
                at: Utc::now(),
                mark: Mark::In,
                data: Bytes::from(t),
            });
        }
        let re = regex::bytes::Regex::new("alpha").unwrap();
        assert_eq!(sb.find(&re, 3, false), Some(2));
        assert_eq!(sb.find(&re, 1, false), Some(0));
        assert_eq!(sb.find(&re, 1, true), Some(2));
        assert_eq!(sb.find(&re, 3, true), None);
    }
}
