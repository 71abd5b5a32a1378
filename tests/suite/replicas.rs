//! Redis with replicas, with real processes (issue 21): `store.wait` (each reservation waits for
//! a replica's acknowledgement, `WAIT`) and Redis Sentinel as a store.
//!
//! - With `wait`, a reservation the replica did not acknowledge in time is answered
//!   `202 pending` and never forwarded; once the replica is back the order backend's ledger
//!   consumer makes its order and the status URL says won. When the master dies instead and the
//!   lagging replica is promoted, such a buyer learns `not_won` (the reservation is gone with
//!   the master), while every buyer told `won` still holds the unit on the new master.
//! - Behind Sentinel, the master SIGKILLed in the middle of a storm: the sentinels promote the
//!   replica, the edge and the order backend follow it, the sale goes on and settles whole.

use std::time::{Duration, Instant};

use crate::common::crowd::{Crowd, Pace};
use crate::common::judge::{self, SaleUnderTest};
use crate::common::orders_server::{Database, OrdersServer};
use crate::common::redis_server::{RedisServer, Sentinel};
use crate::common::tcp_proxy::TcpProxy;
use crate::common::*;
use flashgate::config::Target;
use flashgate::stock::SaleKeys;

fn sale(product: u64, stock: u64) -> String {
    format!(
        "  - {{ product: {product}, stock: {stock}, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    )
}

/// What the status URL tells `uid` about `product`.
async fn status(edge: &Edge, product: u64, uid: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}/api/buy/status?product={product}", edge.base))
        .bearer_auth(token(uid))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Poll the status URL until it says `outcome` (at most `within`); the last answer.
async fn status_becomes(
    edge: &Edge,
    product: u64,
    uid: &str,
    outcome: &str,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let v = status(edge, product, uid).await;
        if v["outcome"] == outcome || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unacknowledged_reservation_is_pending_and_never_lost_silently() {
    const P: u64 = 131;
    let master = RedisServer::start();
    // The replica follows through a link the test can cut; every client reaches the master
    // through a proxy that plays the failover's virtual address.
    let link = TcpProxy::start(master.addr()).await;
    let replica = RedisServer::replica_via(link.port);
    let front = TcpProxy::start(master.addr()).await;
    let url = format!("redis://127.0.0.1:{}", front.port);
    let db = Database::sqlite();
    let orders = OrdersServer::start_at_with(
        &db.url(),
        &url,
        "ledger: { grace: 5s }\nreconcile: { every: 1s }\n",
    )
    .await;
    let store = format!(
        // A second for the replica's acknowledgement: far above what it takes, loaded or not.
        "{{ kind: redis, url: '{url}', timeout: 3s, wait: {{ replicas: 1, timeout: 1s }} }}"
    );
    let edge = edge(Setup {
        store: &store,
        origin: format!("127.0.0.1:{}", orders.port).parse().unwrap(),
        sales: &sale(P, 10),
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let buy_url = edge.buy_url(P).await;
    let c = reqwest::Client::new();
    let keys = SaleKeys::of(P);

    // The replica acknowledges: a win as ever.
    assert_eq!(buy_outcome(&c, &buy_url, "acked").await.0, 201);
    assert!(
        !replica
            .cli(&["HGET", &keys.buyers, "acked"])
            .trim()
            .is_empty(),
        "the replica has it"
    );

    // The replica's link is cut: the reservation is made on the master alone, answered
    // pending within about the wait's timeout, and not forwarded.
    link.cut();
    let started = Instant::now();
    assert_eq!(
        buy_outcome(&c, &buy_url, "unacked").await,
        (202, "pending".into())
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status(&edge, P, "unacked").await["outcome"], "pending");
    let (code, _) = orders.get("/orders?user=unacked").await;
    assert_eq!(code, 200);
    assert_eq!(
        orders.get("/orders?user=unacked").await.1["orders"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "not forwarded"
    );
    let page = edge.metrics().await;
    assert_eq!(
        sample(&page, "flashgate_reservations_unacknowledged_total"),
        Some(1.0)
    );
    // The replica comes back: the ledger consumer makes the order; the buyer learns it.
    link.restore();
    let v = status_becomes(&edge, P, "unacked", "won", Duration::from_secs(30)).await;
    assert_eq!(v["outcome"], "won", "{v}\n{}", orders.log());

    // The link cut again, a buyer told pending; then the master dies and the stale replica is
    // promoted. That reservation is gone: the buyer learns not_won. Every buyer told won holds
    // the unit on the new master: their writes were acknowledged.
    link.cut();
    assert_eq!(
        buy_outcome(&c, &buy_url, "lost").await,
        (202, "pending".into())
    );
    let mut master = master;
    master.kill();
    assert_eq!(replica.cli(&["REPLICAOF", "NO", "ONE"]).trim(), "OK");
    front.redirect(replica.addr());
    let v = status_becomes(&edge, P, "lost", "not_won", Duration::from_secs(20)).await;
    assert_eq!(v["outcome"], "not_won", "{v}");
    for uid in ["acked", "unacked"] {
        let v = status_becomes(&edge, P, uid, "won", Duration::from_secs(20)).await;
        assert_eq!(v["outcome"], "won", "{uid}: {v}");
    }
    // The promoted master has no replica to acknowledge anything: every buy is pending now,
    // and the ledger makes its order — slower, never lost silently.
    assert_eq!(
        buy_outcome(&c, &buy_url, "after").await,
        (202, "pending".into())
    );
    let v = status_becomes(&edge, P, "after", "won", Duration::from_secs(30)).await;
    assert_eq!(v["outcome"], "won", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_sentinel_a_master_killed_mid_storm_is_followed() {
    const P: u64 = 132;
    const STOCK: u64 = 150;
    let master = RedisServer::start();
    let replica = RedisServer::replica_via(master.port);
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start("shop", master.port, 2))
        .collect();
    let urls: Vec<String> = sentinels.iter().map(Sentinel::url).collect();
    let db = Database::sqlite();
    let orders = OrdersServer::start_on_sentinel(&db, "shop", &urls).await;
    let store = format!(
        "{{ kind: redis, sentinel: {{ master: shop, nodes: [{}] }}, timeout: 500ms }}",
        urls.join(", ")
    );
    let edge = edge(Setup {
        store: &store,
        origin: format!("127.0.0.1:{}", orders.port).parse().unwrap(),
        sales: &sale(P, STOCK),
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let buy_url = edge.buy_url(P).await;
    let crowd = Crowd::start(
        &buy_url,
        "s",
        Pace {
            users: 400,
            arrivals_per_s: 8.0,
            workers: 4,
            pause: Duration::from_millis(20),
            max_duration: Duration::from_secs(35),
            max_requests: 100_000,
        },
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut master = master;
    master.kill();
    let killed = crowd.elapsed();
    // The sentinels promote the replica.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replica.cli(&["ROLE"]).starts_with("master") {
        assert!(Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = crowd.elapsed();
    let answers = crowd.finish().await;
    let won_after: usize = answers
        .iter()
        .filter(|a| a.at > promoted && a.status == 201)
        .count();
    eprintln!(
        "master killed at {killed:?}, replica promoted at {promoted:?}; {won_after} wins after; {:?}",
        judge::histogram(&answers)
    );
    assert!(won_after > 0, "the sale went on after the failover");
    let target = Target::Sentinel {
        master: "shop".into(),
        nodes: urls.clone(),
    };
    let sale = SaleUnderTest {
        target: &target,
        database_url: &db.url(),
        product: P,
        stock: STOCK,
    };
    judge::sale(&sale, &answers, || orders.log()).await;
    judge::answers(&answers, true);
    judge::told_the_truth(&edge.base, P, &answers, &db.url()).await;
    let ready = reqwest::get(format!("{}/readyz", edge.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "the edge is ready on the new master");
}

/// On a Redis Cluster the `WAIT` goes to the master that ran the reservation: with that
/// master's replica hung, a buy is pending; with it running, a win. (A `WAIT` sent anywhere else
/// would find no write of this client to wait for, and answer at once: always a win.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_the_wait_asks_the_node_that_made_the_reservation() {
    use crate::common::redis_server::RedisCluster;
    const P: u64 = 133;
    let cluster = RedisCluster::start_with_replicas(1);
    let origin = Origin::start().await;
    let store = format!(
        "{{ kind: redis, cluster: [{}], timeout: 3s, wait: {{ replicas: 1, timeout: 1s }} }}",
        cluster.urls().join(", ")
    );
    let edge = edge(Setup {
        store: &store,
        origin: origin.addr,
        sales: &sale(P, 10),
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let url = edge.buy_url(P).await;
    let c = reqwest::Client::new();
    let (_, replicas) = cluster.serving(&SaleKeys::of(P).stock);
    assert_eq!(replicas.len(), 1);
    // The replicas of the other masters hung: no matter.
    let others: Vec<&RedisServer> = cluster
        .nodes
        .iter()
        .filter(|n| n.port != replicas[0].port && n.cli(&["ROLE"]).starts_with("slave"))
        .collect();
    for other in &others {
        other.pause();
    }
    assert_eq!(buy_outcome(&c, &url, "a").await.0, 200);
    for other in &others {
        other.resume();
    }
    // The sale's master's replica hung: pending.
    replicas[0].pause();
    assert_eq!(buy_outcome(&c, &url, "b").await, (202, "pending".into()));
    replicas[0].resume();
    assert_eq!(buy_outcome(&c, &url, "c").await.0, 200);
    assert_eq!(
        origin.forwards().len(),
        2,
        "the pending buy was not forwarded"
    );
}
