//! Unit tests of the checkout on the embedded store, without a socket: buys decided, and every
//! branch of settling — keep, return, defer and ask, with a fake origin answering the question.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::*;
use crate::config::{Config, Environment};
use crate::ground::clock::now_ms;
use crate::stock::memory::MemoryStore;
use crate::stock::single_use::MemorySingleUse;
use crate::stock::{Holding, SaleKeys, SaleStock, SettledBy, StoreError};

const LOGIN: &str = "unit-login-secret-0123456789abcdef-0123";

struct NoEnv;
impl Environment for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fn config(stock: u64) -> Config {
    let yaml = format!(
        "listen: 127.0.0.1:1\n\
         secrets: {{ login: {LOGIN}, edge: unit-edge-secret-0123456789abcdef-01234 }}\n\
         origin: {{ url: http://127.0.0.1:2, timeout: 1ms, settle_after: 20ms }}\n\
         catalog: {{ products: [1-100] }}\n\
         sales:\n  - {{ product: 7, stock: {stock}, starts_at: 2020-01-01T00:00:00Z, ends_at: 2100-01-01T00:00:00Z }}\n\
         sold_out_hint: 10s\n"
    );
    Config::parse(Path::new("unit.yaml"), &yaml, &NoEnv).expect("valid test config")
}

fn checkout_over(store: Arc<dyn StockStore>, stock: u64) -> (Checkout, Arc<Metrics>) {
    let config = config(stock);
    let metrics = Arc::new(Metrics::new().unwrap());
    let used = Arc::new(MemorySingleUse::new(10));
    let checkout = Checkout::build(&config, store, used, metrics.clone()).unwrap();
    (checkout, metrics)
}

fn checkout(stock: u64) -> (Checkout, Arc<Metrics>) {
    checkout_over(Arc::new(MemoryStore::new([(7, stock)])), stock)
}

struct Buyer {
    token: String,
    path: String,
}

fn buyer(checkout: &Checkout, uid: &str) -> Buyer {
    let exp = now_ms() / 1000 + 3600;
    let secret = crate::ground::Secret::new(LOGIN.as_bytes().to_vec());
    let token = crate::admission::login::mint(&secret, uid, exp);
    let path = checkout.sale(7).unwrap().gate.buy_path();
    Buyer { token, path }
}

async fn buy(checkout: &Checkout, uid: &str) -> Decision {
    let b = buyer(checkout, uid);
    let token = b.path.rsplit('/').next().unwrap();
    let request = BuyRequest {
        product: 7,
        token,
        login_token: Some(&b.token),
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        now_ms: now_ms(),
        captcha: None,
        queue_pass: None,
    };
    checkout.buy(&request).await
}

async fn win(checkout: &Checkout, uid: &str) -> Reservation {
    match buy(checkout, uid).await {
        Decision::Forward(r) => r,
        other => panic!("{uid} should win, got {other:?}"),
    }
}

async fn stock(checkout: &Checkout) -> SaleStock {
    checkout
        .store()
        .stock(&SaleKeys::of(7))
        .await
        .unwrap()
        .unwrap()
}

fn answered(d: Decision) -> Outcome {
    match d {
        Decision::Answer(r) => r.outcome,
        Decision::Forward(r) => panic!("forwarded {r:?}"),
        Decision::Pending(r) => panic!("pending {r:?}"),
        Decision::Held(_) => Outcome::Duplicate,
        Decision::Unanswered(a) => panic!("unanswered {a}"),
    }
}

/// Answers the settlement question from a table; records who was asked.
#[derive(Default)]
struct FakeOrigin {
    answers: Mutex<HashMap<String, Result<bool, u16>>>,
    asked: Mutex<Vec<String>>,
}

impl FakeOrigin {
    fn answer(&self, r: &Reservation, answer: Result<bool, u16>) {
        self.answers.lock().insert(r.id.clone(), answer);
    }
}

#[async_trait]
impl OriginLookup for FakeOrigin {
    async fn holds(&self, r: &Reservation) -> Result<bool, LookupError> {
        self.asked.lock().push(r.id.clone());
        match self.answers.lock().get(&r.id) {
            Some(Ok(holds)) => Ok(*holds),
            Some(Err(status)) => Err(LookupError::Status(*status)),
            None => Err(LookupError::Unreachable("refused".into())),
        }
    }
}

/// Run `settle_due` until nothing is due within 100 ms (each pass waits what it says).
async fn settle_pending(checkout: &Checkout, origin: &FakeOrigin) {
    for _ in 0..20 {
        let wait = checkout.settle_due(origin).await;
        if checkout.pending().is_empty() || wait > Duration::from_millis(100) {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

#[tokio::test]
async fn buys_are_decided_here() {
    let (c, metrics) = checkout(1);
    let unknown = BuyRequest {
        product: 8,
        token: "x",
        login_token: None,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        now_ms: now_ms(),
        captcha: None,
        queue_pass: None,
    };
    assert_eq!(answered(c.buy(&unknown).await), Outcome::UnknownProduct);
    let a = win(&c, "a").await;
    assert_eq!(a.uid, "a");
    assert_eq!(answered(buy(&c, "a").await), Outcome::Duplicate);
    assert_eq!(answered(buy(&c, "b").await), Outcome::SoldOut);
    let calls = metrics.store_reserve.get_sample_count();
    assert_eq!(answered(buy(&c, "c").await), Outcome::SoldOut);
    assert_eq!(
        metrics.store_reserve.get_sample_count(),
        calls,
        "the sold-out hint answers without the store"
    );
}

#[tokio::test]
async fn a_2xx_keeps_the_unit() {
    let (c, metrics) = checkout(2);
    let a = win(&c, "a").await;
    c.settle(a, Forwarded::Answered(201)).await;
    assert_eq!(stock(&c).await.remaining, 1);
    assert_eq!(answered(buy(&c, "a").await), Outcome::Duplicate);
    assert!(c.pending().is_empty());
    assert_eq!(metrics.settled.kept.get(), 1);
}

#[tokio::test]
async fn a_4xx_or_an_unreached_origin_returns_the_unit_at_once() {
    let (c, metrics) = checkout(1);
    for (uid, forwarded) in [
        ("a", Forwarded::Answered(409)),
        ("b", Forwarded::Answered(401)),
        ("c", Forwarded::Unreached),
    ] {
        let r = win(&c, uid).await;
        assert_eq!(answered(buy(&c, "other").await), Outcome::SoldOut);
        c.settle(r, forwarded).await;
        assert_eq!(stock(&c).await.remaining, 1, "{forwarded:?}");
    }
    // The returned unit is not hidden behind the sold-out hint, and its buyer may buy again.
    win(&c, "a").await;
    assert_eq!(metrics.settled.returned.get(), 3);
    assert!(c.pending().is_empty());
}

#[tokio::test]
async fn an_unknown_outcome_is_asked_about_after_settle_after() {
    let (c, metrics) = checkout(3);
    let origin = FakeOrigin::default();
    let made = win(&c, "made").await;
    let none = win(&c, "none").await;
    let silent = win(&c, "silent").await;
    origin.answer(&made, Ok(true));
    origin.answer(&none, Ok(false));
    origin.answer(&silent, Err(503));
    c.settle(made.clone(), Forwarded::Failed).await;
    c.settle(none.clone(), Forwarded::Answered(500)).await;
    c.settle(silent.clone(), Forwarded::Answered(502)).await;
    assert_eq!(metrics.settled.deferred.get(), 3);
    assert_eq!(c.pending().len(), 3);
    assert_eq!(metrics.unsettled.get(), 3);

    // Not before settle_after: the origin may still be taking the order.
    c.settle_due(&origin).await;
    assert!(origin.asked.lock().is_empty(), "asked too early");
    assert_eq!(stock(&c).await.remaining, 0);

    tokio::time::sleep(Duration::from_millis(30)).await;
    c.settle_due(&origin).await;
    assert_eq!(origin.asked.lock().len(), 3);
    assert_eq!(
        stock(&c).await.remaining,
        1,
        "only the unit without an order came back"
    );
    assert_eq!(answered(buy(&c, "made").await), Outcome::Duplicate);
    win(&c, "none").await;
    // No definite answer: held, asked again later.
    assert_eq!(c.pending().len(), 1);
    assert_eq!(metrics.settled.retried.get(), 1);
    assert_eq!(answered(buy(&c, "silent").await), Outcome::Duplicate);
    origin.answer(&silent, Ok(false));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    settle_pending(&c, &origin).await;
    assert!(c.pending().is_empty());
    assert_eq!(stock(&c).await.remaining, 1);
    assert_eq!(metrics.unsettled.get(), 0);
}

/// A store settled by a ledger consumer (Redis) gets nothing queued; a store that remembers
/// unsettled reservations from a previous run gets them queued at start.
struct Wrapped {
    inner: MemoryStore,
    by: SettledBy,
    unsettled: Vec<Reservation>,
    /// Every reserve fails so, instead of reaching `inner`.
    fail: Option<fn() -> StoreError>,
}

#[async_trait]
impl StockStore for Wrapped {
    async fn reserve(
        &self,
        sale: &SaleKeys,
        uid: &str,
        attempt: &Attempt,
    ) -> Result<Reserve, StoreError> {
        match self.fail {
            Some(fail) => Err(fail()),
            None => self.inner.reserve(sale, uid, attempt).await,
        }
    }
    async fn release(&self, sale: &SaleKeys, r: &Reservation) -> Result<bool, StoreError> {
        self.inner.release(sale, r).await
    }
    async fn discard(&self, sale: &SaleKeys, r: &Reservation) -> Result<bool, StoreError> {
        self.inner.discard(sale, r).await
    }
    async fn holding(&self, sale: &SaleKeys, uid: &str) -> Result<Holding, StoreError> {
        self.inner.holding(sale, uid).await
    }
    async fn keep(&self, sale: &SaleKeys, r: &Reservation) -> Result<(), StoreError> {
        self.inner.keep(sale, r).await
    }
    async fn stock(&self, sale: &SaleKeys) -> Result<Option<SaleStock>, StoreError> {
        self.inner.stock(sale).await
    }
    fn settled_by(&self) -> SettledBy {
        self.by
    }
    fn unsettled(&self) -> Vec<Reservation> {
        self.unsettled.clone()
    }
    fn kind(&self) -> &'static str {
        "wrapped"
    }
}

#[tokio::test]
async fn a_ledger_store_keeps_unknown_outcomes_for_its_consumer() {
    let store = Wrapped {
        inner: MemoryStore::new([(7, 1)]),
        by: SettledBy::Ledger,
        unsettled: Vec::new(),
        fail: None,
    };
    let (c, metrics) = checkout_over(Arc::new(store), 1);
    let r = win(&c, "a").await;
    c.settle(r, Forwarded::Failed).await;
    assert!(c.pending().is_empty(), "nothing for the edge to ask");
    assert_eq!(stock(&c).await.remaining, 0, "the unit stays reserved");
    assert_eq!(metrics.settled.deferred.get(), 1);
}

#[tokio::test]
async fn reservations_left_unsettled_by_a_previous_run_are_asked_about() {
    let inner = MemoryStore::new([(7, 2)]);
    let ghost = Attempt::new().unwrap();
    let r = match inner
        .reserve(&SaleKeys::of(7), "ghost", &ghost)
        .await
        .unwrap()
    {
        Reserve::Won { reservation, .. } => reservation,
        other => panic!("{other:?}"),
    };
    let store = Wrapped {
        inner,
        by: SettledBy::Edge,
        unsettled: vec![r.clone()],
        fail: None,
    };
    let (c, _) = checkout_over(Arc::new(store), 2);
    assert_eq!(c.pending().len(), 1);
    let origin = FakeOrigin::default();
    origin.answer(&r, Ok(false));
    tokio::time::sleep(Duration::from_millis(30)).await;
    settle_pending(&c, &origin).await;
    assert_eq!(stock(&c).await.remaining, 2);
}

/// A reserve sent and never answered is pending with its attempt, never a "try again"; one
/// stopped before it was sent (the breaker open) is `store_unavailable`; a second buy of a
/// holder is told what they hold.
#[tokio::test]
async fn an_unanswered_reserve_is_pending_and_an_unsent_one_unavailable() {
    let failing = |fail: fn() -> StoreError| Wrapped {
        inner: MemoryStore::new([(7, 1)]),
        by: SettledBy::Ledger,
        unsettled: Vec::new(),
        fail: Some(fail),
    };
    let (c, metrics) = checkout_over(
        Arc::new(failing(|| {
            StoreError::Unanswered(Box::new(StoreError::Timeout(Duration::from_millis(5))))
        })),
        1,
    );
    assert!(
        matches!(buy(&c, "a").await, Decision::Unanswered(_)),
        "sent, no answer: pending"
    );
    assert_eq!(metrics.unanswered.get(), 1);
    let (c, metrics) = checkout_over(Arc::new(failing(|| StoreError::CircuitOpen)), 1);
    assert_eq!(answered(buy(&c, "a").await), Outcome::StoreUnavailable);
    assert_eq!(metrics.unanswered.get(), 0);

    let (c, _) = checkout_over(Arc::new(MemoryStore::new([(7, 2)])), 2);
    let r = win(&c, "a").await;
    assert_eq!(
        buy(&c, "a").await,
        Decision::Held(Holding::Pending(r.id.clone()))
    );
}
