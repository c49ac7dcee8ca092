//! `filter [SESSION] [-v] REGEX`: which of a session's entries the panes
//! show. Nothing is dropped — the scrollback and the transcript keep every
//! line; the filter keeps the numbers of the entries it shows, updated as
//! each entry arrives or grows, so a filtered pane draws in O(visible
//! rows) as an unfiltered one does. Event lines (`*`) always show: they
//! explain the gaps (a reconnect, a close).

use std::collections::VecDeque;

use super::scrollback::{Entry, Mark, Scrollback};
use crate::lang::FilterRule;

#[derive(Debug)]
pub struct LineFilter {
    pub rule: FilterRule,
    regex: regex::bytes::Regex,
    /// The entries shown, by number counted from the first entry ever
    /// pushed, oldest first.
    shown: VecDeque<u64>,
}

impl LineFilter {
    /// A filter over what `scrollback` holds now (its one full pass).
    pub fn new(rule: FilterRule, scrollback: &Scrollback) -> Result<LineFilter, String> {
        let regex = regex::bytes::Regex::new(&rule.regex).map_err(|e| format!("filter: {e}"))?;
        let mut filter = LineFilter {
            rule,
            regex,
            shown: VecDeque::new(),
        };
        let first = scrollback.dropped;
        filter.shown = (0..scrollback.len())
            .filter(|&i| scrollback.get(i).is_some_and(|e| filter.keeps(e)))
            .map(|i| first + i as u64)
            .collect();
        Ok(filter)
    }

    /// Whether the filter shows this entry. A line is matched without
    /// its end, so `OK$` matches `OK\r\n`.
    fn keeps(&self, e: &Entry) -> bool {
        if e.mark == Mark::Event {
            return true;
        }
        let body = e.data.strip_suffix(b"\n").unwrap_or(&e.data);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        self.regex.is_match(body) != self.rule.invert
    }

    /// Follows a change of the scrollback (an entry added, or a pending
    /// line grown or completed, and the oldest entries dropped); returns
    /// how many shown entries the bounds dropped.
    pub fn update(&mut self, scrollback: &Scrollback) -> u64 {
        let first = scrollback.dropped;
        let mut dropped = 0;
        while self.shown.front().is_some_and(|&n| n < first) {
            self.shown.pop_front();
            dropped += 1;
        }
        let Some(n) = scrollback.changed().filter(|&n| n >= first) else {
            return dropped;
        };
        let Some(e) = scrollback.get((n - first) as usize) else {
            return dropped;
        };
        // Almost always at the end: a new entry, or the line still arriving.
        let at = self.shown.partition_point(|&m| m < n);
        let present = self.shown.get(at) == Some(&n);
        match (present, self.keeps(e)) {
            (false, true) => self.shown.insert(at, n),
            (true, false) => {
                self.shown.remove(at);
            }
            _ => {}
        }
        dropped
    }

    /// Rows a filtered pane has: one per shown entry (it scrolls by entries).
    pub fn rows(&self) -> u64 {
        self.shown.len() as u64
    }

    /// Entries the filter hides of those the scrollback holds.
    pub fn hidden(&self, scrollback: &Scrollback) -> usize {
        scrollback.len().saturating_sub(self.shown.len())
    }

    /// The scrollback index of shown row `row`.
    pub fn entry(&self, row: u64, scrollback: &Scrollback) -> Option<usize> {
        let n = *self.shown.get(row as usize)?;
        n.checked_sub(scrollback.dropped).map(|i| i as usize)
    }

    /// The shown row of scrollback index `idx` (of the next shown entry
    /// when it is hidden).
    pub fn row_of(&self, idx: usize, scrollback: &Scrollback) -> u64 {
        let n = scrollback.dropped + idx as u64;
        self.shown.partition_point(|&m| m < n) as u64
    }

    pub fn shows(&self, idx: usize, scrollback: &Scrollback) -> bool {
        let n = scrollback.dropped + idx as u64;
        self.shown.binary_search(&n).is_ok()
    }

    /// `ERROR` or `-v DEBUG`, for titles and listings.
    pub fn describe(&self) -> String {
        format!(
            "{}/{}/",
            if self.rule.invert { "-v " } else { "" },
            crate::core::escape::escape_display(self.rule.regex.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use chrono::Utc;

    fn line(sb: &mut Scrollback, f: Option<&mut LineFilter>, text: &str) -> u64 {
        sb.push(Entry::new(
            Utc::now(),
            Mark::In,
            Bytes::copy_from_slice(text.as_bytes()),
        ));
        f.map_or(0, |f| f.update(sb))
    }

    fn rule(regex: &str, invert: bool) -> FilterRule {
        FilterRule {
            regex: regex.into(),
            invert,
        }
    }

    #[test]
    fn shows_matching_lines_and_events_and_follows_new_ones() {
        let mut sb = Scrollback::new(100, 1 << 20);
        for l in ["boot\n", "ERROR disk\r\n", "ok\n"] {
            line(&mut sb, None, l);
        }
        sb.push(Entry::new(
            Utc::now(),
            Mark::Event,
            Bytes::from_static(b"reconnected"),
        ));
        let mut f = LineFilter::new(rule("(?i)error( disk)?$", false), &sb).unwrap();
        assert_eq!(f.rows(), 2);
        assert_eq!(f.hidden(&sb), 2);
        assert_eq!(f.entry(0, &sb), Some(1));
        assert_eq!(f.entry(1, &sb), Some(3));
        line(&mut sb, Some(&mut f), "another error\n");
        line(&mut sb, Some(&mut f), "fine\n");
        assert_eq!(f.rows(), 3);
        assert!(f.shows(4, &sb) && !f.shows(5, &sb));
        assert_eq!(f.row_of(2, &sb), 1);
        let mut v = LineFilter::new(rule("error", true), &sb).unwrap();
        assert_eq!(v.rows(), 5);
        line(&mut sb, Some(&mut v), "error again\n");
        assert_eq!(v.rows(), 5);
    }

    #[test]
    fn a_line_still_arriving_shows_once_it_matches_and_bounds_drop_shown_rows() {
        let mut sb = Scrollback::new(3, 1 << 20);
        let mut f = LineFilter::new(rule("^Password", false), &sb).unwrap();
        sb.push_partial(Utc::now(), Mark::In, b"Pass");
        f.update(&sb);
        assert_eq!(f.rows(), 0);
        sb.push_partial(Utc::now(), Mark::In, b"word: ");
        f.update(&sb);
        assert_eq!(f.rows(), 1);
        sb.push_line(Entry::new(
            Utc::now(),
            Mark::In,
            Bytes::from_static(b"Password: x\n"),
        ));
        f.update(&sb);
        assert_eq!(f.rows(), 1);
        let mut dropped = 0;
        for _ in 0..3 {
            dropped += line(&mut sb, Some(&mut f), "Password again\n");
        }
        assert_eq!((dropped, f.rows()), (1, 3));
        assert_eq!(f.entry(0, &sb), Some(0));
    }
}
