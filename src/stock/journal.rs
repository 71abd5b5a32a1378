//! The durable journal of the embedded stock store: every change of stock is appended here, so a
//! process that dies (or is upgraded) comes back with the same sales, buyers and reservations,
//! and a unit is never sold twice across a restart. This module owns the file format, the
//! fsync policy, compaction at start and the lock that keeps two processes out of one journal;
//! what a record *means* is the store's business (`memory`).
//!
//! **Format.** `<store.path>/journal` holds one JSON object per line, tagged by `"op"`:
//! `{"op":"start","epoch":3}`, `{"op":"sale","product":42,"stock":500}`,
//! `{"op":"reserve","product":42,"id":"3-17","uid":"josé","at_ms":1763812800000}`,
//! `{"op":"release","product":42,"id":"3-17"}`, `{"op":"keep","product":42,"id":"3-17"}`.
//! JSON escapes every control character, so a line never contains a raw newline whatever the
//! UID holds. A crash in the middle of a write can leave only the *last* line torn; [`replay`]
//! ignores such a line (it was never acknowledged) and refuses damage anywhere else, naming the
//! file and line, because silently skipping a record could sell a unit twice.
//!
//! **Lifecycle.** [`Journal::lock`] takes `<store.path>/lock` (waiting up to 10 s for a
//! previous process, e.g. during an upgrade), [`JournalLock::replay`] reads the journal, and
//! [`JournalLock::create`] compacts it: the caller's current state is written as a snapshot to
//! `journal.tmp`, fsynced and renamed over `journal` (then the directory is fsynced), so the
//! file only ever holds one snapshot plus what happened since. The lock is held for the
//! [`Journal`]'s life.
//!
//! **Appending.** [`Journal::append`] encodes the line on the caller's side and queues it
//! without blocking, in call order; one writer thread writes everything queued with one
//! `write` and acknowledges it through the returned [`Appended`] future. When an acknowledged
//! record is safe (`store.fsync`, like Redis's `appendfsync`):
//!
//! | policy | acknowledged after | process killed (SIGKILL, panic) | OS crash, power loss |
//! |---|---|---|---|
//! | `always` | write + `fdatasync` of its batch (group commit) | nothing lost | nothing lost |
//! | `everysec` (default) | write; `fdatasync` at most once a second | nothing lost | up to about 1 s of acknowledged records |
//! | `no` | write; the OS flushes when it likes | nothing lost | whatever the OS had not flushed (typically up to ~30 s on Linux) |
//!
//! A killed process loses nothing acknowledged because a written line is in the OS page cache,
//! which outlives the process. A failed write or fsync breaks the journal for good: the failing
//! batch and every later append answer [`JournalError::Broken`], and nothing is written after
//! the failure, since a torn line followed by more lines would make the file unreadable.

mod lock;
#[cfg(test)]
pub(crate) mod testing;
mod writer;

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

pub use lock::JournalLock;
pub use writer::Appended;
use writer::{Line, Shared};

use crate::config::Fsync;

/// The journal's file name inside the store directory.
const JOURNAL_FILE: &str = "journal";
/// Where a compacted journal is written before it replaces [`JOURNAL_FILE`].
const TMP_FILE: &str = "journal.tmp";
/// The file whose lock keeps a second process out.
const LOCK_FILE: &str = "lock";
/// How long [`Journal::lock`] waits for a previous process to let go: long enough for an
/// upgrade's old process to drain, short enough that a real conflict fails the start.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting [`Journal::lock`] tries again.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// One journal record. Serialized as one JSON object per line (serde, tagged by "op").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Record {
    /// A process opened the journal: its epoch (strictly greater than every earlier one).
    /// Compaction drops older `Start`s, so a snapshot must carry the newest epoch forward.
    Start {
        /// The process's epoch.
        epoch: u64,
    },
    /// A sale with its configured stock, the first time it is seen.
    Sale {
        /// The product on sale.
        product: u64,
        /// Its configured stock.
        stock: u64,
        /// Units discarded so far ([`Record::Discard`]), carried by a snapshot.
        #[serde(default, skip_serializing_if = "is_zero")]
        discarded: u64,
    },
    /// A unit of `product` taken by `uid` as reservation `id`.
    Reserve {
        /// The product.
        product: u64,
        /// The reservation's id.
        id: String,
        /// The buyer (any UTF-8).
        uid: String,
        /// When, ms since the Unix epoch.
        at_ms: u64,
    },
    /// The unit of reservation `id` given back.
    Release {
        /// The product.
        product: u64,
        /// The reservation's id.
        id: String,
    },
    /// The origin holds an order for reservation `id`: nothing left to settle.
    Keep {
        /// The product.
        product: u64,
        /// The reservation's id.
        id: String,
    },
    /// The unit of reservation `id` taken out of the sale for good: the origin has no such
    /// unit (`StockStore::discard`).
    Discard {
        /// The product.
        product: u64,
        /// The reservation's id.
        id: String,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why the journal could not be read, opened or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed (open, read, create, rename, fsync).
    #[error(
        "{}: {source}; check that store.path exists, is writable by flashgate and has room",
        path.display()
    )]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A line before the last one is not a record: not a crash's torn tail but damage.
    #[error(
        "{}:{line}: corrupt journal record ({reason}); only the last line can be torn by a \
         crash, so the file was edited or the disk lost data: restore it from a backup (moving \
         it aside starts the sales from their configured stock and may sell units twice)",
        file.display()
    )]
    Corrupt {
        /// The journal file.
        file: PathBuf,
        /// The line, starting at 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process held the journal's lock for the whole wait.
    #[error(
        "{}: the journal is locked by another flashgate process, which did not exit within \
         the wait; stop it, or give this process its own store.path",
        .0.display()
    )]
    Locked(PathBuf),
    /// A write or fsync failed earlier; the journal accepts nothing any more.
    #[error(
        "journal {} stopped after a failed write or fsync ({source}); nothing is written any \
         more: fix the disk (space, I/O errors) and restart flashgate, which replays the journal",
        path.display()
    )]
    Broken {
        /// The journal file.
        path: PathBuf,
        /// The failure that broke it, shared by every append that reports it.
        #[source]
        source: Arc<io::Error>,
    },
    /// A record could not be encoded as JSON (not expected for these plain types).
    #[error("cannot encode a journal record: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Read every record of the journal in `dir`, oldest first. A missing directory or file is an
/// empty journal. A torn last line is skipped with a warning; damage elsewhere is
/// [`JournalError::Corrupt`]. Takes no lock: a process that will write the journal afterwards
/// reads it with [`JournalLock::replay`] instead.
pub fn replay(dir: &Path) -> Result<Vec<Record>, JournalError> {
    let path = dir.join(JOURNAL_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(JournalError::Io { path, source }),
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    // A complete line is parsed only once the next one is seen: whether a bad line is a torn
    // tail (skipped) or damage (refused) depends on whether it is the last.
    let mut pending: Option<(usize, Vec<u8>)> = None;
    let mut number = 0;
    loop {
        let mut line = Vec::new();
        let read = reader.read_until(b'\n', &mut line);
        let read = read.map_err(|source| JournalError::Io {
            path: path.clone(),
            source,
        })?;
        if read == 0 {
            break;
        }
        number += 1;
        if let Some((at, previous)) = pending.take() {
            let record = parse(&previous).map_err(|reason| JournalError::Corrupt {
                file: path.clone(),
                line: at,
                reason,
            })?;
            records.push(record);
        }
        if line.last() != Some(&b'\n') {
            // Every record is written with its newline, so a line without one was cut short
            // and never acknowledged, even if what is there happens to parse.
            tracing::warn!(
                journal = %path.display(),
                line = number,
                "ignoring the journal's torn last line (no newline): a write cut short by a crash"
            );
            return Ok(records);
        }
        pending = Some((number, line));
    }
    if let Some((at, last)) = pending {
        match parse(&last) {
            Ok(record) => records.push(record),
            Err(reason) => tracing::warn!(
                journal = %path.display(),
                line = at,
                "ignoring the journal's torn last line ({reason}): a write cut short by a crash"
            ),
        }
    }
    Ok(records)
}

/// One line (with or without its newline) as a record, or why not.
fn parse(line: &[u8]) -> Result<Record, String> {
    serde_json::from_slice(line).map_err(|e| {
        // serde_json counts lines within the slice ("at line 1 column 7"), which would read
        // as a contradiction next to the journal's own line number; keep only the column.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(what, _)| what);
        format!("{message} at column {}", e.column())
    })
}

/// The durable, append-only journal of the embedded stock store. Dropping it writes what is
/// queued, fsyncs, waits for the writer thread and then releases the lock.
#[derive(Debug)]
pub struct Journal {
    /// `None` only inside `drop`, which closes the queue before joining the writer.
    queue: Option<mpsc::Sender<Line>>,
    writer: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Declared after `writer` on purpose: fields drop after `Drop::drop`, which has joined the
    /// writer, so the next process cannot take the lock while this one still writes.
    _lock: JournalLock,
}

impl Journal {
    /// Lock `dir`, creating it if missing. If another process holds the lock, try again for up
    /// to 10 s (a previous process finishing during an upgrade), then fail with
    /// [`JournalError::Locked`]. Blocks: call it at startup.
    #[cfg(test)]
    pub fn lock(dir: &Path) -> Result<JournalLock, JournalError> {
        Journal::lock_with_wait(dir, LOCK_WAIT)
    }

    /// [`Journal::lock`] with a chosen wait (an upgrade waits longer; tests need not wait 10 s).
    pub fn lock_with_wait(dir: &Path, wait: Duration) -> Result<JournalLock, JournalError> {
        JournalLock::acquire(dir, wait)
    }

    /// Lock `dir` ([`Journal::lock`]), replace its journal with `snapshot` (compaction:
    /// `journal.tmp`, fsync, rename, fsync of the directory) and start the writer thread.
    /// Blocks: call it at startup.
    ///
    /// The snapshot must reflect every record in the journal. If another process may still be
    /// appending (an upgrade), a replay taken before this call can miss its last records, which
    /// the compaction would erase: then use [`Journal::lock`], [`JournalLock::replay`] and
    /// [`JournalLock::create`], which replay under the lock.
    #[cfg(test)]
    pub fn create(dir: &Path, fsync: Fsync, snapshot: &[Record]) -> Result<Journal, JournalError> {
        Journal::lock(dir)?.create(fsync, snapshot)
    }

    /// Start the writer thread on `file`, the open journal at `path`.
    fn start(
        path: PathBuf,
        file: File,
        fsync: Fsync,
        lock: JournalLock,
    ) -> Result<Journal, JournalError> {
        let (queue, shared, writer) = writer::spawn(path.clone(), file, fsync)
            .map_err(|source| JournalError::Io { path, source })?;
        Ok(Journal {
            queue: Some(queue),
            writer: Some(writer),
            shared,
            _lock: lock,
        })
    }

    /// Queue `record` and return a future that resolves once it is written (`no`, `everysec`)
    /// or written and fsynced (`always`). Never blocks and never awaits, so it may be called
    /// while holding a sale's lock; records reach the file in the order of the calls.
    pub fn append(&self, record: &Record) -> Appended {
        let shared = Arc::clone(&self.shared);
        if let Some(error) = shared.broken() {
            return Appended::ready(shared, Err(error));
        }
        let mut bytes = match serde_json::to_vec(record) {
            Ok(bytes) => bytes,
            Err(e) => return Appended::ready(shared, Err(JournalError::Encode(e))),
        };
        bytes.push(b'\n');
        let (ack, done) = oneshot::channel();
        let sent = self.queue.as_ref().map(|q| q.send(Line { bytes, ack }));
        match sent {
            Some(Ok(())) => Appended::waiting(shared, done),
            _ => {
                let error = shared.stopped_error();
                Appended::ready(shared, Err(error))
            }
        }
    }

    /// The journal file, `<dir>/journal`.
    pub fn path(&self) -> &Path {
        self.shared.path()
    }

    /// The error that broke the journal, if a write or fsync failed: nothing more can be
    /// recorded until the process restarts on a writable journal.
    pub fn failure(&self) -> Option<JournalError> {
        self.shared.broken()
    }

    /// How many fsyncs the writer has done since [`Journal::create`] (the compaction's not
    /// counted).
    #[cfg(test)]
    pub fn fsyncs(&self) -> u64 {
        self.shared.fsyncs()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Closing the queue tells the writer to finish: it writes what is queued, fsyncs, exits.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(journal = %self.path().display(), "journal writer panicked");
            }
        }
    }
}

#[cfg(test)]
#[path = "journal/tests.rs"]
mod tests;
