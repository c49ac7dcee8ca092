//! Line-end mapping per session (picocom's `--imap/--omap`, tio's
//! `--map`): how received bytes are shown and how typed ones are sent.
//! Transcripts, `waitfor` and triggers keep the raw bytes: a map changes
//! the display and the keyboard only. A leaf module.

use std::borrow::Cow;

/// On receive (display).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InMap {
    /// CR shown as LF (`crlf`, also `icrnl`).
    CrLf,
    /// CR shown as CR LF.
    CrCrLf,
    /// CR not shown.
    IgnCr,
    /// LF shown as CR (`inlcr`).
    NlCr,
}

/// On send (typed lines and keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutMap {
    /// LF sent as CR LF.
    NlCrNl,
    /// CR sent as LF.
    CrNl,
    /// DEL (Backspace) sent as BS.
    DelBs,
}

const IN_NAMES: [(&str, InMap); 5] = [
    ("crlf", InMap::CrLf),
    ("icrnl", InMap::CrLf),
    ("crcrlf", InMap::CrCrLf),
    ("igncr", InMap::IgnCr),
    ("inlcr", InMap::NlCr),
];

const OUT_NAMES: [(&str, OutMap); 3] = [
    ("onlcr", OutMap::NlCrNl),
    ("ocrnl", OutMap::CrNl),
    ("delbs", OutMap::DelBs),
];

/// A session's maps, both ways.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineMap {
    pub input: Vec<InMap>,
    pub output: Vec<OutMap>,
}

fn parse_list<T: Copy>(text: &str, names: &[(&str, T)], what: &str) -> Result<Vec<T>, String> {
    text.split(',')
        .filter(|w| !w.is_empty())
        .map(|w| {
            names
                .iter()
                .find(|(n, _)| *n == w)
                .map(|(_, m)| *m)
                .ok_or_else(|| {
                    let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                    format!("{w:?} is not {what}: {}", known.join(", "))
                })
        })
        .collect()
}

/// `--imap crlf,igncr`.
pub fn parse_input(text: &str) -> Result<Vec<InMap>, String> {
    parse_list(text, &IN_NAMES, "an input map")
}

/// `--omap onlcr,delbs`.
pub fn parse_output(text: &str) -> Result<Vec<OutMap>, String> {
    parse_list(text, &OUT_NAMES, "an output map")
}

fn names<T: PartialEq + Copy>(list: &[T], names: &[(&str, T)]) -> String {
    list.iter()
        .filter_map(|m| names.iter().find(|(_, n)| n == m).map(|(n, _)| *n))
        .collect::<Vec<_>>()
        .join(",")
}

impl LineMap {
    pub fn is_empty(&self) -> bool {
        self.input.is_empty() && self.output.is_empty()
    }

    /// `imap=igncr omap=onlcr` (empty when there is no map): for the
    /// transcript header and the status.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.input.is_empty() {
            parts.push(format!("imap={}", names(&self.input, &IN_NAMES)));
        }
        if !self.output.is_empty() {
            parts.push(format!("omap={}", names(&self.output, &OUT_NAMES)));
        }
        parts.join(" ")
    }

    pub fn input_names(&self) -> String {
        names(&self.input, &IN_NAMES)
    }

    pub fn output_names(&self) -> String {
        names(&self.output, &OUT_NAMES)
    }

    /// Received bytes as shown.
    pub fn map_input<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        if self.input.is_empty() || !bytes.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Cow::Borrowed(bytes);
        }
        let has = |m| self.input.contains(&m);
        let mut out = Vec::with_capacity(bytes.len() + 8);
        for &b in bytes {
            match b {
                b'\r' if has(InMap::IgnCr) => {}
                b'\r' if has(InMap::CrLf) => out.push(b'\n'),
                b'\r' if has(InMap::CrCrLf) => out.extend_from_slice(b"\r\n"),
                b'\n' if has(InMap::NlCr) => out.push(b'\r'),
                b => out.push(b),
            }
        }
        Cow::Owned(out)
    }

    /// Typed bytes as sent.
    pub fn map_output<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        if self.output.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let has = |m| self.output.contains(&m);
        let mut out = Vec::with_capacity(bytes.len() + 8);
        for &b in bytes {
            match b {
                b'\n' if has(OutMap::NlCrNl) => out.extend_from_slice(b"\r\n"),
                b'\r' if has(OutMap::CrNl) => out.push(b'\n'),
                0x7f if has(OutMap::DelBs) => out.push(0x08),
                b => out.push(b),
            }
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_ways_and_names_them() {
        let map = LineMap {
            input: parse_input("igncr").unwrap(),
            output: parse_output("onlcr,delbs").unwrap(),
        };
        assert_eq!(&*map.map_input(b"OK\r\nnext\r"), b"OK\nnext");
        assert_eq!(&*map.map_output(b"AT\n\x7f"), b"AT\r\n\x08");
        assert_eq!(map.describe(), "imap=igncr omap=onlcr,delbs");
        let crlf = LineMap {
            input: parse_input("crcrlf,inlcr").unwrap(),
            ..LineMap::default()
        };
        assert_eq!(&*crlf.map_input(b"a\rb\n"), b"a\r\nb\r");
        assert_eq!(&*LineMap::default().map_output(b"x\n"), b"x\n");
        assert!(
            parse_input("crlf,bogus")
                .unwrap_err()
                .contains("\"bogus\" is not an input map")
        );
        assert!(parse_output("igncr").is_err());
    }
}
