//! The reader tasks: a stream's read loop (framing, the inactivity
//! timeout, the end of input), a UDP socket's receive loop, and the idle
//! timer of a per-peer UDP session.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{SMALL_READ, Session};
use crate::core::events::{CoreError, ErrorCode, EventKind};
use crate::core::frames::Framer;
use crate::core::framing::LineSplitter;
use crate::core::recycle::Recycler;
use crate::core::transport::ReadSide;
use crate::core::transport::udp::Datagrams;

pub(super) async fn read_loop(
    session: Arc<Session>,
    mut read: ReadSide,
    (generation, link): (u64, CancellationToken),
) {
    let mut buf = BytesMut::new();
    let mut splitter = LineSplitter::default();
    let mut lines = Vec::new();
    // `--frame`: binary frames, cut here.
    // Boxed: most sessions have none, and the reader stays small.
    let mut framer = session.frame.clone().map(|spec| Box::new(Framer::new(spec)));
    // Bulk mode: the last chunks handed out, reused as read buffers once
    // nobody else holds them (fresh buffers cost page faults).
    let mut spent = Recycler::default();
    loop {
        // `hold c2s` on a proxy: the client's bytes wait in the kernel.
        if session.relay.get().is_some() {
            tokio::select! {
                _ = link.cancelled() => return,
                _ = session.c2s_released() => {}
            }
        }
        if buf.capacity() == 0
            && let Some(mut reused) = spent.take()
        {
            reused.clear();
            buf = reused;
        }
        let deadline = session.deadline();
        let frame_due = framer.as_deref().and_then(Framer::deadline);
        // One timer for both (each costs the idle reader its size).
        let wake = match (frame_due, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let result = tokio::select! {
            _ = link.cancelled() => return,
            // `hold c2s` while waiting for the client: the read stops.
            _ = session.c2s_held_now() => continue,
            _ = sleep_until_opt(wake) => {
                // Idle framing: the gap after the last byte ends the frame.
                if frame_due.is_some_and(|d| d <= Instant::now())
                    && let Some(frame) = framer.as_deref_mut().and_then(Framer::flush)
                {
                    Box::pin(session.deliver_frame(frame)).await;
                }
                if session.deadline().is_some_and(|d| d <= Instant::now()) {
                    // Cold paths are boxed so the reader future stays small while idle.
                    Box::pin(session.expire()).await;
                    return;
                }
                continue;
            }
            r = read.read_chunk(&mut buf, session.ctx.read_size, session.ctx.bulk) => r,
        };
        match result {
            Ok(0) => {
                splitter.finish(&mut lines);
                Box::pin(session.deliver_lines(&mut lines)).await;
                if let Some(frame) = framer.as_deref_mut().and_then(Framer::flush) {
                    Box::pin(session.deliver_frame(frame)).await;
                }
                Box::pin(session.input_ended(generation, None)).await;
                return;
            }
            // A TLS peer that closes without close_notify (ncat does when
            // its stdin ends): the end of its output, said in the event.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && session.reads_tls() => {
                splitter.finish(&mut lines);
                Box::pin(session.deliver_lines(&mut lines)).await;
                if let Some(frame) = framer.as_deref_mut().and_then(Framer::flush) {
                    Box::pin(session.deliver_frame(frame)).await;
                }
                let note = "the TLS peer closed without close_notify (what it sent may be cut short)";
                Box::pin(session.input_ended(generation, Some(note))).await;
                return;
            }
            Ok(n) => {
                let chunk = if n < SMALL_READ && buf.len() == n {
                    // Copy small reads out and drop the buffer: idle sessions
                    // stay small. Bulk transfers keep it: a tty reads 4 KiB
                    // at a time, and a fresh big buffer per read costs more
                    // than the copy.
                    let chunk = Bytes::copy_from_slice(&buf);
                    if session.ctx.bulk {
                        buf.clear();
                    } else {
                        buf = BytesMut::new();
                    }
                    chunk
                } else if session.ctx.bulk {
                    let chunk = std::mem::take(&mut buf).freeze();
                    spent.keep(&chunk);
                    chunk
                } else {
                    buf.split().freeze()
                };
                // Boxed: one allocation per read keeps the idle reader small.
                Box::pin(session.received(chunk, &mut splitter, &mut lines, &mut framer)).await;
            }
            Err(e) => {
                splitter.finish(&mut lines);
                Box::pin(session.deliver_lines(&mut lines)).await;
                if let Some(frame) = framer.as_deref_mut().and_then(Framer::flush) {
                    Box::pin(session.deliver_frame(frame)).await;
                }
                if e.kind() == std::io::ErrorKind::ConnectionReset {
                    // A proxy's client reset: so is its server connection.
                    session.relay_reset(super::relay::RelayDir::C2s);
                }
                Box::pin(session.fail(generation, "read failed", e)).await;
                return;
            }
        }
    }
}

pub(super) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn udp_loop(session: Arc<Session>, socket: Arc<Datagrams>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let deadline = session.deadline();
        let result = tokio::select! {
            _ = session.cancel.cancelled() => return,
            _ = sleep_until_opt(deadline) => {
                if session.deadline().is_some_and(|d| d <= Instant::now()) {
                    // Cold paths are boxed so the reader future stays small while idle.
                    Box::pin(session.expire()).await;
                    return;
                }
                continue;
            }
            r = socket.recv_from(&mut buf) => r,
        };
        match result {
            Ok((n, from)) => session.datagram(&buf[..n], from).await,
            // An ICMP error from an earlier send: report it, keep receiving.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                session
                    .emit_error(
                        EventKind::Error,
                        CoreError::new(
                            ErrorCode::UdpSendFailed,
                            format!(
                                "a datagram from {} was refused by its destination: {e}",
                                session.id
                            ),
                        ),
                    )
                    .await;
            }
            Err(e) => {
                Box::pin(session.fail(0, "receive failed", e)).await;
                return;
            }
        }
    }
}

/// A per-peer UDP session has no reader of its own (its listener reads the
/// shared socket): this task enforces its inactivity timeout.
pub(super) async fn idle_timer(session: Arc<Session>) {
    loop {
        let deadline = session.deadline();
        tokio::select! {
            _ = session.cancel.cancelled() => return,
            _ = sleep_until_opt(deadline) => {
                if session.deadline().is_some_and(|d| d <= Instant::now()) {
                    session.expire().await;
                    return;
                }
            }
        }
    }
}

pub(super) fn strip_eol(d: &[u8]) -> &[u8] {
    let d = d.strip_suffix(b"\n").unwrap_or(d);
    d.strip_suffix(b"\r").unwrap_or(d)
}
