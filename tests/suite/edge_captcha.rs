//! Captchas through the real `flashgate` binary: proof-of-work challenges (issued, solved,
//! bound to one user and product, used once, harder under load) and pass tokens of an external
//! captcha service, on the embedded store and on Redis.

use std::time::{Duration, Instant};

use crate::common::redis_server::RedisServer;
use crate::common::*;
use flashgate::admission::captcha::pow;
use flashgate::ground::Secret;
use futures::StreamExt;
use serde_json::Value;

const TOKEN_SECRET: &str = "test-captcha-secret-0123456789abcdef-0123";

fn sales(captcha: &str) -> String {
    format!(
        "  - {{ product: 42, stock: 3, starts_at: '{s}', ends_at: '{e}', captcha: {captcha} }}\n\
         \x20 - {{ product: 43, stock: 3, starts_at: '{s}', ends_at: '{e}' }}",
        s = at(-60),
        e = at(3600)
    )
}

async fn start(store: &str, captcha: &str, settings: &str, origin: &Origin) -> Edge {
    edge_with(
        Setup {
            store,
            origin: origin.addr,
            sales: &sales(captcha),
            limits: "  []",
            trusted: "[]",
            blocklist: "",
        },
        settings,
    )
    .await
}

async fn buy_path(edge: &Edge, product: u64) -> String {
    let script = reqwest::get(format!("{}/sale/{product}/button.js", edge.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let state: Value =
        serde_json::from_str(flashgate::edge::button::state_of(&script).unwrap()).unwrap();
    format!("{}{}", edge.base, state["buy_path"].as_str().expect("open"))
}

/// GET /api/challenge as `uid` (None: not logged in); (status, body).
async fn challenge(edge: &Edge, uid: Option<&str>, query: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{}/api/challenge?{query}", edge.base));
    if let Some(uid) = uid {
        req = req.bearer_auth(token(uid));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 200 {
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A solved `X-Captcha` value for `uid` on `product`.
async fn solved(edge: &Edge, uid: &str, product: u64) -> String {
    let (status, body) = challenge(edge, Some(uid), &format!("product={product}")).await;
    assert_eq!(status, 200, "{body}");
    let text = body["challenge"].as_str().unwrap();
    let bits = body["difficulty"].as_u64().unwrap() as u8;
    let nonce = pow::solve(text, bits, 1 << 28).unwrap();
    format!("{text}.{nonce}")
}

async fn buy(url: &str, uid: &str, captcha: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url).bearer_auth(token(uid));
    if let Some(c) = captcha {
        req = req.header("x-captcha", c);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["outcome"].as_str().unwrap_or("").to_string())
}

fn captcha_required() -> (u16, String) {
    (403, "captcha_required".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pow_challenge_solved_bound_and_used_once() {
    let origin = Origin::start().await;
    let settings = "captcha: { difficulty: 10, max_difficulty: 12, raise_above: 1000000 }";
    let edge = start("{ kind: memory }", "pow", settings, &origin).await;
    let url = buy_path(&edge, 42).await;

    // The challenge route.
    assert_eq!(challenge(&edge, None, "product=42").await.0, 401);
    let (status, body) = challenge(&edge, Some("alice"), "product=999").await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (404, Some("unknown_product"))
    );
    assert_eq!(challenge(&edge, Some("alice"), "").await.0, 404);
    let (status, body) = challenge(&edge, Some("alice"), "product=43").await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (404, Some("not_found")),
        "no pow sale"
    );
    let (status, body) = challenge(&edge, Some("alice"), "product=42").await;
    assert_eq!(status, 200);
    assert_eq!(body["difficulty"], 10);
    assert_eq!(body["product"], 42);
    assert!(body["expires_at_ms"].as_u64().unwrap() > now_secs() * 1000);
    let post = reqwest::Client::new()
        .post(format!("{}/api/challenge?product=42", edge.base))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);

    // What is refused.
    assert_eq!(
        buy(&url, "alice", None).await,
        captcha_required(),
        "no captcha"
    );
    let text = body["challenge"].as_str().unwrap();
    let lazy = (0u64..)
        .find(|n| !pow::work_ok(text, &n.to_string(), 10))
        .unwrap();
    let unworked = format!("{text}.{lazy}");
    assert_eq!(
        buy(&url, "alice", Some(&unworked)).await,
        captcha_required(),
        "no work"
    );
    let alices = solved(&edge, "alice", 42).await;
    assert_eq!(
        buy(&url, "bob", Some(&alices)).await,
        captcha_required(),
        "another user's solution"
    );
    assert_eq!(
        buy(&url, "alice", Some("garbage.1")).await,
        captcha_required()
    );

    // A solution wins once; a replay is refused even before the store would say duplicate.
    assert_eq!(buy(&url, "alice", Some(&alices)).await, (200, "won".into()));
    assert_eq!(
        buy(&url, "alice", Some(&alices)).await,
        captcha_required(),
        "replay"
    );
    let again = solved(&edge, "alice", 42).await;
    assert_eq!(
        buy(&url, "alice", Some(&again)).await,
        (409, "duplicate".into())
    );
    let bobs = solved(&edge, "bob", 42).await;
    assert_eq!(buy(&url, "bob", Some(&bobs)).await, (200, "won".into()));

    // A sale without captcha is untouched.
    let url43 = buy_path(&edge, 43).await;
    assert_eq!(buy(&url43, "carol", None).await, (200, "won".into()));

    assert_eq!(
        origin.forwards().len(),
        3,
        "alice, bob and carol reached origin"
    );
    let won = r#"flashgate_requests_total{outcome="won",route="buy"}"#;
    let page = metrics_when(&edge, won, 3.0).await;
    assert_eq!(
        sample(
            &page,
            r#"flashgate_requests_total{outcome="captcha_required",route="buy"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"flashgate_requests_total{outcome="served",route="challenge"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(&page, r#"flashgate_captcha_difficulty{sale="42"}"#),
        Some(10.0)
    );
    assert_eq!(
        sample(&page, r#"flashgate_captcha_difficulty{sale="43"}"#),
        None
    );
    // Claims: alice's win, her replay, her duplicate, bob's win.
    assert_eq!(
        sample(&page, r#"flashgate_store_seconds_count{op="captcha"}"#),
        Some(4.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn difficulty_rises_while_the_sale_is_busy_and_shows_in_metrics() {
    let origin = Origin::start().await;
    let settings = "captcha: { difficulty: 4, max_difficulty: 6, raise_above: 20 }";
    let edge = start("{ kind: memory }", "pow", settings, &origin).await;
    let url = buy_path(&edge, 42).await;
    assert_eq!(
        challenge(&edge, Some("u"), "product=42").await.1["difficulty"],
        4
    );
    // A burst of captcha-less buys: far above 20 a second, all refused.
    let started = Instant::now();
    let answers: Vec<(u16, String)> = futures::stream::iter(0..400)
        .map(|n| {
            let url = url.clone();
            async move { buy(&url, &format!("bot{n}"), None).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(answers.iter().all(|a| *a == captcha_required()));
    eprintln!("400 buys in {:?}", started.elapsed());
    // The window closes a second after it opened; ask until it has.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (bits, body) = loop {
        let (_, body) = challenge(&edge, Some("u"), "product=42").await;
        let bits = body["difficulty"].as_u64().unwrap();
        if bits > 4 || Instant::now() > deadline {
            break (bits, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!((5..=6).contains(&bits), "difficulty {bits} after the burst");
    let page = edge.metrics().await;
    assert_eq!(
        sample(&page, r#"flashgate_captcha_difficulty{sale="42"}"#),
        Some(bits as f64)
    );
    // The harder challenge is still solvable and wins.
    let text = body["challenge"].as_str().unwrap();
    let nonce = pow::solve(text, bits as u8, 1 << 20).unwrap();
    assert_eq!(
        buy(&url, "u", Some(&format!("{text}.{nonce}"))).await,
        (200, "won".into())
    );
    // Quiet again: back to the base within a few seconds (a bit a quiet second).
    let page = metrics_when(&edge, r#"flashgate_captcha_difficulty{sale="42"}"#, 4.0).await;
    assert_eq!(
        sample(&page, r#"flashgate_captcha_difficulty{sale="42"}"#),
        Some(4.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_passes_from_a_captcha_service() {
    let origin = Origin::start().await;
    let settings = format!("captcha: {{ token_secret: {TOKEN_SECRET} }}");
    let edge = start("{ kind: memory }", "token", &settings, &origin).await;
    let url = buy_path(&edge, 42).await;
    let key = Secret::new(TOKEN_SECRET.as_bytes().to_vec());
    let exp = now_secs() * 1000 + 30_000;
    let pass = flashgate::ground::signing::pass_token(&key, "dave", 42, exp, "svc1");
    assert_eq!(buy(&url, "dave", None).await, captcha_required());
    assert_eq!(
        buy(&url, "erin", Some(&pass)).await,
        captcha_required(),
        "bound to dave"
    );
    let forged = flashgate::ground::signing::pass_token(
        &Secret::new(EDGE_SECRET.as_bytes().to_vec()),
        "dave",
        42,
        exp,
        "svc2",
    );
    assert_eq!(buy(&url, "dave", Some(&forged)).await, captcha_required());
    assert_eq!(buy(&url, "dave", Some(&pass)).await, (200, "won".into()));
    assert_eq!(
        buy(&url, "dave", Some(&pass)).await,
        captcha_required(),
        "used"
    );
    // A token sale issues no proof-of-work challenge.
    assert_eq!(challenge(&edge, Some("dave"), "product=42").await.0, 404);
    assert_eq!(origin.forwards().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_claim_is_one_set_nx_that_every_edge_sees() {
    let redis = RedisServer::start();
    let origin = Origin::start().await;
    let store = format!("{{ kind: redis, url: '{}', timeout: 2s }}", redis.url());
    let settings = "captcha: { difficulty: 8 }";
    let edge = start(&store, "pow", settings, &origin).await;
    let url = buy_path(&edge, 42).await;
    let header = solved(&edge, "alice", 42).await;
    redis.cli(&["CONFIG", "RESETSTAT"]);
    assert_eq!(buy(&url, "alice", Some(&header)).await, (200, "won".into()));
    // A winner of a captcha sale: two round trips, SET NX then the reserve script (which
    // records its attempt with one SET of its own).
    let stats = redis.cli(&["INFO", "commandstats"]);
    let calls = |cmd: &str| {
        stats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .and_then(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    assert_eq!((calls("set"), calls("evalsha")), (2, 1), "{stats}");
    let id = header.split('-').nth(2).unwrap();
    let key = format!("flashgate:{{42}}:pass:p:{id}");
    let ttl: i64 = redis.cli(&["PTTL", &key]).trim().parse().unwrap();
    assert!(
        (1..=60_000).contains(&ttl),
        "the used challenge expires with it: {ttl}"
    );
    assert_eq!(
        buy(&url, "alice", Some(&header)).await,
        captcha_required(),
        "replay"
    );
    // A second edge on the same Redis knows the challenge is used.
    let yaml = std::fs::read_to_string(edge.dir.path().join("flashgate.yaml")).unwrap();
    let port = |url: &str| url.rsplit(':').next().unwrap().to_string();
    let (listen, admin) = (free_port(), free_port());
    let yaml = yaml
        .replace(&format!(":{}\n", port(&edge.base)), &format!(":{listen}\n"))
        .replace(&format!(":{}\n", port(&edge.admin)), &format!(":{admin}\n"));
    let second = Edge::start(
        &yaml,
        tempfile::tempdir().unwrap(),
        "127.0.0.1",
        listen,
        admin,
    )
    .await;
    let url2 = buy_path(&second, 42).await;
    assert_eq!(buy(&url2, "alice", Some(&header)).await, captcha_required());
    assert_eq!(origin.forwards().len(), 1);
}
