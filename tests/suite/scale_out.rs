//! Scale-out: three edges on 127.0.0.1, 127.0.0.2 and 127.0.0.3 selling one sale from a
//! three-master Redis Cluster started by the test, one `flashgate-orders` on PostgreSQL behind
//! them, and one crowd storming all three — the same users on every edge, so a second unit to
//! one user would show. One edge is SIGKILLed in the middle of the storm. At the end the sale is
//! judged as every fault test judges it (`crate::common::judge`): exactly the stock sold, exactly that
//! many orders, nobody twice.

use std::time::Duration;

use crate::common::crowd::{Answer, Crowd, Pace};
use crate::common::judge::{self, SaleUnderTest};
use crate::common::orders_server::{Database, OrdersServer};
use crate::common::redis_server::RedisCluster;
use crate::common::*;
use flashgate::config::Target;

const PRODUCT: u64 = 7;
const STOCK: u64 = 300;

fn pace() -> Pace {
    Pace {
        users: 1500,
        arrivals_per_s: 12.0,
        workers: 3,
        pause: Duration::from_millis(20),
        max_duration: Duration::from_secs(30),
        max_requests: 50_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_edges_on_a_cluster_sell_exactly_the_stock_with_one_killed_mid_storm() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let db = Database::postgres();
    let orders = OrdersServer::start_on_cluster(&db, &urls, "15m").await;
    let origin = format!("127.0.0.1:{}", orders.port).parse().unwrap();
    let store = format!(
        "{{ kind: redis, cluster: [{}], timeout: 500ms }}",
        urls.join(", ")
    );
    let sales = format!(
        "  - {{ product: {PRODUCT}, stock: {STOCK}, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    );
    let mut edges = Vec::new();
    for host in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let setup = Setup {
            store: &store,
            origin,
            sales: &sales,
            limits: "  []",
            trusted: "[]",
            blocklist: "",
        };
        edges.push(edge_on(host, setup, "", "").await);
    }
    let mut crowds = Vec::new();
    for edge in &edges {
        // The same users ("u0", "u1", …) on every edge.
        crowds.push(Crowd::start(&edge.buy_url(PRODUCT).await, "u", pace()));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    edges[1].kill();

    let mut answers: Vec<Answer> = Vec::new();
    for (i, crowd) in crowds.into_iter().enumerate() {
        let mine = crowd.finish().await;
        eprintln!("edge {}: {:?}", edges[i].base, judge::histogram(&mine));
        if i == 1 {
            // The killed edge's clients saw their connections go; everything it did answer
            // before that must still be right.
            let answered: Vec<Answer> = mine.iter().filter(|a| a.status != 0).cloned().collect();
            assert!(
                answered.len() < mine.len(),
                "the killed edge's clients noticed"
            );
            judge::answers(&answered, false);
            answers.extend(answered);
        } else {
            judge::answers(&mine, false);
            answers.extend(mine);
        }
    }
    let target = Target::Cluster(urls);
    let sale = SaleUnderTest {
        target: &target,
        database_url: &db.url(),
        product: PRODUCT,
        stock: STOCK,
    };
    judge::sale(&sale, &answers, || orders.log()).await;
    let (_, summary) = orders.get(&format!("/sales/{PRODUCT}")).await;
    assert_eq!(summary["sold"], STOCK, "{summary}");
    assert_eq!(summary["pending"], STOCK, "{summary}");
}
