//! The lock that keeps two processes out of one journal directory, and the compaction done
//! under it at start: the snapshot written to `journal.tmp`, fsynced, renamed over `journal`,
//! the directory fsynced (see the parent module's "Lifecycle").

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Journal, JournalError, Record, JOURNAL_FILE, LOCK_FILE, LOCK_POLL, TMP_FILE};
use crate::config::Fsync;

/// The journal directory, locked for this process: read it, then start the [`Journal`].
///
/// Replaying under the lock matters when processes overlap (an upgrade): a replay taken before
/// the previous process let go could miss its last records, and the compaction in
/// [`JournalLock::create`] would then erase them.
#[derive(Debug)]
pub struct JournalLock {
    dir: PathBuf,
    /// Holds the lock: an OS lock on an open file, released when the file is closed.
    _held: File,
}

impl JournalLock {
    /// The journal's records, oldest first, as [`super::replay`] reads them.
    pub fn replay(&self) -> Result<Vec<Record>, JournalError> {
        super::replay(&self.dir)
    }

    /// Compact the journal to `snapshot` and open it for appending; see [`Journal::create`].
    pub fn create(self, fsync: Fsync, snapshot: &[Record]) -> Result<Journal, JournalError> {
        let path = self.dir.join(JOURNAL_FILE);
        let tmp = self.dir.join(TMP_FILE);
        write_snapshot(&tmp, snapshot)?;
        fs::rename(&tmp, &path).map_err(|source| JournalError::Io {
            path: path.clone(),
            source,
        })?;
        // The rename is durable only once the directory is: without this, power loss could
        // bring back the old journal and drop records appended to the new one.
        sync_dir(&self.dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| JournalError::Io {
                path: path.clone(),
                source,
            })?;
        Journal::start(path, file, fsync, self)
    }

    /// Lock `dir` (created if missing), trying again for up to `wait`.
    pub(super) fn acquire(dir: &Path, wait: Duration) -> Result<JournalLock, JournalError> {
        fs::create_dir_all(dir).map_err(|source| JournalError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(LOCK_FILE);
        let io_error = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error)?;
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(JournalLock {
                        dir: dir.to_path_buf(),
                        _held: file,
                    })
                }
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(source)) => return Err(io_error(source)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(JournalError::Locked(path));
            }
            if !told {
                tracing::warn!(
                    lock = %path.display(),
                    "journal locked by another process (the previous one, during an upgrade?); \
                     waiting up to {wait:?} for it to exit"
                );
                told = true;
            }
            std::thread::sleep(LOCK_POLL.min(deadline - now));
        }
    }
}

/// Write `snapshot` to `tmp` and fsync it.
fn write_snapshot(tmp: &Path, snapshot: &[Record]) -> Result<(), JournalError> {
    let io_error = |source| JournalError::Io {
        path: tmp.to_path_buf(),
        source,
    };
    let file = File::create(tmp).map_err(io_error)?;
    let mut out = BufWriter::new(file);
    for record in snapshot {
        serde_json::to_writer(&mut out, record).map_err(|e| {
            if e.is_io() {
                io_error(e.into())
            } else {
                JournalError::Encode(e)
            }
        })?;
        out.write_all(b"\n").map_err(io_error)?;
    }
    let file = out.into_inner().map_err(|e| io_error(e.into_error()))?;
    file.sync_all().map_err(io_error)
}

/// Make the directory's entries (the rename) durable.
fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    // Only Unix can open and fsync a directory; elsewhere the rename is as durable as the OS
    // makes it.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| JournalError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
