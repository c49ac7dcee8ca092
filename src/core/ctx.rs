//! What every session and listener task shares: the event sink, the
//! transcript writer, the triggers, and the bound on what closed sessions
//! keep. It knows no session type: sessions register with the manager
//! through their own channel, and give up backlogs through [`KeepsBacklog`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::recording::Recorder;
use super::sink::EventSink;
use super::trigger::Trigger;

/// What closed sessions keep for a `waitfor` that comes after the close,
/// in all; past it the oldest give theirs up.
pub const CLOSED_BACKLOGS: usize = 16 << 20;

/// What the `waitfor` backlogs of live sessions may hold in all before
/// each gets less than [`super::session::BACKLOG_BYTES`]: with many
/// sessions flooding at once (a thousand clients each sending a file),
/// each keeps `LIVE_BACKLOGS / live sessions`, never under
/// [`MIN_BACKLOG`].
pub const LIVE_BACKLOGS: usize = 64 << 20;
/// The least a live session's backlog may hold.
pub const MIN_BACKLOG: usize = 64 << 10;

/// A live session's share of [`LIVE_BACKLOGS`] when `live` are open.
fn backlog_share(live: usize) -> usize {
    (LIVE_BACKLOGS / live.max(1)).clamp(MIN_BACKLOG, super::session::BACKLOG_BYTES)
}

/// What every session and listener task shares.
pub(crate) struct Ctx {
    pub events: EventSink,
    pub recorder: Recorder,
    /// `--record DIR`: every session gets a transcript here.
    pub record_dir: Option<std::path::PathBuf>,
    /// Bytes asked for per read.
    pub read_size: usize,
    /// See [`ManagerConfig::bulk`].
    pub bulk: bool,
    /// Auto-replies; `trigger_count` lets sessions skip the lock when none.
    pub triggers: std::sync::RwLock<Vec<Arc<Trigger>>>,
    pub trigger_count: std::sync::atomic::AtomicUsize,
    /// Backlogs closed sessions keep for a late `waitfor`, bounded in all.
    pub closed_backlogs: ClosedBacklogs,
    pub next_message: AtomicU64,
    /// Sessions open now (for the backlog bound).
    pub live_sessions: std::sync::atomic::AtomicUsize,
}

impl Ctx {
    /// What one live session's backlog may hold now.
    pub fn backlog_limit(&self) -> usize {
        backlog_share(self.live_sessions.load(Ordering::Relaxed))
    }

    /// Triggers that apply to a session.
    pub fn triggers_for(&self, session: &str, listener: Option<&str>) -> Vec<Arc<Trigger>> {
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
}

/// Something that keeps a backlog it can give up (a closed session).
pub(crate) trait KeepsBacklog: Send + Sync {
    fn forget_backlog(&self);
}

/// Closed sessions that still keep a backlog, oldest first, and the bytes
/// they hold in all: past [`CLOSED_BACKLOGS`] the oldest are forgotten.
#[derive(Default)]
pub(crate) struct ClosedBacklogs {
    kept: Mutex<(VecDeque<Kept>, usize)>,
}

/// A closed session and the bytes its backlog held when it closed.
type Kept = (Weak<dyn KeepsBacklog>, usize);

impl ClosedBacklogs {
    pub fn keep(&self, session: Weak<dyn KeepsBacklog>, bytes: usize) {
        let forget = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            let (list, total) = &mut *kept;
            list.push_back((session, bytes));
            *total += bytes;
            let mut forget = Vec::new();
            while *total > CLOSED_BACKLOGS {
                let Some((old, n)) = list.pop_front() else { break };
                *total -= n;
                forget.push(old);
            }
            forget
        };
        for old in forget.iter().filter_map(Weak::upgrade) {
            old.forget_backlog();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlogs_share_a_bound_when_many_sessions_are_live() {
        assert_eq!(backlog_share(0), 1 << 20);
        assert_eq!(backlog_share(64), 1 << 20);
        assert_eq!(backlog_share(128), 512 << 10);
        assert_eq!(backlog_share(1000), LIVE_BACKLOGS / 1000);
        assert_eq!(backlog_share(19_000), MIN_BACKLOG);
    }
}
