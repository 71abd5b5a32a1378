//! A Redis failover that loses acknowledged writes, in the middle of a sale (issue 21), with
//! real processes: a redis-server master and its replica, every client (the edge, the order
//! backend) reaching the master through a TCP proxy that plays the failover's virtual address,
//! `flashgate-orders` on PostgreSQL, and a paced storm (`crate::common::crowd`).
//!
//! Mid-storm the replica stops following (its link cut) while the master goes on taking reservations
//! whose orders the database records; then the master is SIGKILLed and the replica, behind by
//! seconds, is promoted and the proxy moved to it. Redis has lost those reservations: their
//! units are back on sale there (phantoms the database has no stock for) and their buyers are
//! no buyers to Redis. Before, the phantoms went round for ever: each was sold, refused by the
//! database (409) and put back on sale, and the edge never learned the sale was over. Now the
//! database's refusal discards the unit (410, the edge's sold-out hint set), and the live
//! reconcile gives the lost orders back to their buyers: the sale settles with Redis and the
//! database in agreement, nothing oversold, the whole stock sold.

use std::time::{Duration, Instant};

use crate::common::crowd::{Crowd, Pace};
use crate::common::judge::{self, SaleUnderTest};
use crate::common::orders_server::{Database, OrdersServer};
use crate::common::redis_server::RedisServer;
use crate::common::tcp_proxy::TcpProxy;
use crate::common::*;
use flashgate::config::Target;

const PRODUCT: u64 = 121;
const STOCK: u64 = 150;

/// Wait until the storm has run for `at`.
async fn until(crowd: &Crowd, at: Duration) {
    if let Some(rest) = at.checked_sub(crowd.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

/// The sum of every sample of `name` (any labels) in a Prometheus page.
fn total(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_that_lost_writes_is_corrected_without_pausing_the_sale() {
    let master = RedisServer::start();
    // The replication link goes through a proxy of its own, so the test can cut it.
    let link = TcpProxy::start(master.addr()).await;
    let replica = RedisServer::replica_via(link.port);
    let proxy = TcpProxy::start(master.addr()).await;
    let redis_url = format!("redis://127.0.0.1:{}", proxy.port);
    let db = Database::postgres();
    let orders =
        OrdersServer::start_with(&db, &redis_url, "15m", "reconcile: { every: 1s }\n").await;
    let store = format!("{{ kind: redis, url: '{redis_url}', timeout: 500ms }}");
    let sales = format!(
        "  - {{ product: {PRODUCT}, stock: {STOCK}, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    );
    let edge = edge(Setup {
        store: &store,
        origin: format!("127.0.0.1:{}", orders.port).parse().unwrap(),
        sales: &sales,
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let url = edge.buy_url(PRODUCT).await;
    let crowd = Crowd::start(
        &url,
        "f",
        Pace {
            users: 600,
            arrivals_per_s: 12.0,
            workers: 4,
            pause: Duration::from_millis(20),
            max_duration: Duration::from_secs(45),
            max_requests: 100_000,
        },
    );

    // The replica falls behind (its link to the master cut); the master sells on, the database
    // records the orders.
    until(&crowd, Duration::from_secs(3)).await;
    link.cut();
    until(&crowd, Duration::from_secs(7)).await;
    // The master dies; the stale replica is promoted and every client moved to it.
    let mut master = master;
    master.kill();
    assert_eq!(replica.cli(&["REPLICAOF", "NO", "ONE"]).trim(), "OK");
    proxy.redirect(replica.addr());
    let failed_over = crowd.elapsed();
    let answers = crowd.finish().await;

    let target = Target::Single(redis_url.clone());
    let sale = SaleUnderTest {
        target: &target,
        database_url: &db.url(),
        product: PRODUCT,
        stock: STOCK,
    };
    let settling = Instant::now();
    judge::sale(&sale, &answers, || orders.log()).await;
    eprintln!(
        "failover at {failed_over:?}; settled {:?} after the storm",
        settling.elapsed()
    );
    judge::answers(&answers, false);
    judge::told_the_truth(&edge.base, PRODUCT, &answers, &db.url()).await;

    // The fault did lose writes, and the live reconcile put them back.
    let page = reqwest::get(format!("{}/metrics", orders.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let corrections = |kind: &str| {
        sample(
            &page,
            &format!("flashgate_orders_reconcile_corrections_total{{kind=\"{kind}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let lost = corrections("restored") + corrections("short");
    assert!(lost > 0.0, "the failover lost no write: it proved nothing");
    assert_eq!(
        sample(
            &page,
            &format!("flashgate_orders_stock_drift{{sale=\"{PRODUCT}\"}}")
        ),
        Some(0.0),
        "Redis agrees with the database"
    );
    // Each phantom unit was refused at most once, then discarded — not a thousand times.
    let edge_page = edge.metrics().await;
    let discarded = total(
        &edge_page,
        "flashgate_settlements_total{result=\"discarded\"}",
    );
    eprintln!(
        "lost {lost} reservations (restored {}, short {}); {discarded} phantom units discarded; \
         answers {:?}",
        corrections("restored"),
        corrections("short"),
        judge::histogram(&answers)
    );
    assert!(
        discarded <= lost,
        "{discarded} units discarded for {lost} lost reservations"
    );
}
