//! The behaviour every [`StockStore`] must show, written once and run against each
//! implementation (the memory store's unit tests; the Redis and Redis Cluster integration
//! tests). Each case takes a factory that makes a fresh store holding one sale of [`PRODUCT`]
//! with the given stock. Failures panic with what was seen, as tests expect.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use super::{Reserve, StockStore};

/// Makes a fresh store holding one sale of [`PRODUCT`] with the given stock.
pub trait Factory: Fn(u64) -> Self::Fut {
    /// The future the factory returns.
    type Fut: Future<Output = Arc<dyn StockStore>>;
}

impl<F, Fut> Factory for F
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Arc<dyn StockStore>>,
{
    type Fut = Fut;
}

/// The product every case sells.
pub const PRODUCT: u64 = 42;

/// Run every case.
pub async fn run_all<F: Factory>(make: F) {
    sells_exactly_the_stock_under_concurrency(&make).await;
    one_unit_per_user(&make).await;
    unknown_sale_is_reported(&make).await;
    release_is_idempotent_and_lets_the_user_buy_again(&make).await;
}

/// 5,000 users race for 300 units from 200 tasks: exactly 300 win, each once, 300 buyers and
/// 300 ledger entries, stock ends at 0.
pub async fn sells_exactly_the_stock_under_concurrency<F: Factory>(make: &F) {
    let store = make(300).await;
    let mut tasks = Vec::new();
    for t in 0..200u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for u in (t..5000).step_by(200) {
                if let Reserve::Won { reservation, .. } = store
                    .reserve(PRODUCT, &format!("u{u}"))
                    .await
                    .expect("store answers")
                {
                    won.push(reservation);
                }
            }
            won
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.expect("task finishes"));
    }
    assert_eq!(winners.len(), 300, "exactly the stock sells");
    let users: HashSet<_> = winners.iter().map(|r| r.uid.clone()).collect();
    assert_eq!(users.len(), 300, "no user twice");
    let ids: HashSet<_> = winners.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 300, "reservation ids are unique");
    let stock = store
        .stock(PRODUCT)
        .await
        .expect("store answers")
        .expect("sale exists");
    assert_eq!((stock.remaining, stock.buyers, stock.ledger), (0, 300, 300));
    assert_eq!(
        store.reserve(PRODUCT, "late").await.expect("store answers"),
        Reserve::SoldOut
    );
}

/// The same user asking twice (even concurrently) gets one unit.
pub async fn one_unit_per_user<F: Factory>(make: &F) {
    let store = make(10).await;
    let attempts = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.reserve(PRODUCT, "same").await })
    });
    let mut won = 0;
    for a in attempts {
        match a.await.expect("task finishes").expect("store answers") {
            Reserve::Won { .. } => won += 1,
            Reserve::Duplicate => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.remaining(PRODUCT).await.expect("answers"), Some(9));
}

/// A product with no sale is reported, and takes nothing.
pub async fn unknown_sale_is_reported<F: Factory>(make: &F) {
    let store = make(1).await;
    assert_eq!(
        store.reserve(PRODUCT + 1, "u").await.expect("answers"),
        Reserve::UnknownSale
    );
    assert_eq!(store.remaining(PRODUCT + 1).await.expect("answers"), None);
    assert_eq!(store.remaining(PRODUCT).await.expect("answers"), Some(1));
}

/// Releasing twice returns one unit; the user may then buy again and another user can win the
/// returned unit.
pub async fn release_is_idempotent_and_lets_the_user_buy_again<F: Factory>(make: &F) {
    let store = make(1).await;
    let Reserve::Won {
        reservation,
        remaining,
    } = store.reserve(PRODUCT, "a").await.expect("answers")
    else {
        panic!("first buyer wins");
    };
    assert_eq!(remaining, 0);
    assert_eq!(
        store.reserve(PRODUCT, "b").await.expect("answers"),
        Reserve::SoldOut
    );
    assert!(store.release(&reservation).await.expect("answers"));
    assert!(
        !store.release(&reservation).await.expect("answers"),
        "second release returns nothing"
    );
    assert_eq!(store.remaining(PRODUCT).await.expect("answers"), Some(1));
    assert!(matches!(
        store.reserve(PRODUCT, "b").await.expect("answers"),
        Reserve::Won { .. }
    ));
    assert!(
        !store.release(&reservation).await.expect("answers"),
        "stale release returns nothing"
    );
    assert_eq!(store.remaining(PRODUCT).await.expect("answers"), Some(0));
}
