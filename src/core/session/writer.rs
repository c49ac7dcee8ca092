//! The writer task: one per session, started by the first send, so sends
//! go out in the order they were made; half-close, and the FIN at the end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{REQ_OVERHEAD, Session};
use crate::core::events::{CloseReason, CoreError, CoreResult, ErrorCode};
use crate::core::transport::udp::Datagrams;
use crate::transcript::Mark;

/// A request to the writer task. One writer per session keeps sends in
/// the order they were made.
pub(crate) enum WriteReq {
    Data {
        data: Bytes,
        done: oneshot::Sender<CoreResult<u64>>,
        /// The trigger sending it, for the `sent` event.
        trigger: Option<String>,
    },
    /// Half-close: FIN (or TLS close_notify), keep receiving.
    Shutdown { done: oneshot::Sender<CoreResult<()>> },
}

/// The writer task starts with the first send or half-close: an idle
/// session holds no channel and no task (a few KiB of the per-session cost).
pub(super) enum Writer {
    Idle(WriteSide),
    Running(mpsc::UnboundedSender<WriteReq>),
    Gone,
}

/// Where the writer writes.
pub(super) enum WriteSide {
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
    Udp(Arc<Datagrams>),
}

pub(super) async fn write_loop(
    session: Arc<Session>,
    mut write: WriteSide,
    mut rx: mpsc::UnboundedReceiver<WriteReq>,
    (generation, link): (u64, CancellationToken),
) {
    let mut write_closed = false;
    loop {
        let req = tokio::select! {
            _ = link.cancelled() => break,
            req = rx.recv() => match req {
                Some(req) => req,
                None => break,
            },
        };
        let (data, done, trigger) = match req {
            WriteReq::Data { data, done, trigger } => {
                // Counted off as taken: only what waits in the queue counts.
                session
                    .queued_out
                    .fetch_sub(data.len() + REQ_OVERHEAD, Ordering::AcqRel);
                (data, done, trigger)
            }
            WriteReq::Shutdown { done } => {
                let result = match &mut write {
                    WriteSide::Stream(w) if !write_closed => {
                        write_closed = true;
                        session.record_event("half-closed (local end of output)").await;
                        let shut = w.shutdown().await.map_err(|e| {
                            CoreError::new(
                                ErrorCode::IoError,
                                format!("half-close of {} failed: {e}", session.id),
                            )
                        });
                        if session.end_of_output() {
                            // Both directions are done: the session is over.
                            let s = session.clone();
                            tokio::spawn(async move { s.close(CloseReason::Remote, None).await });
                        }
                        shut
                    }
                    _ => Ok(()),
                };
                let _ = done.send(result);
                continue;
            }
        };
        if write_closed {
            let _ = done.send(Err(CoreError::new(
                ErrorCode::SessionNotConnected,
                format!("session {} is half-closed: it can only receive", session.id),
            )));
            continue;
        }
        match &mut write {
            WriteSide::Stream(w) => {
                // Recorded before it goes out, so a quick answer can never
                // precede its request in the transcript; a failed write is
                // noted there when the session closes.
                session.record(Mark::Out, &data).await;
                // Reported before it goes out too: the answer to it, read
                // on another thread, can then never be reported first (a
                // failed write follows as the send's error).
                let id = session.sent(&data, data.len(), trigger).await;
                let result = async {
                    w.write_all(&data).await?;
                    w.flush().await
                }
                .await;
                match result {
                    Ok(()) => {
                        let _ = done.send(Ok(id));
                    }
                    Err(e) => {
                        session.bytes_out.fetch_sub(data.len() as u64, Ordering::Relaxed);
                        let _ = done.send(Err(CoreError::new(
                            ErrorCode::IoError,
                            format!("write to {} failed: {e}", session.id),
                        )));
                        // close() waits for no task when the reason is not Local.
                        let gone = matches!(
                            e.kind(),
                            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                        );
                        if gone && session.input_done() {
                            // The peer had ended its output and now closed
                            // its input too: it left, as nc sees it.
                            session
                                .connection_ended(generation, CloseReason::Remote, None)
                                .await;
                        } else {
                            session.fail(generation, "write failed", e).await;
                        }
                        return;
                    }
                }
            }
            WriteSide::Udp(socket) => {
                let result: CoreResult<u64> = async {
                    let dest = session.udp_destination()?;
                    if session.to_differs(dest) {
                        session.record_event(&format!("to {dest}")).await;
                    }
                    session.record(Mark::Out, &data).await;
                    let n = socket.send_to(&data, dest).await.map_err(|e| {
                        CoreError::new(ErrorCode::UdpSendFailed, format!("send to {dest} failed: {e}"))
                    })?;
                    Ok(session.sent(&data, n, trigger).await)
                }
                .await;
                if let Err(e) = &result {
                    // The datagram was recorded before the attempt.
                    session
                        .record_event(&format!("that datagram was not sent: {}", e.text))
                        .await;
                }
                let _ = done.send(result);
            }
        }
    }
    // Sends FIN (TCP) or close_notify (TLS) so the peer sees the end.
    if let WriteSide::Stream(w) = &mut write
        && !write_closed
        && !session.lock().reset
    {
        let _ = tokio::time::timeout(Duration::from_secs(2), w.shutdown()).await;
    }
}
