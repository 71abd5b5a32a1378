//! Cluster-wide limits (`limits[].scope: cluster`): three edges on 127.0.0.1, .2 and .3 share a
//! three-master Redis Cluster, and one user spreads a steady stream of buys over all three. With
//! `scope: local` each edge lets the limit through, three times it in all; with
//! `scope: cluster` the three together let through the limit plus a slack of about what one
//! sync interval lets each of the other edges see, measured here per window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::redis_server::RedisCluster;
use crate::common::*;

const PRODUCT: u64 = 7;
/// The per-uid limit, per PER_SECS window.
const LIMIT: u64 = 30;
const PER_SECS: u64 = 10;
/// The spreader's buys, one every GAP, round robin over the edges.
const BUYS: usize = 180;
const GAP: Duration = Duration::from_millis(15);

/// Send BUYS buys as one user over `edges`; per wall-clock window (the edges' windows), how
/// many the limiter let through (anything but 429: won, duplicate, or pending).
async fn spread(edges: &[Edge], uid: &str) -> BTreeMap<u64, (u64, u64)> {
    let client = reqwest::Client::new();
    let mut urls = Vec::new();
    for edge in edges {
        urls.push(edge.buy_url(PRODUCT).await);
    }
    let mut per_window: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let started = Instant::now();
    for i in 0..BUYS {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "bounded in time"
        );
        let window = now_ms() / (PER_SECS * 1000);
        let (status, outcome) = buy_outcome(&client, &urls[i % urls.len()], uid).await;
        let counts = per_window.entry(window).or_default();
        match (status, outcome.as_str()) {
            (429, "rate_limited") => counts.1 += 1,
            // Let through by the limiter; a reserve the store was slow to answer (a loaded
            // machine, store.timeout 500ms) is pending, let through all the same.
            (200, "won") | (409, "duplicate") | (202, "pending") => counts.0 += 1,
            other => panic!("unexpected answer {other:?}"),
        }
        tokio::time::sleep(GAP).await;
    }
    per_window
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn three_edges(store: &str, scope: &str) -> Vec<Edge> {
    let sales = format!(
        "  - {{ product: {PRODUCT}, stock: 1000, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    );
    let limits = format!(
        "  - {{ name: per-uid, key: uid, requests: {LIMIT}, per: {PER_SECS}s, expected_keys: 1000{scope} }}"
    );
    let origin = Origin::start().await;
    let mut edges = Vec::new();
    for host in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let setup = Setup {
            store,
            origin: origin.addr,
            sales: &sales,
            limits: &limits,
            trusted: "[]",
            blocklist: "",
        };
        edges.push(edge_on(host, setup, "", "").await);
    }
    edges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_spread_over_three_edges_gets_the_limit_plus_the_slack() {
    let cluster = RedisCluster::start();
    let store = format!(
        "{{ kind: redis, cluster: [{}], timeout: 500ms }}",
        cluster.urls().join(", ")
    );

    // Local counts: each edge lets LIMIT through.
    let local = three_edges(&store, "").await;
    let per_window = spread(&local, "spreader-local").await;
    eprintln!("scope local, per window (allowed, refused): {per_window:?}");
    // Over the whole run (a few seconds): each edge's windows count from its own start, not
    // the wall clock's, so a wall-clock window may split what one of them let through.
    let total_local: u64 = per_window.values().map(|c| c.0).sum();
    drop(local);

    // Cluster counts, synced every 100 ms.
    cluster.flush();
    let edges = three_edges(&store, ", scope: cluster, sync_interval: 100ms").await;
    let per_window = spread(&edges, "spreader-cluster").await;
    eprintln!("scope cluster, per window (allowed, refused): {per_window:?}");
    let most_cluster = per_window.values().map(|c| c.0).max().unwrap();

    // What the spreader sends in one sync interval to the two other edges: the slack the module
    // docs describe. Each buy is a round trip plus GAP, so it sends fewer than this.
    let per_interval = Duration::from_millis(100).as_millis() / GAP.as_millis() + 1;
    let slack = 2 * per_interval as u64;
    // Each edge lets LIMIT through at least: 3 × LIMIT, more than cluster counts could let
    // through in the two windows a run may touch (2 × (LIMIT + slack)).
    assert!(
        total_local >= 3 * LIMIT && 3 * LIMIT > 2 * (LIMIT + slack),
        "local counts let three times the limit through: {total_local}"
    );
    assert!(
        most_cluster >= LIMIT && most_cluster <= LIMIT + slack,
        "cluster counts let {most_cluster} through in one window: limit {LIMIT} + slack {slack}"
    );
    let page = edges[0].metrics().await;
    assert!(
        sample(&page, r#"flashgate_limit_syncs_total{result="ok"}"#).unwrap_or(0.0) > 0.0,
        "the edge synced"
    );
}
