//! The journal's writer thread and the acknowledgements it hands out. One thread owns the file
//! after compaction, so lines are written in the order they were queued and a failure is seen
//! in one place. It writes in batches — one line, then whatever else is already queued, with one
//! `write` — and under `always` fsyncs once per batch (group commit), so many appenders share
//! one fsync. After the first failed write or fsync it writes nothing more and answers every
//! line with the error.

use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::JournalError;
use crate::config::Fsync;

/// `everysec`: the longest a written record stays unsynced.
pub(super) const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// A batch stops growing here, so a burst is written in bounded pieces instead of one copy of
/// the whole queue.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// One encoded record (with its newline) on its way to the writer.
#[derive(Debug)]
pub(super) struct Line {
    pub(super) bytes: Vec<u8>,
    pub(super) ack: oneshot::Sender<Result<(), JournalError>>,
}

/// What the writer thread and the appenders both see.
#[derive(Debug)]
pub(super) struct Shared {
    path: PathBuf,
    /// Set once, by the writer, at the first failed write or fsync.
    broken: OnceLock<Arc<io::Error>>,
    fsyncs: AtomicU64,
}

impl Shared {
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(super) fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// The error every append gets once the journal is broken.
    pub(super) fn broken(&self) -> Option<JournalError> {
        self.broken.get().map(|cause| self.broken_error(cause))
    }

    fn broken_error(&self, cause: &Arc<io::Error>) -> JournalError {
        JournalError::Broken {
            path: self.path.clone(),
            source: Arc::clone(cause),
        }
    }

    /// The error for appends that find the writer gone (it only goes when dropped or panicked).
    pub(super) fn stopped_error(&self) -> JournalError {
        let cause = match self.broken.get() {
            Some(cause) => Arc::clone(cause),
            None => Arc::new(io::Error::other("the journal writer thread stopped")),
        };
        self.broken_error(&cause)
    }
}

/// Start the writer thread on `file`, the open journal at `path`: the queue to send it lines,
/// the state it shares, and the thread to join.
pub(super) fn spawn(
    path: PathBuf,
    file: File,
    fsync: Fsync,
) -> io::Result<(mpsc::Sender<Line>, Arc<Shared>, JoinHandle<()>)> {
    let shared = Arc::new(Shared {
        path,
        broken: OnceLock::new(),
        fsyncs: AtomicU64::new(0),
    });
    // Unbounded, so `append` never blocks a caller holding a sale's lock; the queue is bounded
    // in practice by the requests in flight.
    let (queue, lines) = mpsc::channel();
    let writer = Writer {
        file,
        fsync,
        lines,
        shared: Arc::clone(&shared),
        dirty: false,
        last_sync: Instant::now(),
    };
    let thread = std::thread::Builder::new()
        .name("flashgate-journal".into())
        .spawn(move || writer.run())?;
    Ok((queue, shared, thread))
}

/// The acknowledgement of one [`Journal::append`](super::Journal::append): resolves to
/// `Ok(())` once the record is as safe as the [`Fsync`] policy promises, or to the error that
/// broke the journal.
#[derive(Debug)]
#[must_use = "a record is safe only once its Appended resolves to Ok"]
pub struct Appended {
    shared: Arc<Shared>,
    state: State,
}

#[derive(Debug)]
enum State {
    Waiting(oneshot::Receiver<Result<(), JournalError>>),
    Ready(Option<Result<(), JournalError>>),
}

impl Appended {
    /// Waiting for the writer's answer on `done`.
    pub(super) fn waiting(
        shared: Arc<Shared>,
        done: oneshot::Receiver<Result<(), JournalError>>,
    ) -> Appended {
        Appended {
            shared,
            state: State::Waiting(done),
        }
    }

    /// Already answered, without the writer.
    pub(super) fn ready(shared: Arc<Shared>, result: Result<(), JournalError>) -> Appended {
        Appended {
            shared,
            state: State::Ready(Some(result)),
        }
    }
}

impl Future for Appended {
    type Output = Result<(), JournalError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match &mut this.state {
            State::Waiting(done) => match Pin::new(done).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(result)) => result,
                // The writer dropped the acknowledgement unanswered: it panicked.
                Poll::Ready(Err(_)) => Err(this.shared.stopped_error()),
            },
            // Polled again after it resolved (a misuse): answer rather than panic.
            State::Ready(result) => result
                .take()
                .unwrap_or_else(|| Err(this.shared.stopped_error())),
        };
        // A oneshot receiver must not be polled after it resolved.
        this.state = State::Ready(None);
        Poll::Ready(result)
    }
}

/// The writer thread's state: the only code that writes the journal after compaction.
struct Writer {
    file: File,
    fsync: Fsync,
    lines: mpsc::Receiver<Line>,
    shared: Arc<Shared>,
    /// Written since the last fsync.
    dirty: bool,
    last_sync: Instant,
}

impl Writer {
    fn run(mut self) {
        let mut bytes = Vec::new();
        let mut acks = Vec::new();
        // The queue yields every line sent before the Journal was dropped before it reports
        // the disconnection, so leaving the loop means everything queued has been handled.
        while let Some(first) = self.next_line() {
            bytes.clear();
            bytes.extend_from_slice(&first.bytes);
            acks.push(first.ack);
            while bytes.len() < MAX_BATCH_BYTES {
                let Ok(line) = self.lines.try_recv() else {
                    break;
                };
                bytes.extend_from_slice(&line.bytes);
                acks.push(line.ack);
            }
            let written = self.write(&bytes);
            for ack in acks.drain(..) {
                let result = match &written {
                    Ok(()) => Ok(()),
                    Err(cause) => Err(self.shared.broken_error(cause)),
                };
                // The appender may have stopped waiting; the record is written all the same.
                let _ = ack.send(result);
            }
            if self.fsync == Fsync::Everysec && self.last_sync.elapsed() >= SYNC_INTERVAL {
                // Under steady load the queue is never idle for a second, so the periodic
                // fsync is also done here, after the batch's acknowledgements.
                self.sync();
            }
        }
        // Closing: whatever the policy, leave nothing unsynced behind.
        self.sync();
    }

    /// The next queued line, or None once the queue is closed and empty. With unsynced
    /// `everysec` writes it waits only until their fsync is due and does it.
    fn next_line(&mut self) -> Option<Line> {
        loop {
            if !(self.fsync == Fsync::Everysec && self.dirty) {
                return self.lines.recv().ok();
            }
            let due = (self.last_sync + SYNC_INTERVAL).saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(due) {
                Ok(line) => return Some(line),
                Err(RecvTimeoutError::Timeout) => self.sync(),
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Write one batch (and fsync it under `always`), unless the journal is already broken.
    fn write(&mut self, bytes: &[u8]) -> Result<(), Arc<io::Error>> {
        if let Some(cause) = self.shared.broken.get() {
            return Err(Arc::clone(cause));
        }
        if let Err(e) = self.file.write_all(bytes) {
            return Err(self.fail("write", e));
        }
        self.dirty = true;
        if self.fsync == Fsync::Always {
            self.sync();
            if let Some(cause) = self.shared.broken.get() {
                return Err(Arc::clone(cause));
            }
        }
        Ok(())
    }

    /// fsync what was written, if anything, unless the journal is broken.
    fn sync(&mut self) {
        if !self.dirty || self.shared.broken.get().is_some() {
            return;
        }
        match self.file.sync_data() {
            Ok(()) => {
                self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.dirty = false;
                self.last_sync = Instant::now();
            }
            Err(e) => {
                // After a failed fsync the OS may have dropped the dirty pages; writing on
                // would pretend they were safe.
                self.fail("fsync", e);
            }
        }
    }

    /// Break the journal for good with `error`.
    fn fail(&mut self, what: &str, error: io::Error) -> Arc<io::Error> {
        let cause = Arc::new(error);
        tracing::error!(
            journal = %self.shared.path.display(),
            "journal {what} failed: {cause}; the journal accepts no more records"
        );
        Arc::clone(self.shared.broken.get_or_init(|| cause))
    }
}
