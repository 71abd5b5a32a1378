//! Test-only ways to get a journal in a given state, for the tests of the store above it.

use std::fs::{self, File};
use std::path::Path;

use super::{Journal, JOURNAL_FILE};
use crate::config::Fsync;

impl Journal {
    /// A journal in `dir` whose every write fails (its file is opened read-only), as on a full
    /// or failing disk: for tests of what a broken journal does to the store above it.
    pub(crate) fn unwritable(dir: &Path) -> Journal {
        let lock = Journal::lock(dir).expect("lock a fresh test directory");
        let path = dir.join(JOURNAL_FILE);
        fs::write(&path, b"").expect("create the test journal");
        let read_only = File::open(&path).expect("open the test journal");
        Journal::start(path, read_only, Fsync::Always, lock).expect("start the test journal")
    }
}
