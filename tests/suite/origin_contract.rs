//! The origin contract under faults, with the real `flashgate` binary and an origin that fails
//! on cue (`crate::common::fault_origin`): an origin that takes an order and dies, one that refuses,
//! one whose stock is spent (410), one that answers 500 or never answers (the buyer told
//! `202 pending` and, from the status URL, the truth), and an edge SIGKILLed mid-sale and
//! started again.
//! Whatever happens, the origin never holds more orders than the stock, no user gets two, no
//! reservation id is reused, and every unit ends either sold with an order or back on sale.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::buy_outcome as buy;
use crate::common::fault_origin::{Act, FaultOrigin};
use crate::common::redis_server::RedisServer;
use crate::common::*;
use futures::StreamExt;

/// Origin keys of these tests: a forward may take 1 s, and the edge asks the origin about one
/// of unknown outcome 5 s after it — far longer than the few requests a test makes before the
/// settlement it waits for, on a loaded machine too.
const SETTLE: &str = "timeout: 1s, settle_after: 5s";

fn sale(product: u64, stock: u64) -> String {
    format!(
        "  - {{ product: {product}, stock: {stock}, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    )
}

async fn start(origin: &FaultOrigin, store: &str, sales: &str, origin_keys: &str) -> Edge {
    edge_full(
        Setup {
            store,
            origin: origin.addr,
            sales,
            limits: "  []",
            trusted: "[]",
            blocklist: "",
        },
        origin_keys,
        "",
    )
    .await
}

/// What the status URL tells `uid` about `product`.
async fn status(edge: &Edge, product: u64, uid: &str) -> serde_json::Value {
    let r = reqwest::Client::new()
        .get(format!("{}/api/buy/status?product={product}", edge.base))
        .bearer_auth(token(uid))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn remaining(edge: &Edge, product: u64) -> f64 {
    sample(
        &edge.metrics().await,
        &format!("flashgate_stock_remaining{{sale=\"{product}\"}}"),
    )
    .expect("stock gauge")
}

/// Wait (at most `secs`) until `check` holds; false if it never did.
async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}

/// No two orders for one user, and never more orders than `stock`.
fn assert_no_oversell(origin: &FaultOrigin, stock: usize) {
    assert_eq!(
        origin.conflicts(),
        Vec::<String>::new(),
        "reservation ids reused"
    );
    let orders = origin.orders();
    let users: HashSet<_> = orders.values().map(|o| o.uid.clone()).collect();
    assert_eq!(
        users.len(),
        orders.len(),
        "a user with two orders: {orders:?}"
    );
    assert!(
        orders.len() <= stock,
        "{} orders for {stock} units: {orders:?}",
        orders.len()
    );
}

/// An origin takes the second buyer's order and dies before answering; the edge's retry on a
/// fresh connection is refused. The edge must not free that unit (the origin holds an order
/// for it): with the old logic the retry reset "connected", the unit was released and sold a
/// third time.
async fn origin_dies_after_taking_an_order(store: &str, redis: Option<&RedisServer>) {
    let origin = FaultOrigin::start().await;
    let edge = start(&origin, store, &sale(7, 2), SETTLE).await;
    let url = edge.buy_url(7).await;
    let c = reqwest::Client::new();

    assert_eq!(buy(&c, &url, "u1").await.0, 201, "first buyer's order");
    origin.then(&[Act::Die]);
    let (status, outcome) = buy(&c, &url, "u2").await;
    assert_eq!(
        (status, outcome.as_str()),
        (202, "pending"),
        "the origin died before answering: it may hold the order"
    );
    assert!(!origin.is_alive());
    origin.revive().await;
    let third = buy(&c, &url, "u3").await;
    assert_no_oversell(&origin, 2);
    assert_eq!(third, (410, "sold_out".into()), "both units are taken");

    match redis {
        None => {
            // The embedded store asks the origin once the forward can no longer be accepted:
            // the origin holds u2's order, so the unit stays sold.
            let u2 = origin.received()[1].clone();
            assert!(
                eventually(30, || async { origin.lookups().contains(&u2) }).await,
                "the edge asked the origin about {u2}; log:\n{}",
                edge.log()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(remaining(&edge, 7).await, 0.0);
        }
        Some(redis) => {
            // On Redis the unit stays reserved, in the ledger, for the order backend's
            // ledger consumer: the edge returned nothing.
            assert_eq!(redis.cli(&["GET", "flashgate:{7}:stock"]).trim(), "0");
            assert_eq!(redis.cli(&["HLEN", "flashgate:{7}:buyers"]).trim(), "2");
            assert_eq!(redis.cli(&["XLEN", "flashgate:{7}:ledger"]).trim(), "2");
        }
    }
    assert_no_oversell(&origin, 2);
    assert_eq!(origin.orders().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_that_dies_after_taking_an_order_never_oversells() {
    origin_dies_after_taking_an_order("{ kind: memory }", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_that_dies_after_taking_an_order_never_oversells_on_redis() {
    let redis = RedisServer::start();
    let store = format!("{{ kind: redis, url: '{}', timeout: 2s }}", redis.url());
    origin_dies_after_taking_an_order(&store, Some(&redis)).await;
}

/// A 4xx from the origin means it made no order: the unit goes back at once, so the next buyer
/// (or the same one) can have it.
async fn refusals_return_the_unit(store: &str) {
    let origin = FaultOrigin::start().await;
    let edge = start(&origin, store, &sale(8, 1), "").await;
    let url = edge.buy_url(8).await;
    let c = reqwest::Client::new();
    origin.then(&[Act::Refuse(409), Act::Refuse(401), Act::Refuse(422)]);
    assert_eq!(buy(&c, &url, "a").await.0, 409, "origin refused a");
    assert_eq!(buy(&c, &url, "b").await.0, 401, "origin refused b");
    assert_eq!(buy(&c, &url, "a").await.0, 422, "a may try again");
    assert_eq!(
        buy(&c, &url, "c").await.0,
        201,
        "the unit was still for sale"
    );
    assert_eq!(buy(&c, &url, "d").await, (410, "sold_out".into()));
    assert_eq!(origin.orders().len(), 1);
    assert_eq!(remaining(&edge, 8).await, 0.0);
}

/// Issue 21: a `410` from the origin says its stock is spent — the unit exists only here. It
/// is discarded, not put back on sale (where the next buyer would only be refused in turn),
/// and the edge answers `sold_out` itself for the sold-out hint's time.
async fn a_410_discards_the_unit(store: &str) {
    let origin = FaultOrigin::start().await;
    let edge = edge_full(
        Setup {
            store,
            origin: origin.addr,
            sales: &sale(15, 3),
            limits: "  []",
            trusted: "[]",
            blocklist: "",
        },
        "",
        "sold_out_hint: 10s",
    )
    .await;
    let url = edge.buy_url(15).await;
    let c = reqwest::Client::new();
    origin.then(&[Act::Refuse(410)]);
    assert_eq!(buy(&c, &url, "a").await.0, 410, "the origin's answer");
    assert_eq!(
        remaining(&edge, 15).await,
        2.0,
        "the unit did not come back"
    );
    assert_eq!(status(&edge, 15, "a").await["outcome"], "not_won");
    let page = metrics_when(
        &edge,
        "flashgate_settlements_total{result=\"discarded\"}",
        1.0,
    )
    .await;
    assert_eq!(
        sample(&page, "flashgate_settlements_total{result=\"discarded\"}"),
        Some(1.0)
    );
    // The edge learned the sale is over: the next buyers are answered at the edge.
    let received = origin.received().len();
    for uid in ["b", "c", "a"] {
        assert_eq!(buy(&c, &url, uid).await, (410, "sold_out".into()), "{uid}");
    }
    assert_eq!(
        origin.received().len(),
        received,
        "nothing reached the origin"
    );
    // After the hint (10 s) the edge asks again: the two units it still holds sell. A buy the
    // hint answers changes nothing, so b asks until the store answers.
    let deadline = Instant::now() + Duration::from_secs(40);
    let b = loop {
        let answer = buy(&c, &url, "b").await;
        if answer != (410, "sold_out".into()) || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(b.0, 201);
    assert_eq!(buy(&c, &url, "c").await.0, 201);
    assert_eq!(buy(&c, &url, "d").await, (410, "sold_out".into()));
    assert_eq!(origin.orders().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_from_the_origin_discards_the_unit() {
    a_410_discards_the_unit("{ kind: memory }").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_from_the_origin_discards_the_unit_on_redis() {
    let redis = RedisServer::start();
    a_410_discards_the_unit(&format!(
        "{{ kind: redis, url: '{}', timeout: 2s }}",
        redis.url()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_refusals_return_the_unit_at_once() {
    refusals_return_the_unit("{ kind: memory }").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_refusals_return_the_unit_at_once_on_redis() {
    let redis = RedisServer::start();
    refusals_return_the_unit(&format!(
        "{{ kind: redis, url: '{}', timeout: 2s }}",
        redis.url()
    ))
    .await;
}

/// A 5xx or no answer at all is ambiguous: the origin may hold the order. On the embedded store
/// the edge asks the origin (`GET /orders/{reservation}`) once the forward's signature can no
/// longer be accepted, and keeps or returns the unit by the answer — within a bounded time, so
/// nobody is locked out by a unit that nobody holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_answers_settle_by_asking_the_origin() {
    let origin = FaultOrigin::start().await;
    let edge = start(&origin, "{ kind: memory }", &sale(9, 3), SETTLE).await;
    let url = edge.buy_url(9).await;
    let c = reqwest::Client::new();
    origin.then(&[Act::Order(500), Act::Refuse(500), Act::Hang]);
    // The buyer gets the edge's own answer, never the origin's error page: pending, and where
    // to ask.
    for uid in ["made-then-500", "refused-500"] {
        assert_eq!(buy(&c, &url, uid).await, (202, "pending".into()), "{uid}");
        assert_eq!(status(&edge, 9, uid).await["outcome"], "pending", "{uid}");
    }
    let started = Instant::now();
    assert_eq!(buy(&c, &url, "timed-out").await, (202, "pending".into()));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "origin.timeout bounds the wait"
    );
    assert_eq!(buy(&c, &url, "late").await.0, 410, "three units held");
    // The one with no order comes back; its buyer is not locked out.
    assert!(
        eventually(30, || async { remaining(&edge, 9).await == 1.0 }).await,
        "the unit without an order came back; lookups {:?}; log:\n{}",
        origin.lookups(),
        edge.log()
    );
    assert_eq!(buy(&c, &url, "refused-500").await.0, 201);
    // The timed-out forward ended a second later, so its question comes a second later.
    assert!(
        eventually(30, || async { origin.lookups().len() >= 3 }).await,
        "every ambiguous forward is asked about: {:?}",
        origin.lookups()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lookups: HashSet<_> = origin.lookups().into_iter().collect();
    assert_eq!(
        lookups.len(),
        3,
        "one question per ambiguous forward: {lookups:?}"
    );
    assert_eq!(origin.lookups().len(), 3, "each asked once");
    assert_eq!(buy(&c, &url, "made-then-500").await.0, 409, "holds one");
    assert_eq!(buy(&c, &url, "timed-out").await.0, 409, "holds one");
    // Each buyer told pending learns the truth from the status URL.
    for uid in ["made-then-500", "timed-out"] {
        let v = status(&edge, 9, uid).await;
        assert_eq!(v["outcome"], "won", "{uid}: {v}");
        let id = v["reservation"].as_str().unwrap();
        assert!(origin.orders().contains_key(id), "{uid}'s order {id}");
    }
    // refused-500 bought again above: its first buy did not win, the second did.
    assert_eq!(status(&edge, 9, "refused-500").await["outcome"], "won");
    assert_eq!(status(&edge, 9, "never-bought").await["outcome"], "not_won");
    assert_no_oversell(&origin, 3);
    assert_eq!(origin.orders().len(), 3);
    assert_eq!(remaining(&edge, 9).await, 0.0);
}

/// An origin that answers 2xx and then fails in the middle of the body made the order: the
/// unit stays sold, the buyer's answer is the origin's (cut short), never an edge 503 glued
/// behind it, and the request is counted as won.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_short_after_its_header_keeps_the_unit() {
    let origin = FaultOrigin::start().await;
    let edge = start(&origin, "{ kind: memory }", &sale(12, 1), SETTLE).await;
    let url = edge.buy_url(12).await;
    origin.then(&[Act::Truncate]);
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token("a"))
        .send()
        .await
        .expect("the header arrives");
    assert_eq!(resp.status().as_u16(), 201);
    let body = resp.bytes().await;
    assert!(
        !body
            .as_deref()
            .is_ok_and(|b| String::from_utf8_lossy(b).contains("origin_unavailable")),
        "no edge answer written into the origin's body: {body:?}"
    );
    let page = metrics_when(
        &edge,
        r#"flashgate_requests_total{outcome="won",route="buy"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        sample(
            &page,
            r#"flashgate_requests_total{outcome="won",route="buy"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"flashgate_requests_total{outcome="origin_unavailable",route="buy"}"#
        ),
        Some(0.0)
    );
    assert_eq!(remaining(&edge, 12).await, 0.0, "the order holds the unit");
    assert_eq!(origin.orders().len(), 1);
}

/// An origin without the settlement route (a bare 404, not `{"outcome":"not_found"}`) never
/// gets a unit taken from an order it may hold: the unit stays held, asked about again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_404_to_the_settlement_question_settles_nothing() {
    let origin = FaultOrigin::start().await;
    origin.without_lookup();
    let edge = start(&origin, "{ kind: memory }", &sale(13, 1), SETTLE).await;
    let url = edge.buy_url(13).await;
    let c = reqwest::Client::new();
    origin.then(&[Act::Order(502)]);
    assert_eq!(buy(&c, &url, "a").await, (202, "pending".into()));
    assert!(
        eventually(30, || async { !origin.lookups().is_empty() }).await,
        "asked"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(remaining(&edge, 13).await, 0.0, "a bare 404 is no answer");
    assert_eq!(origin.orders().len(), 1);
}

/// The settlement question itself may fail: while the origin is down the unit stays held (the
/// order may exist), and it is asked again until it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_waits_for_an_answer() {
    let origin = FaultOrigin::start().await;
    let edge = start(&origin, "{ kind: memory }", &sale(10, 1), SETTLE).await;
    let url = edge.buy_url(10).await;
    let c = reqwest::Client::new();
    origin.then(&[Act::Refuse(503)]);
    assert_eq!(buy(&c, &url, "a").await, (202, "pending".into()));
    origin.kill();
    // Past settle_after: the question was asked of a dead origin.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(remaining(&edge, 10).await, 0.0, "no answer: still held");
    origin.revive().await;
    assert!(
        eventually(30, || async { remaining(&edge, 10).await == 1.0 }).await,
        "settled once the origin answered; log:\n{}",
        edge.log()
    );
}

/// A storm on the embedded store with `store.path`, the edge SIGKILLed in the middle of it and
/// started again, then a second storm: winners over both runs equal the stock, no reservation
/// id repeats, no user has two.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_storm_and_restart_keeps_the_sale() {
    const STOCK: usize = 150;
    const USERS: usize = 600;
    let origin = FaultOrigin::start().await;
    let data = tempfile::tempdir().unwrap();
    let store = format!(
        "{{ kind: memory, path: '{}', fsync: everysec }}",
        data.path().display()
    );
    let mut edge = start(&origin, &store, &sale(11, STOCK as u64), SETTLE).await;
    let url = edge.buy_url(11).await;

    let won: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let storm = |from: usize, to: usize| {
        let (url, won) = (url.clone(), won.clone());
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let users: Vec<usize> = (from..to).collect();
            futures::stream::iter(users)
                .for_each_concurrent(16, |u| {
                    let (c, url, won) = (c.clone(), url.clone(), won.clone());
                    async move {
                        let uid = format!("u{u}");
                        let Ok(resp) = c.post(&url).bearer_auth(token(&uid)).send().await else {
                            return; // the edge died under this request
                        };
                        if resp.status().is_success() {
                            won.lock().unwrap().push(uid);
                        }
                    }
                })
                .await;
        })
    };
    // First storm: kill the edge once about a third of the stock is sold.
    let first = storm(0, USERS);
    assert!(
        eventually(40, || async { origin.orders().len() >= STOCK / 3 }).await,
        "the first storm sells"
    );
    edge.kill();
    first.await.unwrap();
    let orders_at_kill = origin.orders().len();
    assert!(
        orders_at_kill < STOCK,
        "killed mid-sale ({orders_at_kill} orders)"
    );

    edge.restart().await;
    // Everyone tries again; buyers from before are refused as duplicates.
    storm(0, USERS).await.unwrap();
    // Units whose forward the kill cut off are settled by asking the origin; any that come
    // back sell to a third wave.
    assert!(
        eventually(30, || async {
            storm(USERS, USERS + 100).await.unwrap();
            origin.orders().len() == STOCK
        })
        .await,
        "every unit sells: {} orders; log:\n{}",
        origin.orders().len(),
        edge.log()
    );
    assert_eq!(remaining(&edge, 11).await, 0.0);

    let orders = origin.orders();
    assert_no_oversell(&origin, STOCK);
    // No reservation id was given twice: every id the origin received names one user.
    let received: HashSet<_> = origin.received().into_iter().collect();
    assert_eq!(
        received.len(),
        orders.len(),
        "every received id is one order"
    );
    // Winners the clients saw are all among the orders (some answers died with the edge).
    let won = won.lock().unwrap().clone();
    let winners: HashSet<_> = won.iter().cloned().collect();
    assert_eq!(winners.len(), won.len(), "no client won twice");
    let with_order: HashSet<_> = orders.values().map(|o| o.uid.clone()).collect();
    assert!(winners.is_subset(&with_order));
}

/// An answer that is neither "order made" (2xx) nor "no order" (4xx) — a redirect, say — is
/// unknown by the contract, and the buyer gets the edge's own `202 pending`, never the
/// origin's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_the_origin_is_pending() {
    let origin = FaultOrigin::start().await;
    let edge = start(&origin, "{ kind: memory }", &sale(14, 2), SETTLE).await;
    let url = edge.buy_url(14).await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    origin.then(&[Act::Refuse(302)]);
    assert_eq!(buy(&c, &url, "a").await, (202, "pending".into()));
    assert_eq!(remaining(&edge, 14).await, 1.0, "held until settled");
}
