//! Unit tests of the journal: the format round-trips every record, a torn tail is forgiven and
//! damage is not, compaction, ordering under concurrent appenders, the fsync policies, the lock
//! and a broken disk.

use super::writer::SYNC_INTERVAL;
use super::*;
use std::fs;
use std::time::{Duration, Instant};

/// UIDs that would break a naive line format.
const HOSTILE_UIDS: [&str; 10] = [
    "",
    "two words",
    "line\nbreak",
    "cr\r\nlf",
    "quote\" and \\ backslash",
    "josé",
    "tab\tnul\0",
    "\u{2028}separator\u{2029}",
    "{\"op\":\"start\",\"epoch\":99}",
    "🦀 emoji",
];

fn reserve(product: u64, id: &str, uid: &str) -> Record {
    Record::Reserve {
        product,
        id: id.to_string(),
        uid: uid.to_string(),
        at_ms: 1_763_812_800_000,
    }
}

fn every_kind() -> Vec<Record> {
    let mut records = vec![
        Record::Start { epoch: 7 },
        Record::Sale {
            product: 42,
            stock: 500,
            discarded: 0,
        },
    ];
    for (i, uid) in HOSTILE_UIDS.iter().enumerate() {
        records.push(reserve(42, &format!("7-{i}"), uid));
    }
    records.push(Record::Release {
        product: 42,
        id: "7-1".into(),
    });
    records.push(Record::Keep {
        product: 42,
        id: "7-2".into(),
    });
    records
}

fn journal_file(dir: &Path) -> PathBuf {
    dir.join(JOURNAL_FILE)
}

#[test]
fn the_wire_format_is_one_tagged_object_a_line() {
    let line = serde_json::to_string(&reserve(42, "7-1", "josé")).unwrap();
    assert_eq!(
        line,
        r#"{"op":"reserve","product":42,"id":"7-1","uid":"josé","at_ms":1763812800000}"#
    );
    let start: Record = serde_json::from_str(r#"{"op":"start","epoch":3}"#).unwrap();
    assert_eq!(start, Record::Start { epoch: 3 });
    for record in every_kind() {
        let line = serde_json::to_string(&record).unwrap();
        assert!(!line.contains('\n'), "raw newline in {line:?}");
    }
}

#[test]
fn fsync_policies_read_as_lowercase_and_default_to_everysec() {
    for (text, policy) in [
        ("always", Fsync::Always),
        ("everysec", Fsync::Everysec),
        ("no", Fsync::No),
    ] {
        assert_eq!(serde_yaml::from_str::<Fsync>(text).unwrap(), policy);
    }
    assert!(serde_yaml::from_str::<Fsync>("Always").is_err());
    assert_eq!(Fsync::default(), Fsync::Everysec);
}

#[tokio::test]
async fn every_record_kind_round_trips_with_hostile_uids() {
    let dir = tempfile::tempdir().unwrap();
    let records = every_kind();
    let (snapshot, appended) = records.split_at(2);
    let journal = Journal::create(dir.path(), Fsync::Always, snapshot).unwrap();
    assert_eq!(journal.path(), journal_file(dir.path()));
    for record in appended {
        journal.append(record).await.unwrap();
    }
    drop(journal);

    assert_eq!(replay(dir.path()).unwrap(), records);
    let text = fs::read_to_string(journal_file(dir.path())).unwrap();
    assert_eq!(text.lines().count(), records.len());
}

#[test]
fn a_missing_directory_or_file_is_an_empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(replay(&dir.path().join("nowhere")).unwrap(), []);
    assert_eq!(replay(dir.path()).unwrap(), []);
}

/// Write `text` as the journal of a fresh directory and replay it.
fn replay_text(text: &[u8]) -> (tempfile::TempDir, Result<Vec<Record>, JournalError>) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(journal_file(dir.path()), text).unwrap();
    let replayed = replay(dir.path());
    (dir, replayed)
}

const GOOD: &str = "{\"op\":\"start\",\"epoch\":1}\n{\"op\":\"sale\",\"product\":42,\"stock\":5}\n";

fn good() -> Vec<Record> {
    vec![
        Record::Start { epoch: 1 },
        Record::Sale {
            product: 42,
            stock: 5,
            discarded: 0,
        },
    ]
}

#[test]
fn a_torn_last_line_is_ignored() {
    let torn_tails: [&[u8]; 6] = [
        // Cut short mid-record.
        b"{\"op\":\"reserve\",\"product\":42,\"id\":\"1-",
        // Complete JSON but no newline: never acknowledged.
        b"{\"op\":\"release\",\"product\":42,\"id\":\"1-1\"}",
        // Garbage ended by a newline at the very end.
        b"{\"op\":\"keep\",\"prod\n",
        // Zeros where the data blocks never reached the disk.
        b"\0\0\0\0\0\0\0\0",
        // A multi-byte character cut in half.
        b"{\"op\":\"reserve\",\"product\":42,\"id\":\"1-1\",\"uid\":\"jos\xc3",
        // An empty last line.
        b"\n",
    ];
    for tail in torn_tails {
        let text = [GOOD.as_bytes(), tail].concat();
        let (_dir, replayed) = replay_text(&text);
        assert_eq!(replayed.unwrap(), good(), "tail {tail:?}");
    }
}

#[test]
fn a_corrupt_line_before_the_last_is_an_error_naming_file_and_line() {
    let bodies: [&[u8]; 4] = [
        b"{\"op\":\"start\",\"epoch\":1}\nnot json\n{\"op\":\"start\",\"epoch\":2}\n",
        b"{\"op\":\"start\",\"epoch\":1}\n{\"op\":\"explode\"}\n{\"op\":\"start\",\"epoch\":2}\n",
        b"{\"op\":\"start\",\"epoch\":1}\n\n{\"op\":\"start\",\"epoch\":2}\n",
        // Damage just before a torn tail is still damage.
        b"{\"op\":\"start\",\"epoch\":1}\n{\"op\":\"sta\n{\"op\":\"sta",
    ];
    for body in bodies {
        let (dir, replayed) = replay_text(body);
        match replayed {
            Err(JournalError::Corrupt { file, line, reason }) => {
                assert_eq!(file, journal_file(dir.path()));
                assert_eq!(line, 2, "{reason}");
                assert!(!reason.contains("line 1"), "{reason}");
            }
            other => panic!("{:?}: expected Corrupt, got {other:?}", body),
        }
    }
    let (dir, replayed) = replay_text(bodies[0]);
    let message = replayed.unwrap_err().to_string();
    let at = format!(
        "{}:2: corrupt journal record",
        journal_file(dir.path()).display()
    );
    assert!(message.starts_with(&at), "{message}");
}

#[test]
fn create_compacts_to_the_snapshot_plus_later_appends() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A torn tail from a crash is dropped by the compaction, so later appends start on a
    // fresh line.
    fs::write(
        journal_file(dir.path()),
        [GOOD.as_bytes(), b"{\"op\":\"sta"].concat(),
    )
    .unwrap();

    let lock = Journal::lock(dir.path()).unwrap();
    let mut state = lock.replay().unwrap();
    assert_eq!(state, good());
    let journal = lock.create(Fsync::Everysec, &state).unwrap();
    let won = reserve(42, "1-1", "alice");
    runtime.block_on(journal.append(&won)).unwrap();
    drop(journal);
    state.push(won);
    assert_eq!(replay(dir.path()).unwrap(), state);

    // The next process's snapshot replaces the whole history.
    let snapshot = vec![
        Record::Start { epoch: 2 },
        Record::Sale {
            product: 42,
            stock: 5,
            discarded: 0,
        },
        reserve(42, "1-1", "alice"),
    ];
    let journal = Journal::create(dir.path(), Fsync::No, &snapshot).unwrap();
    let kept = Record::Keep {
        product: 42,
        id: "1-1".into(),
    };
    runtime.block_on(journal.append(&kept)).unwrap();
    drop(journal);
    let mut expected = snapshot;
    expected.push(kept);
    assert_eq!(replay(dir.path()).unwrap(), expected);
    assert!(!dir.path().join(TMP_FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_keep_each_tasks_order() {
    const TASKS: usize = 8;
    const EACH: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::create(dir.path(), Fsync::Always, &[]).unwrap());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let journal = Arc::clone(&journal);
        tasks.push(tokio::spawn(async move {
            // Queue a few before waiting, as callers that append under a lock and await later
            // do, so batches mix tasks.
            let mut pending = Vec::new();
            for i in 0..EACH {
                pending.push(journal.append(&reserve(task as u64, &i.to_string(), "u")));
                if i % 16 == 15 {
                    for acked in pending.drain(..) {
                        acked.await.unwrap();
                    }
                    tokio::task::yield_now().await;
                }
            }
            for acked in pending {
                acked.await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let fsyncs = journal.fsyncs();
    assert!(fsyncs >= 1 && fsyncs <= (TASKS * EACH) as u64, "{fsyncs}");
    drop(journal);

    let records = replay(dir.path()).unwrap();
    assert_eq!(records.len(), TASKS * EACH);
    let mut next = [0usize; TASKS];
    for record in records {
        let Record::Reserve { product, id, .. } = record else {
            panic!("unexpected {record:?}");
        };
        let task = product as usize;
        assert_eq!(id, next[task].to_string(), "task {task} out of order");
        next[task] += 1;
    }
    assert_eq!(next, [EACH; TASKS]);
}

#[tokio::test]
async fn always_acknowledges_only_after_an_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::create(dir.path(), Fsync::Always, &[]).unwrap();
    assert_eq!(journal.fsyncs(), 0);
    for i in 0..20u64 {
        journal.append(&Record::Start { epoch: i }).await.unwrap();
        // One fsync per batch, done before the batch is acknowledged; these batches are
        // single records because each is awaited before the next is queued.
        assert_eq!(journal.fsyncs(), i + 1);
    }
    drop(journal);
    assert_eq!(replay(dir.path()).unwrap().len(), 20);
}

#[tokio::test]
async fn everysec_fsyncs_an_idle_second_and_no_leaves_it_to_the_os() {
    let dir = tempfile::tempdir().unwrap();
    let everysec = Journal::create(&dir.path().join("a"), Fsync::Everysec, &[]).unwrap();
    let no = Journal::create(&dir.path().join("b"), Fsync::No, &[]).unwrap();
    for i in 0..5u64 {
        everysec.append(&Record::Start { epoch: i }).await.unwrap();
        no.append(&Record::Start { epoch: i }).await.unwrap();
    }
    // At most the one fsync due when the first write came a second after the start.
    assert!(everysec.fsyncs() <= 1);
    tokio::time::sleep(SYNC_INTERVAL * 2).await;
    let synced = everysec.fsyncs();
    assert!((1..=2).contains(&synced), "{synced}");
    // Nothing new written: an idle journal does not fsync again.
    tokio::time::sleep(SYNC_INTERVAL + Duration::from_millis(200)).await;
    assert_eq!(everysec.fsyncs(), synced);
    assert_eq!(no.fsyncs(), 0);
}

#[tokio::test]
async fn dropping_the_journal_writes_everything_queued() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::create(dir.path(), Fsync::No, &[]).unwrap();
    let pending: Vec<Appended> = (0..1000u64)
        .map(|epoch| journal.append(&Record::Start { epoch }))
        .collect();
    drop(journal);
    for acked in pending {
        acked.await.unwrap();
    }
    let epochs: Vec<u64> = replay(dir.path())
        .unwrap()
        .into_iter()
        .map(|r| match r {
            Record::Start { epoch } => epoch,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(epochs, (0..1000).collect::<Vec<_>>());
}

#[test]
fn a_second_journal_on_the_same_directory_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let first = Journal::create(dir.path(), Fsync::No, &[]).unwrap();

    let wait = Duration::from_millis(300);
    let started = Instant::now();
    let second = Journal::lock_with_wait(dir.path(), wait);
    let waited = started.elapsed();
    match second {
        Err(JournalError::Locked(path)) => assert_eq!(path, dir.path().join(LOCK_FILE)),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(waited >= wait && waited < wait * 10, "{waited:?}");

    // An upgrade: the old process lets go while the new one waits.
    let old = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
    });
    let lock = Journal::lock_with_wait(dir.path(), Duration::from_secs(5)).unwrap();
    old.join().unwrap();
    lock.create(Fsync::No, &[]).unwrap();
}

#[tokio::test]
async fn a_failed_write_breaks_the_journal_for_every_later_append() {
    let dir = tempfile::tempdir().unwrap();
    let lock = Journal::lock(dir.path()).unwrap();
    let path = journal_file(dir.path());
    fs::write(&path, GOOD).unwrap();
    // A read-only handle: every write fails, as on a full or failing disk.
    let read_only = File::open(&path).unwrap();
    let journal = Journal::start(path.clone(), read_only, Fsync::Always, lock).unwrap();

    let first = journal
        .append(&Record::Start { epoch: 2 })
        .await
        .unwrap_err();
    // The operating system's error is kept as the cause.
    assert!(std::error::Error::source(&first).is_some(), "{first}");
    let JournalError::Broken {
        path: broken,
        source,
    } = first
    else {
        panic!("expected Broken, got {first:?}");
    };
    assert_eq!(broken, path);
    for epoch in 3..10 {
        match journal.append(&Record::Start { epoch }).await {
            Err(JournalError::Broken { source: later, .. }) => {
                assert!(Arc::ptr_eq(&later, &source), "the first failure is kept")
            }
            other => panic!("expected Broken, got {other:?}"),
        }
    }
    drop(journal);
    assert_eq!(fs::read_to_string(&path).unwrap(), GOOD);
}

#[test]
fn journals_and_acknowledgements_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send + Unpin>() {}
    send_sync::<Journal>();
    send::<Appended>();
    send_sync::<JournalError>();
}

/// A rough rate, not a benchmark: `cargo test --release --lib stock::journal -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn measure_appends_per_second() {
    const TASKS: u64 = 8;
    const EACH: u64 = 5000;
    for fsync in [Fsync::Always, Fsync::Everysec, Fsync::No] {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::create(dir.path(), fsync, &[]).unwrap());
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let journal = Arc::clone(&journal);
                tokio::spawn(async move {
                    for i in 0..EACH {
                        let record = reserve(task, &format!("{task}-{i}"), "user-123456");
                        journal.append(&record).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed();
        println!(
            "{fsync:?}: {:.0} acknowledged appends/s ({} fsyncs, {TASKS} tasks awaiting each)",
            (TASKS * EACH) as f64 / elapsed.as_secs_f64(),
            journal.fsyncs(),
        );
    }
}
