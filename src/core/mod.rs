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

pub mod addr;
pub mod command;
pub mod dial;
pub mod error;
pub mod escape;
pub mod events;
pub mod files;
pub mod framing;
pub mod listener;
pub mod manager;
pub mod recording;
pub mod recycle;
pub mod resolve;
pub mod session;
pub mod sink;
pub mod slots;
pub mod tls;
pub mod transport;
pub mod trigger;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use command::{Command, Eol, Mode, Outcome, View};
pub use events::{CloseReason, CoreError, CoreResult, ErrorCode, Event, EventKind};
pub use manager::{Manager, ManagerConfig};
pub use sink::{EventSink, EventStream};

/// For reports that a storm would repeat: true at most once a second
/// (`last`: when the previous report went out, updated when this one may).
pub(crate) fn once_a_second(last: &mut Option<tokio::time::Instant>) -> bool {
    let now = tokio::time::Instant::now();
    let due = last.is_none_or(|t| now - t >= std::time::Duration::from_secs(1));
    if due {
        *last = Some(now);
    }
    due
}

/// What every session and listener task shares.
pub(crate) struct Ctx {
    pub events: EventSink,
    pub recorder: recording::Recorder,
    /// `--record DIR`: every session gets a transcript here.
    pub record_dir: Option<std::path::PathBuf>,
    /// Bytes asked for per read.
    pub read_size: usize,
    /// See [`ManagerConfig::bulk`].
    pub bulk: bool,
    /// Auto-replies; `trigger_count` lets sessions skip the lock when none.
    pub triggers: std::sync::RwLock<Vec<Arc<trigger::Trigger>>>,
    pub trigger_count: std::sync::atomic::AtomicUsize,
    /// Backlogs closed sessions keep for a late `waitfor`, bounded in all.
    pub closed_backlogs: session::ClosedBacklogs,
    next_message: AtomicU64,
    actor: mpsc::WeakSender<manager::Msg>,
}

impl Ctx {
    /// Triggers that apply to a session.
    pub fn triggers_for(&self, session: &str, listener: Option<&str>) -> Vec<Arc<trigger::Trigger>> {
        if self.trigger_count.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let list = self.triggers.read().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .filter(|t| !t.is_spent() && t.applies_to(session, listener))
            .cloned()
            .collect()
    }

    pub fn remove_trigger(&self, id: &str) -> bool {
        let mut list = self.triggers.write().unwrap_or_else(|e| e.into_inner());
        let before = list.len();
        list.retain(|t| t.id != id);
        self.trigger_count.store(list.len(), Ordering::Release);
        list.len() != before
    }

    pub fn next_message_id(&self) -> u64 {
        self.next_message.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Hands a new session to the manager; false when it is shutting down.
    pub async fn register(&self, session: Arc<session::Session>) -> bool {
        let Some(actor) = self.actor.upgrade() else {
            return false;
        };
        let (ack, done) = oneshot::channel();
        if actor.send(manager::Msg::Register(session, ack)).await.is_err() {
            return false;
        }
        done.await.unwrap_or(false)
    }
}

/// `sess-<uuid v4>` / `lstn-<uuid v4>`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// `1.5s`, `500ms`, `2m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) && ms >= 1000 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}
