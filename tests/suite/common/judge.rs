//! Judging a sale once a storm is over, against the order database and Redis themselves: the
//! claims every fault test makes (see [`sale`] and [`answers`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use flashgate::config::Target;
use flashgate::stock::redis::ledger::Ledgers;
use flashgate::stock::redis::sales::RedisSales;
use flashgate::stock::SaleKeys;
use sqlx::Row;

use super::crowd::Answer;

/// How long, at most, everything may take to settle once the fault is over.
pub const SETTLE: Duration = Duration::from_secs(90);

/// The database's active orders of `product` as (uid, reservation), and its sale row.
pub async fn database(url: &str, product: u64) -> (Vec<(String, String)>, Option<(i64, i64)>) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url)
        .await
        .expect("read the database");
    let rows = sqlx::query(
        "SELECT uid, id FROM orders WHERE product = $1 AND status <> 'cancelled' ORDER BY id",
    )
    .bind(product as i64)
    .fetch_all(&pool)
    .await
    .expect("orders");
    let active = rows
        .iter()
        .map(|r| (r.get::<String, _>("uid"), r.get::<String, _>("id")))
        .collect();
    let sale = sqlx::query("SELECT stock, sold FROM sales WHERE product = $1")
        .bind(product as i64)
        .fetch_optional(&pool)
        .await
        .expect("sales")
        .map(|r| (r.get::<i64, _>("stock"), r.get::<i64, _>("sold")));
    pool.close().await;
    (active, sale)
}

/// How many answers of each status and outcome.
pub fn histogram(answers: &[Answer]) -> BTreeMap<(u16, String), usize> {
    let mut by_status = BTreeMap::new();
    for a in answers {
        *by_status.entry((a.status, a.outcome.clone())).or_default() += 1;
    }
    by_status
}

/// Answers of one stretch of the storm: counts by status and outcome, and who asked.
type Slice<'a> = (BTreeMap<(u16, String), usize>, HashSet<&'a String>);

/// The answers per 5 s of the storm, for a failure's message.
pub fn timeline(answers: &[Answer]) -> String {
    let mut slices: BTreeMap<u64, Slice> = BTreeMap::new();
    for a in answers {
        let slice = slices.entry(a.at.as_secs() / 5 * 5).or_default();
        *slice.0.entry((a.status, a.outcome.clone())).or_default() += 1;
        slice.1.insert(&a.uid);
    }
    slices
        .iter()
        .map(|(at, (counts, users))| format!("{at:>3} s: {} users {counts:?}", users.len()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every answer was one a sale gives, and every error answer a 503, or a `202 pending`, that
/// says when to retry; with `fault_seen`, some client saw the fault (a 503 or a 202).
pub fn answers(answers: &[Answer], fault_seen: bool) {
    let by_status = histogram(answers);
    let wrong: Vec<&Answer> = answers
        .iter()
        .filter(|a| !matches!(a.status, 200 | 201 | 202 | 409 | 410 | 503))
        .filter(|a| a.status != 202 || a.outcome == "pending")
        .collect();
    assert!(
        wrong.is_empty(),
        "answers no sale gives: {:?}\nall: {by_status:?}",
        &wrong[..wrong.len().min(5)]
    );
    let bare: Vec<&Answer> = answers
        .iter()
        .filter(|a| matches!(a.status, 202 | 503) && !a.retry_after)
        .collect();
    assert!(
        bare.is_empty(),
        "503s or 202s without Retry-After: {:?}",
        &bare[..bare.len().min(5)]
    );
    assert!(
        !fault_seen || answers.iter().any(|a| matches!(a.status, 202 | 503)),
        "the fault was never seen by a client: {by_status:?}"
    );
    eprintln!("answers: {by_status:?}");
}

/// Every buyer learned the truth, once the sale settled: whoever holds an order was told `won`
/// or `pending` (never only a `503`, a `sold_out` or a refusal), and everyone told `pending`
/// gets from the status URL on `edge_base` exactly what the database holds: `won` with the
/// order's reservation, or `not_won`.
pub async fn told_the_truth(edge_base: &str, product: u64, answers: &[Answer], database_url: &str) {
    let (active, _) = database(database_url, product).await;
    let holders: BTreeMap<&String, &String> = active.iter().map(|(u, r)| (u, r)).collect();
    let told = |uid: &String, what: &dyn Fn(&Answer) -> bool| {
        answers.iter().any(|a| &a.uid == uid && what(a))
    };
    let won = |a: &Answer| matches!(a.status, 200 | 201) && a.outcome == "won";
    let pending = |a: &Answer| a.status == 202 && a.outcome == "pending";
    let untold: Vec<&&String> = holders
        .keys()
        .filter(|uid| !told(uid, &won) && !told(uid, &pending))
        .collect();
    assert!(
        untold.is_empty(),
        "buyers holding an order who were never told won or pending: {untold:?}\n{}",
        timeline(answers)
    );
    // Each status URL a pending answer named (its attempt's own), and the product's plain one.
    let plain = format!("/api/buy/status?product={product}");
    let asked: BTreeSet<(&String, &str)> = answers
        .iter()
        .filter(|a| pending(a))
        .flat_map(|a| {
            let own = a.status_url.as_deref().unwrap_or(&plain);
            [(&a.uid, own), (&a.uid, plain.as_str())]
        })
        .collect();
    let client = reqwest::Client::new();
    for (uid, url) in &asked {
        let v: serde_json::Value = client
            .get(format!("{edge_base}{url}"))
            .bearer_auth(super::token(uid))
            .send()
            .await
            .expect("the edge answers")
            .json()
            .await
            .expect("JSON");
        match holders.get(uid) {
            Some(reservation) => {
                assert_eq!(v["outcome"], "won", "{uid} holds an order ({url}): {v}");
                assert_eq!(v["reservation"], reservation.as_str(), "{uid}: {v}");
            }
            None => assert_eq!(v["outcome"], "not_won", "{uid} holds no order ({url}): {v}"),
        }
    }
    let users: BTreeSet<&String> = asked.iter().map(|(uid, _)| *uid).collect();
    eprintln!(
        "{} buyers told pending learned the truth from {} status URLs; {} hold an order",
        users.len(),
        asked.len(),
        users.iter().filter(|u| holders.contains_key(*u)).count()
    );
}

/// The sale whose end is judged.
pub struct SaleUnderTest<'a> {
    /// Where its stock is.
    pub target: &'a Target,
    /// Its order database, reached directly.
    pub database_url: &'a str,
    pub product: u64,
    /// Its stock in all.
    pub stock: u64,
}

/// Within [`SETTLE`], every reserved unit has its order and every order its unit, and units
/// left plus units sold are the stock; no user holds two, nothing is oversold, the database's
/// sale row agrees, every winner a client saw has an order, nothing is dead-lettered, and the
/// whole stock sold. `log` is shown when orders and units disagree.
pub async fn sale(s: &SaleUnderTest<'_>, answers: &[Answer], log: impl Fn() -> String) {
    let sales = RedisSales::new(s.target.clone(), Duration::from_secs(2));
    let (product, stock, database_url) = (s.product, s.stock, s.database_url);
    let deadline = Instant::now() + SETTLE;
    let (buyers, remaining, active, sale) = loop {
        let buyers: BTreeSet<(String, String)> = sales
            .buyers(product)
            .await
            .expect("Redis answers")
            .into_iter()
            .collect();
        let remaining = sales
            .stock(product)
            .await
            .expect("Redis answers")
            .expect("the sale exists")
            .remaining;
        let (active, sale) = database(database_url, product).await;
        let settled = active.iter().cloned().collect::<BTreeSet<_>>() == buyers
            && remaining + buyers.len() as u64 == stock;
        if settled || Instant::now() > deadline {
            break (buyers, remaining, active, sale);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let orders: BTreeSet<(String, String)> = active.iter().cloned().collect();
    assert_eq!(
        orders.symmetric_difference(&buyers).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "every reserved unit has its order and every order its unit, within {SETTLE:?}\n{}",
        log()
    );
    assert_eq!(
        remaining + buyers.len() as u64,
        stock,
        "every unit is sold or back on sale"
    );
    let users: HashSet<&String> = active.iter().map(|(uid, _)| uid).collect();
    assert_eq!(users.len(), active.len(), "a user holds two units");
    assert!(active.len() as u64 <= stock, "oversold");
    assert_eq!(
        sale,
        Some((stock as i64, active.len() as i64)),
        "the database's sale row"
    );
    let winners: BTreeSet<&String> = answers
        .iter()
        .filter(|a| (a.status == 200 || a.status == 201) && a.outcome == "won")
        .map(|a| &a.uid)
        .collect();
    let missing: Vec<&&String> = winners.iter().filter(|w| !users.contains(**w)).collect();
    assert!(missing.is_empty(), "winners without an order: {missing:?}");
    let dead = Ledgers::new(s.target.clone(), Duration::from_secs(2))
        .dead(&SaleKeys::of(product))
        .await
        .expect("Redis answers");
    assert_eq!(dead, Vec::new(), "nothing dead-lettered");
    assert_eq!(
        remaining,
        0,
        "the whole stock sold: no undersell\n{}",
        timeline(answers)
    );
}
