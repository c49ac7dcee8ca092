//! Frames of binary sessions (`--frame`): a received byte stream cut into
//! the units a device protocol uses — after a gap (`idle:DUR`, as Modbus
//! RTU's 3.5 character times), every N bytes (`len:N`), after a delimiter
//! (`delim:HEX`), or by a header's length field (`start:HEX,len-at:N`).
//! Each frame is one `data` event, one trigger and `waitfor` unit; the
//! transcript keeps the bytes as they were read.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

/// A frame never grows past this: what has not ended by then is one.
pub const FRAME_MAX: usize = 64 * 1024;

/// How a binary session's stream is cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameSpec {
    /// A frame ends when nothing arrives for this long.
    Idle(Duration),
    /// Every N bytes.
    Len(usize),
    /// After each occurrence of these bytes (they end the frame).
    Delim(Vec<u8>),
    /// A header with a length field: optional start bytes (bytes before
    /// them are a frame of their own), the field at `len_at`, `len_size`
    /// bytes, big-endian unless `little`; the frame is the header up to
    /// the field's end, plus the field's value, plus `adds` (negative when
    /// the value counts bytes before it too).
    Header {
        start: Vec<u8>,
        len_at: usize,
        len_size: usize,
        little: bool,
        adds: i64,
    },
}

impl FrameSpec {
    /// `idle:5ms`, `len:8`, `delim:0d0a`, `start:68,len-at:1,len-size:1,len-adds:2`.
    pub fn parse(
        text: &str,
        duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<FrameSpec, String> {
        let hex = |t: &str| -> Result<Vec<u8>, String> {
            let clean: String = t.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
            match hex::decode(&clean) {
                Ok(b) if !b.is_empty() => Ok(b),
                _ => Err(format!("{t:?} is not hex bytes (like 0d0a)")),
            }
        };
        let number = |t: &str| t.parse::<usize>().map_err(|_| format!("{t:?} is not a number"));
        if let Some(d) = text.strip_prefix("idle:") {
            let d = duration(d)?;
            if d.is_zero() {
                return Err("idle:0 would cut every read: give a gap, like idle:5ms".to_string());
            }
            return Ok(FrameSpec::Idle(d));
        }
        if let Some(n) = text.strip_prefix("len:") {
            return match number(n)? {
                n @ 1..=FRAME_MAX => Ok(FrameSpec::Len(n)),
                _ => Err(format!("len:{n}: a length from 1 to {FRAME_MAX}")),
            };
        }
        if let Some(d) = text.strip_prefix("delim:") {
            return Ok(FrameSpec::Delim(hex(d)?));
        }
        let (mut start, mut len_at, mut len_size, mut little, mut adds) = (Vec::new(), None, 1, false, 0i64);
        for part in text.split(',') {
            match part.split_once(':') {
                Some(("start", v)) => start = hex(v)?,
                Some(("len-at", v)) => len_at = Some(number(v)?),
                Some(("len-size", v)) => {
                    len_size = match number(v)? {
                        n @ (1 | 2 | 4) => n,
                        _ => return Err(format!("len-size:{v}: 1, 2 or 4")),
                    }
                }
                Some(("len-adds", v)) => adds = v.parse().map_err(|_| format!("len-adds:{v}: a number"))?,
                None if part == "le" => little = true,
                None if part == "be" => little = false,
                _ => return Err(Self::usage(text)),
            }
        }
        let Some(len_at) = len_at else {
            return Err(Self::usage(text));
        };
        Ok(FrameSpec::Header {
            start,
            len_at,
            len_size,
            little,
            adds,
        })
    }

    fn usage(text: &str) -> String {
        format!(
            "{text:?} is not a framing: idle:DUR, len:N, delim:HEX, or [start:HEX,]len-at:N[,len-size:1|2|4][,le][,len-adds:N]"
        )
    }
}

/// Cuts a stream as a [`FrameSpec`] says.
#[derive(Debug)]
pub struct Framer {
    spec: FrameSpec,
    held: BytesMut,
    /// When the last byte arrived (idle framing).
    last: Option<Instant>,
}

impl Framer {
    pub fn new(spec: FrameSpec) -> Framer {
        Framer {
            spec,
            held: BytesMut::new(),
            last: None,
        }
    }

    /// Bytes that arrived at `now`: the frames they complete.
    pub fn push(&mut self, chunk: &[u8], now: Instant, frames: &mut Vec<Bytes>) {
        if let FrameSpec::Idle(gap) = self.spec
            && self.last.is_some_and(|l| now.duration_since(l) >= gap)
            && !self.held.is_empty()
        {
            frames.push(self.held.split().freeze());
        }
        self.held.extend_from_slice(chunk);
        self.last = Some(now);
        self.cut(frames);
        while self.held.len() >= FRAME_MAX {
            frames.push(self.held.split_to(FRAME_MAX).freeze());
        }
    }

    fn cut(&mut self, frames: &mut Vec<Bytes>) {
        match &self.spec {
            FrameSpec::Idle(_) => {}
            FrameSpec::Len(n) => {
                while self.held.len() >= *n {
                    frames.push(self.held.split_to(*n).freeze());
                }
            }
            FrameSpec::Delim(d) => {
                while let Some(at) = memchr::memmem::find(&self.held, d) {
                    frames.push(self.held.split_to(at + d.len()).freeze());
                }
            }
            FrameSpec::Header {
                start,
                len_at,
                len_size,
                little,
                adds,
            } => loop {
                if !start.is_empty() {
                    match memchr::memmem::find(&self.held, start) {
                        // Bytes before a start are a frame of their own.
                        Some(0) => {}
                        Some(at) => frames.push(self.held.split_to(at).freeze()),
                        None => {
                            // Keep what could be the start's beginning.
                            let keep = start.len() - 1;
                            if self.held.len() > keep {
                                let junk = self.held.len() - keep;
                                frames.push(self.held.split_to(junk).freeze());
                            }
                            return;
                        }
                    }
                }
                let field_end = len_at + len_size;
                if self.held.len() < field_end {
                    return;
                }
                let field = &self.held[*len_at..field_end];
                let value = field.iter().enumerate().fold(0u64, |acc, (i, b)| {
                    if *little {
                        acc | (u64::from(*b) << (8 * i))
                    } else {
                        (acc << 8) | u64::from(*b)
                    }
                });
                let total =
                    (field_end as i64 + value as i64 + adds).clamp(field_end.max(1) as i64, FRAME_MAX as i64);
                let total = total as usize;
                if self.held.len() < total {
                    return;
                }
                frames.push(self.held.split_to(total).freeze());
            },
        }
    }

    /// When the held bytes become a frame for lack of more (idle framing).
    pub fn deadline(&self) -> Option<Instant> {
        match self.spec {
            FrameSpec::Idle(gap) if !self.held.is_empty() => self.last.map(|l| l + gap),
            _ => None,
        }
    }

    /// What is held, as a frame (the gap passed, or the session ends).
    pub fn flush(&mut self) -> Option<Bytes> {
        (!self.held.is_empty()).then(|| self.held.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn parse(t: &str) -> Result<FrameSpec, String> {
        FrameSpec::parse(t, crate::lang::parse_duration)
    }

    fn cut(spec: &str, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut f = Framer::new(parse(spec).unwrap());
        let mut frames = Vec::new();
        let now = Instant::now();
        for c in chunks {
            f.push(c, now, &mut frames);
        }
        frames.extend(f.flush());
        frames.into_iter().map(|b| b.to_vec()).collect()
    }

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!(parse("idle:4ms").unwrap(), FrameSpec::Idle(ms(4)));
        assert_eq!(parse("len:8").unwrap(), FrameSpec::Len(8));
        assert_eq!(parse("delim:0d 0a").unwrap(), FrameSpec::Delim(vec![13, 10]));
        assert_eq!(
            parse("start:68,len-at:1,le,len-size:2,len-adds:-3").unwrap(),
            FrameSpec::Header {
                start: vec![0x68],
                len_at: 1,
                len_size: 2,
                little: true,
                adds: -3
            }
        );
        for bad in [
            "idle:0",
            "len:0",
            "delim:zz",
            "start:68",
            "len-at:x",
            "len-at:2,len-size:3",
            "chunks",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn frames_by_length_delimiter_and_header() {
        assert_eq!(
            cut("len:3", &[b"abcd", b"efg", b"h"]),
            [b"abc".to_vec(), b"def".to_vec(), b"gh".to_vec()]
        );
        assert_eq!(
            cut("delim:0a", &[b"one\ntw", b"o\nthree"]),
            [b"one\n".to_vec(), b"two\n".to_vec(), b"three".to_vec()]
        );
        // Modbus/TCP: a 2-byte length at 4 counts what follows it.
        let a = [0u8, 1, 0, 0, 0, 5, 1, 3, 2, 0, 42];
        let b = [0u8, 2, 0, 0, 0, 3, 1, 0x83, 2];
        let both: Vec<u8> = a.iter().chain(&b).copied().collect();
        for split in 0..both.len() {
            let frames = cut("len-at:4,len-size:2", &[&both[..split], &both[split..]]);
            assert_eq!(frames, [a.to_vec(), b.to_vec()], "split at {split}");
        }
        // A start byte: junk before it is a frame of its own.
        assert_eq!(
            cut("start:68,len-at:1", &[b"zz\x68\x02ab\x68\x01c"]),
            [b"zz".to_vec(), b"\x68\x02ab".to_vec(), b"\x68\x01c".to_vec()]
        );
    }

    #[test]
    fn idle_gaps_end_frames() {
        let mut f = Framer::new(FrameSpec::Idle(ms(5)));
        let t0 = Instant::now();
        let mut frames = Vec::new();
        f.push(b"\x01\x03", t0, &mut frames);
        f.push(b"\x02\x00", t0 + ms(1), &mut frames);
        assert!(frames.is_empty());
        assert_eq!(f.deadline(), Some(t0 + ms(6)));
        f.push(b"\x01\x06", t0 + ms(20), &mut frames);
        assert_eq!(frames, [Bytes::from_static(b"\x01\x03\x02\x00")]);
        assert_eq!(f.flush().as_deref(), Some(&b"\x01\x06"[..]));
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn nothing_grows_past_the_cap() {
        let big = vec![0u8; FRAME_MAX * 2 + 10];
        let frames = cut("delim:ff", &[&big]);
        assert_eq!(
            frames.iter().map(Vec::len).collect::<Vec<_>>(),
            [FRAME_MAX, FRAME_MAX, 10]
        );
    }
}
