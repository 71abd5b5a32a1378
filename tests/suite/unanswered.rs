//! A reserve that was sent and never answered (issue 26), with real processes: the buyer is told
//! `202 pending` with the status URL of that attempt — never a `503` that says nothing
//! happened — and the status URL tells them `won` or `not_won` once the store can say, the same
//! on every edge.
//!
//! - One Redis behind a TCP proxy that holds the bytes (a partition that heals): reserves sent
//!   while it holds time out at the edge and run in Redis once it delivers them; one whose
//!   status was asked meanwhile (on a second edge, straight to Redis) was fenced there and takes
//!   nothing when it arrives; one refused by the open breaker was never sent and holds nothing.
//! - A Redis Cluster (3 masters, 3 replicas) whose every node is reached through such proxies,
//!   held for one edge's connections only, under a paced crowd of the same users on two edges:
//!   every buyer who ends up holding an order was told `won` or `pending`, and every status URL
//!   a pending answer named tells the truth once the sale settled.
//! - Behind Sentinel, the master's bytes held for the edge only: pending, then won.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::crowd::{Answer, Crowd, Pace};
use crate::common::judge::{self, SaleUnderTest};
use crate::common::orders_server::{Database, OrdersServer};
use crate::common::redis_server::{RedisCluster, RedisServer, Sentinel};
use crate::common::tcp_proxy::TcpProxy;
use crate::common::*;
use flashgate::config::Target;

fn sale(product: u64, stock: u64) -> String {
    format!(
        "  - {{ product: {product}, stock: {stock}, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    )
}

fn setup<'a>(store: &'a str, origin: std::net::SocketAddr, sales: &'a str) -> Setup<'a> {
    Setup {
        store,
        origin,
        sales,
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    }
}

/// One buy: status and JSON body.
async fn buy(url: &str, uid: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(token(uid))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// What `url` (a status path) on `edge` tells `uid`.
async fn status(edge: &Edge, url: &str, uid: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}{url}", edge.base))
        .bearer_auth(token(uid))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Poll until the status says neither `pending` nor nothing (at most `within`); the last answer.
async fn settled_status(edge: &Edge, url: &str, uid: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let v = status(edge, url, uid).await;
        if v["outcome"] == "won" || v["outcome"] == "not_won" || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The status URL a buy answer names, or the product's plain one.
fn status_url(body: &serde_json::Value, product: u64) -> String {
    body["status"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("/api/buy/status?product={product}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reserve_held_past_the_timeout_is_pending_and_the_status_url_tells_the_truth() {
    const P: u64 = 141;
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.addr()).await;
    let db = Database::sqlite();
    let orders = OrdersServer::start_at_with(
        &db.url(),
        &redis.url(),
        "ledger: { grace: 3s }\nreconcile: { every: 1s }\n",
    )
    .await;
    let origin = format!("127.0.0.1:{}", orders.port).parse().unwrap();
    let sales = sale(P, 10);
    let held = format!(
        "{{ kind: redis, url: 'redis://127.0.0.1:{}', timeout: 300ms }}",
        proxy.port
    );
    let direct = format!("{{ kind: redis, url: '{}', timeout: 300ms }}", redis.url());
    let one = edge(setup(&held, origin, &sales)).await;
    let two = edge(setup(&direct, origin, &sales)).await;
    let url = one.buy_url(P).await;

    // A first buy makes the connection the held ones are sent on.
    let (s, _) = buy(&url, "w0").await;
    assert!(matches!(s, 200 | 201), "the first buy wins: {s}");

    proxy.hold();
    let mut told: BTreeMap<&str, (u16, serde_json::Value)> = BTreeMap::new();
    // Three reserves sent into the held connection (the third failure opens the breaker), then
    // one the open breaker refuses before anything is sent.
    for uid in ["u1", "u2", "u3", "u4"] {
        told.insert(uid, buy(&url, uid).await);
    }
    assert!(proxy.held() > 0, "the proxy held the edge's connection");
    // u2 asks its status on the other edge while its reserve is still held: the store says
    // nothing is held, and makes sure that reserve can take nothing when it arrives.
    let u2_url = status_url(&told["u2"].1, P);
    let early = status(&two, &u2_url, "u2").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.deliver();

    // Once the held reserves ran: whoever was told pending learns the truth within the ledger's
    // grace (3 s) and a margin; the order backend makes the orders of those that won.
    let mut learned = BTreeMap::new();
    for uid in ["u1", "u2", "u3", "u4"] {
        let url = status_url(&told[uid].1, P);
        learned.insert(
            uid,
            settled_status(&one, &url, uid, Duration::from_secs(30)).await,
        );
    }
    // Every unit is settled: Redis's buyers are the database's orders.
    let deadline = Instant::now() + Duration::from_secs(30);
    let holders = loop {
        let (active, _) = judge::database(&db.url(), P).await;
        let buyers = redis.cli(&["HLEN", &format!("flashgate:{{{P}}}:buyers")]);
        if buyers.trim().parse::<usize>().ok() == Some(active.len()) || Instant::now() > deadline {
            break active;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let summary: Vec<String> = ["u1", "u2", "u3", "u4"]
        .iter()
        .map(|u| {
            format!(
                "{u}: told {} {}, then {}",
                told[u].0, told[u].1["outcome"], learned[u]["outcome"]
            )
        })
        .collect();
    eprintln!("{}", summary.join("\n"));
    let holds = |uid: &str| holders.iter().any(|(u, _)| u == uid);

    // The claim of the issue: every buyer holding an order was told won or pending.
    for uid in ["u1", "u2", "u3", "u4"] {
        let (code, body) = &told[uid];
        let was_told = (matches!(code, 200 | 201) && body["outcome"] == "won")
            || (*code == 202 && body["outcome"] == "pending");
        assert!(
            !holds(uid) || was_told,
            "{uid} holds an order but was told {code} {body}\n{}",
            summary.join("\n")
        );
    }
    for uid in ["u1", "u2", "u3"] {
        let (code, body) = &told[uid];
        assert_eq!(
            *code, 202,
            "{uid}'s reserve was sent and never answered: {body}"
        );
        assert_eq!(body["outcome"], "pending", "{uid}: {body}");
        assert!(body["status"]
            .as_str()
            .is_some_and(|s| s.contains("attempt=")));
    }
    assert_eq!(
        told["u4"].0, 503,
        "u4's reserve was never sent: {:?}",
        told["u4"]
    );
    assert_eq!(early["outcome"], "not_won", "u2 asked while held: {early}");
    // The held reserves ran once delivered: u1 and u3 won; u2's was fenced by its status.
    for uid in ["u1", "u3"] {
        assert_eq!(learned[uid]["outcome"], "won", "{uid}: {}", learned[uid]);
        assert!(holds(uid), "{uid} holds an order");
    }
    assert_eq!(learned["u2"]["outcome"], "not_won", "{}", learned["u2"]);
    assert!(!holds("u2") && !holds("u4"), "{holders:?}");
    let stock = redis.cli(&["GET", &format!("flashgate:{{{P}}}:stock")]);
    assert_eq!(stock.trim(), "7", "three units taken: w0, u1, u3");
    // And the same answer on the edge that made the attempt.
    assert_eq!(status(&one, &u2_url, "u2").await["outcome"], "not_won");

    // u1 buying again is told what they hold, with the status URL: never a bare refusal.
    let (code, again) = buy(&two.buy_url(P).await, "u1").await;
    assert_eq!(code, 409, "{again}");
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(again["holding"], "won", "{again}");
    assert!(again["status"].as_str().is_some(), "{again}");
}

fn pace(users: usize) -> Pace {
    Pace {
        users,
        arrivals_per_s: 8.0,
        workers: 3,
        pause: Duration::from_millis(20),
        max_duration: Duration::from_secs(30),
        max_requests: 60_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_partitioned_from_one_edge_tells_every_holder_won_or_pending() {
    const P: u64 = 142;
    const STOCK: u64 = 200;
    let (_cluster, proxies) = RedisCluster::start_behind_proxies(1).await;
    let seeds: Vec<String> = proxies
        .iter()
        .map(|p| format!("redis://127.0.0.1:{}", p.port))
        .collect();
    let db = Database::postgres();
    let orders = OrdersServer::start_on_cluster(&db, &seeds, "15m").await;
    let origin = format!("127.0.0.1:{}", orders.port).parse().unwrap();
    let store = format!(
        "{{ kind: redis, cluster: [{}], timeout: 300ms }}",
        seeds.join(", ")
    );
    let sales = sale(P, STOCK);
    let one = edge(setup(&store, origin, &sales)).await;
    let two = edge(setup(&store, origin, &sales)).await;
    // The same users on both edges (c0…c39), and most only on edge one (as a DNS answer
    // would split them): those cannot win on edge two while edge one's reserves are held.
    let crowds = [
        Crowd::start(&one.buy_url(P).await, "c", pace(400)),
        Crowd::start(&two.buy_url(P).await, "c", pace(40)),
    ];
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The partition: everything edge one sends to any node is held for 10 s, then delivered.
    for proxy in &proxies {
        proxy.hold_from(one.pid());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held: usize = proxies.iter().map(TcpProxy::held).sum();
    tokio::time::sleep(Duration::from_secs(9)).await;
    for proxy in &proxies {
        proxy.deliver();
    }
    assert!(held > 0, "edge one's connections were held");
    // Everyone told pending so far learns won or not_won from their status URL, on the edge
    // that was cut off, within the ledger's grace (15 s) and a margin, now the store answers.
    let healed = Instant::now();
    let pending: Vec<(String, String)> = crowds[0]
        .answers()
        .into_iter()
        .filter(|a| a.status == 202)
        .map(|a| {
            (
                a.uid,
                a.status_url.expect("a pending answer names its status URL"),
            )
        })
        .collect();
    assert!(
        !pending.is_empty(),
        "some buyer of edge one was told pending"
    );
    for (uid, url) in &pending {
        let v = settled_status(&one, url, uid, Duration::from_secs(20)).await;
        assert!(
            v["outcome"] == "won" || v["outcome"] == "not_won",
            "{uid} ({url}) still told {v} {:?} after the partition healed",
            healed.elapsed()
        );
    }
    eprintln!(
        "{} pending answers settled within {:?} of the partition's end",
        pending.len(),
        healed.elapsed()
    );
    let mut answers: Vec<Answer> = Vec::new();
    for crowd in crowds {
        answers.extend(crowd.finish().await);
    }
    let told = judge::histogram(&answers);
    eprintln!("held {held} connections; buyers were told {told:?}");
    let target = Target::Cluster(seeds.clone());
    let sale = SaleUnderTest {
        target: &target,
        database_url: &db.url(),
        product: P,
        stock: STOCK,
    };
    judge::sale(&sale, &answers, || orders.log()).await;
    judge::answers(&answers, true);
    judge::told_the_truth(&two.base, P, &answers, &db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_sentinel_a_held_reserve_is_pending_then_won() {
    const P: u64 = 143;
    let master = RedisServer::start();
    // The sentinel and every client reach the master through the proxy; only the edge's
    // connections are held.
    let proxy = TcpProxy::start(master.addr()).await;
    let sentinel = Sentinel::start("shop", proxy.port, 1);
    let db = Database::sqlite();
    let orders = OrdersServer::start_on_sentinel(&db, "shop", &[sentinel.url()]).await;
    let origin = format!("127.0.0.1:{}", orders.port).parse().unwrap();
    let store = format!(
        "{{ kind: redis, sentinel: {{ master: shop, nodes: ['{}'] }}, timeout: 300ms }}",
        sentinel.url()
    );
    let sales = sale(P, 5);
    let one = edge(setup(&store, origin, &sales)).await;
    let url = one.buy_url(P).await;
    let (s, _) = buy(&url, "w0").await;
    assert!(matches!(s, 200 | 201), "the first buy wins: {s}");

    proxy.hold_from(one.pid());
    let (code, body) = buy(&url, "u1").await;
    assert!(proxy.held() > 0, "the edge's connection was held");
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.deliver();
    assert_eq!(
        (code, body["outcome"].as_str()),
        (202, Some("pending")),
        "{body}"
    );
    let learned = settled_status(&one, &status_url(&body, P), "u1", Duration::from_secs(40)).await;
    assert_eq!(learned["outcome"], "won", "{learned}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (active, _) = judge::database(&db.url(), P).await;
        if active.iter().any(|(u, _)| u == "u1") {
            break;
        }
        assert!(Instant::now() < deadline, "u1's order was made: {active:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
