//! Zero-downtime upgrade (`flashgate run --upgrade`): under steady load a second process takes
//! the listening sockets over from the first, which drains and exits. No request fails, and
//! the sale carries over: on the embedded store (with `store.path`) the new process replays
//! the old one's journal, on Redis both share the sale. Exactly the stock is sold, to distinct
//! users, some of it by each process.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::redis_server::RedisServer;
use crate::common::*;

const PRODUCT: u64 = 42;
const STOCK: u64 = 600;
/// Buyers at once; each sends one buy at a time on a new connection.
const WORKERS: usize = 6;
/// Between a worker's buys: about WORKERS * 10 buys per second in all.
const PACE: Duration = Duration::from_millis(100);
/// The whole load is bounded in time as well as by the stock.
const LOAD_DEADLINE: Duration = Duration::from_secs(60);

/// What one buy got: when it was answered, and the status and outcome (or the error).
struct Answer {
    at: Instant,
    took: Duration,
    result: Result<(u16, String), String>,
}

/// Buys from WORKERS users at a time, each on a new connection, until every worker has seen
/// the sale sold out (or the deadline).
async fn load(url: String, answers: Arc<Mutex<Vec<Answer>>>, stop: Arc<AtomicBool>) {
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (url, answers, stop) = (url.clone(), answers.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            // No connection is kept: each buy connects anew, as a crowd does.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(40))
                .build()
                .unwrap();
            let started = Instant::now();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) || started.elapsed() > LOAD_DEADLINE {
                    return;
                }
                let uid = format!("w{w}-{i}");
                let sent = Instant::now();
                let result = match client.post(&url).bearer_auth(token(&uid)).send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        match resp.json::<serde_json::Value>().await {
                            Ok(body) => {
                                Ok((status, body["outcome"].as_str().unwrap_or("").to_string()))
                            }
                            Err(e) => Err(format!("{status}, unreadable body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("{e:?}")),
                };
                let sold_out = matches!(&result, Ok((410, _)));
                answers.lock().unwrap().push(Answer {
                    at: Instant::now(),
                    took: sent.elapsed(),
                    result,
                });
                if sold_out {
                    return;
                }
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
}

/// Run the load, upgrade the edge a second into it, and judge.
async fn upgrade_under_load(mut edge: Edge, origin: &Origin) {
    let url = edge.buy_url(PRODUCT).await;
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let storm = tokio::spawn(load(url, answers.clone(), stop.clone()));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let old_pid = edge.pid();
    let upgrade_at = Instant::now();
    let mut old = edge.upgrade();
    // The old process hands over, serves on for Pingora's 5 s close timeout, drains and exits.
    let exited = loop {
        if let Some(status) = old.try_wait().unwrap() {
            break status;
        }
        assert!(
            upgrade_at.elapsed() < Duration::from_secs(30),
            "the old process (pid {old_pid}) did not exit; log:\n{}",
            edge.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let old_gone = Instant::now();
    assert!(
        exited.success(),
        "old process: {exited}; log:\n{}",
        edge.log()
    );

    // Let the new process serve the rest of the sale.
    let finished = tokio::time::timeout(LOAD_DEADLINE, storm).await;
    stop.store(true, Ordering::Relaxed);
    finished.expect("the load ends").unwrap();

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let failed: Vec<&String> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the upgrade, e.g. {:?}; log:\n{}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(3)],
        edge.log()
    );
    let mut statuses: Vec<(u16, String)> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().ok().cloned())
        .collect();
    statuses.sort();
    statuses.dedup();
    for (status, outcome) in &statuses {
        assert!(
            [(200, "won"), (410, "sold_out")].contains(&(*status, outcome.as_str())),
            "unexpected answer {status} {outcome:?}; log:\n{}",
            edge.log()
        );
    }
    let won = |a: &&Answer| matches!(&a.result, Ok((200, _)));
    let before = answers
        .iter()
        .filter(won)
        .filter(|a| a.at < upgrade_at)
        .count();
    let after = answers
        .iter()
        .filter(won)
        .filter(|a| a.at > old_gone)
        .count();
    let total = answers.iter().filter(won).count() as u64;
    let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
    eprintln!(
        "upgrade: {} requests, {total} won ({before} before the upgrade, {after} after the old \
         process exited), the old process exited {:?} after the upgrade began, slowest answer \
         {slowest:?}",
        answers.len(),
        old_gone - upgrade_at
    );
    assert_eq!(total, STOCK, "exactly the stock is sold");
    assert!(before > 0, "the old process sold before the upgrade");
    assert!(after > 0, "the new process sold after the old one left");

    let forwards = origin.forwards();
    assert_eq!(forwards.len() as u64, STOCK, "one forward per unit");
    let users: HashSet<String> = forwards
        .iter()
        .map(|f| f.header("x-flashgate-uid"))
        .collect();
    assert_eq!(users.len() as u64, STOCK, "no user twice");
    let reservations: HashSet<String> = forwards
        .iter()
        .map(|f| f.header("x-flashgate-reservation"))
        .collect();
    assert_eq!(reservations.len() as u64, STOCK, "no reservation id reused");
    let page = edge.metrics().await;
    assert_eq!(
        sample(
            &page,
            &format!("flashgate_stock_remaining{{sale=\"{PRODUCT}\"}}")
        ),
        Some(0.0),
        "the new process knows the sale is over"
    );
}

fn setup<'a>(origin: &Origin, store: &'a str, sales: &'a str) -> Setup<'a> {
    Setup {
        origin: origin.addr,
        store,
        sales,
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    }
}

fn sales() -> String {
    format!(
        "  - {{ product: {PRODUCT}, stock: {STOCK}, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    )
}

/// The embedded store with `store.path`: the new process opens the journal once the old one
/// has let it go, and carries the sale on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_on_the_embedded_store_fails_no_request_and_keeps_the_sale() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let store = format!(
        "{{ kind: memory, path: '{}', fsync: always }}",
        data.path().display()
    );
    let sales = sales();
    let edge = edge(setup(&origin, &store, &sales)).await;
    upgrade_under_load(edge, &origin).await;
}

/// On Redis both processes sell from the same sale while they overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_on_redis_fails_no_request_and_keeps_the_sale() {
    let origin = Origin::start().await;
    let redis = RedisServer::start();
    // A starved CI machine can miss the default 50 ms; the upgrade is what is under test.
    let store = format!("{{ kind: redis, url: '{}', timeout: 1s }}", redis.url());
    let sales = sales();
    let edge = edge(setup(&origin, &store, &sales)).await;
    upgrade_under_load(edge, &origin).await;
}
