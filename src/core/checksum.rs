//! Checksums appended to payloads (`send --crc NAME`, `on --crc NAME`): a
//! catalogue of the CRCs and sums device protocols use, from the `crc`
//! crate's catalogue where it has them. A leaf module.

use crc::{CRC_8_SMBUS, CRC_16_IBM_3740, CRC_16_KERMIT, CRC_16_MODBUS, CRC_16_XMODEM, CRC_32_ISO_HDLC, Crc};

/// A checksum and how its bytes are appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checksum {
    pub algo: Algo,
    /// Least significant byte first (Modbus RTU, Kermit, CRC-32 as zip
    /// and Ethernet send it); else most significant first.
    pub little_endian: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    Crc8,
    Crc16Modbus,
    Crc16Xmodem,
    Crc16CcittFalse,
    Crc16Kermit,
    Crc32,
    /// XOR of every byte.
    Xor8,
    /// Sum of every byte, modulo 256.
    Sum8,
    /// Longitudinal redundancy check: the two's complement of Sum8 (Modbus ASCII).
    Lrc,
}

/// Names, algorithms and the byte order each is sent in by default.
const CATALOGUE: [(&str, Algo, bool); 9] = [
    ("crc8", Algo::Crc8, false),
    ("crc16-modbus", Algo::Crc16Modbus, true),
    ("crc16-xmodem", Algo::Crc16Xmodem, false),
    ("crc16-ccitt-false", Algo::Crc16CcittFalse, false),
    ("crc16-kermit", Algo::Crc16Kermit, true),
    ("crc32", Algo::Crc32, true),
    ("xor8", Algo::Xor8, false),
    ("sum8", Algo::Sum8, false),
    ("lrc", Algo::Lrc, false),
];

/// The names, for help and errors.
pub fn names() -> Vec<&'static str> {
    CATALOGUE.iter().map(|(n, _, _)| *n).collect()
}

impl Checksum {
    /// `crc16-modbus`, with `:le` or `:be` to change the byte order.
    pub fn parse(text: &str) -> Result<Checksum, String> {
        let (name, order) = match text.rsplit_once(':') {
            Some((n, o)) => (n, Some(o)),
            None => (text, None),
        };
        let Some(&(_, algo, le)) = CATALOGUE.iter().find(|(n, _, _)| *n == name) else {
            return Err(format!("{text:?} is not a checksum: {}", names().join(", ")));
        };
        let little_endian = match order {
            None => le,
            Some("le") => true,
            Some("be") => false,
            Some(o) => return Err(format!("{text:?}: byte order {o:?} is not le or be")),
        };
        Ok(Checksum { algo, little_endian })
    }

    /// The checksum's value.
    pub fn value(&self, data: &[u8]) -> u32 {
        match self.algo {
            Algo::Crc8 => u32::from(Crc::<u8>::new(&CRC_8_SMBUS).checksum(data)),
            Algo::Crc16Modbus => u32::from(Crc::<u16>::new(&CRC_16_MODBUS).checksum(data)),
            Algo::Crc16Xmodem => u32::from(Crc::<u16>::new(&CRC_16_XMODEM).checksum(data)),
            Algo::Crc16CcittFalse => u32::from(Crc::<u16>::new(&CRC_16_IBM_3740).checksum(data)),
            Algo::Crc16Kermit => u32::from(Crc::<u16>::new(&CRC_16_KERMIT).checksum(data)),
            Algo::Crc32 => Crc::<u32>::new(&CRC_32_ISO_HDLC).checksum(data),
            Algo::Xor8 => u32::from(data.iter().fold(0u8, |a, &b| a ^ b)),
            Algo::Sum8 => u32::from(data.iter().fold(0u8, |a, &b| a.wrapping_add(b))),
            Algo::Lrc => u32::from(data.iter().fold(0u8, |a, &b| a.wrapping_add(b)).wrapping_neg()),
        }
    }

    /// Bytes of the checksum: 1, 2 or 4.
    pub fn width(&self) -> usize {
        match self.algo {
            Algo::Crc8 | Algo::Xor8 | Algo::Sum8 | Algo::Lrc => 1,
            Algo::Crc32 => 4,
            _ => 2,
        }
    }

    /// The checksum's bytes, in its byte order.
    pub fn bytes(&self, data: &[u8]) -> Vec<u8> {
        let value = self.value(data).to_be_bytes();
        let mut bytes = value[4 - self.width()..].to_vec();
        if self.little_endian {
            bytes.reverse();
        }
        bytes
    }

    /// Whether `frame` ends with the checksum of what comes before it
    /// (`--check`; a frame no longer than the checksum fails).
    pub fn verify(&self, frame: &[u8]) -> bool {
        let body = frame.len().saturating_sub(self.width());
        body > 0 && self.bytes(&frame[..body]) == frame[body..]
    }
}

/// `--crc-range START..END` (byte offsets into the payload, END exclusive
/// and optional; negative from the end: `1..`, `0..-1`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub start: i64,
    pub end: Option<i64>,
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, String> {
        let bad = || format!("{text:?} is not a byte range like 1.. or 2..-1");
        let (a, b) = text.split_once("..").ok_or_else(bad)?;
        let start = if a.is_empty() {
            0
        } else {
            a.parse().map_err(|_| bad())?
        };
        let end = if b.is_empty() {
            None
        } else {
            Some(b.parse().map_err(|_| bad())?)
        };
        Ok(Range { start, end })
    }

    /// The part of `data` it names (clamped to it).
    pub fn of<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let len = data.len() as i64;
        let at = |i: i64| (if i < 0 { len + i } else { i }).clamp(0, len) as usize;
        let (s, e) = (at(self.start), self.end.map_or(data.len(), at));
        &data[s.min(e)..e]
    }
}

/// Appends the checksum of `range` of `payload` to it.
pub fn append(payload: &mut Vec<u8>, sum: Checksum, range: Range) {
    let bytes = sum.bytes(range.of(payload));
    payload.extend_from_slice(&bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str, data: &[u8]) -> u32 {
        Checksum::parse(name).unwrap().value(data)
    }

    #[test]
    fn known_answers() {
        let check = b"123456789";
        assert_eq!(value("crc16-modbus", check), 0x4B37);
        assert_eq!(value("crc16-xmodem", check), 0x31C3);
        assert_eq!(value("crc16-ccitt-false", check), 0x29B1);
        assert_eq!(value("crc16-kermit", check), 0x2189);
        assert_eq!(value("crc32", check), 0xCBF4_3926);
        assert_eq!(value("crc8", check), 0xF4);
        // "Hello": XOR 0x42, sum 0xF4 (500 mod 256), LRC its negation 0x0C.
        assert_eq!(value("xor8", b"Hello"), 0x42);
        assert_eq!(value("sum8", b"Hello"), 0xF4);
        assert_eq!(value("lrc", b"Hello"), 0x0C);
        // A Modbus RTU request: read 10 registers from 0 of unit 1.
        let mut req = vec![0x01, 0x03, 0x00, 0x00, 0x00, 0x0A];
        append(
            &mut req,
            Checksum::parse("crc16-modbus").unwrap(),
            Range::default(),
        );
        assert_eq!(&req[6..], [0xC5, 0xCD]);
        assert_eq!(
            Checksum::parse("crc16-modbus:be").unwrap().bytes(&req[..6]),
            [0xCD, 0xC5]
        );
        assert_eq!(
            Checksum::parse("crc32").unwrap().bytes(check),
            [0x26, 0x39, 0xF4, 0xCB]
        );
        assert!(Checksum::parse("crc17").unwrap_err().contains("crc16-modbus"));
        assert!(Checksum::parse("crc32:middle").is_err());
    }

    #[test]
    fn received_frames_are_verified() {
        let modbus = Checksum::parse("crc16-modbus").unwrap();
        assert!(modbus.verify(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD]));
        assert!(!modbus.verify(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x0B, 0xC5, 0xCD]));
        // Nothing but a checksum (or less) is not a checked frame.
        assert!(!modbus.verify(&[0xC5, 0xCD]));
        assert!(!modbus.verify(&[]));
        assert!(Checksum::parse("xor8").unwrap().verify(b"Hello\x42"));
    }

    #[test]
    fn ranges_pick_part_of_the_payload() {
        let data = b":0103000A";
        assert_eq!(Range::parse("1..").unwrap().of(data), b"0103000A");
        assert_eq!(Range::parse("..-1").unwrap().of(data), b":0103000");
        assert_eq!(Range::parse("2..4").unwrap().of(data), b"10");
        assert_eq!(Range::parse("5..99").unwrap().of(data), b"000A");
        assert!(Range::parse("x").is_err());
    }
}
