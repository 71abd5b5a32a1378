//! A whole sale through the real `flashgate` binary over real sockets: 100 units, 1,000 users,
//! and every kind of request that must be turned away.

use std::collections::{HashMap, HashSet};

use crate::common::redis_server::RedisServer;
use crate::common::*;
use flashgate::ground::Secret;
use futures::StreamExt;
use serde_json::Value;

const SALES: &str = "  - { product: 42, stock: 100, starts_at: START, ends_at: END }
  - { product: 43, stock: 10, starts_at: LATER, ends_at: END }
  - { product: 44, stock: 10, starts_at: PAST, ends_at: START }
  - { product: 45, stock: 5, starts_at: START, ends_at: END }";

const LIMITS: &str =
    "  - { name: per-ip, key: ip, requests: 100000, per: 10s, expected_keys: 1000 }
  - { name: per-uid, key: uid, requests: 5, per: 1h, expected_keys: 10000 }
  - { name: global, key: global, requests: 1000000, per: 1s }";

fn sales() -> String {
    SALES
        .replace("START", &format!("'{}'", at(-60)))
        .replace("LATER", &format!("'{}'", at(3600)))
        .replace("PAST", &format!("'{}'", at(-3600)))
        .replace("END", &format!("'{}'", at(7200)))
}

const RESERVES: &str = "flashgate_store_seconds_count{op=\"reserve\"}";

fn edge_secret() -> Secret {
    Secret::new(EDGE_SECRET.as_bytes().to_vec())
}

struct Answer {
    status: u16,
    outcome: String,
    headers: reqwest::header::HeaderMap,
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut req = client.post(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("edge answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        outcome: body["outcome"].as_str().unwrap_or("").to_string(),
        headers,
    }
}

fn expect(a: &Answer, status: u16, outcome: &str, what: &str) {
    assert_eq!((a.status, a.outcome.as_str()), (status, outcome), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sale_of_100_among_1000_users_with_every_reject() {
    sale_of_100_among_1000_users("{ kind: memory }", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sale_of_100_among_1000_users_on_redis() {
    let redis = RedisServer::start();
    // A generous timeout: this test is about counts, not about a loaded test machine's latency.
    let store = format!("{{ kind: redis, url: '{}', timeout: 2s }}", redis.url());
    sale_of_100_among_1000_users(&store, Some(&redis)).await;
    // Redis agrees with what the origin saw.
    assert_eq!(redis.cli(&["GET", "flashgate:{42}:stock"]).trim(), "0");
    assert_eq!(redis.cli(&["HLEN", "flashgate:{42}:buyers"]).trim(), "100");
    assert_eq!(redis.cli(&["XLEN", "flashgate:{42}:ledger"]).trim(), "100");
}

/// Calls per command since the server started.
fn command_calls(redis: &RedisServer) -> HashMap<String, u64> {
    redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

async fn sale_of_100_among_1000_users(store: &str, redis: Option<&RedisServer>) {
    let origin = Origin::start().await;
    // The sold-out hint outlives the crowd, however slow the machine: the store calls counted
    // below are the ones made before the store first said sold out.
    let edge = edge_with(
        Setup {
            store,
            origin: origin.addr,
            sales: &sales(),
            limits: LIMITS,
            trusted: "[127.0.0.3/32]",
            blocklist: "uid:13\nuid:u666\nip:127.0.0.2\n",
        },
        "sold_out_hint: 1h\n",
    )
    .await;
    let c = reqwest::Client::new();
    let path42 = edge.buy_path(42).await.expect("sale 42 is open");
    let url42 = format!("{}{path42}", edge.base);

    // Before the start: no path revealed, and even the right token is refused.
    assert_eq!(edge.buy_path(43).await, None, "sale 43 hides its path");
    let early = post(
        &c,
        &format!("{}/buy/43/anything", edge.base),
        Some(&token("early")),
        &[],
    )
    .await;
    expect(&early, 403, "not_started", "before the start");
    let ended = post(
        &c,
        &format!("{}/buy/44/x", edge.base),
        Some(&token("late")),
        &[],
    )
    .await;
    expect(&ended, 403, "ended", "after the end");

    // Login.
    let forged = token_with("another-secret-another-secret-another-secret", "u1", 60);
    let expired = token_with(LOGIN_SECRET, "u1", -3600);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let alg_none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(format!(r#"{{"sub":"u1","exp":{}}}"#, now_secs() + 600))
    );
    expect(
        &post(&c, &url42, None, &[]).await,
        401,
        "login_required",
        "no token",
    );
    expect(
        &post(&c, &url42, Some(&forged), &[]).await,
        401,
        "login_required",
        "forged token",
    );
    expect(
        &post(&c, &url42, Some(&expired), &[]).await,
        401,
        "login_required",
        "expired token",
    );
    expect(
        &post(&c, &url42, Some(&alg_none), &[]).await,
        401,
        "login_required",
        "alg none",
    );
    let cookie = format!("fg_session={}", token("cookie-user"));

    // Product and path.
    let bad_path = format!("{}/buy/42/{}", edge.base, "0".repeat(32));
    expect(
        &post(&c, &bad_path, Some(&token("u1")), &[]).await,
        403,
        "bad_sale_path",
        "wrong token",
    );
    for (product, what) in [
        ("5000", "outside the catalog"),
        ("500", "no sale"),
        ("abc", "not a number"),
    ] {
        let url = format!("{}/buy/{product}/x", edge.base);
        expect(
            &post(&c, &url, Some(&token("u1")), &[]).await,
            404,
            "unknown_product",
            what,
        );
    }

    // Blocklist by UID, by IP, and X-Forwarded-For only from trusted peers.
    expect(
        &post(&c, &url42, Some(&token("13")), &[]).await,
        403,
        "blacklisted",
        "blocked uid",
    );
    let from_blocked = client_from("127.0.0.2");
    expect(
        &post(&from_blocked, &url42, Some(&token("ip-user")), &[]).await,
        403,
        "blacklisted",
        "blocked ip",
    );
    let from_proxy = client_from("127.0.0.3");
    let via_proxy = post(
        &from_proxy,
        &url42,
        Some(&token("proxied")),
        &[("x-forwarded-for", "127.0.0.2")],
    )
    .await;
    expect(
        &via_proxy,
        403,
        "blacklisted",
        "blocked ip behind a trusted proxy",
    );
    let spoofed = post(
        &c,
        &url42,
        Some(&token("spoofer")),
        &[("x-forwarded-for", "127.0.0.2")],
    )
    .await;
    expect(
        &spoofed,
        200,
        "won",
        "X-Forwarded-For from an untrusted peer is ignored",
    );
    let left_spoof = post(
        &from_proxy,
        &url42,
        Some(&token("left-spoof")),
        &[("x-forwarded-for", "127.0.0.2, 127.0.0.9")],
    )
    .await;
    expect(
        &left_spoof,
        200,
        "won",
        "only the rightmost untrusted hop counts",
    );

    // Cookie login, and client-sent X-Flashgate-* headers never reach origin.
    let with_cookie = post(
        &c,
        &url42,
        None,
        &[
            ("cookie", &cookie),
            ("x-flashgate-uid", "evil"),
            ("x-flashgate-signature", "00"),
        ],
    )
    .await;
    expect(&with_cookie, 200, "won", "cookie login");

    // A bot over its rate: 1 win, 4 duplicates, then 429 with the rate headers. (An hour's
    // window: the windows are counted from the edge's start, and a window ending among the
    // bot's eight buys would give it five more.)
    let bot = token("bot");
    let mut bot_statuses = Vec::new();
    for _ in 0..8 {
        let a = post(&c, &url42, Some(&bot), &[]).await;
        if a.status == 429 {
            assert_eq!(a.outcome, "rate_limited");
            // The draft's fields (the default), naming the rule that refused.
            assert_eq!(a.headers["ratelimit-policy"], r#""per-uid";q=5;w=3600"#);
            let ratelimit = a.headers["ratelimit"].to_str().unwrap();
            let reset: u64 = ratelimit
                .strip_prefix(r#""per-uid";r=0;t="#)
                .unwrap_or_else(|| panic!("RateLimit: {ratelimit}"))
                .parse()
                .unwrap();
            assert!((1..=3600).contains(&reset), "RateLimit {ratelimit}");
            // Retry-After: the reset plus at most a fifth of it of jitter.
            let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(
                (reset..=reset + (reset / 5).max(1)).contains(&retry),
                "Retry-After {retry}, t={reset}"
            );
            assert!(
                !a.headers.contains_key("ratelimit-limit"),
                "the legacy headers only when asked for"
            );
        }
        bot_statuses.push(a.status);
    }
    assert_eq!(bot_statuses, [200, 409, 409, 409, 409, 429, 429, 429]);

    // The crowd: 1,000 users (u666 blocklisted) race for what is left.
    // A scrape reads each sale's stock from the store: take Redis's counts after it, and
    // before the next one, so only the crowd's commands are counted.
    let reserves_before = sample(&edge.metrics().await, RESERVES).unwrap();
    let calls_before = redis.map(command_calls);
    let c2 = c.clone();
    let url = url42.clone();
    let answers: Vec<(String, Answer)> = futures::stream::iter(1..=1000)
        .map(|n| {
            let (c, url) = (c2.clone(), url.clone());
            async move {
                let uid = format!("u{n}");
                let a = post(&c, &url, Some(&token(&uid)), &[]).await;
                (uid, a)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut by_outcome: HashMap<(u16, String), usize> = HashMap::new();
    for (_, a) in &answers {
        *by_outcome.entry((a.status, a.outcome.clone())).or_default() += 1;
    }
    let crowd_wins = by_outcome.get(&(200, "won".into())).copied().unwrap_or(0);
    assert_eq!(
        crowd_wins,
        100 - 4,
        "the crowd takes exactly what is left: {by_outcome:?}"
    );
    assert_eq!(by_outcome.get(&(403, "blacklisted".into())), Some(&1));
    assert_eq!(
        by_outcome.get(&(410, "sold_out".into())),
        Some(&(1000 - 96 - 1))
    );
    let blocked = answers.iter().find(|(u, _)| u == "u666").unwrap();
    expect(
        &blocked.1,
        403,
        "blacklisted",
        "blocklisted user in the crowd",
    );
    if let (Some(redis), Some(before)) = (redis, calls_before) {
        // Round trips: one EVALSHA per store call and no other command; a winner is exactly
        // one store call, a reject after the sell-out is none.
        let after = command_calls(redis);
        let reserves = sample(&edge.metrics().await, RESERVES).unwrap() - reserves_before;
        let mut delta: Vec<(String, u64)> = after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .filter(|(k, d)| *d > 0 && k != "info")
            .collect();
        delta.sort();
        let rejects = 1000 - crowd_wins;
        eprintln!(
            "redis during the crowd: {delta:?}; {reserves} store calls for 1000 buys: \
             1 round trip per winner ({crowd_wins}), {} of {rejects} rejects reached Redis",
            reserves as usize - crowd_wins,
        );
        // INFO counts the commands scripts run too: each reserve.lua runs exactly two GETs
        // (the stock, the attempt) and one HGET, so GET == 2 × EVALSHA shows the edge sent no
        // GET of its own, and nothing outside the script's own commands was called.
        let calls: HashMap<String, u64> = delta.iter().cloned().collect();
        assert_eq!(calls.get("evalsha").copied(), Some(reserves as u64));
        assert_eq!(calls.get("get").copied(), Some(2 * reserves as u64));
        assert_eq!(calls.get("hget").copied(), Some(reserves as u64));
        let script_commands = [
            "evalsha",
            "get",
            "hget",
            "sismember",
            "set",
            "incr",
            "time",
            "decr",
            "hset",
            "xadd",
        ];
        assert!(
            calls.keys().all(|k| script_commands.contains(&k.as_str())),
            "unexpected commands: {delta:?}"
        );
        assert!(
            reserves < (crowd_wins + 70) as f64,
            "{reserves} store calls"
        );
    }

    // Exactly 100 forwards for sale 42, each signed, no user twice, no blocklisted winner.
    let forwards: Vec<_> = origin
        .forwards()
        .into_iter()
        .filter(|f| f.header("x-flashgate-product") == "42")
        .collect();
    assert_eq!(forwards.len(), 100);
    let mut users = HashSet::new();
    let mut reservations = HashSet::new();
    for f in &forwards {
        assert_eq!((f.method.as_str(), f.path.as_str()), ("POST", "/orders"));
        let uid = f.header("x-flashgate-uid");
        let ts: u64 = f.header("x-flashgate-timestamp").parse().unwrap();
        assert!(
            ts.abs_diff(now_secs() * 1000) < 120_000,
            "timestamps are Unix ms"
        );
        assert!(
            flashgate::ground::signing::verify_origin_signature(
                &edge_secret(),
                &uid,
                42,
                &f.header("x-flashgate-reservation"),
                ts,
                &f.header("x-flashgate-signature"),
            ),
            "forward for {uid} is signed"
        );
        assert_eq!(f.headers.get_all("x-flashgate-uid").iter().count(), 1);
        assert!(!["13", "u666", "ip-user", "proxied", "evil"].contains(&uid.as_str()));
        assert!(users.insert(uid.clone()), "{uid} won twice");
        assert!(reservations.insert(f.header("x-flashgate-reservation")));
    }
    assert!(users.contains("cookie-user") && users.contains("spoofer") && users.contains("bot"));

    // One more sale shows a duplicate from the store itself (no rate limit involved).
    let path45 = edge.buy_path(45).await.expect("sale 45 is open");
    let dup = token("dup");
    expect(
        &post(&c, &format!("{}{path45}", edge.base), Some(&dup), &[]).await,
        200,
        "won",
        "first buy",
    );
    expect(
        &post(&c, &format!("{}{path45}", edge.base), Some(&dup), &[]).await,
        409,
        "duplicate",
        "second buy",
    );

    // The dashboards see it.
    let won = r#"flashgate_requests_total{outcome="won",route="buy"}"#;
    let page = metrics_when(&edge, won, 101.0).await;
    assert_eq!(
        sample(
            &page,
            r#"flashgate_requests_total{outcome="won",route="buy"}"#
        ),
        Some(101.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"flashgate_requests_total{outcome="sold_out",route="buy"}"#
        ),
        Some(903.0)
    );
    assert_eq!(
        sample(&page, r#"flashgate_stock_remaining{sale="42"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&page, r#"flashgate_stock_remaining{sale="45"}"#),
        Some(4.0)
    );
    // Rejects cost no store call: once the store has said sold out, the local hint answers.
    // Store calls are the 100 wins, the bot's 4 duplicates, the 2 buys of sale 45, the first
    // sold-out answer and whatever was in flight at that moment — far below the ~1,030 buys.
    let reserves = sample(&page, "flashgate_store_seconds_count{op=\"reserve\"}").unwrap();
    eprintln!("store reserve calls: {reserves}");
    assert!(
        (107.0..=180.0).contains(&reserves),
        "{reserves} store calls"
    );
    assert!(sample(&page, "flashgate_upstream_seconds_count").unwrap() >= 101.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_origin_releases_the_unit() {
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let sales = format!(
        "  - {{ product: 7, stock: 1, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    );
    let edge = edge(Setup {
        store: "{ kind: memory }",
        origin: dead,
        sales: &sales,
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let c = reqwest::Client::new();
    let url = format!("{}{}", edge.base, edge.buy_path(7).await.unwrap());
    for uid in ["a", "b", "c"] {
        let a = post(&c, &url, Some(&token(uid)), &[]).await;
        expect(&a, 503, "origin_unavailable", uid);
        assert_eq!(a.headers["retry-after"], "1");
    }
    // Every attempt found the one unit in stock: each release gave it back.
    let page = metrics_when(
        &edge,
        r#"flashgate_requests_total{outcome="origin_unavailable",route="buy"}"#,
        3.0,
    )
    .await;
    assert_eq!(
        sample(&page, r#"flashgate_stock_remaining{sale="7"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"flashgate_requests_total{outcome="origin_unavailable",route="buy"}"#
        ),
        Some(3.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_page_caching_and_no_traversal() {
    let origin = Origin::start().await;
    let sales = format!(
        "  - {{ product: 1, stock: 1, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    );
    let edge = edge(Setup {
        store: "{ kind: memory }",
        origin: origin.addr,
        sales: &sales,
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let c = reqwest::Client::new();
    let page = c.get(format!("{}/", edge.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("public"));
    let etag = page.headers()["etag"].clone();
    assert!(page.text().await.unwrap().contains("<button"));
    let again = c
        .get(format!("{}/", edge.base))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    let js = c
        .get(format!("{}/static/app.js", edge.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(
        js.headers().get("content-encoding").is_none(),
        "no Accept-Encoding: identity"
    );
    // The page names its assets by content-hashed names, cached for a year; the plain names
    // stay (short-lived) for whoever still asks for them.
    let html = c
        .get(format!("{}/", edge.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hashed = html
        .split('"')
        .find(|s| s.starts_with("/static/app.") && s.ends_with(".js"))
        .unwrap_or_else(|| panic!("no hashed script in {html}"))
        .to_string();
    assert_ne!(hashed, "/static/app.js");
    let immutable = c
        .get(format!("{}{hashed}", edge.base))
        .send()
        .await
        .unwrap();
    assert_eq!(immutable.status(), 200);
    assert_eq!(
        immutable.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        js.headers()["cache-control"],
        "public, max-age=300, s-maxage=3600"
    );
    let script = immutable.text().await.unwrap();
    assert!(
        script.contains("/static/pow-worker.") && !script.contains("/static/pow-worker.js"),
        "the script loads the worker by its hashed name too"
    );
    assert_eq!(js.headers()["vary"], "accept-encoding");
    let plain = js.bytes().await.unwrap();
    // Precompressed variants, as the client prefers, each with its own ETag.
    for (accept, coding) in [("gzip, deflate, br", "br"), ("gzip", "gzip")] {
        let got = c
            .get(format!("{}/static/app.js", edge.base))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(got.headers()["content-encoding"], coding);
        assert_eq!(got.headers()["vary"], "accept-encoding");
        let tag = got.headers()["etag"].clone();
        assert!(
            tag.to_str()
                .unwrap()
                .ends_with(&format!("-{}\"", &coding[..2])),
            "{tag:?}"
        );
        let body = got.bytes().await.unwrap();
        assert!(
            body.len() * 2 < plain.len(),
            "{coding}: {} of {}",
            body.len(),
            plain.len()
        );
        let revalidated = c
            .get(format!("{}/static/app.js", edge.base))
            .header("accept-encoding", accept)
            .header("if-none-match", tag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304);
        assert_eq!(revalidated.headers()["etag"], tag);
    }

    let script = c
        .get(format!("{}/sale/1/button.js", edge.base))
        .send()
        .await
        .unwrap();
    assert_eq!(script.headers()["cache-control"], "public, max-age=1");
    assert_eq!(
        c.get(format!("{}/sale/999/button.js", edge.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    for path in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2E%2E%2FCargo.toml",
        "/static/..%2f..%2fetc%2fpasswd",
        "/static/%2fetc%2fpasswd",
        "/static/..\\Cargo.toml",
        "/static/app.js%00",
        "/../Cargo.toml",
        "/Cargo.toml",
    ] {
        assert_eq!(raw_status(&edge.base, path).await, 404, "{path}");
    }
    assert_eq!(
        c.get(format!("{}/buy/1/x", edge.base))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert!(origin.forwards().is_empty(), "nothing reached origin");
}
