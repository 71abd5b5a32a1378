//! The behaviour every [`StockStore`] and every [`SingleUse`] must show, written once and run
//! against each implementation (the embedded store, durable or not, in `tests/memory_store.rs`;
//! Redis and a Redis Cluster in `tests/redis_store.rs`). Each stock case takes a factory that
//! makes a fresh store holding one sale of [`PRODUCT`] with the given stock. Failures panic
//! with what was seen, as tests expect. Test code only: none of it is in the production build.
#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use flashgate::stock::single_use::SingleUse;
use flashgate::stock::{Attempt, Holding, Reserve, SaleKeys, StockStore};

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

fn sale() -> SaleKeys {
    SaleKeys::of(PRODUCT)
}

/// Run every case.
pub async fn run_all<F: Factory>(make: F) {
    sells_exactly_the_stock_under_concurrency(&make).await;
    one_unit_per_user(&make).await;
    unknown_sale_is_reported(&make).await;
    release_is_idempotent_and_lets_the_user_buy_again(&make).await;
    keep_holds_the_unit(&make).await;
    discard_takes_the_unit_out_of_the_sale(&make).await;
    holding_says_what_the_user_holds(&make).await;
    a_second_buy_is_told_what_the_user_holds(&make).await;
}

/// A user who holds a unit and buys again is told which unit they hold, and a status asked about
/// an attempt answers what the user holds (whether or not the store fences it).
pub async fn a_second_buy_is_told_what_the_user_holds<F: Factory>(make: &F) {
    let store = make(3).await;
    let first = Attempt::new().unwrap();
    let Reserve::Won { reservation, .. } =
        store.reserve(&sale(), "a", &first).await.expect("answers")
    else {
        panic!("a wins");
    };
    assert_eq!(
        store
            .reserve(&sale(), "a", &Attempt::new().unwrap())
            .await
            .expect("answers"),
        Reserve::Duplicate(Holding::Pending(reservation.id.clone()))
    );
    assert_eq!(
        store.fence(&sale(), "a", &first).await.expect("answers"),
        Holding::Pending(reservation.id.clone())
    );
    assert_eq!(
        store
            .fence(&sale(), "b", &Attempt::new().unwrap())
            .await
            .expect("answers"),
        Holding::Nothing
    );
    assert_eq!(store.remaining(&sale()).await.expect("answers"), Some(2));
}

/// A discarded unit (the origin said it has none: `410`) leaves the sale: not back on sale,
/// its buyer holds nothing and may buy again, and a second discard or a release of it does
/// nothing.
pub async fn discard_takes_the_unit_out_of_the_sale<F: Factory>(make: &F) {
    let store = make(2).await;
    let Reserve::Won { reservation, .. } = store
        .reserve(&sale(), "a", &Attempt::new().unwrap())
        .await
        .expect("answers")
    else {
        panic!("a wins");
    };
    assert!(store.discard(&sale(), &reservation).await.expect("answers"));
    assert_eq!(store.remaining(&sale()).await.expect("answers"), Some(1));
    assert!(!store.discard(&sale(), &reservation).await.expect("answers"));
    assert!(!store.release(&sale(), &reservation).await.expect("answers"));
    assert_eq!(store.remaining(&sale()).await.expect("answers"), Some(1));
    assert_eq!(
        store.holding(&sale(), "a").await.expect("answers"),
        Holding::Nothing
    );
    assert!(matches!(
        store
            .reserve(&sale(), "a", &Attempt::new().unwrap())
            .await
            .expect("answers"),
        Reserve::Won { remaining: 0, .. }
    ));
    assert_eq!(
        store
            .reserve(&sale(), "b", &Attempt::new().unwrap())
            .await
            .expect("answers"),
        Reserve::SoldOut,
        "the discarded unit is gone"
    );
}

/// What a user holds: nothing before a buy, the reservation (pending: no order is known to
/// hold it) after, nothing once it is returned.
pub async fn holding_says_what_the_user_holds<F: Factory>(make: &F) {
    let store = make(1).await;
    assert_eq!(
        store.holding(&sale(), "a").await.expect("answers"),
        Holding::Nothing
    );
    let Reserve::Won { reservation, .. } = store
        .reserve(&sale(), "a", &Attempt::new().unwrap())
        .await
        .expect("answers")
    else {
        panic!("a wins");
    };
    assert_eq!(
        store.holding(&sale(), "a").await.expect("answers"),
        Holding::Pending(reservation.id.clone())
    );
    assert_eq!(
        store.holding(&sale(), "b").await.expect("answers"),
        Holding::Nothing
    );
    assert!(store.release(&sale(), &reservation).await.expect("answers"));
    assert_eq!(
        store.holding(&sale(), "a").await.expect("answers"),
        Holding::Nothing
    );
}

/// Keeping a reservation (the origin holds its order) leaves the unit with its buyer; the
/// unit can still be returned once (a cancelled order), and keeping again is harmless.
pub async fn keep_holds_the_unit<F: Factory>(make: &F) {
    let store = make(2).await;
    let Reserve::Won { reservation, .. } = store
        .reserve(&sale(), "a", &Attempt::new().unwrap())
        .await
        .expect("answers")
    else {
        panic!("a wins");
    };
    store.keep(&sale(), &reservation).await.expect("answers");
    store.keep(&sale(), &reservation).await.expect("answers");
    // Kept on the embedded store (the edge records it); pending on Redis, where only the order
    // backend confirms.
    let again = store
        .reserve(&sale(), "a", &Attempt::new().unwrap())
        .await
        .expect("answers");
    assert!(
        matches!(&again, Reserve::Duplicate(Holding::Won(id) | Holding::Pending(id)) if *id == reservation.id),
        "{again:?}"
    );
    assert_eq!(store.remaining(&sale()).await.expect("answers"), Some(1));
    assert!(store.release(&sale(), &reservation).await.expect("answers"));
    assert_eq!(store.remaining(&sale()).await.expect("answers"), Some(2));
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
                    .reserve(&sale(), &format!("u{u}"), &Attempt::new().unwrap())
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
        .stock(&sale())
        .await
        .expect("store answers")
        .expect("sale exists");
    assert_eq!((stock.remaining, stock.buyers, stock.ledger), (0, 300, 300));
    assert_eq!(
        store
            .reserve(&sale(), "late", &Attempt::new().unwrap())
            .await
            .expect("store answers"),
        Reserve::SoldOut
    );
}

/// The same user asking twice (even concurrently) gets one unit.
pub async fn one_unit_per_user<F: Factory>(make: &F) {
    let store = make(10).await;
    let attempts = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .reserve(&sale(), "same", &Attempt::new().unwrap())
                .await
        })
    });
    let mut won = 0;
    for a in attempts {
        match a.await.expect("task finishes").expect("store answers") {
            Reserve::Won { .. } => won += 1,
            Reserve::Duplicate(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.remaining(&sale()).await.expect("answers"), Some(9));
}

/// A product with no sale is reported, and takes nothing.
pub async fn unknown_sale_is_reported<F: Factory>(make: &F) {
    let store = make(1).await;
    assert_eq!(
        store
            .reserve(&SaleKeys::of(PRODUCT + 1), "u", &Attempt::new().unwrap())
            .await
            .expect("answers"),
        Reserve::UnknownSale
    );
    assert_eq!(
        store
            .remaining(&SaleKeys::of(PRODUCT + 1))
            .await
            .expect("answers"),
        None
    );
    assert_eq!(store.remaining(&sale()).await.expect("answers"), Some(1));
}

/// Releasing twice returns one unit; the user may then buy again and another user can win the
/// returned unit.
pub async fn release_is_idempotent_and_lets_the_user_buy_again<F: Factory>(make: &F) {
    let store = make(1).await;
    let Reserve::Won {
        reservation,
        remaining,
    } = store
        .reserve(&sale(), "a", &Attempt::new().unwrap())
        .await
        .expect("answers")
    else {
        panic!("first buyer wins");
    };
    assert_eq!(remaining, 0);
    assert_eq!(
        store
            .reserve(&sale(), "b", &Attempt::new().unwrap())
            .await
            .expect("answers"),
        Reserve::SoldOut
    );
    assert!(store.release(&sale(), &reservation).await.expect("answers"));
    assert!(
        !store.release(&sale(), &reservation).await.expect("answers"),
        "second release returns nothing"
    );
    assert_eq!(store.remaining(&sale()).await.expect("answers"), Some(1));
    assert!(matches!(
        store
            .reserve(&sale(), "b", &Attempt::new().unwrap())
            .await
            .expect("answers"),
        Reserve::Won { .. }
    ));
    assert!(
        !store.release(&sale(), &reservation).await.expect("answers"),
        "stale release returns nothing"
    );
    assert_eq!(store.remaining(&sale()).await.expect("answers"), Some(0));
}

/// The behaviour every [`SingleUse`] must show. `now_ms` should be the real clock for stores
/// that keep their own time.
pub async fn single_use(store: Arc<dyn SingleUse>, now_ms: u64) {
    let (s42, s43) = (SaleKeys::of(42), SaleKeys::of(43));
    let exp = now_ms + 60_000;
    assert!(store
        .claim(&s42, "p:a", exp, now_ms)
        .await
        .expect("answers"));
    assert!(
        !store
            .claim(&s42, "p:a", exp, now_ms)
            .await
            .expect("answers"),
        "second use"
    );
    assert!(
        store
            .claim(&s43, "p:a", exp, now_ms)
            .await
            .expect("answers"),
        "the same key in another sale"
    );
    assert!(
        store
            .claim(&s42, "t:a", exp, now_ms)
            .await
            .expect("answers"),
        "another key"
    );
    let claims: Vec<_> = (0..16)
        .map(|_| {
            let (store, sale) = (store.clone(), s42.clone());
            tokio::spawn(async move { store.claim(&sale, "p:race", exp, now_ms).await })
        })
        .collect();
    let mut wins = 0;
    for c in claims {
        if c.await.expect("task finishes").expect("answers") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "one of 16 concurrent claims of a key wins");
}
