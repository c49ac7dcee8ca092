//! Recording sessions: transcripts written off the data path, on a
//! dedicated thread (the format itself is [`crate::transcript`]).
//!
//! Sessions hand raw chunks ([`Bytes`], no copy) with their timestamps to a
//! bounded channel; one writer thread escapes and writes them. When the
//! writer falls behind, the channel fills and sessions wait: nothing is
//! dropped. The writer flushes whenever it runs out of work and at least
//! every [`FLUSH_INTERVAL`] under load, so a crash loses at most that window.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::error::{CoreError, CoreResult, ErrorCode};
use super::events::Event;
use super::sink::EventSink;
use crate::transcript::{LineWriter, Mark, file_in};

pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Chunks queued for the writer before sessions wait.
const QUEUE: usize = 1024;
/// Bytes queued for the writer before sessions wait, in KiB. Enough to keep
/// the writer busy; small enough that a flood does not pile up hundreds of
/// MiB, and that chunks are escaped while they are still in the cache and
/// their buffers come back for the next reads soon.
const QUEUE_KIB: u32 = 4 * 1024;

enum Msg {
    Open {
        id: u64,
        file: File,
        path: PathBuf,
        header: String,
        session: String,
        done: oneshot::Sender<CoreResult<()>>,
    },
    Line {
        id: u64,
        at: DateTime<Utc>,
        mark: Mark,
        data: Bytes,
        /// Its share of the byte budget, given back once written.
        kib: u32,
    },
    Close {
        id: u64,
        done: oneshot::Sender<()>,
    },
    Flush {
        done: oneshot::Sender<()>,
    },
    /// The same, answered on a std channel (synchronous callers).
    FlushSync {
        done: std::sync::mpsc::Sender<()>,
    },
}

/// The writer thread's handle. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    budget: Arc<Semaphore>,
    next_id: Arc<AtomicU64>,
}

/// One open transcript file.
#[derive(Clone)]
pub struct Transcript {
    id: u64,
    tx: mpsc::Sender<Msg>,
    budget: Arc<Semaphore>,
    pub path: PathBuf,
}

impl Recorder {
    /// Starts the writer thread; write failures are reported as
    /// `RECORD_FAILED` events on `events`.
    pub fn start(events: EventSink, format: crate::transcript::Format) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        let budget = Arc::new(Semaphore::new(QUEUE_KIB as usize));
        let returns = budget.clone();
        let spawned = std::thread::Builder::new()
            .name("muxcat-transcripts".into())
            .spawn(move || writer_thread(rx, returns, events, format));
        if let Err(e) = spawned {
            tracing::error!("cannot start the transcript writer: {e}");
        }
        Recorder {
            tx,
            budget,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Creates a new file, owner-only (0600), and writes the header. An
    /// existing path (a file, a symlink, a FIFO) is never opened: with
    /// `Place::File` that is `RECORD_FAILED`, with `Place::Dir` the next
    /// free name (`…-2.log`) is taken. The file is created off the writer
    /// thread, so a slow file system stalls only this session.
    pub async fn open(&self, place: Place, session: &str, header: String) -> CoreResult<Transcript> {
        let (file, path) = tokio::task::spawn_blocking(move || create_new(place))
            .await
            .map_err(|e| {
                CoreError::new(
                    ErrorCode::RecordFailed,
                    format!("creating the transcript failed: {e}"),
                )
            })??;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, rx) = oneshot::channel();
        let gone = || CoreError::new(ErrorCode::RecordFailed, "the transcript writer has stopped");
        self.tx
            .send(Msg::Open {
                id,
                file,
                path: path.clone(),
                header,
                session: session.to_string(),
                done,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())??;
        Ok(Transcript {
            id,
            tx: self.tx.clone(),
            budget: self.budget.clone(),
            path,
        })
    }

    /// From a panic hook or other synchronous code: asks the writer to
    /// write and flush everything queued so far, waiting at most `limit`.
    pub fn flush_blocking(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (done, rx) = std::sync::mpsc::channel();
        let mut msg = Msg::FlushSync { done };
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(back)) if Instant::now() < deadline => {
                    msg = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }

    /// Waits until everything queued so far is written and flushed.
    pub async fn flush(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush { done }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

impl Transcript {
    /// Queues one chunk; waits if the writer is behind.
    pub async fn write(&self, mark: Mark, data: Bytes) {
        // The timestamp is taken before any wait: it is when the bytes moved.
        let at = Utc::now();
        let kib = u32::try_from(data.len() / 1024 + 1).map_or(QUEUE_KIB, |k| k.min(QUEUE_KIB));
        let Ok(permit) = self.budget.acquire_many(kib).await else {
            return;
        };
        permit.forget();
        let line = Msg::Line {
            id: self.id,
            at,
            mark,
            data,
            kib,
        };
        if self.tx.send(line).await.is_err() {
            self.budget.add_permits(kib as usize);
        }
    }

    pub async fn event(&self, text: &str) {
        self.event_bytes(Bytes::copy_from_slice(text.as_bytes())).await;
    }

    /// An event line whose text holds bytes that need not be UTF-8 (a
    /// relayed chunk quoted in it).
    pub async fn event_bytes(&self, text: Bytes) {
        self.write(Mark::Event, text).await;
    }

    /// Closes the file; returns once what was queued for it is written.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Msg::Close { id: self.id, done }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct OpenFile {
    out: BufWriter<File>,
    session: String,
    path: PathBuf,
    failed: bool,
}

/// Where a transcript goes.
#[derive(Clone, Debug)]
pub enum Place {
    /// `record FILE`: exactly this path, which must not exist yet.
    File(PathBuf),
    /// `--record DIR`: `DIR/<YYYYMMDD-HHMMSS>-<sessionId>.log`, or the
    /// first free `…-N.log` beside it.
    Dir(PathBuf, String),
}

/// Tries for a free name in a directory at most this many times.
const FREE_NAMES: u32 = 100;

/// Creates a new file exclusively (`O_CREAT|O_EXCL`: an existing file,
/// symlink or FIFO is refused, never followed or truncated), owner-only.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

fn create_new(place: Place) -> CoreResult<(File, PathBuf)> {
    let failed = |path: &Path, e: std::io::Error| {
        let why = if e.kind() == std::io::ErrorKind::AlreadyExists {
            "it already exists (muxcat never overwrites or follows an existing file; remove it or pick another name)"
                .to_string()
        } else {
            e.to_string()
        };
        CoreError::new(
            ErrorCode::RecordFailed,
            format!(
                "cannot write transcript {}: {why}",
                crate::core::escape::escape_display(path.display().to_string().as_bytes())
            ),
        )
    };
    match place {
        Place::File(path) => create_private(&path)
            .map(|f| (f, path.clone()))
            .map_err(|e| failed(&path, e)),
        Place::Dir(dir, session) => {
            // `--record DIR` (or the defaults file's `record`) names where
            // transcripts go: made if missing, owner-only like them.
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| failed(&dir, e))?;
            }
            let first = file_in(&dir, &session);
            let stem = first.with_extension("");
            let others = (2..=FREE_NAMES).map(|n| PathBuf::from(format!("{}-{n}.log", stem.display())));
            for path in std::iter::once(first.clone()).chain(others) {
                match create_private(&path) {
                    Ok(f) => return Ok((f, path)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(failed(&path, e)),
                }
            }
            Err(failed(
                &first,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ))
        }
    }
}

/// Closes the byte budget when the writer ends, however it ends (a panic
/// included), so sessions stop waiting for room and go on unrecorded.
struct CloseOnExit(Arc<Semaphore>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn writer_thread(
    mut rx: mpsc::Receiver<Msg>,
    budget: Arc<Semaphore>,
    events: EventSink,
    format: crate::transcript::Format,
) {
    let _closing = CloseOnExit(budget.clone());
    let mut files: HashMap<u64, OpenFile> = HashMap::new();
    let mut line = LineWriter::default();
    let mut dirty = false;
    let mut last_flush = Instant::now();
    loop {
        let msg = if dirty {
            match rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Out of work: flush now, then sleep until more arrives.
                    flush_all(&mut files, &events);
                    dirty = false;
                    last_flush = Instant::now();
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.blocking_recv() {
                Some(m) => m,
                None => break,
            }
        };
        match msg {
            Msg::Open {
                id,
                file,
                path,
                header,
                session,
                done,
            } => {
                let opened = Ok::<File, std::io::Error>(file).and_then(|f| {
                    let mut out = BufWriter::with_capacity(64 * 1024, f);
                    writeln!(out, "{}", format.header(&header))?;
                    out.flush()?;
                    Ok(out)
                });
                let result = match opened {
                    Ok(out) => {
                        files.insert(
                            id,
                            OpenFile {
                                out,
                                session,
                                path,
                                failed: false,
                            },
                        );
                        Ok(())
                    }
                    Err(e) => Err(CoreError::new(
                        ErrorCode::RecordFailed,
                        format!("cannot write transcript {}: {e}", path.display()),
                    )),
                };
                let _ = done.send(result);
            }
            Msg::Line {
                id,
                at,
                mark,
                data,
                kib,
            } => {
                if let Some(file) = files.get_mut(&id)
                    && !file.failed
                    && let Err(e) = line.write(&mut file.out, at, mark, &data, format)
                {
                    report(file, &events, e);
                }
                drop(data);
                budget.add_permits(kib as usize);
                dirty = true;
            }
            Msg::Close { id, done } => {
                if let Some(mut file) = files.remove(&id)
                    && !file.failed
                    && let Err(e) = file.out.flush()
                {
                    report(&mut file, &events, e);
                }
                let _ = done.send(());
            }
            Msg::Flush { done } => {
                flush_all(&mut files, &events);
                let _ = done.send(());
            }
            Msg::FlushSync { done } => {
                flush_all(&mut files, &events);
                let _ = done.send(());
            }
        }
        if dirty && last_flush.elapsed() >= FLUSH_INTERVAL {
            flush_all(&mut files, &events);
            last_flush = Instant::now();
        }
    }
    flush_all(&mut files, &events);
}

fn flush_all(files: &mut HashMap<u64, OpenFile>, events: &EventSink) {
    for file in files.values_mut() {
        if !file.failed
            && let Err(e) = file.out.flush()
        {
            report(file, events, e);
        }
    }
}

/// A failed file is reported once; its session goes on unrecorded.
fn report(file: &mut OpenFile, events: &EventSink, e: std::io::Error) {
    file.failed = true;
    let err = CoreError::new(
        ErrorCode::RecordFailed,
        format!(
            "writing transcript {} failed: {e}; recording stopped",
            file.path.display()
        ),
    );
    events.emit_blocking(Event::error(err).session(&file.session));
}
