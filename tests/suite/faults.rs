//! The sale under faults, end to end: a paced storm (`crate::common::crowd`) through a real edge on
//! the Redis store into `flashgate-orders`, each process real, and in the middle of the storm
//! one fault:
//!
//! - Redis SIGKILLed and restarted from its append-only file;
//! - the order backend SIGKILLed and restarted, and hung (SIGSTOP) for 20 s;
//! - the database unavailable for 40 s: SQLite's write lock held by another process, and
//!   PostgreSQL cut by a TCP proxy the test starts (never by touching the machine's server);
//! - `flashgate stock load --force` run while reservations are unsettled, and a restock to
//!   more units in the middle of the sale.
//!
//! After each ([`judge`]): every answer the crowd got was a sale's answer, and every error
//! answer a 503 or a `202 pending` with `Retry-After`; whoever holds an order was told `won` or
//! `pending`, and the status URL tells everyone told `pending` what the database holds; within a bounded time every reserved unit is sold with an
//! order or back on sale — the database's active orders are exactly Redis's buyers, and units
//! left plus units sold are the stock; no user holds two, nothing is oversold, every winner a
//! client saw has an order, nothing is dead-lettered, and the whole stock sold (no undersell).
//! Everything is bounded and on 127.0.0.1; redis-server processes are the test's own.

use std::time::Duration;

use crate::common::crowd::{Answer, Crowd, Pace};
use crate::common::judge::{self, SaleUnderTest};
use crate::common::orders_server::{postgres_addr, Database, OrdersServer};
use crate::common::redis_server::RedisServer;
use crate::common::tcp_proxy::TcpProxy;
use crate::common::*;
use flashgate::config::Target;

/// How long the database stays away in the outage tests.
const OUTAGE: Duration = Duration::from_secs(40);

/// The processes of one sale.
struct Stand {
    redis: RedisServer,
    orders: OrdersServer,
    edge: Edge,
    product: u64,
}

fn sale_yaml(product: u64, stock: u64) -> String {
    format!(
        "  - {{ product: {product}, stock: {stock}, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    )
}

/// Redis, the backend on `database_url`, and an edge selling `stock` units of `product`.
async fn stand(database_url: &str, product: u64, stock: u64) -> Stand {
    let redis = RedisServer::start();
    let orders = OrdersServer::start_at(database_url, &redis.url(), "15m").await;
    let origin = format!("127.0.0.1:{}", orders.port).parse().unwrap();
    let store = format!("{{ kind: redis, url: '{}', timeout: 500ms }}", redis.url());
    let edge = edge(Setup {
        store: &store,
        origin,
        sales: &sale_yaml(product, stock),
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    Stand {
        redis,
        orders,
        edge,
        product,
    }
}

fn pace(users: usize, arrivals_per_s: f64, max_duration: Duration) -> Pace {
    Pace {
        users,
        arrivals_per_s,
        workers: 4,
        pause: Duration::from_millis(20),
        max_duration,
        max_requests: 100_000,
    }
}

/// Wait until the storm has run for `at`.
async fn until(crowd: &Crowd, at: Duration) {
    if let Some(rest) = at.checked_sub(crowd.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

/// The sale settles and every answer was right: see the module docs and `crate::common::judge`.
async fn judge(
    stand: &Stand,
    database_url: &str,
    stock: u64,
    answers: &[Answer],
    fault_seen: bool,
) {
    let target = Target::Single(stand.redis.url());
    let sale = SaleUnderTest {
        target: &target,
        database_url,
        product: stand.product,
        stock,
    };
    judge::sale(&sale, answers, || stand.orders.log()).await;
    judge::answers(answers, fault_seen);
    judge::told_the_truth(&stand.edge.base, stand.product, answers, database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_sigkilled_and_restarted_from_its_aof_mid_storm() {
    let db = Database::sqlite();
    let mut stand = stand(&db.url(), 101, 120).await;
    let url = stand.edge.buy_url(101).await;
    let crowd = Crowd::start(&url, "r", pace(400, 10.0, Duration::from_secs(25)));
    until(&crowd, Duration::from_secs(5)).await;
    stand.redis.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stand.redis.restart();
    let answers = crowd.finish().await;
    judge(&stand, &db.url(), 120, &answers, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_backend_sigkilled_and_restarted_mid_storm() {
    let db = Database::postgres();
    let mut stand = stand(&db.url(), 102, 120).await;
    let url = stand.edge.buy_url(102).await;
    let crowd = Crowd::start(&url, "b", pace(400, 10.0, Duration::from_secs(25)));
    until(&crowd, Duration::from_secs(5)).await;
    stand.orders.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stand.orders.restart().await;
    let answers = crowd.finish().await;
    judge(&stand, &db.url(), 120, &answers, true).await;
}

/// Issue 21: the order backend hangs (SIGSTOP) for 20 s in the middle of the sale. Forwards
/// reach it and time out, so nobody knows whether they made an order — and they do, once it
/// runs again, or its ledger consumer does. Before, those buyers were told
/// `503 origin_unavailable` (try again) while they held orders, and their retries got
/// `409 duplicate`; now each is told `202 pending` and the status URL says won or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_backend_hung_mid_storm_every_buyer_learns_the_truth() {
    let db = Database::postgres();
    let stand = stand(&db.url(), 106, 150).await;
    let url = stand.edge.buy_url(106).await;
    let crowd = Crowd::start(&url, "h", pace(400, 10.0, Duration::from_secs(40)));
    until(&crowd, Duration::from_secs(5)).await;
    stand.orders.pause();
    tokio::time::sleep(Duration::from_secs(20)).await;
    stand.orders.resume();
    let answers = crowd.finish().await;
    judge(&stand, &db.url(), 150, &answers, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_locked_for_forty_seconds_mid_storm() {
    let db = Database::sqlite();
    let stand = stand(&db.url(), 103, 200).await;
    let url = stand.edge.buy_url(103).await;
    let crowd = Crowd::start(&url, "s", pace(400, 5.0, Duration::from_secs(70)));
    until(&crowd, Duration::from_secs(8)).await;
    let lock = db.sqlite_write_lock().await;
    tokio::time::sleep(OUTAGE).await;
    lock.release().await;
    let answers = crowd.finish().await;
    judge(&stand, &db.url(), 200, &answers, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_cut_for_forty_seconds_mid_storm() {
    let db = Database::postgres();
    let proxy = TcpProxy::start(postgres_addr()).await;
    let stand = stand(&db.url_through(proxy.port), 104, 200).await;
    let url = stand.edge.buy_url(104).await;
    let crowd = Crowd::start(&url, "p", pace(400, 5.0, Duration::from_secs(70)));
    until(&crowd, Duration::from_secs(8)).await;
    proxy.cut();
    tokio::time::sleep(OUTAGE).await;
    proxy.restore();
    let answers = crowd.finish().await;
    judge(&stand, &db.url(), 200, &answers, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_load_force_mid_storm_drops_nothing_and_restocks() {
    let db = Database::sqlite();
    let stand = stand(&db.url(), 105, 100).await;
    let config = stand.edge.dir.path().join("flashgate.yaml");
    let config = config.to_string_lossy().to_string();
    let url = stand.edge.buy_url(105).await;
    let crowd = Crowd::start(&url, "f", pace(400, 10.0, Duration::from_secs(30)));
    let load = || {
        let out = flashgate(&["stock", "load", "--force", "--config", &config]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{said}");
        said
    };
    // While reservations are in flight, the same total again: nothing changes, nothing is
    // dropped, whatever becomes of the reservations in flight.
    until(&crowd, Duration::from_secs(4)).await;
    for _ in 0..5 {
        let said = load();
        assert!(said.contains("restocked to 100 units"), "{said}");
    }
    // Fifty more units found mid-sale: restocked to 150, every buyer keeping theirs.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("stock: 100", "stock: 150"),
    )
    .unwrap();
    let said = load();
    assert!(said.contains("restocked to 150 units"), "{said}");
    let answers = crowd.finish().await;
    // The fault here is the reload itself: no client needs to have seen a 503.
    judge(&stand, &db.url(), 150, &answers, false).await;
}
