//! The embedded store on its own: ids, a broken journal, stock and settlement counts.
use super::*;

fn won(answer: Reserve) -> Reservation {
    match answer {
        Reserve::Won { reservation, .. } => reservation,
        other => panic!("expected a win, got {other:?}"),
    }
}

#[tokio::test]
async fn ids_carry_the_product_and_a_start_epoch() {
    let s = MemoryStore::new([(7, 3)]);
    let sale = SaleKeys::of(7);
    let a = won(s
        .reserve(&sale, "a", &crate::stock::Attempt::new().unwrap())
        .await
        .unwrap());
    let b = won(s
        .reserve(&sale, "b", &crate::stock::Attempt::new().unwrap())
        .await
        .unwrap());
    assert!(a.id.starts_with("7-"), "{}", a.id);
    assert_ne!(a.id, b.id);
    // A restart comes at least a millisecond later (the epoch is the clock in ms).
    std::thread::sleep(std::time::Duration::from_millis(2));
    let later = MemoryStore::new([(7, 3)]);
    let c = won(later
        .reserve(&sale, "a", &crate::stock::Attempt::new().unwrap())
        .await
        .unwrap());
    assert_ne!(a.id, c.id, "a new store (a restart) never repeats an id");
}

/// A disk that stops taking writes stops the sale: no unit is taken that the journal cannot
/// remember, buyers get an error (503 at the edge), and the store says it is not ready.
#[tokio::test]
async fn a_broken_journal_takes_no_unit() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore {
        journal: Some(Journal::unwritable(dir.path())),
        ..MemoryStore::new([(7, 3)])
    };
    let sale = SaleKeys::of(7);
    assert!(store.ready().await, "not broken before its first write");
    assert!(matches!(
        store
            .reserve(&sale, "a", &crate::stock::Attempt::new().unwrap())
            .await,
        Err(StoreError::Journal(_))
    ));
    assert!(
        !store.ready().await,
        "/readyz says 503 once the journal is broken"
    );
    for uid in ["a", "b", "c", "d"] {
        assert!(
            store
                .reserve(&sale, uid, &crate::stock::Attempt::new().unwrap())
                .await
                .is_err(),
            "{uid}"
        );
    }
    let stock = store.stock(&sale).await.unwrap().unwrap();
    assert_eq!(
        (stock.remaining, stock.buyers),
        (3, 0),
        "no unit held by nobody"
    );
}

#[tokio::test]
async fn kept_reservations_are_not_unsettled_and_stock_counts_reservations() {
    let s = MemoryStore::new([(7, 3)]);
    let sale = SaleKeys::of(7);
    let a = won(s
        .reserve(&sale, "a", &crate::stock::Attempt::new().unwrap())
        .await
        .unwrap());
    s.keep(&sale, &a).await.unwrap();
    assert!(
        s.release(&sale, &a).await.unwrap(),
        "a kept unit can still be returned"
    );
    let stock = s.stock(&sale).await.unwrap().unwrap();
    assert_eq!((stock.remaining, stock.buyers, stock.ledger), (3, 0, 1));
    assert!(
        s.unsettled().is_empty(),
        "nothing unsettled without a journal"
    );
}
