//! "Orders never stranded": each way the order backend once left a unit neither sold with an
//! order nor back on sale, or told a winner they lost, reproduced with real processes —
//! `flashgate-orders`, redis-server, SQLite and the machine's PostgreSQL, and the edge where the
//! bug was the edge's.
//!
//! The storms that run through the same faults end to end are in `tests/faults.rs`.

use std::time::{Duration, Instant};

use crate::common::orders_server::{reconcile, Database, OrdersServer};
use crate::common::redis_server::{RedisCluster, RedisServer, SaleStore};
use crate::common::*;
use flashgate::config::Target;
use flashgate::orders::db::{Db, Insert};
use flashgate::orders::model::Source;
use flashgate::stock::{Reservation, Reserve};
use serde_json::Value;

async fn seeded(redis: &RedisServer, sales: &[(u64, u64)]) -> SaleStore {
    let store = SaleStore::new(Target::Single(redis.url()), Duration::from_secs(2));
    for (product, stock) in sales {
        store.load(*product, *stock, false).await.unwrap();
    }
    store
}

async fn reserve(store: &SaleStore, product: u64, uid: &str) -> Reservation {
    match store.reserve(product, uid).await.unwrap() {
        Reserve::Won { reservation, .. } => reservation,
        other => panic!("{uid} did not win: {other:?}"),
    }
}

/// Whether the backend holds a pending order for `r`.
async fn has_order(orders: &OrdersServer, r: &Reservation) -> bool {
    let (status, body) = orders.get(&format!("/orders/{}", r.id)).await;
    status == 200 && body["order"]["uid"] == r.uid.as_str()
}

/// Wait at most `secs` for every reservation of `all` to have its order.
async fn orders_for_all(orders: &OrdersServer, all: &[&Reservation], secs: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut missing = Vec::new();
        for r in all {
            if !has_order(orders, r).await {
                missing.push(r.id.clone());
            }
        }
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forced_reload_does_not_stop_the_consumer_of_any_sale() {
    let redis = RedisServer::start();
    let store = seeded(&redis, &[(11, 10), (12, 10)]).await;
    let db = Database::sqlite();
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    // Forwards that never arrive: only the ledger consumer can make these orders.
    let a = reserve(&store, 11, "a").await;
    let b = reserve(&store, 12, "b").await;
    let missing = orders_for_all(&orders, &[&a, &b], 40).await;
    assert!(missing.is_empty(), "{missing:?}\n{}", orders.log());

    // Ops reload sale 11 with --force in the middle of the sale.
    let reload = store.load(11, 10, true).await.unwrap();
    let c = reserve(&store, 11, "c").await;
    let d = reserve(&store, 12, "d").await;
    let missing = orders_for_all(&orders, &[&c, &d], 40).await;
    assert!(
        missing.is_empty(),
        "after a forced reload ({reload:?}) these reservations never became orders: {missing:?}\n{}",
        orders.log()
    );
    // The reload kept what orders hold: a still holds a unit and cannot buy a second.
    assert!(matches!(
        store.reserve(11, "a").await.unwrap(),
        Reserve::Duplicate(_)
    ));
    assert_eq!(store.remaining(11).await.unwrap(), Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_ledger_is_consumed_again_and_other_sales_go_on() {
    let redis = RedisServer::start();
    let store = seeded(&redis, &[(21, 10), (22, 10)]).await;
    let db = Database::sqlite();
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    let a = reserve(&store, 21, "a").await;
    let b = reserve(&store, 22, "b").await;
    let missing = orders_for_all(&orders, &[&a, &b], 40).await;
    assert!(missing.is_empty(), "{missing:?}\n{}", orders.log());

    // Sale 21's ledger is lost (a failover to a replica that never saw the group, a stray DEL):
    // the next reservation recreates the stream without the consumer group.
    redis.cli(&["DEL", "flashgate:{21}:ledger"]);
    let c = reserve(&store, 21, "c").await;
    let d = reserve(&store, 22, "d").await;
    let missing = orders_for_all(&orders, &[&c, &d], 40).await;
    assert!(
        missing.is_empty(),
        "never became orders: {missing:?}\n{}",
        orders.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sales_are_found_without_scanning_the_keyspace() {
    let redis = RedisServer::start();
    let db = Database::sqlite();
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    // Loaded after the backend started: found through the registry `stock load` writes.
    let store = seeded(&redis, &[(31, 5)]).await;
    let a = reserve(&store, 31, "a").await;
    assert_eq!(
        orders_for_all(&orders, &[&a], 40).await,
        Vec::<String>::new()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(redis.calls("scan"), 0, "discovery scanned the keyspace");
    assert_eq!(redis.calls("keys"), 0, "discovery listed the keyspace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forty_second_database_outage_strands_no_unit() {
    let db = Database::sqlite();
    let redis = RedisServer::start();
    let store = seeded(&redis, &[(41, 10)]).await;
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    // The sale row exists before the outage, as it does mid-sale.
    let first = reserve(&store, 41, "first").await;
    assert_eq!(
        orders_for_all(&orders, &[&first], 40).await,
        Vec::<String>::new()
    );

    let lock = db.sqlite_write_lock().await;
    // One winner during the outage, whose forward failed: only the ledger can make its order.
    let during = [reserve(&store, 41, "p").await];
    tokio::time::sleep(Duration::from_secs(40)).await;
    lock.release().await;

    let all: Vec<&Reservation> = during.iter().collect();
    let missing = orders_for_all(&orders, &all, 60).await;
    assert!(
        missing.is_empty(),
        "stranded after the outage: {missing:?}\n{}",
        orders.log()
    );
    assert_eq!(
        redis.cli(&["XLEN", "flashgate:{41}:ledger:dead"]).trim(),
        "0",
        "nothing dead-lettered for an outage"
    );
    let (_, sale) = orders.get("/sales/41").await;
    assert_eq!(sale["sold"], 2, "{sale}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_backend_answers_without_its_internals() {
    let mut redis = RedisServer::start();
    let store = seeded(&redis, &[(51, 10)]).await;
    let db = Database::sqlite();
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    let r = reserve(&store, 51, "a").await;
    redis.kill();
    let resp = orders.forward_response(&r, now_secs() * 1000, None).await;
    assert_eq!(resp.status(), 503);
    assert!(
        resp.headers().contains_key("retry-after"),
        "{:?}",
        resp.headers()
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"outcome": "unavailable"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_follows_a_later_stock_load() {
    let redis = RedisServer::start();
    let store = seeded(&redis, &[(61, 20)]).await;
    let db = Database::sqlite();
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    let a = reserve(&store, 61, "a").await;
    assert_eq!(
        orders_for_all(&orders, &[&a], 40).await,
        Vec::<String>::new()
    );
    assert_eq!(orders.get("/sales/61").await.1["stock"], 20);
    // More units found mid-sale: the sale is restocked to 30.
    store.load(61, 30, true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while orders.get("/sales/61").await.1["stock"] != 30 {
        assert!(
            Instant::now() < deadline,
            "the database still says {}",
            orders.get("/sales/61").await.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(store.remaining(61).await.unwrap(), Some(29), "a keeps hers");
}

/// Every UID the login check admits can be ordered: bytes above 0x7F, spaces at either end,
/// a percent sign. The origin gets a header it can carry and a signature that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_uid_the_edge_admits_can_be_ordered() {
    let db = Database::sqlite();
    let redis = RedisServer::start();
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    let origin: std::net::SocketAddr = format!("127.0.0.1:{}", orders.port).parse().unwrap();
    let store = format!("{{ kind: redis, url: '{}', timeout: 2s }}", redis.url());
    let sale = format!(
        "  - {{ product: 71, stock: 10, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    );
    let edge = edge(Setup {
        store: &store,
        origin,
        sales: &sale,
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let url = edge.buy_url(71).await;
    let client = reqwest::Client::new();
    let uids = ["josé", " alice ", "李雷", "50%off", "a b", "tab\u{a0}nbsp"];
    for uid in uids {
        let resp = client
            .post(&url)
            .bearer_auth(token(uid))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or_default();
        assert!(
            (status == 200 || status == 201) && body["outcome"] == "won",
            "{uid:?}: {status} {body}\n{}",
            orders.log()
        );
        assert_eq!(body["order"]["uid"], uid, "{uid:?} stored as sent");
        let (status, mine) = orders
            .get(&format!(
                "/orders?user={}",
                percent_encoding::utf8_percent_encode(uid, percent_encoding::NON_ALPHANUMERIC)
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(mine["orders"].as_array().map(Vec::len), Some(1), "{uid:?}");
        let (status, again) = buy_outcome(&client, &url, uid).await;
        assert_eq!((status, again.as_str()), (409, "duplicate"), "{uid:?}");
    }
    let (_, sale) = orders.get("/sales/71").await;
    assert_eq!(sale["sold"], uids.len(), "{sale}");
}

/// On PostgreSQL the forward and the ledger consumer inserting one reservation at once could
/// trip the one-active-order-per-user index as a hard error, taken for a duplicate: the unit
/// was returned although the other insert committed the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_inserts_of_one_reservation_never_refuse_it_on_postgres() {
    let pg = Database::postgres();
    let db = Db::connect(&pg.url()).await.unwrap();
    db.ensure_sale(81, 1000).await.unwrap();
    let mut refused = Vec::new();
    for n in 0..300 {
        let r = Reservation {
            id: format!("81-{n}"),
            product: 81,
            uid: format!("u{n}"),
        };
        let (one, two) = tokio::join!(
            db.insert_order(&r, Source::Forward, 1, 2),
            db.insert_order(&r, Source::Ledger, 1, 2)
        );
        for insert in [one.unwrap(), two.unwrap()] {
            if let Insert::Refused(why) = insert {
                refused.push((r.id.clone(), why));
            }
        }
    }
    assert_eq!(
        refused,
        Vec::new(),
        "a reservation refused by its own order"
    );
}

/// The backend on a Redis Cluster, configured like the edge's `store.cluster`: the forward
/// confirms on the sale's node, and the ledger consumer finds every sale's ledger wherever its
/// slot lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_backend_runs_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let store = SaleStore::new(Target::Cluster(urls.clone()), Duration::from_secs(2));
    // Products whose keys hash to different nodes.
    let products = [91u64, 92, 93, 94, 95, 96];
    for p in products {
        store.load(p, 10, false).await.unwrap();
    }
    let db = Database::sqlite();
    let orders = OrdersServer::start_on_cluster(&db, &urls, "15m").await;
    let mut made = Vec::new();
    for p in products {
        made.push(reserve(&store, p, &format!("u{p}")).await);
    }
    let all: Vec<&Reservation> = made.iter().collect();
    let missing = orders_for_all(&orders, &all, 40).await;
    assert!(missing.is_empty(), "{missing:?}\n{}", orders.log());
    let used: std::collections::BTreeSet<u16> = products
        .iter()
        .filter_map(|p| {
            cluster.nodes.iter().find(|n| {
                n.cli(&["EXISTS", &format!("flashgate:{{{p}}}:stock")])
                    .trim()
                    == "1"
            })
        })
        .map(|n| n.port)
        .collect();
    assert!(used.len() > 1, "the sales live on more than one node");

    // And the forward path: a signed POST confirms on the sale's node.
    let r = reserve(&store, 91, "forwarded").await;
    let (status, body) = orders.forward(&r, now_secs() * 1000, None).await;
    assert!(status == 200 || status == 201, "{status} {body}");
    assert_eq!(orders.get("/sales/91").await.1["sold"], 2);
}

/// An entry that still has no order after `ledger.retry_for` is dead-lettered with its unit
/// held for its buyer, the alert's metric says so, and `reconcile --fix` makes its order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_entry_past_retry_for_is_held_for_reconcile() {
    let db = Database::sqlite();
    let redis = RedisServer::start();
    let store = seeded(&redis, &[(42, 5)]).await;
    let orders =
        OrdersServer::start_with(&db, &redis.url(), "15m", "ledger: { retry_for: 4s }\n").await;
    let first = reserve(&store, 42, "first").await;
    assert_eq!(
        orders_for_all(&orders, &[&first], 40).await,
        Vec::<String>::new()
    );

    let lock = db.sqlite_write_lock().await;
    let late = reserve(&store, 42, "late").await;
    let deadline = Instant::now() + Duration::from_secs(40);
    // The entry lands in the dead-letter stream, then the counter moves: wait for both.
    while redis.cli(&["XLEN", "flashgate:{42}:ledger:dead"]).trim() != "1"
        || !orders
            .metrics()
            .await
            .contains("flashgate_orders_dead_letters_total 1")
    {
        assert!(
            Instant::now() < deadline,
            "never dead-lettered\n{}\n{}",
            orders.metrics().await,
            orders.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The unit stays with its buyer: nobody else can have it, and she cannot buy a second.
    assert!(matches!(
        store.reserve(42, "late").await.unwrap(),
        Reserve::Duplicate(_)
    ));
    assert_eq!(store.remaining(42).await.unwrap(), Some(3));
    lock.release().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !has_order(&orders, &late).await,
        "held for reconcile, not retried"
    );

    let reconcile = |flags: &[&str]| reconcile(&db, &redis.url(), flags);
    let report = reconcile(&[]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(report.status.code(), Some(3), "{text}");
    assert!(
        text.contains(&format!(
            "reservation {} of late was dead-lettered",
            late.id
        )),
        "{text}"
    );
    let fixed = reconcile(&["--dead-letters"]);
    let text = String::from_utf8_lossy(&fixed.stdout);
    assert!(fixed.status.success(), "{text}");
    assert!(text.contains("made 1 order(s)"), "{text}");
    assert!(has_order(&orders, &late).await);
    assert_eq!(
        redis.cli(&["XLEN", "flashgate:{42}:ledger:dead"]).trim(),
        "0"
    );
    assert!(reconcile(&[]).status.success(), "consistent after --fix");
    let (_, sale) = orders.get("/sales/42").await;
    assert_eq!(sale["sold"], 2, "{sale}");
}

/// The ledger consumer once raced the edge's own forward: an origin that took a second to
/// refuse (or a connect that took that long to fail) had the consumer make the order first, so
/// the edge's return of the unit was refused and the buyer, told "no", held an order. Now the
/// consumer leaves an entry to the forward for `ledger.grace`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buyer_the_edge_refused_holds_no_order() {
    use crate::common::fault_origin::{Act, FaultOrigin};
    let db = Database::sqlite();
    let redis = RedisServer::start();
    // flashgate-orders consumes the ledger; the edge's origin is another one that refuses slowly.
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    let origin = FaultOrigin::start().await;
    let store = format!("{{ kind: redis, url: '{}', timeout: 2s }}", redis.url());
    let sale = format!(
        "  - {{ product: 72, stock: 1, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    );
    let edge = edge_full(
        Setup {
            store: &store,
            origin: origin.addr,
            sales: &sale,
            limits: "  []",
            trusted: "[]",
            blocklist: "",
        },
        "timeout: 5s",
        "",
    )
    .await;
    let url = edge.buy_url(72).await;
    // The backend has found the sale (the registry is read every 2 s) before anyone buys.
    tokio::time::sleep(Duration::from_secs(3)).await;
    origin.then(&[Act::SlowRefuse(409, 3000)]);
    let client = reqwest::Client::new();
    assert_eq!(
        buy_outcome(&client, &url, "slow").await,
        (409, "refused".into())
    );
    // The unit came back and nobody holds an order for it: another buyer gets it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, mine) = orders.get("/orders?user=slow").await;
    assert_eq!(mine["orders"], serde_json::json!([]), "{}", orders.log());
    origin.then(&[Act::Order(201)]);
    assert_eq!(buy_outcome(&client, &url, "next").await.0, 201);
}

/// A winner of a restock the database had not followed yet was refused `sold_out` by the
/// database's safeguard; now the backend reads the new total and makes the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_winner_of_a_fresh_restock_gets_the_order() {
    let db = Database::sqlite();
    let redis = RedisServer::start();
    let store = seeded(&redis, &[(73, 2)]).await;
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    for uid in ["a", "b"] {
        let r = reserve(&store, 73, uid).await;
        let (status, body) = orders.forward(&r, now_secs() * 1000, None).await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(store.reserve(73, "c").await.unwrap(), Reserve::SoldOut);
    // Two more units, and a buyer for one of them before the backend's next look at the
    // registry.
    store.load(73, 4, true).await.unwrap();
    let c = reserve(&store, 73, "c").await;
    let (status, body) = orders.forward(&c, now_secs() * 1000, None).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (201, Some("won")),
        "{body}"
    );
    assert_eq!(orders.get("/sales/73").await.1["stock"], 4);
}

/// An order found under a reservation's id that belongs to someone else (an id given twice)
/// is never handed to the second user, and never acknowledged as theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_id_given_twice_never_hands_one_user_anothers_order() {
    let db = Database::sqlite();
    let redis = RedisServer::start();
    let store = seeded(&redis, &[(74, 5)]).await;
    let orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    let alice = reserve(&store, 74, "alice").await;
    let (status, _) = orders.forward(&alice, now_secs() * 1000, None).await;
    assert_eq!(status, 201);
    // Bob holds a reservation under alice's id, as a counter that went back would give him.
    let bob = Reservation {
        id: alice.id.clone(),
        product: 74,
        uid: "bob".into(),
    };
    redis.cli(&["HSET", "flashgate:{74}:buyers", "bob", &bob.id]);
    let (status, body) = orders.forward(&bob, now_secs() * 1000, None).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("alice"), "{body}");
    let (_, mine) = orders.get("/orders?user=bob").await;
    assert_eq!(mine["orders"], serde_json::json!([]));
}

/// One sale whose ledger cannot be read (a key of the wrong type) once kept every other sale
/// from being consumed; and groups that exist already, found again after a restart, once
/// tripped the circuit breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_broken_sale_holds_up_no_other() {
    let db = Database::sqlite();
    let redis = RedisServer::start();
    let products = [75u64, 76, 77, 78, 79, 80];
    let store = seeded(&redis, &products.map(|p| (p, 5))).await;
    redis.cli(&["SET", "flashgate:{75}:ledger", "not a stream"]);
    let mut orders = OrdersServer::start(&db, &redis.url(), "15m").await;
    // Found once; then found again (every group exists) by the restarted backend.
    tokio::time::sleep(Duration::from_secs(3)).await;
    orders.restart().await;
    let mut made = Vec::new();
    for p in &products[1..] {
        made.push(reserve(&store, *p, &format!("u{p}")).await);
    }
    let all: Vec<&Reservation> = made.iter().collect();
    let missing = orders_for_all(&orders, &all, 40).await;
    assert!(missing.is_empty(), "{missing:?}\n{}", orders.log());
}
