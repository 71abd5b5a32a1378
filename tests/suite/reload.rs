//! Reloading the configuration of a running edge (`POST /admin/reload`, SIGHUP): the new
//! blocklist, limits, sales and headers apply at once; the sale (stock, buyers) and the counts
//! of unchanged limit rules carry over; a file that does not load is refused with its
//! file:line:column and the running configuration stays; and twenty reloads in the middle of a
//! storm fail no request.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::common::crowd::{Crowd, Pace};
use crate::common::*;
use serde_json::Value;

const TOKEN: &str = "reload-token-0123456789abcdef-0123456789";

/// The knobs a test turns between reloads.
#[derive(Clone)]
struct Knobs {
    stock: u64,
    per_uid: u64,
    blocked: &'static str,
    headers: &'static str,
    extra_sale: bool,
    hint: &'static str,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            stock: 3,
            per_uid: 3,
            blocked: "uid:13",
            headers: "draft",
            extra_sale: false,
            hint: "1s",
        }
    }
}

struct Files {
    listen: u16,
    admin: u16,
    origin: std::net::SocketAddr,
    starts: String,
    ends: String,
}

impl Files {
    fn new(origin: std::net::SocketAddr) -> Files {
        Files {
            listen: free_port(),
            admin: free_port(),
            origin,
            starts: at(-60),
            ends: at(3600),
        }
    }

    fn yaml(&self, dir: &Path, k: &Knobs) -> String {
        let blocklist = dir.join("blocklist.txt");
        std::fs::write(&blocklist, format!("{}\n", k.blocked)).unwrap();
        let extra = if k.extra_sale {
            format!(
                "\n  - {{ product: 43, stock: 5, starts_at: '{}', ends_at: '{}' }}",
                self.starts, self.ends
            )
        } else {
            String::new()
        };
        format!(
            "listen: 127.0.0.1:{listen}\n\
             admin_listen: 127.0.0.1:{admin}\n\
             threads: 2\n\
             admin_token: {TOKEN}\n\
             secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
             origin: {{ url: 'http://{origin}', path: /orders, connect_timeout: 500ms }}\n\
             store: {{ kind: memory }}\n\
             static_dir: {static_dir}\n\
             catalog: {{ products: [1-100] }}\n\
             sales:\n  - {{ product: 42, stock: {stock}, starts_at: '{starts}', ends_at: '{ends}' }}{extra}\n\
             limits:\n  - {{ name: per-uid, key: uid, requests: {per_uid}, per: 60s, expected_keys: 10000 }}\n\
             blocklist: {{ file: {blocklist} }}\n\
             rate_limit_headers: {headers}\n\
             sold_out_hint: {hint}\n",
            listen = self.listen,
            admin = self.admin,
            origin = self.origin,
            static_dir = static_dir().display(),
            stock = k.stock,
            starts = self.starts,
            ends = self.ends,
            per_uid = k.per_uid,
            blocklist = blocklist.display(),
            headers = k.headers,
            hint = k.hint,
        )
    }

    async fn start(&self, k: &Knobs) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let yaml = self.yaml(dir.path(), k);
        Edge::start(&yaml, dir, "127.0.0.1", self.listen, self.admin).await
    }

    fn rewrite(&self, edge: &Edge, k: &Knobs) {
        let yaml = self.yaml(edge.dir.path(), k);
        std::fs::write(edge.dir.path().join("flashgate.yaml"), yaml).unwrap();
    }
}

/// `POST /admin/reload` with `token`: the status and the JSON answer.
async fn reload(edge: &Edge, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{}/admin/reload", edge.admin));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

async fn buy(
    c: &reqwest::Client,
    edge: &Edge,
    uid: &str,
) -> (u16, String, reqwest::header::HeaderMap) {
    let url = edge.buy_url(42).await;
    let resp = c.post(&url).bearer_auth(token(uid)).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body: Value = resp.json().await.unwrap_or_default();
    (
        status,
        body["outcome"].as_str().unwrap_or("").to_string(),
        headers,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_the_file_and_keeps_the_sale() {
    let origin = Origin::start().await;
    let files = Files::new(origin.addr);
    let knobs = Knobs::default();
    let edge = files.start(&knobs).await;
    let c = reqwest::Client::new();

    // alice wins, then reaches the per-uid limit of 3 (two duplicates) and is refused.
    assert_eq!(buy(&c, &edge, "alice").await.0, 200);
    assert_eq!(buy(&c, &edge, "alice").await.0, 409);
    assert_eq!(buy(&c, &edge, "alice").await.0, 409);
    assert_eq!(buy(&c, &edge, "alice").await.0, 429);
    assert_eq!(buy(&c, &edge, "bob").await.0, 200);
    assert_eq!(buy(&c, &edge, "mallory").await.0, 200);

    // The admin endpoint wants the token.
    assert_eq!(reload(&edge, None).await.0, 401);
    assert_eq!(reload(&edge, Some("not-the-token")).await.0, 401);
    let get = reqwest::get(format!("{}/admin/reload", edge.admin))
        .await
        .unwrap();
    assert_eq!(get.status(), 405);

    // A new file: mallory blocked, per-uid raised to 4 (same rule: counts kept), legacy
    // headers, a longer sold-out hint.
    let next = Knobs {
        per_uid: 4,
        blocked: "uid:13\nuid:mallory",
        headers: "legacy",
        hint: "2s",
        ..knobs.clone()
    };
    files.rewrite(&edge, &next);
    let (status, done) = reload(&edge, Some(TOKEN)).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["outcome"], "reloaded");
    let changed: Vec<&str> = done["changed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        changed,
        ["limits", "sold_out_hint", "rate_limit_headers"],
        "{done}"
    );

    // Right after: the blocklist, the limit and the headers are the new ones.
    assert_eq!(buy(&c, &edge, "mallory").await.1, "blacklisted");
    // alice had 4 requests counted; the 5th is over the new limit of 4: the count carried over.
    let (status, outcome, headers) = buy(&c, &edge, "alice").await;
    assert_eq!((status, outcome.as_str()), (429, "rate_limited"));
    assert_eq!(headers["ratelimit-limit"], "4");
    assert!(!headers.contains_key("ratelimit-policy"), "legacy only");
    // The sale carried over: 3 units, 3 sold (mallory's unit stays hers).
    assert_eq!(buy(&c, &edge, "carol").await.1, "sold_out");
    let page = metrics_when(&edge, "flashgate_reloads_total{result=\"ok\"}", 1.0).await;
    assert_eq!(
        sample(&page, "flashgate_stock_remaining{sale=\"42\"}"),
        Some(0.0)
    );
    assert_eq!(origin.forwards().len(), 3);

    // A file that does not load is refused with where the mistake is; the old one serves.
    let path = edge.dir.path().join("flashgate.yaml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("requests: 4,", "requests: four,")).unwrap();
    let (status, refused) = reload(&edge, Some(TOKEN)).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["outcome"], "refused");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("{}:13:", path.display())) && error.contains("requests"),
        "{error}"
    );
    assert_eq!(
        buy(&c, &edge, "mallory").await.1,
        "blacklisted",
        "still the old file"
    );
    // A new sale on the embedded store is refused too, pointing at it.
    files.rewrite(
        &edge,
        &Knobs {
            extra_sale: true,
            ..next.clone()
        },
    );
    let (status, refused) = reload(&edge, Some(TOKEN)).await;
    assert_eq!(status, 422, "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains(":12:") && error.contains("product 43 is a new sale"),
        "{error}"
    );
    let page = metrics_when(&edge, "flashgate_reloads_total{result=\"refused\"}", 2.0).await;
    assert_eq!(
        sample(&page, "flashgate_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );

    // SIGHUP reloads too: mallory off the blocklist again (and the sale is still sold out).
    files.rewrite(
        &edge,
        &Knobs {
            blocked: "uid:13",
            ..next
        },
    );
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &edge.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let page = metrics_when(&edge, "flashgate_reloads_total{result=\"ok\"}", 2.0).await;
    assert_eq!(
        sample(&page, "flashgate_reloads_total{result=\"ok\"}"),
        Some(2.0)
    );
    // She holds a unit: duplicate from the store, or sold out from the sold-out hint (which
    // carried over too); no longer blacklisted.
    let (_, outcome, _) = buy(&c, &edge, "mallory").await;
    assert!(
        ["duplicate", "sold_out"].contains(&outcome.as_str()),
        "{outcome}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_during_a_storm_fail_no_request() {
    let origin = Origin::start().await;
    let files = Files::new(origin.addr);
    let base = Knobs {
        stock: 150,
        per_uid: 5,
        ..Knobs::default()
    };
    let edge = files.start(&base).await;
    let url = edge.buy_url(42).await;
    // A crowd of 600 buying for about four seconds; bounded in requests and time.
    let crowd = Crowd::start(
        &url,
        "u",
        Pace {
            users: 600,
            arrivals_per_s: 200.0,
            workers: 4,
            pause: Duration::from_millis(1),
            max_duration: Duration::from_secs(6),
            max_requests: 20_000,
        },
    );
    // Meanwhile the page and the button script, which a reload also swaps.
    let pages = {
        let (base_url, url) = (
            edge.base.clone(),
            format!("{}/sale/42/button.js", edge.base),
        );
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut failed = Vec::new();
            for n in 0..400 {
                let target = if n % 2 == 0 {
                    format!("{base_url}/")
                } else {
                    url.clone()
                };
                match c.get(&target).send().await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failed.push(format!("{target}: {}", r.status())),
                    Err(e) => failed.push(format!("{target}: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failed
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let variants = [
        base.clone(),
        Knobs {
            blocked: "uid:13\nuid:u7",
            headers: "both",
            hint: "500ms",
            per_uid: 6,
            ..base.clone()
        },
    ];
    for n in 0..20 {
        files.rewrite(&edge, &variants[n % 2]);
        let (status, done) = reload(&edge, Some(TOKEN)).await;
        assert_eq!(status, 200, "reload {n}: {done}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // A new blocklist entry is enforced from the reload's answer on.
    files.rewrite(
        &edge,
        &Knobs {
            blocked: "uid:13\nuid:villain",
            ..base.clone()
        },
    );
    let (status, _) = reload(&edge, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let c = reqwest::Client::new();
    assert_eq!(buy(&c, &edge, "villain").await.1, "blacklisted");

    let answers = crowd.stop().await;
    let failed_pages = pages.await.unwrap();
    assert!(failed_pages.is_empty(), "{failed_pages:?}");
    let page = metrics_when(&edge, "flashgate_reloads_total{result=\"ok\"}", 21.0).await;
    assert_eq!(
        sample(&page, "flashgate_reloads_total{result=\"ok\"}"),
        Some(21.0)
    );

    // Not one request failed: every buy got an edge or origin answer with its outcome.
    let known: HashSet<&str> = [
        "won",
        "duplicate",
        "sold_out",
        "rate_limited",
        "blacklisted",
    ]
    .into();
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| a.status == 0 || a.status >= 500 || !known.contains(a.outcome.as_str()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(answers.len() > 1000, "a storm: {} requests", answers.len());
    // And the sale stayed whole across the reloads: no unit twice, none beyond the stock, every
    // winner the origin's.
    let winners: Vec<&str> = answers
        .iter()
        .filter(|a| a.outcome == "won")
        .map(|a| a.uid.as_str())
        .collect();
    let distinct: HashSet<&str> = winners.iter().copied().collect();
    assert_eq!(distinct.len(), winners.len(), "a user won twice");
    assert!(winners.len() <= 150);
    assert_eq!(origin.forwards().len(), winners.len());
    eprintln!(
        "{} requests across 21 reloads: {} won, {} pages fetched, none failed",
        answers.len(),
        winners.len(),
        400
    );
}
