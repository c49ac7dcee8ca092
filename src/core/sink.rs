//! The event channel from the core to a front end, bounded by the memory
//! its events hold (bytes), not by how many there are: a flood of empty
//! lines costs bookkeeping per line, a flood of one endless line costs its
//! bytes, and either way at most [`EVENT_BUDGET`] waits for the front end.
//! When the front end falls behind, senders wait, and sessions stop reading
//! (TCP backpressure).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Semaphore, mpsc};

use super::events::{Event, EventKind};

/// Bytes of memory queued events may hold before senders wait.
pub const EVENT_BUDGET: usize = 16 << 20;
/// Events queued at most, whatever they hold (a second bound, for the
/// bookkeeping a tiny event costs the channel itself).
const EVENT_SLOTS: usize = 4096;

/// What an event holds in memory: its envelope, its bytes, and the
/// bookkeeping of every line it carries.
pub fn held_bytes(event: &Event) -> usize {
    let envelope = std::mem::size_of::<Event>()
        + event.session_id.as_ref().map_or(0, String::len)
        + event.listener_id.as_ref().map_or(0, String::len)
        + event.label.as_ref().map_or(0, String::len)
        + event.error.as_ref().map_or(0, |e| e.text.len());
    let body = match &event.kind {
        EventKind::Data { payload, .. }
        | EventKind::Sent { payload, .. }
        | EventKind::DataPartial { payload, .. } => payload.len(),
        EventKind::DataBatch(lines) => lines
            .iter()
            .map(|l| l.payload.len() + std::mem::size_of_val(l))
            .sum(),
        EventKind::Match { lines, matched, .. } => {
            matched.len()
                + lines
                    .iter()
                    .map(|l| l.len() + std::mem::size_of::<String>())
                    .sum::<usize>()
        }
        EventKind::Sessions(list) => list.len() * 256,
        EventKind::Listeners(list) => list.len() * 192,
        EventKind::Triggers(list) => list.len() * 256,
        EventKind::Info(text) => text.len(),
        EventKind::Reconnecting { cause, .. } => cause.len(),
        EventKind::Connecting { .. } => 64,
        _ => 0,
    };
    envelope + body
}

/// Where events go. Cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<(Event, u32)>,
    budget: Arc<Semaphore>,
    /// Set once the front end stops reading (it is shutting down, or its
    /// output is gone): events that would wait are dropped instead, so
    /// closing sessions never hang on a queue nobody drains.
    lossy: Arc<AtomicBool>,
    /// The whole budget: an event bigger than it takes all of it.
    limit: u32,
}

/// The front end's end of the channel; hands the budget back as it takes events.
pub struct EventStream {
    rx: mpsc::Receiver<(Event, u32)>,
    budget: Arc<Semaphore>,
}

impl EventSink {
    pub fn new() -> (EventSink, EventStream) {
        Self::with_budget(EVENT_BUDGET)
    }

    /// A channel holding at most `budget` bytes of events.
    pub fn with_budget(budget: usize) -> (EventSink, EventStream) {
        let (tx, rx) = mpsc::channel(EVENT_SLOTS);
        let limit = budget.clamp(1, EVENT_BUDGET);
        let budget = Arc::new(Semaphore::new(limit));
        let sink = EventSink {
            tx,
            budget: budget.clone(),
            lossy: Arc::new(AtomicBool::new(false)),
            limit: limit as u32,
        };
        (sink, EventStream { rx, budget })
    }

    /// Delivers an event, waiting while the queue holds its budget; a
    /// front end that went away is not an error.
    pub async fn emit(&self, event: Event) {
        if self.lossy.load(Ordering::Acquire) {
            self.try_emit(event);
            return;
        }
        let cost = self.share(&event);
        let Ok(permit) = self.budget.acquire_many(cost).await else {
            return;
        };
        permit.forget();
        if let Err(mpsc::error::SendError((_, cost))) = self.tx.send((event, cost)).await {
            self.budget.add_permits(cost as usize);
        }
    }

    /// Delivers the event if there is room now; drops it otherwise.
    pub fn try_emit(&self, event: Event) {
        let cost = self.share(&event);
        let Ok(permit) = self.budget.try_acquire_many(cost) else {
            return;
        };
        permit.forget();
        if self.tx.try_send((event, cost)).is_err() {
            self.budget.add_permits(cost as usize);
        }
    }

    /// For threads outside the runtime (the transcript writer): waits for
    /// a slot, not for the byte budget (these events are a line of text).
    pub fn emit_blocking(&self, event: Event) {
        if self.lossy.load(Ordering::Acquire) {
            self.try_emit(event);
            return;
        }
        let share = self.share(&event);
        let cost = match self.budget.try_acquire_many(share) {
            Ok(permit) => {
                permit.forget();
                share
            }
            Err(_) => 0,
        };
        if self.tx.blocking_send((event, cost)).is_err() {
            self.budget.add_permits(cost as usize);
        }
    }

    /// The front end no longer drains events: from now on nothing waits
    /// for room, what does not fit is dropped (transcripts still keep every byte).
    pub fn stop_waiting(&self) {
        self.lossy.store(true, Ordering::Release);
    }

    /// The event's share of the budget (all of it at most).
    fn share(&self, event: &Event) -> u32 {
        (held_bytes(event).min(self.limit as usize) as u32).max(1)
    }
}

/// A front end that went away takes nobody's events: senders stop
/// waiting for room at once (what it had queued never comes back).
impl Drop for EventStream {
    fn drop(&mut self) {
        self.budget.close();
    }
}

impl EventStream {
    pub async fn recv(&mut self) -> Option<Event> {
        let (event, cost) = self.rx.recv().await?;
        self.budget.add_permits(cost as usize);
        Some(event)
    }

    pub fn try_recv(&mut self) -> Result<Event, mpsc::error::TryRecvError> {
        let (event, cost) = self.rx.try_recv()?;
        self.budget.add_permits(cost as usize);
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::DataLine;
    use bytes::Bytes;

    fn batch(lines: usize) -> Event {
        let one = DataLine {
            payload: Bytes::new(),
            count: 1,
            eol: b"\n",
        };
        Event::new(EventKind::DataBatch(vec![one; lines])).session("sess-x")
    }

    #[test]
    fn empty_lines_cost_their_bookkeeping() {
        let cost = held_bytes(&batch(65_536));
        assert!(cost >= 65_536 * std::mem::size_of::<DataLine>(), "{cost}");
    }

    #[tokio::test]
    async fn senders_wait_once_the_budget_is_held() {
        let (sink, mut stream) = EventSink::with_budget(8 << 20);
        // Each batch holds ~3.7 MB: two fit, the third waits.
        sink.emit(batch(65_536)).await;
        sink.emit(batch(65_536)).await;
        let third =
            tokio::time::timeout(std::time::Duration::from_millis(200), sink.emit(batch(65_536))).await;
        assert!(third.is_err(), "a third batch must wait for room");
        assert!(stream.recv().await.is_some());
        tokio::time::timeout(std::time::Duration::from_secs(5), sink.emit(batch(65_536)))
            .await
            .expect("room once one was taken");
    }

    #[tokio::test]
    async fn a_dropped_stream_never_leaves_senders_waiting() {
        let (sink, stream) = EventSink::with_budget(1 << 20);
        sink.emit(batch(10_000)).await;
        drop(stream);
        tokio::time::timeout(std::time::Duration::from_secs(1), sink.emit(batch(10_000)))
            .await
            .expect("never waits once the front end is gone");
    }

    #[tokio::test]
    async fn a_sink_that_stopped_waiting_drops_instead() {
        let (sink, _stream) = EventSink::with_budget(1 << 20);
        sink.emit(batch(10_000)).await;
        sink.stop_waiting();
        tokio::time::timeout(std::time::Duration::from_secs(1), sink.emit(batch(10_000)))
            .await
            .expect("never waits once lossy");
    }
}
