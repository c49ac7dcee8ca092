//! muxcat: an interactive terminal netcat-style multiplexer.
//!
//! # Layout
//!
//! - [`core`]: the session manager, an actor that owns listeners and
//!   sessions, takes [`core::Command`]s and emits [`core::Event`]s; no
//!   terminal code, no clap. Transports live in `core/transport/`, a
//!   session's concerns in `core/session/`, leaf modules (`error`,
//!   `escape`, `slots`, `resolve`, `files`) depend on nothing else of the core.
//! - [`lang`]: the command language, one parser (clap over shell words)
//! - [`exec`]: the one executor of parsed lines, for every front end
//! - [`script`]: `muxcat run`, the headless front end
//! - [`pipe`]: pipe mode, netcat compatible
//! - [`tui`]: the terminal UI, one Elm loop: `update::Msg` in, `update`
//!   writes the model (`app`), `view` only draws
//! - [`transcript`]: the transcript format, written and read (a leaf; the
//!   writer thread is `core::recording`)
//! - [`cli`]: the command line
//!
//! # Recipes
//!
//! **Add a transport** (a serial port, say): a file in
//! `src/core/transport/` that dials and/or binds and yields a
//! `transport::Link` (an `Io`, two `Endpoint`s, a `Kind`); a `Kind` variant
//! and, if its addresses are neither IP nor a path, an `Endpoint` variant;
//! its `Target` syntax in `Target::parse` and its arm in `Dialer::dial` /
//! `transport::bind`. Sessions, events and the TUI carry it unchanged (the
//! Unix socket transport touched `transport/{mod,unix}.rs`, the parser and
//! docs).
//!
//! **Add a command**: a variant of `LangCommand` in `src/lang/mod.rs`
//! (clap gives it options, usage and `help`) lowered to a
//! `core::Command` variant (`src/core/command.rs`), handled in the actor
//! (`core::manager::Actor::command`). `run`, the TUI bar, `-c`, macros and
//! `source` all get it through `exec::Executor`; the help overlay lists it
//! from the parser.
//!
//! **Add a pane**: a field of the model (`tui::app::App`) changed only in
//! `tui::update::update` (a new `Msg` if something outside the model
//! feeds it), drawn by a function in `tui::view` called from `view::view`
//! with its `Rect`, O(visible rows); an in-process test in
//! `tests/tui_inprocess.rs` with an `insta` snapshot.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod config;
pub mod core;
pub mod exec;
pub mod export;
pub mod lang;
pub mod lua;
pub mod pipe;
pub mod profile;
pub mod proxy;
pub mod script;
pub mod transcript;
pub mod tui;
