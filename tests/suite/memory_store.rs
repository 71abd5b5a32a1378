//! The embedded store against the behaviour suite every store passes, in memory only and
//! journaled under a directory; and the journaled store across reopenings (a restart).

use std::sync::Arc;

use crate::common::suite::{self, PRODUCT};
use flashgate::config::Fsync;
use flashgate::stock::memory::MemoryStore;
use flashgate::stock::StockStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behaviour_suite_in_memory() {
    suite::run_all(|stock| async move {
        Arc::new(MemoryStore::new([(PRODUCT, stock)])) as Arc<dyn StockStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behaviour_suite_journaled() {
    let dirs = std::sync::Mutex::new(Vec::new());
    suite::run_all(|stock| {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open([(PRODUCT, stock)], dir.path(), Fsync::Always).unwrap();
        dirs.lock().unwrap().push(dir);
        async move { Arc::new(store) as Arc<dyn StockStore> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_suite_in_memory() {
    let set = flashgate::stock::single_use::MemorySingleUse::new(100);
    suite::single_use(Arc::new(set), 1_000).await;
}

fn won(answer: flashgate::stock::Reserve) -> flashgate::stock::Reservation {
    match answer {
        flashgate::stock::Reserve::Won { reservation, .. } => reservation,
        other => panic!("expected a win, got {other:?}"),
    }
}

/// Closing and reopening the journaled store (a restart) keeps stock, buyers and settled
/// reservations; reservation ids never repeat; reservations neither kept nor released are
/// reported unsettled; a changed configured stock does not override the journal's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_journal_keeps_the_sale() {
    use flashgate::stock::{Reserve, SaleKeys};
    let dir = tempfile::tempdir().unwrap();
    let sale = SaleKeys::of(5);
    let mut ids = std::collections::HashSet::new();
    {
        let store = MemoryStore::open([(5, 4)], dir.path(), Fsync::Everysec).unwrap();
        assert!(store.unsettled().is_empty());
        let kept = won(store
            .reserve(&sale, "kept", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap());
        let returned = won(store
            .reserve(
                &sale,
                "returned",
                &flashgate::stock::Attempt::new().unwrap(),
            )
            .await
            .unwrap());
        let open = won(store
            .reserve(&sale, "open", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap());
        store.keep(&sale, &kept).await.unwrap();
        assert!(store.release(&sale, &returned).await.unwrap());
        ids.extend([kept.id, returned.id, open.id]);
    }
    let store = MemoryStore::open([(5, 100)], dir.path(), Fsync::Everysec).unwrap();
    let s = store.stock(&sale).await.unwrap().unwrap();
    assert_eq!(
        (s.remaining, s.buyers),
        (2, 2),
        "journal's stock of 4, two held"
    );
    let unsettled: Vec<_> = store.unsettled().into_iter().map(|r| r.uid).collect();
    assert_eq!(unsettled, ["open"], "only the reservation nobody settled");
    assert!(matches!(
        store
            .reserve(&sale, "kept", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap(),
        Reserve::Duplicate(_)
    ));
    assert!(matches!(
        store
            .reserve(&sale, "open", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap(),
        Reserve::Duplicate(_)
    ));
    let again = won(store
        .reserve(
            &sale,
            "returned",
            &flashgate::stock::Attempt::new().unwrap(),
        )
        .await
        .unwrap());
    let new = won(store
        .reserve(&sale, "new", &flashgate::stock::Attempt::new().unwrap())
        .await
        .unwrap());
    assert_eq!(
        store
            .reserve(&sale, "late", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap(),
        Reserve::SoldOut
    );
    assert!(ids.insert(again.id), "ids are unique across restarts");
    assert!(ids.insert(new.id));
    // A new sale in the configuration joins the journal.
    drop(store);
    let store = MemoryStore::open([(5, 4), (6, 1)], dir.path(), Fsync::No).unwrap();
    assert_eq!(
        store
            .stock(&SaleKeys::of(6))
            .await
            .unwrap()
            .unwrap()
            .remaining,
        1
    );
    assert_eq!(store.stock(&sale).await.unwrap().unwrap().remaining, 0);
}

/// A discarded unit stays out of the sale across restarts (the journal's `discard` record,
/// then the snapshot's count), and a kept reservation is a win to the status route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_unit_stays_out_of_the_sale_after_a_restart() {
    use flashgate::stock::{Holding, Reserve, SaleKeys};
    let dir = tempfile::tempdir().unwrap();
    let sale = SaleKeys::of(5);
    {
        let store = MemoryStore::open([(5, 3)], dir.path(), Fsync::Always).unwrap();
        let gone = won(store
            .reserve(&sale, "gone", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap());
        let kept = won(store
            .reserve(&sale, "kept", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap());
        store.keep(&sale, &kept).await.unwrap();
        assert!(
            !store.discard(&sale, &kept).await.unwrap(),
            "an order's unit is real"
        );
        assert!(store.discard(&sale, &gone).await.unwrap());
        assert_eq!(
            store.holding(&sale, "kept").await.unwrap(),
            Holding::Won(kept.id.clone())
        );
    }
    for _ in 0..2 {
        // Once from the journal's records, once from the snapshot the first reopen wrote.
        let store = MemoryStore::open([(5, 3)], dir.path(), Fsync::Always).unwrap();
        let s = store.stock(&sale).await.unwrap().unwrap();
        assert_eq!(
            (s.remaining, s.buyers),
            (1, 1),
            "one on sale, one kept, one gone"
        );
        assert_eq!(
            store.holding(&sale, "gone").await.unwrap(),
            Holding::Nothing
        );
        assert!(store.unsettled().is_empty());
        drop(store);
    }
    let store = MemoryStore::open([(5, 3)], dir.path(), Fsync::Always).unwrap();
    assert!(matches!(
        store
            .reserve(&sale, "gone", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap(),
        Reserve::Won { remaining: 0, .. }
    ));
    assert_eq!(
        store
            .reserve(&sale, "x", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap(),
        Reserve::SoldOut
    );
}

/// A second process cannot open a journal another one holds (it waits, then fails).
#[test]
fn one_process_per_journal() {
    let dir = tempfile::tempdir().unwrap();
    let _first = MemoryStore::open([(5, 1)], dir.path(), Fsync::Always).unwrap();
    let started = std::time::Instant::now();
    let second = MemoryStore::open([(5, 1)], dir.path(), Fsync::Always);
    assert!(second.is_err(), "two processes on one journal");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "it waited first"
    );
}

/// `flashgate check` looks at a configuration without opening its journal: it neither waits
/// for the running gateway's lock nor rewrites the file.
#[test]
fn check_never_opens_the_journal() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let running = MemoryStore::open([(42, 500)], data.path(), Fsync::Always).unwrap();
    let journal = running.journal_path().unwrap().to_path_buf();
    let before = std::fs::read(&journal).unwrap();
    let shipped = std::fs::read_to_string(root.join("conf/flashgate.yaml")).unwrap();
    assert!(shipped.contains("path: data/flashgate"));
    let config = data.path().join("flashgate.yaml");
    let yaml = shipped.replace(
        "path: data/flashgate",
        &format!("path: '{}'", data.path().display()),
    );
    std::fs::write(&config, yaml).unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .current_dir(root)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A check that opened the journal would wait out the running gateway's lock and fail.
    assert!(
        started.elapsed() < flashgate::stock::journal::LOCK_WAIT,
        "it waited for the lock"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("journal in"));
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        before,
        "the journal is untouched"
    );
    drop(running);
}
