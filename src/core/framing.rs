//! Line framing: splits a received byte stream on `\r\n`, `\n` or `\r`,
//! holding a partial line until its end arrives, the session closes, or
//! [`MAX_LINE`] bytes accumulate.

use bytes::{Bytes, BytesMut};

/// A partial line longer than this is delivered as a chunk of its own.
pub const MAX_LINE: usize = 64 * 1024;

/// One framed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The line without its terminator.
    pub content: Bytes,
    /// Received bytes this line accounts for, terminator included.
    pub count: usize,
    /// False for a line cut at the cap or flushed at close.
    pub terminated: bool,
    /// The terminator that ended it (`\r\n`, `\n`, `\r`, or nothing).
    pub eol: &'static [u8],
}

#[derive(Debug)]
pub struct LineSplitter {
    partial: BytesMut,
    /// The last chunk ended in `\r`: a `\n` starting the next one belongs to it.
    skip_lf: bool,
    /// Bytes (a skipped `\n`) not yet attributed to a line.
    carried: usize,
    /// The held line was just delivered because it reached the cap: a line
    /// end arriving next belongs to it (no empty line), as it would had
    /// both come in one read.
    cut_at_cap: bool,
    cap: usize,
    /// Bytes of the held line already reported as a partial line: the
    /// line's `count` leaves them out when it completes.
    reported: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl LineSplitter {
    pub fn new(cap: usize) -> Self {
        LineSplitter {
            partial: BytesMut::new(),
            skip_lf: false,
            carried: 0,
            cut_at_cap: false,
            cap: cap.max(1),
            reported: 0,
        }
    }

    /// Line-end bytes seen but not yet counted in a line's `count` (a `\n`
    /// ending a CR LF split across reads, or a line end right after a line
    /// cut at the cap): they go to the next line.
    pub fn unattributed(&self) -> usize {
        self.carried
    }

    /// Feeds one received chunk; complete lines are appended to `out`.
    pub fn push(&mut self, chunk: &Bytes, out: &mut Vec<Line>) {
        let data = &chunk[..];
        let mut pos = 0;
        if std::mem::take(&mut self.cut_at_cap) && !data.is_empty() {
            match data[0] {
                b'\n' => pos = 1,
                b'\r' => {
                    pos = 1;
                    match data.get(1) {
                        Some(b'\n') => pos = 2,
                        Some(_) => {}
                        None => self.skip_lf = true,
                    }
                }
                _ => {}
            }
            self.carried += pos;
        }
        if self.skip_lf && pos < data.len() {
            self.skip_lf = false;
            if data.get(pos) == Some(&b'\n') {
                pos += 1;
                self.carried += 1;
            }
        }
        while pos < data.len() {
            let Some(rel) = memchr::memchr2(b'\n', b'\r', &data[pos..]) else {
                self.partial.extend_from_slice(&data[pos..]);
                while self.partial.len() >= self.cap {
                    let piece = self.partial.split_to(self.cap).freeze();
                    self.emit(piece, 0, 0, false, out);
                    self.cut_at_cap = self.partial.is_empty();
                }
                return;
            };
            let end = pos + rel;
            let mut term = 1;
            if data[end] == b'\r' {
                match data.get(end + 1) {
                    Some(b'\n') => term = 2,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let content = if self.partial.is_empty() {
                chunk.slice(pos..end)
            } else {
                self.partial.extend_from_slice(&data[pos..end]);
                self.partial.split().freeze()
            };
            self.emit(content, term, data[end + term - 1], true, out);
            pos = end + term;
        }
    }

    /// The line held so far (received, no line end yet).
    pub fn pending(&self) -> &[u8] {
        &self.partial
    }

    /// The bytes of the held line not reported yet, now reported: a
    /// prompt (`login: `) shows before its line ends.
    pub fn take_unreported(&mut self) -> Option<Bytes> {
        if self.partial.len() <= self.reported {
            return None;
        }
        let new = Bytes::copy_from_slice(&self.partial[self.reported..]);
        self.reported = self.partial.len();
        Some(new)
    }

    /// Delivers a held partial line (at close).
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        if !self.partial.is_empty() {
            let piece = self.partial.split().freeze();
            self.emit(piece, 0, 0, false, out);
        }
    }

    fn emit(&mut self, mut content: Bytes, term: usize, last: u8, terminated: bool, out: &mut Vec<Line>) {
        // A line longer than the cap arrives in cap-sized pieces.
        while content.len() > self.cap {
            let piece = content.split_to(self.cap);
            let count = piece.len() + std::mem::take(&mut self.carried) - self.already(piece.len());
            out.push(Line {
                content: piece,
                count,
                terminated: false,
                eol: b"",
            });
        }
        let count = content.len() + term + std::mem::take(&mut self.carried) - self.already(content.len());
        out.push(Line {
            content,
            count,
            terminated,
            eol: eol_of(term, last),
        });
    }
}

impl LineSplitter {
    /// Of a line's first `len` bytes, those a partial report counted.
    fn already(&mut self, len: usize) -> usize {
        let n = self.reported.min(len);
        self.reported -= n;
        n
    }
}

/// The terminator of `term` bytes whose last byte is `last`.
fn eol_of(term: usize, last: u8) -> &'static [u8] {
    match (term, last) {
        (2, _) => b"\r\n",
        (1, b'\n') => b"\n",
        (1, _) => b"\r",
        _ => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]], cap: usize) -> Vec<Line> {
        let mut s = LineSplitter::new(cap);
        let mut out = Vec::new();
        for c in chunks {
            s.push(&Bytes::copy_from_slice(c), &mut out);
        }
        s.finish(&mut out);
        out
    }

    fn texts(lines: &[Line]) -> Vec<&[u8]> {
        lines.iter().map(|l| &l.content[..]).collect()
    }

    #[test]
    fn splits_on_all_terminators() {
        let lines = split_all(&[b"a\r\nb\nc\rd"], MAX_LINE);
        assert_eq!(texts(&lines), vec![&b"a"[..], b"b", b"c", b"d"]);
        assert_eq!(lines.iter().map(|l| l.count).sum::<usize>(), 8);
        assert!(!lines[3].terminated);
    }

    #[test]
    fn crlf_across_chunks_is_one_terminator() {
        let lines = split_all(&[b"a\r", b"\nb\n"], MAX_LINE);
        assert_eq!(texts(&lines), vec![&b"a"[..], b"b"]);
        assert_eq!(lines.iter().map(|l| l.count).sum::<usize>(), 5);
    }

    #[test]
    fn a_reported_partial_line_is_not_counted_twice() {
        let mut s = LineSplitter::new(1024);
        let mut out = Vec::new();
        s.push(&Bytes::from_static(b"login: "), &mut out);
        assert!(out.is_empty());
        assert_eq!(s.take_unreported().as_deref(), Some(&b"login: "[..]));
        assert_eq!(s.take_unreported(), None);
        s.push(&Bytes::from_static(b"adm"), &mut out);
        assert_eq!(s.take_unreported().as_deref(), Some(&b"adm"[..]));
        s.push(&Bytes::from_static(b"in\r\nnext"), &mut out);
        assert_eq!(&out[0].content[..], b"login: admin");
        // 12 bytes and the line end; 10 were counted by the partial reports.
        assert_eq!(out[0].count, 14 - 10);
        assert_eq!(s.pending(), b"next");
    }

    #[test]
    fn partial_lines_are_held() {
        let lines = split_all(&[b"hel", b"lo", b"\nwor", b"ld\n"], MAX_LINE);
        assert_eq!(texts(&lines), vec![&b"hello"[..], b"world"]);
    }

    #[test]
    fn empty_lines_are_lines() {
        let lines = split_all(&[b"\n\n"], MAX_LINE);
        assert_eq!(texts(&lines), vec![&b""[..], b""]);
    }

    #[test]
    fn long_lines_are_cut_at_the_cap() {
        let lines = split_all(&[b"abcdefgh", b"ij\n"], 4);
        assert_eq!(texts(&lines), vec![&b"abcd"[..], b"efgh", b"ij"]);
        assert!(!lines[0].terminated && lines[2].terminated);
        let lines = split_all(&[b"abcdefghij\n"], 4);
        assert_eq!(texts(&lines), vec![&b"abcd"[..], b"efgh", b"ij"]);
        assert_eq!(lines.iter().map(|l| l.count).sum::<usize>(), 11);
    }
}
