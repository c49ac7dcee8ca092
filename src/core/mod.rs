//! The library core: a session manager that owns every listener and session,
//! takes [`Command`]s and emits [`Event`]s. Nothing here knows about terminals.
//!
//! - `manager`: the actor and its cloneable handle
//! - `session`: one link (any transport), its reader and writer
//! - `dial`: reconnecting with backoff
//! - `listener`: accept loop, connection limit, the `accept` queue
//! - `transport`: how bytes move — TCP, TLS, UDP, Unix sockets — behind one
//!   interface (`Io`, `Endpoint`, `Kind`); nothing else sees socket types
//! - `tls`: rustls configuration for both sides
//! - `framing`: line splitting; `escape`: payload, transcript and display escapes
//! - `events`: the event envelope; `error`: the error codes (a leaf);
//!   `command`: the commands
//! - `addr`: `HOST:PORT` parsing and resolution
//! - `files`: reading operator-named files with a size cap
//! - `recording`: the transcript writer thread (the format is the leaf
//!   module `crate::transcript`)
//! - `recycle`: reusing read buffers under a flood
//! - `resolve`: the one resolver of session and listener references
//! - `sink`: the event channel, bounded by the bytes its events hold
//! - `slots`: a listener's client slots as its sessions see them (a leaf)

pub mod acl;
pub mod addr;
pub mod checksum;
pub mod command;
pub(crate) mod ctx;
pub mod dial;
pub mod error;
pub mod escape;
pub mod events;
pub mod files;
pub mod frames;
pub mod framing;
pub mod linemap;
pub mod listener;
pub mod manager;
pub mod probe;
pub mod recording;
pub mod recycle;
pub mod resolve;
pub mod session;
pub mod sink;
pub mod slots;
pub mod telnet;
pub mod tls;
pub mod transport;
pub mod trigger;
pub mod util;

pub use command::{Command, Eol, Mode, Outcome, View};
pub use events::{CloseReason, CoreError, CoreResult, ErrorCode, Event, EventKind};
pub use manager::{Manager, ManagerConfig};
pub use sink::{EventSink, EventStream};

pub use util::{format_duration, new_id};
