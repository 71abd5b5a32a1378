//! The headers of a `429` through the real binary, in each `rate_limit_headers` mode: the
//! draft's `RateLimit` / `RateLimit-Policy` naming the rule that refused, the legacy three, and
//! a `Retry-After` that is never earlier than the reset and is spread by jitter.

use crate::common::*;

fn sale() -> String {
    format!(
        "  - {{ product: 42, stock: 1000, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    )
}

/// One rule per kind of key; per-uid is the tight one, refused after 2 requests of a user.
const LIMITS: &str =
    "  - { name: per-ip, key: ip, requests: 100000, per: 10s, expected_keys: 1000 }
  - { name: per-uid, key: uid, requests: 2, per: 30s, expected_keys: 1000 }";

async fn start(origin: &Origin, mode: &str) -> Edge {
    let setup = Setup {
        origin: origin.addr,
        store: "{ kind: memory }",
        sales: &sale(),
        limits: LIMITS,
        trusted: "[]",
        blocklist: "",
    };
    let extra = if mode.is_empty() {
        String::new()
    } else {
        format!("rate_limit_headers: {mode}")
    };
    edge_with(setup, &extra).await
}

/// The headers of the third buy of a fresh user: over per-uid (the first won, the second was
/// a duplicate).
async fn refused(edge: &Edge, uid: &str) -> reqwest::header::HeaderMap {
    let url = edge.buy_url(42).await;
    let c = reqwest::Client::new();
    let mut last = None;
    for _ in 0..3 {
        let resp = c.post(&url).bearer_auth(token(uid)).send().await.unwrap();
        last = Some((resp.status().as_u16(), resp.headers().clone()));
    }
    let (status, headers) = last.unwrap();
    assert_eq!(status, 429, "{headers:?}");
    headers
}

fn text<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
        .to_str()
        .unwrap()
}

/// `t` of a draft `RateLimit` value for policy `name`.
fn reset_of(ratelimit: &str, name: &str) -> u64 {
    let prefix = format!("\"{name}\";r=0;t=");
    ratelimit
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("RateLimit {ratelimit:?}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft_is_the_default_and_names_the_refusing_rule() {
    let origin = Origin::start().await;
    let edge = start(&origin, "").await;
    let h = refused(&edge, "alice").await;
    assert_eq!(text(&h, "ratelimit-policy"), r#""per-uid";q=2;w=30"#);
    let reset = reset_of(text(&h, "ratelimit"), "per-uid");
    assert!((1..=30).contains(&reset), "t={reset}");
    let retry: u64 = text(&h, "retry-after").parse().unwrap();
    assert!(
        (reset..=reset + 6).contains(&retry),
        "Retry-After {retry}, t={reset}"
    );
    for legacy in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(!h.contains_key(legacy), "{legacy} sent in draft mode");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sends_only_the_old_three() {
    let origin = Origin::start().await;
    let edge = start(&origin, "legacy").await;
    let h = refused(&edge, "bob").await;
    assert_eq!(text(&h, "ratelimit-limit"), "2");
    assert_eq!(text(&h, "ratelimit-remaining"), "0");
    let reset: u64 = text(&h, "ratelimit-reset").parse().unwrap();
    let retry: u64 = text(&h, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&reset));
    assert!(
        (reset..=reset + 6).contains(&retry),
        "Retry-After {retry}, reset {reset}"
    );
    assert!(!h.contains_key("ratelimit") && !h.contains_key("ratelimit-policy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sends_both_and_retry_after_is_jittered() {
    let origin = Origin::start().await;
    let edge = start(&origin, "both").await;
    let url = edge.buy_url(42).await;
    let c = reqwest::Client::new();
    let h = refused(&edge, "carol").await;
    assert_eq!(text(&h, "ratelimit-policy"), r#""per-uid";q=2;w=30"#);
    let reset = reset_of(text(&h, "ratelimit"), "per-uid");
    assert_eq!(text(&h, "ratelimit-reset"), reset.to_string());
    assert_eq!(text(&h, "ratelimit-limit"), "2");

    // Many refusals of one user within the same second or two: the waits they are told are
    // never before the reset, and not all the same.
    let mut extra = std::collections::HashSet::new();
    for _ in 0..60 {
        let resp = c
            .post(&url)
            .bearer_auth(token("carol"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        let h = resp.headers();
        let reset = reset_of(text(h, "ratelimit"), "per-uid");
        let retry: u64 = text(h, "retry-after").parse().unwrap();
        assert!(retry >= reset, "Retry-After {retry} before t={reset}");
        assert!(
            retry <= reset + 6,
            "Retry-After {retry} far after t={reset}"
        );
        extra.insert(retry - reset);
    }
    assert!(extra.len() > 1, "no jitter: always +{extra:?}");
}
