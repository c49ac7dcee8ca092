//! The message log (as vim's `:messages`): every status line, long error
//! texts the status line cuts, and the output of `sessions`, `listeners`
//! and `triggers`, kept in order, bounded in bytes, opened over the panes
//! to scroll and search.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

/// What the log keeps; past it the oldest lines go.
pub const MESSAGES_BYTES: usize = 1024 * 1024;
/// What one line costs beyond its text.
const LINE_OVERHEAD: usize = 64;

#[derive(Clone, Debug)]
pub struct Message {
    pub at: DateTime<Utc>,
    pub error: bool,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct Messages {
    lines: VecDeque<Message>,
    held: usize,
    /// Lines up from the newest shown one; 0 shows the newest.
    pub scroll: usize,
    /// Only lines matching this are shown (`/` in the log).
    pub filter: Option<regex::Regex>,
}

impl Messages {
    /// Adds a message, one line per line of `text`.
    pub fn push(&mut self, at: DateTime<Utc>, error: bool, text: &str) {
        for line in text.lines() {
            self.held += line.len() + LINE_OVERHEAD;
            self.lines.push_back(Message {
                at,
                error,
                text: line.to_string(),
            });
        }
        while self.held > MESSAGES_BYTES {
            let Some(old) = self.lines.pop_front() else { break };
            self.held -= old.text.len() + LINE_OVERHEAD;
        }
    }

    /// Whether the newest line is `text`.
    pub fn ends_with(&self, text: &str) -> bool {
        self.lines.back().is_some_and(|m| m.text == text)
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The lines the filter lets through, oldest first.
    pub fn shown(&self) -> Vec<&Message> {
        self.lines
            .iter()
            .filter(|m| self.filter.as_ref().is_none_or(|re| re.is_match(&m.text)))
            .collect()
    }

    /// Scrolls by `delta` lines (positive: older), within what is shown
    /// in a window of `height` rows.
    pub fn scroll_by(&mut self, delta: i64, height: usize) {
        let max = self.shown().len().saturating_sub(height) as i64;
        self.scroll = (self.scroll as i64 + delta).clamp(0, max) as usize;
    }

    /// The window of `height` rows to draw.
    pub fn window(&self, height: usize) -> Vec<&Message> {
        let shown = self.shown();
        let end = shown.len().saturating_sub(self.scroll);
        let start = end.saturating_sub(height);
        shown[start..end].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_in_order_bounded_in_bytes_and_filters() {
        let mut m = Messages::default();
        m.push(Utc::now(), false, "sessions (2)\n  a\n  b");
        m.push(Utc::now(), true, "REGEX_INVALID: /(/: unclosed group");
        assert_eq!(m.len(), 4);
        assert_eq!(
            m.window(2).iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["  b", "REGEX_INVALID: /(/: unclosed group"]
        );
        m.scroll_by(1, 2);
        assert_eq!(m.window(2)[0].text, "  a");
        m.scroll_by(100, 2);
        assert_eq!(m.scroll, 2);
        m.filter = Some(regex::Regex::new("REGEX").unwrap());
        assert_eq!(m.shown().len(), 1);
        let line = "x".repeat(1000);
        for _ in 0..10_000 {
            m.push(Utc::now(), false, &line);
        }
        assert!(m.held <= MESSAGES_BYTES);
        assert_eq!(m.len(), MESSAGES_BYTES / (1000 + LINE_OVERHEAD));
    }
}
