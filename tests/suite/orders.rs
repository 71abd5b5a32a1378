//! The order backend as real processes — `flashgate-orders`, redis-server and, for the crash
//! test, the edge — on SQLite and on the machine's PostgreSQL.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::orders_server::{reconcile, Database, OrdersServer};
use crate::common::redis_server::RedisServer;
use crate::common::redis_server::SaleStore;
use crate::common::*;
use flashgate::config::Target;
use flashgate::stock::{Reservation, Reserve};
use futures::StreamExt;
use serde_json::Value;

fn now_ms() -> u64 {
    now_secs() * 1000
}

async fn seeded(redis: &RedisServer, product: u64, stock: u64) -> SaleStore {
    let store = SaleStore::new(Target::Single(redis.url()), Duration::from_secs(2));
    store.load(product, stock, false).await.unwrap();
    store
}

async fn reserve(store: &SaleStore, product: u64, uid: &str) -> Reservation {
    match store.reserve(product, uid).await.unwrap() {
        Reserve::Won { reservation, .. } => reservation,
        other => panic!("{uid} did not win: {other:?}"),
    }
}

/// A won order: 201 when this request made it, 200 when the ledger consumer made it first.
fn won(status: u16, body: &Value) -> bool {
    (status == 200 || status == 201) && body["outcome"] == "won"
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(40);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_fresh_edge_signed_requests_make_orders() {
    for make in Database::each() {
        let db = make();
        let redis = RedisServer::start();
        let store = seeded(&redis, 42, 10).await;
        let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
        let r = reserve(&store, 42, "alice").await;
        let kind = db.kind();

        let unsigned = reqwest::Client::new()
            .post(format!("{}/orders", orders.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401, "{kind}: unsigned");
        let (status, body) = orders.forward(&r, now_ms(), Some(&"0".repeat(64))).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (401, Some("forged")),
            "{kind}"
        );
        let (status, body) = orders.forward(&r, now_ms() - 60_000, None).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (401, Some("stale")),
            "{kind}"
        );

        let ts = now_ms();
        let (status, body) = orders.forward(&r, ts, None).await;
        // 201 when the forward made the order, 200 when the ledger consumer was first.
        assert!(won(status, &body), "{kind}: {status} {body}");
        assert_eq!(body["order"]["id"], r.id.as_str());
        assert_eq!(body["order"]["status"], "pending");
        let (status, body) = orders.forward(&r, ts, None).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (401, Some("replayed")),
            "{kind}"
        );
        // The edge retrying the same reservation signs anew: the same order comes back.
        let (status, body) = orders.forward(&r, ts + 5, None).await;
        assert_eq!(
            (status, body["order"]["id"].as_str()),
            (200, Some(r.id.as_str())),
            "{kind}"
        );

        let (status, sale) = orders.get("/sales/42").await;
        assert_eq!(status, 200);
        assert_eq!(
            (
                sale["stock"].as_i64(),
                sale["sold"].as_i64(),
                sale["pending"].as_i64()
            ),
            (Some(10), Some(1), Some(1)),
            "{kind}"
        );
        let (_, mine) = orders.get("/orders?user=alice").await;
        assert_eq!(mine["orders"].as_array().map(Vec::len), Some(1), "{kind}");
        let metrics = orders.metrics().await;
        assert!(
            metrics.contains(r#"flashgate_orders_unauthorized_total{reason="replayed"} 1"#),
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forward_and_ledger_racing_make_one_order_each() {
    for make in Database::each() {
        let db = make();
        let redis = RedisServer::start();
        let store = seeded(&redis, 7, 40).await;
        let mut reservations = Vec::new();
        for n in 0..40 {
            reservations.push(reserve(&store, 7, &format!("r{n}")).await);
        }
        // The ledger already holds all 40 when the backend starts: its consumer and the 40
        // forwards race for every reservation.
        let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
        let answers: Vec<u16> = futures::stream::iter(reservations.iter())
            .map(|r| {
                let orders = &orders;
                async move { orders.forward(r, now_ms(), None).await.0 }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        assert!(
            answers.iter().all(|s| *s == 200 || *s == 201),
            "{}: {answers:?}",
            db.kind()
        );
        wait_for("the ledger consumer", || async {
            orders.get("/sales/7").await.1["pending"] == 40
        })
        .await;
        let (_, sale) = orders.get("/sales/7").await;
        assert_eq!(sale["sold"], 40, "{}: {sale}", db.kind());
        for r in &reservations {
            let (status, body) = orders.get(&format!("/orders?user={}", r.uid)).await;
            assert_eq!(status, 200);
            let list = body["orders"].as_array().unwrap();
            assert_eq!(list.len(), 1, "{}: {} has {list:?}", db.kind(), r.uid);
            assert_eq!(list[0]["id"], r.id.as_str());
        }
        let metrics = orders.metrics().await;
        let created: f64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with("flashgate_orders_total{") && l.contains(r#"result="created""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(
            created,
            40.0,
            "{}: each order created once\n{metrics}",
            db.kind()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpaid_orders_return_their_unit_once_and_late_payment_fails() {
    for make in Database::each() {
        let db = make();
        let kind = db.kind();
        let redis = RedisServer::start();
        let store = seeded(&redis, 3, 1).await;
        // 3 s to pay: b pays right after its order is made, on a loaded machine too.
        let orders = OrdersServer::start(&db, &redis.url(), "3s").await;

        let a = reserve(&store, 3, "a").await;
        // While a holds the only unit, b cannot have it (checked before a's order can expire).
        assert_eq!(
            store.reserve(3, "b").await.unwrap(),
            Reserve::SoldOut,
            "{kind}"
        );
        let (status, body) = orders.forward(&a, now_ms(), None).await;
        assert!(won(status, &body), "{kind}: {status} {body}");
        wait_for("the payment timeout", || async {
            orders.get(&format!("/orders/{}", a.id)).await.1["order"]["status"] == "cancelled"
        })
        .await;
        wait_for("the unit to come back", || async {
            store.remaining(3).await.unwrap() == Some(1)
        })
        .await;
        assert_eq!(
            redis.cli(&["HEXISTS", "flashgate:{3}:buyers", "a"]).trim(),
            "0",
            "{kind}: a is no longer a buyer and may buy again"
        );
        // Exactly once: give the sweeper time to run again, the stock stays at 1.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            store.remaining(3).await.unwrap(),
            Some(1),
            "{kind}: returned once"
        );

        let (status, body) = orders.post(&format!("/orders/{}/pay", a.id)).await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (409, Some("too_late")),
            "{kind}"
        );
        let b = reserve(&store, 3, "b").await;
        let (status, body) = orders.forward(&b, now_ms(), None).await;
        assert!(
            won(status, &body),
            "{kind}: b buys the returned unit: {status} {body}"
        );
        let (status, body) = orders.post(&format!("/orders/{}/pay", b.id)).await;
        assert_eq!(
            (status, body["order"]["status"].as_str()),
            (200, Some("paid")),
            "{kind}"
        );
        // The buyer of a cancelled order may buy again (here: nothing left).
        assert_eq!(store.reserve(3, "a").await.unwrap(), Reserve::SoldOut);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (_, sale) = orders.get("/sales/3").await;
        assert_eq!(
            (
                sale["sold"].as_i64(),
                sale["paid"].as_i64(),
                sale["cancelled"].as_i64(),
                sale["pending"].as_i64()
            ),
            (Some(1), Some(1), Some(1), Some(0)),
            "{kind}: {sale}"
        );
        assert_eq!(
            store.remaining(3).await.unwrap(),
            Some(0),
            "{kind}: a paid order keeps its unit"
        );
    }
}

fn sale_yaml(product: u64, stock: u64) -> String {
    format!(
        "  - {{ product: {product}, stock: {stock}, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backend_killed_mid_sale_ends_with_orders_equal_to_winners() {
    for make in Database::each() {
        killed_mid_sale(make()).await;
    }
}

async fn killed_mid_sale(db: Database) {
    let kind = db.kind();
    let redis = RedisServer::start();
    let mut orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    let origin: std::net::SocketAddr = format!("127.0.0.1:{}", orders.port).parse().unwrap();
    let store = format!("{{ kind: redis, url: '{}', timeout: 2s }}", redis.url());
    let edge = edge(Setup {
        store: &store,
        origin,
        sales: &sale_yaml(5, 60),
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let url = edge.buy_url(5).await;
    let crowd = |from: usize, to: usize| {
        let url = url.clone();
        async move {
            futures::stream::iter(from..to)
                .map(|n| {
                    let url = url.clone();
                    async move {
                        let r = reqwest::Client::new()
                            .post(&url)
                            .bearer_auth(token(&format!("c{n}")))
                            .send()
                            .await
                            .unwrap();
                        r.status().as_u16()
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<u16>>()
                .await
        }
    };
    let first = crowd(0, 30).await;
    let wins = |answers: &[u16]| answers.iter().filter(|s| **s == 200 || **s == 201).count();
    assert_eq!(wins(&first), 30, "{kind}: {first:?}");
    orders.kill();
    let during = crowd(30, 50).await;
    assert!(
        during.iter().all(|s| *s == 503),
        "{kind}: origin down: {during:?}"
    );
    orders.restart().await;
    let after = crowd(50, 150).await;
    assert_eq!(wins(&after), 30, "{kind}: {after:?}");

    // The ledger consumer settles everything the forward could not deliver.
    let held = || {
        redis
            .cli(&["HLEN", "flashgate:{5}:buyers"])
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    wait_for("orders to match the winners", || async {
        orders.get("/sales/5").await.1["pending"].as_i64() == Some(held())
    })
    .await;
    let (_, sale) = orders.get("/sales/5").await;
    assert_eq!(sale["sold"].as_i64(), Some(held()));
    assert_eq!(held(), 60, "all stock sold: released units sold again");
    assert_eq!(redis.cli(&["GET", "flashgate:{5}:stock"]).trim(), "0");
    // Every order is for a reservation Redis holds, one per user.
    let buyers = redis.cli(&["HGETALL", "flashgate:{5}:buyers"]);
    let lines: Vec<&str> = buyers.lines().collect();
    let mut users = HashSet::new();
    for pair in lines.chunks(2) {
        let (status, body) = orders.get(&format!("/orders/{}", pair[1])).await;
        assert_eq!(
            status, 200,
            "reservation {} of {} has an order",
            pair[1], pair[0]
        );
        assert_eq!(body["order"]["uid"], pair[0]);
        assert!(users.insert(pair[0].to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_reports_and_repairs_redis_from_the_database() {
    let db = Database::sqlite();
    let redis = RedisServer::start();
    let store = seeded(&redis, 8, 5).await;
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    let mut made = Vec::new();
    for uid in ["x", "y", "z"] {
        let r = reserve(&store, 8, uid).await;
        let (status, body) = orders.forward(&r, now_ms(), None).await;
        assert!(won(status, &body), "{status} {body}");
        made.push(r);
    }
    let reconcile = |flags: &[&str]| reconcile(&db, &redis.url(), flags);
    let clean = reconcile(&[]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    // A failover lost writes: a buyer and the stock count are wrong.
    redis.cli(&["HDEL", "flashgate:{8}:buyers", "y"]);
    redis.cli(&["SET", "flashgate:{8}:stock", "4"]);
    let report = reconcile(&[]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(report.status.code(), Some(3), "{text}");
    assert!(text.contains("remaining redis=4 database=2"), "{text}");
    assert!(
        text.contains(&format!("order {} of y is not held in Redis", made[1].id)),
        "{text}"
    );

    let fixed = reconcile(&["--fix"]);
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stdout)
    );
    assert_eq!(redis.cli(&["GET", "flashgate:{8}:stock"]).trim(), "2");
    assert_eq!(
        redis.cli(&["HGET", "flashgate:{8}:buyers", "y"]).trim(),
        made[1].id
    );
    assert!(reconcile(&[]).status.success(), "consistent after --fix");
    // And y cannot buy a second unit.
    assert!(matches!(
        store.reserve(8, "y").await.unwrap(),
        Reserve::Duplicate(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_entries_of_a_dead_consumer_are_claimed_and_bad_ones_dead_lettered() {
    let db = Database::sqlite();
    let redis = RedisServer::start();
    let store = seeded(&redis, 6, 10).await;
    let mut made = Vec::new();
    for uid in ["p", "q", "r"] {
        made.push(reserve(&store, 6, uid).await);
    }
    let ledger = "flashgate:{6}:ledger";
    redis.cli(&[
        "XADD",
        ledger,
        "*",
        "reservation",
        "6-999",
        "note",
        "no uid: malformed",
    ]);
    // A consumer of the group takes every entry and dies without acknowledging any.
    redis.cli(&["XGROUP", "CREATE", ledger, "flashgate-orders", "0"]);
    let taken = redis.cli(&[
        "XREADGROUP",
        "GROUP",
        "flashgate-orders",
        "dead",
        "COUNT",
        "10",
        "STREAMS",
        ledger,
        ">",
    ]);
    // A reservation's id is "6-" and its ledger entry's id.
    assert!(
        taken.contains("6-999") && taken.contains(made[0].id.trim_start_matches("6-")),
        "{taken}"
    );

    let orders =
        OrdersServer::start_with(&db, &redis.url(), "15m", "ledger: { claim_idle: 1s }\n").await;
    wait_for("the dead consumer's entries to be claimed", || async {
        orders.get("/sales/6").await.1["pending"] == 3
    })
    .await;
    for r in &made {
        let (status, body) = orders.get(&format!("/orders/{}", r.id)).await;
        assert_eq!(
            (status, body["order"]["source"].as_str()),
            (200, Some("ledger"))
        );
    }
    wait_for("the malformed entry to be dead-lettered", || async {
        redis.cli(&["XLEN", "flashgate:{6}:ledger:dead"]).trim() == "1"
    })
    .await;
    let dead = redis.cli(&["XRANGE", "flashgate:{6}:ledger:dead", "-", "+"]);
    assert!(
        dead.contains("malformed entry") && dead.contains("6-999"),
        "{dead}"
    );
    assert!(orders
        .metrics()
        .await
        .contains("flashgate_orders_dead_letters_total 1"));
    let pending = redis.cli(&["XPENDING", ledger, "flashgate-orders"]);
    assert!(
        pending.starts_with('0'),
        "every entry acknowledged: {pending}"
    );
}

/// The database refusing an order for want of stock answers `410 sold_out` and discards the
/// unit (it exists only in Redis: back on sale it would be refused again, round after round);
/// the live reconcile then gives back to its buyer an order Redis lost, and returns the unit of
/// an order the database cancelled that Redis still holds (a restore that raced the payment
/// timeout). Measured by `flashgate_orders_reconcile_corrections_total` and the drift gauge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_reconcile_corrects_redis_from_the_database() {
    let db = Database::sqlite();
    let redis = RedisServer::start();
    let store = seeded(&redis, 61, 2).await;
    // Payment timeout 8 s: a's order must be restored (the reconcile runs every second) before
    // the sweeper cancels it, on a loaded machine too.
    let orders =
        OrdersServer::start_with(&db, &redis.url(), "8s", "reconcile: { every: 1s }\n").await;
    let keys = flashgate::stock::SaleKeys::of(61);
    let a = reserve(&store, 61, "a").await;
    let b = reserve(&store, 61, "b").await;
    assert_eq!(orders.forward(&a, now_ms(), None).await.0, 201);
    assert_eq!(orders.forward(&b, now_ms(), None).await.0, 201);
    // A failover loses a's reservation: its unit is back on sale in Redis, a is no buyer there.
    redis.cli(&["HDEL", &keys.buyers, "a"]);
    redis.cli(&["SREM", &keys.confirmed, &a.id]);
    redis.cli(&["INCR", &keys.stock]);
    // The phantom unit sells; the database has no stock for it: 410, and it is discarded.
    let c = reserve(&store, 61, "c").await;
    let (status, body) = orders.forward(&c, now_ms(), None).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (410, Some("sold_out")),
        "{body}"
    );
    // The live reconcile gives a's order back to a (short: the phantom was taken by c).
    wait_for("a restored", || async {
        redis.cli(&["HGET", &keys.buyers, "a"]).trim() == a.id
    })
    .await;
    assert_eq!(redis.cli(&["HEXISTS", &keys.buyers, "c"]).trim(), "0");
    assert_eq!(store.remaining(61).await.unwrap(), Some(0));
    let page = orders.metrics().await;
    assert_eq!(
        sample(
            &page,
            "flashgate_orders_reconcile_corrections_total{kind=\"short\"}"
        ),
        Some(1.0),
        "{page}"
    );
    wait_for("no drift", || async {
        sample(
            &orders.metrics().await,
            "flashgate_orders_stock_drift{sale=\"61\"}",
        ) == Some(0.0)
    })
    .await;
    // Both orders go unpaid and are cancelled, their units returned. Then Redis is made to
    // hold b's unit again, as a restore racing the cancellation would: the reconcile returns it.
    wait_for("both units back", || async {
        store.remaining(61).await.unwrap() == Some(2)
    })
    .await;
    redis.cli(&["HSET", &keys.buyers, "b", &b.id]);
    redis.cli(&["DECR", &keys.stock]);
    wait_for("the cancelled order's unit returned", || async {
        store.remaining(61).await.unwrap() == Some(2)
    })
    .await;
    assert_eq!(redis.cli(&["HEXISTS", &keys.buyers, "b"]).trim(), "0");
    let page = orders.metrics().await;
    assert_eq!(
        sample(
            &page,
            "flashgate_orders_reconcile_corrections_total{kind=\"released\"}"
        ),
        Some(1.0)
    );
}
