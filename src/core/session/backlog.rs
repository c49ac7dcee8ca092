//! What `waitfor` looks back on: received lines or bytes since the
//! previous `waitfor` returned, bounded by the memory they hold (what
//! closed sessions keep in all is bounded in `core::ctx`).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::{BACKLOG_BYTES, BACKLOG_LINES, LINE_OVERHEAD};

/// Received data not yet consumed by a `waitfor`.
pub(super) struct Backlog {
    /// Bytes it may hold (set before each push: it shrinks while many
    /// sessions are live, see `Ctx::backlog_limit`).
    pub(super) limit: usize,
    pub(super) lines: VecDeque<Bytes>,
    pub(super) line_bytes: usize,
    /// Binary mode: the received chunks as they came (no copy on the data
    /// path); joined only when a `waitfor` looks at them.
    pub(super) chunks: VecDeque<Bytes>,
    pub(super) chunk_bytes: usize,
    /// Line mode: the line received so far whose end has not arrived (a
    /// prompt); `waitfor` may match it (`--partial`, or once quiet).
    pub(super) partial: BytesMut,
    /// A `waitfor` matched the pending line: it does not match again, and
    /// the line it completes into is not kept (one text, one match).
    pub(super) partial_taken: bool,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog {
            limit: BACKLOG_BYTES,
            lines: VecDeque::new(),
            line_bytes: 0,
            chunks: VecDeque::new(),
            chunk_bytes: 0,
            partial: BytesMut::new(),
            partial_taken: false,
        }
    }
}

impl Backlog {
    /// Takes the line as it is (no copy). Reads under 4 KiB are copied out
    /// of the read buffer before framing, so what a kept line can pin is
    /// bounded by the bytes the backlog holds, times the read-buffer ratio.
    pub(super) fn push_line(&mut self, line: Bytes) {
        self.line_bytes += line.len() + LINE_OVERHEAD;
        self.lines.push_back(line);
        while self.lines.len() > BACKLOG_LINES || self.line_bytes > self.limit {
            match self.lines.pop_front() {
                Some(old) => self.line_bytes -= old.len() + LINE_OVERHEAD,
                None => break,
            }
        }
    }

    /// Memory held, in bytes.
    pub(super) fn held(&self) -> usize {
        self.line_bytes + self.chunk_bytes + self.partial.len()
    }

    /// A line completed: kept for `waitfor`, unless a `waitfor` already
    /// matched it while it was pending.
    pub(super) fn complete_line(&mut self, line: Bytes) {
        self.partial = BytesMut::new();
        if std::mem::take(&mut self.partial_taken) {
            return;
        }
        self.push_line(line);
    }

    /// The pending line grew by `new` and is now `pending`: appended (a
    /// line trickling in byte by byte costs its length, not its square),
    /// or taken whole when the two differ (after a cut at the line cap).
    pub(super) fn grow_partial(&mut self, new: &[u8], pending: &[u8]) {
        if self.partial.len() + new.len() == pending.len() {
            self.partial.extend_from_slice(new);
        } else {
            self.partial.clear();
            self.partial.extend_from_slice(pending);
        }
    }

    /// `waitfor --fresh`, and a macro's send: what arrived before is not
    /// looked at (a pending line's start included).
    pub(super) fn forget(&mut self) {
        self.lines.clear();
        self.line_bytes = 0;
        self.chunks.clear();
        self.chunk_bytes = 0;
        self.partial_taken = !self.partial.is_empty();
    }

    /// Keeps the last `limit` received bytes.
    pub(super) fn push_stream(&mut self, chunk: Bytes) {
        self.chunk_bytes += chunk.len();
        self.chunks.push_back(chunk);
        while self.chunk_bytes > self.limit {
            let excess = self.chunk_bytes - self.limit;
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= excess {
                self.chunk_bytes -= front.len();
                self.chunks.pop_front();
            } else {
                // A slice: it pins one read buffer at most, and copies nothing.
                let _ = front.split_to(excess);
                self.chunk_bytes -= excess;
            }
        }
    }

    /// The received bytes as one slice (joined once, then kept joined).
    pub(super) fn stream(&mut self) -> &[u8] {
        if self.chunks.len() > 1 {
            let mut joined = BytesMut::with_capacity(self.chunk_bytes);
            for c in self.chunks.drain(..) {
                joined.extend_from_slice(&c);
            }
            self.chunks.push_back(joined.freeze());
        }
        self.chunks.front().map(|c| &c[..]).unwrap_or_default()
    }

    /// Drops the first `n` bytes of the (joined) stream.
    pub(super) fn consume_stream(&mut self, n: usize) {
        if let Some(front) = self.chunks.front_mut() {
            let n = n.min(front.len());
            let _ = front.split_to(n);
            self.chunk_bytes -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_backlog_keeps_the_last_bytes_without_copying_each_chunk() {
        let mut b = Backlog::default();
        let chunk = Bytes::from(vec![7u8; 300 * 1024]);
        for _ in 0..4 {
            b.push_stream(chunk.clone());
        }
        // Whole chunks are shared with the event, not copied; the oldest
        // was cut to the bound.
        assert_eq!(b.chunks.len(), 4);
        assert_eq!(b.chunks[3].as_ptr(), chunk.as_ptr());
        assert_eq!(b.chunk_bytes, BACKLOG_BYTES);
        b.push_stream(Bytes::from_static(b"tail"));
        assert_eq!(b.chunk_bytes, BACKLOG_BYTES);
        let stream = b.stream().to_vec();
        assert_eq!(stream.len(), BACKLOG_BYTES);
        assert!(stream.ends_with(b"\x07\x07tail"));
        b.consume_stream(BACKLOG_BYTES - 4);
        assert_eq!(b.stream(), b"tail");
        b.push_stream(Bytes::from_static(b" more"));
        assert_eq!(b.stream(), b"tail more");
    }
}
