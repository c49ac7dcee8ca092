//! The error codes of CONTRACT section 4 and the error every command can
//! fail with. A leaf: every other module of the core may use it.

use std::fmt;

/// The error codes of CONTRACT section 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    CommandInvalid,
    AddressInvalid,
    ResolveFailed,
    ConnectFailed,
    ConnectRefused,
    BindFailed,
    TlsConfigInvalid,
    TlsHandshakeFailed,
    SessionNotFound,
    SessionAmbiguous,
    SessionNotConnected,
    PayloadInvalid,
    RegexInvalid,
    WaitforTimeout,
    Timeout,
    MaxConnections,
    UdpSendFailed,
    MulticastFailed,
    RecordFailed,
    IoError,
    /// A serial port that does not exist, or cannot be opened.
    SerialOpenFailed,
    /// A serial port another program holds.
    SerialBusy,
    /// Settings the port cannot take (a baud rate, a frame).
    SerialConfigInvalid,
    /// A modem line or break the device cannot do (a pseudo-terminal).
    SerialLineUnsupported,
    /// A Lua script failed: an error it raised and did not catch.
    LuaError,
    /// A client a listener's `--allow`/`--deny` list keeps out.
    AccessDenied,
    /// A proxy (`connect --proxy`) refused, failed or did not answer; the
    /// text gives its reason.
    ProxyFailed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::CommandInvalid => "COMMAND_INVALID",
            ErrorCode::AddressInvalid => "ADDRESS_INVALID",
            ErrorCode::ResolveFailed => "RESOLVE_FAILED",
            ErrorCode::ConnectFailed => "CONNECT_FAILED",
            ErrorCode::ConnectRefused => "CONNECT_REFUSED",
            ErrorCode::BindFailed => "BIND_FAILED",
            ErrorCode::TlsConfigInvalid => "TLS_CONFIG_INVALID",
            ErrorCode::TlsHandshakeFailed => "TLS_HANDSHAKE_FAILED",
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::SessionAmbiguous => "SESSION_AMBIGUOUS",
            ErrorCode::SessionNotConnected => "SESSION_NOT_CONNECTED",
            ErrorCode::PayloadInvalid => "PAYLOAD_INVALID",
            ErrorCode::RegexInvalid => "REGEX_INVALID",
            ErrorCode::WaitforTimeout => "WAITFOR_TIMEOUT",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::MaxConnections => "MAX_CONNECTIONS",
            ErrorCode::UdpSendFailed => "UDP_SEND_FAILED",
            ErrorCode::MulticastFailed => "MULTICAST_FAILED",
            ErrorCode::RecordFailed => "RECORD_FAILED",
            ErrorCode::IoError => "IO_ERROR",
            ErrorCode::SerialOpenFailed => "SERIAL_OPEN_FAILED",
            ErrorCode::SerialBusy => "SERIAL_BUSY",
            ErrorCode::SerialConfigInvalid => "SERIAL_CONFIG_INVALID",
            ErrorCode::SerialLineUnsupported => "SERIAL_LINE_UNSUPPORTED",
            ErrorCode::LuaError => "LUA_ERROR",
            ErrorCode::AccessDenied => "ACCESS_DENIED",
            ErrorCode::ProxyFailed => "PROXY_FAILED",
        }
    }

    /// Every code, in the contract's order.
    pub const ALL: [ErrorCode; 27] = [
        ErrorCode::CommandInvalid,
        ErrorCode::AddressInvalid,
        ErrorCode::ResolveFailed,
        ErrorCode::ConnectFailed,
        ErrorCode::ConnectRefused,
        ErrorCode::BindFailed,
        ErrorCode::TlsConfigInvalid,
        ErrorCode::TlsHandshakeFailed,
        ErrorCode::SessionNotFound,
        ErrorCode::SessionAmbiguous,
        ErrorCode::SessionNotConnected,
        ErrorCode::PayloadInvalid,
        ErrorCode::RegexInvalid,
        ErrorCode::WaitforTimeout,
        ErrorCode::Timeout,
        ErrorCode::MaxConnections,
        ErrorCode::UdpSendFailed,
        ErrorCode::MulticastFailed,
        ErrorCode::RecordFailed,
        ErrorCode::IoError,
        ErrorCode::SerialOpenFailed,
        ErrorCode::SerialBusy,
        ErrorCode::SerialConfigInvalid,
        ErrorCode::SerialLineUnsupported,
        ErrorCode::LuaError,
        ErrorCode::AccessDenied,
        ErrorCode::ProxyFailed,
    ];

    /// The code a text names (`CONNECT_REFUSED`).
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with its contract code and a text naming what failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {text}")]
pub struct CoreError {
    pub code: ErrorCode,
    pub text: String,
}

impl CoreError {
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        CoreError {
            code,
            text: text.into(),
        }
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
