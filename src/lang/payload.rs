//! `send` payloads: the escapes `\r \n \t \0 \\ \xHH`, and `--hex` digits.

use crate::core::escape::unescape_transcript;
use crate::core::{CoreError, ErrorCode};

/// Decodes the `send` payload escapes `\r \n \t \0 \\ \xHH`.
pub fn decode_payload(text: &str) -> Result<Vec<u8>, CoreError> {
    unescape_transcript(text.as_bytes())
        .map_err(|e| CoreError::new(ErrorCode::PayloadInvalid, format!("payload {text:?}: {e}")))
}

/// Decodes `send --hex` digits: pairs of hex digits, spaces allowed anywhere
/// between pairs (`de ad be ef`, `deadbeef`).
pub fn decode_hex(text: &str) -> Result<Vec<u8>, CoreError> {
    let digits: String = text.split_whitespace().collect();
    if digits.is_empty() {
        return Err(CoreError::new(
            ErrorCode::PayloadInvalid,
            "hex payload: no bytes given (expected pairs of hex digits like \"de ad be ef\")",
        ));
    }
    hex::decode(&digits).map_err(|e| {
        CoreError::new(
            ErrorCode::PayloadInvalid,
            format!("hex payload {text:?}: {e} (expected pairs of hex digits like \"de ad be ef\")"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_escapes() {
        assert_eq!(decode_payload(r"a\r\n\t\0\\\x41").unwrap(), b"a\r\n\t\0\\A");
        let err = decode_payload(r"bad\q").unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadInvalid);
        assert!(err.text.contains("\\q"), "{}", err.text);
        assert!(decode_payload(r"\x4").is_err());
        assert!(decode_payload(r"\xzz").is_err());
        assert!(decode_payload("end\\").is_err());
    }

    #[test]
    fn hex_payloads() {
        assert_eq!(decode_hex("de ad be ef").unwrap(), vec![0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(decode_hex("0102").unwrap(), vec![1, 2]);
        assert_eq!(decode_hex("abc").unwrap_err().code, ErrorCode::PayloadInvalid);
        assert_eq!(decode_hex("zz").unwrap_err().code, ErrorCode::PayloadInvalid);
        // `send --hex` with no bytes is an error, not an empty send.
        assert_eq!(decode_hex("").unwrap_err().code, ErrorCode::PayloadInvalid);
        assert_eq!(decode_hex("   ").unwrap_err().code, ErrorCode::PayloadInvalid);
    }
}
