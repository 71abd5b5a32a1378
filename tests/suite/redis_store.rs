//! The Redis store against real redis-server processes started on free ports: the shared
//! behaviour suite on a server and on a three-master Cluster, and through the edge a Redis
//! killed mid-sale and a SCRIPT FLUSH mid-sale.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::redis_server::{RedisCluster, RedisServer, SaleStore};
use crate::common::suite::{self, PRODUCT};
use crate::common::*;
use flashgate::config::Target;
use flashgate::stock::redis::sales::Load;
use flashgate::stock::redis::RedisStore;
use flashgate::stock::StockStore;
use futures::StreamExt;

const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behaviour_suite_on_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    suite::run_all(|stock| {
        let (url, redis) = (url.clone(), &redis);
        async move {
            redis.cli(&["FLUSHALL"]);
            let seeded = SaleStore::new(Target::Single(url), TIMEOUT);
            assert_eq!(
                seeded.load(PRODUCT, stock, false).await.unwrap(),
                Load::Loaded
            );
            Arc::new(seeded.store) as Arc<dyn StockStore>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behaviour_suite_on_redis_cluster() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    suite::run_all(|stock| {
        let (urls, cluster) = (urls.clone(), &cluster);
        async move {
            cluster.flush();
            let seeded = SaleStore::new(Target::Cluster(urls), TIMEOUT);
            seeded.load(PRODUCT, stock, false).await.unwrap();
            Arc::new(seeded.store) as Arc<dyn StockStore>
        }
    })
    .await;
    // The sale's keys live on one node: the one that owns slot of hash tag {42}. Only the
    // registry of sales, a key of its own, may live elsewhere.
    let holders = cluster
        .nodes
        .iter()
        .filter(|n| {
            n.cli(&["KEYS", "*"])
                .lines()
                .any(|k| !k.is_empty() && k != flashgate::stock::keys::SALES_REGISTRY)
        })
        .count();
    assert_eq!(holders, 1, "every key of the sale is on one slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_refuses_a_sale_with_buyers_and_force_restocks_it_without_dropping_one() {
    let redis = RedisServer::start();
    let store = SaleStore::new(Target::Single(redis.url()), TIMEOUT);
    assert_eq!(store.load(7, 3, false).await.unwrap(), Load::Loaded);
    assert!(matches!(
        store.reserve(7, "a").await.unwrap(),
        flashgate::stock::Reserve::Won { .. }
    ));
    assert_eq!(store.load(7, 3, false).await.unwrap(), Load::HasBuyers(1));
    assert_eq!(store.load(7, 0, true).await.unwrap(), Load::BelowHeld(1));
    assert_eq!(
        store.remaining(7).await.unwrap(),
        Some(2),
        "refused loads changed nothing"
    );
    assert_eq!(
        store.load(7, 5, true).await.unwrap(),
        Load::Restocked { held: 1 }
    );
    let s = store.stock(7).await.unwrap().unwrap();
    assert_eq!(
        (s.remaining, s.buyers, s.ledger),
        (4, 1, 1),
        "a keeps her unit"
    );
    assert!(matches!(
        store.reserve(7, "a").await.unwrap(),
        flashgate::stock::Reserve::Duplicate(_)
    ));
    assert_eq!(
        redis.cli(&["HGET", "flashgate:{7}:meta", "stock"]).trim(),
        "5"
    );
    // Reservation ids are the ledger entries' ids: new after a reload, and after a lost counter.
    let a = redis.cli(&["HGET", "flashgate:{7}:buyers", "a"]);
    let flashgate::stock::Reserve::Won { reservation, .. } = store.reserve(7, "b").await.unwrap()
    else {
        panic!("b buys")
    };
    assert!(reservation.id.starts_with("7-"), "{}", reservation.id);
    assert_ne!(reservation.id, a.trim());
    let entries = redis.cli(&["XRANGE", "flashgate:{7}:ledger", "-", "+"]);
    assert!(
        entries.contains(reservation.id.trim_start_matches("7-")),
        "the id is its ledger entry's: {entries}"
    );
    assert_eq!(
        redis.cli(&["SMEMBERS", "flashgate:sales"]).trim(),
        "7",
        "the sale is in the registry"
    );
}

fn sale(product: u64, stock: u64) -> String {
    format!(
        "  - {{ product: {product}, stock: {stock}, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    )
}

async fn buy(c: &reqwest::Client, url: &str, uid: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let (status, outcome) = buy_outcome(c, url, uid).await;
    (status, outcome, started.elapsed())
}

/// The reservation ids in `product`'s ledger: `{product}-{entry id}` of each entry.
fn ledger_reservations(redis: &RedisServer, product: u64) -> Vec<String> {
    let is_entry_id = |l: &str| {
        l.split_once('-').is_some_and(|(ms, n)| {
            !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) && n.parse::<u64>().is_ok()
        })
    };
    redis
        .cli(&[
            "XRANGE",
            &format!("flashgate:{{{product}}}:ledger"),
            "-",
            "+",
        ])
        .lines()
        .filter(|l| is_entry_id(l))
        .map(|id| format!("{product}-{id}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_mid_sale_fails_fast_and_loses_nothing() {
    let mut redis = RedisServer::start();
    let origin = Origin::start().await;
    let store = format!("{{ kind: redis, url: '{}', timeout: 200ms }}", redis.url());
    let edge = edge(Setup {
        store: &store,
        origin: origin.addr,
        sales: &sale(9, 50),
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let c = reqwest::Client::new();
    let url = edge.buy_url(9).await;
    for n in 1..=20 {
        assert_eq!(buy(&c, &url, &format!("k{n}")).await.0, 200);
    }

    redis.kill();
    // A reserve written into the connection Redis dropped may have run: pending, with its
    // attempt's status URL. Every other buy finds no connection, or the breaker open: 503.
    let mut told = Vec::new();
    for n in 21..=30 {
        let uid = format!("k{n}");
        let started = Instant::now();
        let resp = c.post(&url).bearer_auth(token(&uid)).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "a buy during the outage took {took:?}"
        );
        match (status, body["outcome"].as_str()) {
            (503, Some("store_unavailable")) => {}
            (202, Some("pending")) => {
                told.push((uid, body["status"].as_str().unwrap().to_string()))
            }
            other => panic!("{uid} told {other:?}"),
        }
    }
    assert!(
        told.len() <= 2,
        "pending only while the dropped connection was in use: {told:?}"
    );
    let ready = reqwest::get(format!("{}/readyz", edge.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "not ready while Redis is down");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{}/readyz", edge.admin))
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "the edge did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Redis died between two buys: no pending reserve ran, and its status URL says so.
    for (uid, status) in &told {
        let v: serde_json::Value = c
            .get(format!("{}{status}", edge.base))
            .bearer_auth(token(uid))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["outcome"], "not_won", "{uid}: {v}");
    }
    let mut statuses = Vec::new();
    for n in 21..=100 {
        statuses.push(buy(&c, &url, &format!("k{n}")).await.0);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        30,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 410),
        "{statuses:?}"
    );

    // Nothing lost, nothing doubled: 50 forwards, 50 buyers, 50 ledger entries, the same ones.
    let forwards = origin.forwards();
    let forwarded: HashSet<String> = forwards
        .iter()
        .map(|f| f.header("x-flashgate-reservation"))
        .collect();
    let users: HashSet<String> = forwards
        .iter()
        .map(|f| f.header("x-flashgate-uid"))
        .collect();
    assert_eq!((forwards.len(), forwarded.len(), users.len()), (50, 50, 50));
    let ledger: HashSet<String> = ledger_reservations(&redis, 9).into_iter().collect();
    assert_eq!(ledger, forwarded);
    assert_eq!(redis.cli(&["GET", "flashgate:{9}:stock"]).trim(), "0");
    assert_eq!(redis.cli(&["HLEN", "flashgate:{9}:buyers"]).trim(), "50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn script_flush_mid_sale_reaches_no_client() {
    let redis = RedisServer::start();
    let origin = Origin::start().await;
    let store = format!("{{ kind: redis, url: '{}', timeout: 2s }}", redis.url());
    let edge = edge(Setup {
        store: &store,
        origin: origin.addr,
        sales: &sale(11, 120),
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let c = reqwest::Client::new();
    let url = edge.buy_url(11).await;
    let mut outcomes = Vec::new();
    for batch in 0..4 {
        redis.cli(&["SCRIPT", "FLUSH"]);
        let answers: Vec<_> = futures::stream::iter(0..50)
            .map(|n| {
                let (c, url) = (c.clone(), url.clone());
                async move { buy(&c, &url, &format!("f{batch}-{n}")).await.0 }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        outcomes.extend(answers);
    }
    assert!(
        outcomes.iter().all(|s| *s == 200 || *s == 410),
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|s| **s == 200).count(), 120);
    assert_eq!(origin.forwards().len(), 120);
}

#[test]
fn stock_show_prints_each_sale() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{}\nsecrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
             origin: {{ url: 'http://127.0.0.1:1' }}\nstore: {{ kind: redis, url: '{}' }}\n\
             catalog: {{ products: [1-100] }}\nsales:\n{}\n{}\n",
            free_port(),
            redis.url(),
            sale(5, 10),
            sale(6, 20)
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().to_string();
    let before = flashgate(&["stock", "show", "--config", &config]);
    assert!(String::from_utf8_lossy(&before.stdout).contains("not loaded"));
    let load = flashgate(&["stock", "load", "--config", &config]);
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    redis.cli(&["HSET", "flashgate:{5}:buyers", "someone", "5-1"]);
    let again = flashgate(&["stock", "load", "--config", &config]);
    assert!(
        !again.status.success(),
        "a sale with buyers is not overwritten"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let show = flashgate(&["stock", "show", "--config", &config]);
    let text = String::from_utf8_lossy(&show.stdout);
    let row = |p: &str| {
        text.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("5 "), ["5", "10", "10", "1", "0"], "{text}");
    assert_eq!(row("6 "), ["6", "20", "20", "0", "0"], "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_suite_on_redis() {
    let redis = RedisServer::start();
    let store = RedisStore::new(Target::Single(redis.url()), TIMEOUT);
    let now = now_secs() * 1000;
    suite::single_use(Arc::new(store), now).await;
    let ttl: i64 = redis
        .cli(&["PTTL", "flashgate:{42}:pass:p:a"])
        .trim()
        .parse()
        .unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_suite_on_redis_cluster() {
    let cluster = RedisCluster::start();
    let store = RedisStore::new(Target::Cluster(cluster.urls()), TIMEOUT);
    suite::single_use(Arc::new(store), now_secs() * 1000).await;
}

/// The order backend's side of a failover's repair: `discard_order` takes a confirmed unit out
/// of the sale (the edge's discard may not), `restore` gives a lost order back to its buyer —
/// taking a unit off sale, or counting it short when none is left — and leaves a buyer holding
/// another reservation alone; a confirmed reservation is a win to the status route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_discard_for_the_order_backend() {
    use flashgate::stock::redis::sales::Restore;
    use flashgate::stock::{Holding, Reservation, Reserve, SaleKeys};
    let redis = RedisServer::start();
    let s = SaleStore::new(Target::Single(redis.url()), TIMEOUT);
    let sale = SaleKeys::of(PRODUCT);
    s.sales.load(&sale, 3, false).await.unwrap();
    let Reserve::Won { reservation: a, .. } = s
        .store
        .reserve(&sale, "a", &flashgate::stock::Attempt::new().unwrap())
        .await
        .unwrap()
    else {
        panic!("a wins")
    };
    assert!(s.sales.confirm(&a).await.unwrap());
    assert_eq!(
        s.store.holding(&sale, "a").await.unwrap(),
        Holding::Won(a.id.clone())
    );
    assert!(
        !s.store.discard(&sale, &a).await.unwrap(),
        "the edge never discards an order's unit"
    );
    assert!(s.sales.discard_order(&a).await.unwrap());
    assert!(!s.sales.discard_order(&a).await.unwrap());
    assert_eq!(
        redis.cli(&["SISMEMBER", &sale.confirmed, &a.id]).trim(),
        "0"
    );
    assert_eq!(s.sales.stock(PRODUCT).await.unwrap().unwrap().remaining, 2);
    assert_eq!(redis.cli(&["HGET", &sale.meta, "discarded"]).trim(), "1");
    // An order Redis lost: given back, a unit taken off sale; a second time: held already.
    let lost = Reservation {
        id: format!("{PRODUCT}-1-1"),
        product: PRODUCT,
        uid: "lost".into(),
    };
    assert_eq!(s.sales.restore(&lost).await.unwrap(), Restore::Restored);
    assert_eq!(s.sales.restore(&lost).await.unwrap(), Restore::Held);
    assert_eq!(s.sales.stock(PRODUCT).await.unwrap().unwrap().remaining, 1);
    assert_eq!(
        s.store.holding(&sale, "lost").await.unwrap(),
        Holding::Won(lost.id.clone())
    );
    assert_eq!(
        s.store
            .reserve(&sale, "lost", &flashgate::stock::Attempt::new().unwrap())
            .await
            .unwrap(),
        Reserve::Duplicate(Holding::Won(lost.id.clone()))
    );
    // A user holding another reservation (in flight) is left alone.
    let Reserve::Won { reservation: b, .. } = s
        .store
        .reserve(&sale, "b", &flashgate::stock::Attempt::new().unwrap())
        .await
        .unwrap()
    else {
        panic!("b wins")
    };
    let other = Reservation {
        id: format!("{PRODUCT}-1-2"),
        ..b.clone()
    };
    assert_eq!(s.sales.restore(&other).await.unwrap(), Restore::Other);
    assert_eq!(
        s.store.holding(&sale, "b").await.unwrap(),
        Holding::Pending(b.id.clone())
    );
    // Nothing left on sale: restored short, counted.
    let late = Reservation {
        id: format!("{PRODUCT}-1-3"),
        product: PRODUCT,
        uid: "late".into(),
    };
    assert_eq!(s.sales.stock(PRODUCT).await.unwrap().unwrap().remaining, 0);
    assert_eq!(s.sales.restore(&late).await.unwrap(), Restore::Short);
    assert_eq!(redis.cli(&["HGET", &sale.meta, "short"]).trim(), "1");
    assert_eq!(s.sales.stock(PRODUCT).await.unwrap().unwrap().remaining, 0);
}

/// The attempt a reserve carries, in Redis (`lua/reserve.lua`, `lua/fence.lua`): a copy of an
/// attempt that won answers the same reservation and takes nothing more; an attempt fenced by
/// its status takes nothing when it arrives, while a fresh attempt of the same user may buy; an
/// attempt whose unit went back never takes another; a fence finds what the user holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_takes_at_most_one_unit_and_a_fenced_one_none() {
    use flashgate::stock::{Attempt, Holding, Reserve, SaleKeys};
    let redis = RedisServer::start();
    let s = SaleStore::new(Target::Single(redis.url()), TIMEOUT);
    let sale = SaleKeys::of(PRODUCT);
    s.sales.load(&sale, 5, false).await.unwrap();
    let remaining = || async { s.sales.stock(PRODUCT).await.unwrap().unwrap().remaining };

    let once = Attempt::new().unwrap();
    let Reserve::Won { reservation: a, .. } = s.store.reserve(&sale, "a", &once).await.unwrap()
    else {
        panic!("a wins")
    };
    let Reserve::Won {
        reservation: again,
        remaining: left,
    } = s.store.reserve(&sale, "a", &once).await.unwrap()
    else {
        panic!("the same attempt again answers its win")
    };
    assert_eq!((again.id, left), (a.id.clone(), 4));
    assert_eq!(remaining().await, 4, "one unit for the attempt");
    assert_eq!(
        s.store.fence(&sale, "a", &once).await.unwrap(),
        Holding::Pending(a.id.clone())
    );

    let late = Attempt::new().unwrap();
    assert_eq!(
        s.store.fence(&sale, "b", &late).await.unwrap(),
        Holding::Nothing
    );
    assert_eq!(
        s.store.reserve(&sale, "b", &late).await.unwrap(),
        Reserve::Fenced
    );
    assert_eq!(remaining().await, 4, "the fenced attempt took nothing");
    assert_eq!(s.store.holding(&sale, "b").await.unwrap(), Holding::Nothing);
    let Reserve::Won { reservation: b, .. } = s
        .store
        .reserve(&sale, "b", &Attempt::new().unwrap())
        .await
        .unwrap()
    else {
        panic!("b may buy with a fresh attempt")
    };
    assert_eq!(
        s.store.fence(&sale, "b", &late).await.unwrap(),
        Holding::Pending(b.id.clone()),
        "a fence answers what the user holds"
    );

    assert!(s.store.release(&sale, &a).await.unwrap());
    assert_eq!(remaining().await, 4);
    assert_eq!(
        s.store.reserve(&sale, "a", &once).await.unwrap(),
        Reserve::Fenced,
        "an attempt whose unit went back takes no other"
    );
    assert_eq!(remaining().await, 4);
    assert_eq!(
        s.store.fence(&sale, "a", &once).await.unwrap(),
        Holding::Nothing
    );
    let ttl: i64 = redis
        .cli(&["PTTL", &sale.attempt(late.as_str())])
        .trim()
        .parse()
        .unwrap();
    assert!(
        ttl > 3_600_000,
        "an attempt is remembered for hours: {ttl} ms"
    );
}
