//! muxcat: an interactive terminal netcat-style multiplexer.
//!
//! - [`core`]: the session manager (sessions, listeners, TLS, UDP, framing,
//!   events); no terminal code
//! - [`lang`]: the command language, one parser for scripts, `-c` and the TUI
//! - [`exec`]: the one executor of parsed lines, for every front end
//! - [`pipe`]: pipe mode, netcat compatible
//! - [`script`]: `muxcat run`, the headless script runner
//! - [`transcript`]: lossless session transcripts, written off the data path
//! - [`tui`]: the terminal UI (ratatui), keymaps
//! - [`cli`]: the command line
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod core;
pub mod exec;
pub mod lang;
pub mod pipe;
pub mod script;
pub mod transcript;
pub mod tui;
