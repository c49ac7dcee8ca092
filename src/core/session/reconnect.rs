//! Reconnecting (`connect --reconnect`): when a link drops, dial again
//! with backoff and put the new link under the same session.

use std::sync::Arc;

use tokio::time::Instant;

use super::{STABLE_LINK, Session, WriteSide, Writer};
use crate::core::events::{CloseReason, CoreError, EventKind};
use crate::core::transport::{self, Io};

impl Session {
    /// The connection of `generation` ended. A `--reconnect` session starts
    /// reconnecting (once per connection, whichever of its tasks noticed
    /// first); any other session closes.
    pub(super) async fn connection_ended(
        self: &Arc<Self>,
        generation: u64,
        reason: CloseReason,
        err: Option<CoreError>,
    ) {
        if self.redial.is_none() {
            self.close(reason, err).await;
            return;
        }
        {
            let mut state = self.lock();
            let link = &mut state.link;
            if link.generation != generation || link.down.is_some() {
                return;
            }
            link.token.cancel();
            if link.up_since.elapsed() >= STABLE_LINK {
                link.streak = 0;
            }
            link.down = Some((link.streak + 1, Instant::now()));
            if state.closed.is_some() {
                return;
            }
        }
        self.lock().control = None;
        // Sends fail (naming the next attempt) until the connection is back.
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = Writer::Gone;
        let cause = match err {
            Some(e) => e.text,
            None if self.kind == crate::core::transport::Kind::Serial => {
                "the device went away (unplugged, or the other end of the pty closed)".to_string()
            }
            None => "the peer closed the connection".to_string(),
        };
        let task = tokio::spawn(self.clone().reconnect(cause));
        self.add_task(task);
    }

    /// Dials again, with backoff, until connected or the session is closed.
    async fn reconnect(self: Arc<Self>, mut cause: String) {
        let Some(redial) = &self.redial else { return };
        self.record_event(&format!("connection lost: {cause}")).await;
        loop {
            let attempt = {
                let mut state = self.lock();
                state.link.streak += 1;
                state.link.streak
            };
            let delay = redial.backoff.delay(attempt, fastrand::f64());
            self.lock().link.down = Some((attempt, Instant::now() + delay));
            self.emit(EventKind::Reconnecting {
                attempt,
                delay,
                cause: cause.clone(),
            })
            .await;
            let dialed = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = async {
                    tokio::time::sleep(delay).await;
                    // An unplugged serial adapter: until it is back.
                    redial.dialer.ready().await;
                    redial.dialer.dial().await
                } => r,
            };
            match dialed {
                Ok(dialed) => {
                    self.relink(dialed).await;
                    return;
                }
                Err(e) => {
                    self.record_event(&format!("reconnect attempt {attempt} failed: {}", e.text))
                        .await;
                    cause = e.text;
                }
            }
        }
    }

    /// Puts a new connection under the session: same id, scrollback,
    /// counters and transcript; new reader, writer and addresses.
    async fn relink(self: &Arc<Self>, dialed: transport::Link) {
        let Io::Stream { read, write } = dialed.io else {
            return;
        };
        {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            state.link.generation += 1;
            state.link.token = self.cancel.child_token();
            state.link.down = None;
            state.link.up_since = Instant::now();
            state.local = dialed.local.clone();
            state.peer = Some(dialed.peer.clone());
            state.read_eof = false;
            state.write_eof = false;
            state.control = dialed.control;
            state.last_activity = Instant::now();
        }
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = Writer::Idle(WriteSide::Stream(write));
        self.record_event(&format!("reconnected {} -> {}", dialed.local, dialed.peer))
            .await;
        self.emit(EventKind::Connected {
            remote: dialed.peer,
            local: dialed.local,
            kind: dialed.kind,
            insecure: dialed.insecure,
            cipher: dialed.cipher,
            via: self
                .redial
                .as_ref()
                .and_then(|r| r.dialer.via())
                .cloned()
                .map(Box::new),
        })
        .await;
        self.start_reading(Some(read));
        if let Some(preamble) = self.redial.as_ref().and_then(|r| r.preamble.clone()) {
            self.send_preamble(preamble);
        }
    }
}
