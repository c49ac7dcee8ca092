//! A listener's client slots, as its sessions see them: which listener
//! they came from, and the slot each gives back when it ends. A leaf, so
//! sessions need not know listeners (a listener makes sessions; a session
//! only frees its slot).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Clients a listener serves now.
#[derive(Debug, Default)]
pub struct Slots {
    taken: AtomicUsize,
}

impl Slots {
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }

    pub fn take(&self) {
        self.taken.fetch_add(1, Ordering::AcqRel);
    }

    pub fn give_back(&self) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The listener a session came from.
#[derive(Clone, Debug)]
pub struct Membership {
    pub listener_id: String,
    /// `udp --per-peer`: the session shares the listener's socket.
    pub shares_socket: bool,
    pub slots: Arc<Slots>,
}
