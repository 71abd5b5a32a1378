//! Hostile input against the real `flashgate` binary: what bots and scripts send on sale day.
//! Each case gets the status and outcome it deserves, the edge keeps serving afterwards, and
//! nothing hostile reaches the origin.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn sale(product: u64, stock: u64, starts_in: i64) -> String {
    format!(
        "  - {{ product: {product}, stock: {stock}, starts_at: '{}', ends_at: '{}' }}",
        at(starts_in),
        at(3600)
    )
}

async fn start(origin: &Origin, sales: &str, limits: &str, blocklist: &str) -> Edge {
    edge(Setup {
        store: "{ kind: memory }",
        origin: origin.addr,
        sales,
        limits,
        trusted: "[127.0.0.1/32]",
        blocklist,
    })
    .await
}

/// POST a buy with these headers: (status, outcome).
async fn buy_with(url: &str, headers: &[(&str, &[u8])]) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url);
    for (name, value) in headers {
        req = req.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let resp = req.send().await.expect("the edge answers");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or_default();
    (status, body["outcome"].as_str().unwrap_or("").to_string())
}

/// A login token with these claims, signed HS256 with the test's login secret.
fn token_of(claims: Value) -> String {
    let key = EncodingKey::from_secret(LOGIN_SECRET.as_bytes());
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_headers_and_claims_that_once_broke_the_check() {
    let origin = Origin::start().await;
    let edge = start(&origin, &sale(42, 100, -60), "  []", "").await;
    let url = edge.buy_url(42).await;

    // A multi-byte character across byte 7 once panicked the handler: now it is no login.
    for value in ["€€€", "Bearer€€", "€€€€€€€€ token", "Bearer "] {
        assert_eq!(
            buy_with(&url, &[("authorization", value.as_bytes())]).await,
            (401, "login_required".into()),
            "{value:?}"
        );
    }
    let now = now_secs();
    // Not valid for another hour: no unit.
    let early = token_of(json!({"sub": "early", "exp": now + 7200, "nbf": now + 3600}));
    assert_eq!(
        buy_with(&url, &[("authorization", &bearer(&early))]).await,
        (401, "login_required".into())
    );
    // A token for the shop's other services (with aud) and a numeric sub are logins.
    let with_aud = token_of(json!({"sub": "aud-user", "exp": now + 60, "aud": "shop"}));
    let numeric = token_of(json!({"sub": 12345, "exp": now + 60}));
    for (token, uid) in [(with_aud, "aud-user"), (numeric, "12345")] {
        assert_eq!(
            buy_with(&url, &[("authorization", &bearer(&token))]).await,
            (200, "won".into()),
            "{uid}"
        );
    }
    let uids: Vec<String> = origin
        .forwards()
        .iter()
        .map(|f| f.header("x-flashgate-uid"))
        .collect();
    assert_eq!(
        uids,
        ["aud-user", "12345"],
        "only the logins reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_written_with_ports_or_rotated_in_a_64_are_one_client() {
    let origin = Origin::start().await;
    let limits = "  - { name: per-ip, key: ip, requests: 1, per: 60s, expected_keys: 1000 }";
    let edge = start(&origin, &sale(42, 100, -60), limits, "ip:2001:db8:9:9::1\n").await;
    let url = edge.buy_url(42).await;
    let from = |xff: &'static str, uid: &str| {
        let auth = bearer(&token(uid));
        let url = url.clone();
        async move {
            buy_with(
                &url,
                &[
                    ("authorization", &auth),
                    ("x-forwarded-for", xff.as_bytes()),
                ],
            )
            .await
        }
    };
    // Hops with ports are their addresses: three different clients, each under its limit.
    assert_eq!(from("198.51.100.1:5678", "a").await, (200, "won".into()));
    assert_eq!(from("198.51.100.2:5678", "b").await, (200, "won".into()));
    assert_eq!(from("[2001:db8::1]:443", "c").await, (200, "won".into()));
    // The same client through another source port is over its limit.
    assert_eq!(from("198.51.100.1:9999", "d").await.0, 429);
    // Rotating inside one /64 is one client; the next /64 is another.
    assert_eq!(from("2001:db8:1:2::1", "e").await, (200, "won".into()));
    assert_eq!(from("2001:db8:1:2::2", "f").await.0, 429);
    assert_eq!(from("2001:db8:1:3::1", "g").await, (200, "won".into()));
    // And an ip: entry blocks its /64.
    assert_eq!(
        from("2001:db8:9:9:abcd::1", "h").await,
        (403, "blacklisted".into())
    );
    assert_eq!(
        origin.forwards().len(),
        5,
        "only the winners reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_challenge_before_the_sale_opens() {
    let origin = Origin::start().await;
    let sales = format!(
        "  - {{ product: 42, stock: 10, starts_at: '{}', ends_at: '{}', captcha: pow }}",
        at(3600),
        at(7200)
    );
    let edge = start(&origin, &sales, "  []", "").await;
    let resp = reqwest::Client::new()
        .get(format!("{}/api/challenge?product=42", edge.base))
        .bearer_auth(token("early-bird"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or_default();
    assert_eq!(
        (status, body["outcome"].as_str()),
        (403, Some("not_started"))
    );
}

/// Run `flashgate check` on `yaml`; a hang is a failure (killed after `deadline`).
fn check(yaml: &str, deadline: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flashgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["check", "--config"])
        .arg(&path)
        .env("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET)
        .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("flashgate check still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn config(catalog: &str, limits: &str) -> String {
    format!(
        "listen: 127.0.0.1:1\n\
         admin_listen: 127.0.0.1:2\n\
         secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
         origin: {{ url: 'http://127.0.0.1:9', path: /orders }}\n\
         store: {{ kind: memory }}\n\
         static_dir: {}\n\
         catalog: {{ products: [{catalog}] }}\n\
         sales:\n{}\n\
         limits:\n{limits}\n",
        static_dir().display(),
        sale(42, 10, -60),
    )
}

#[test]
fn a_limit_too_large_to_count_is_a_config_error_not_a_panic() {
    let limits =
        "  - { name: per-ip, key: ip, requests: 5, per: 10s, expected_keys: 18446744073709551615 }";
    let (ok, text) = check(&config("1-1000", limits), Duration::from_secs(60));
    assert!(!ok, "{text}");
    assert!(text.contains("flashgate.yaml:11:68:"), "{text}");
    assert!(text.contains("expected_keys is at most"), "{text}");
}

#[test]
fn a_huge_catalog_range_starts_at_once_and_is_exact() {
    // A hang detector, not a speed test: building a filter over 10^11 ids never finished.
    let (ok, text) = check(
        &config(
            "1-100000000000, 18446744073709551000-18446744073709551615",
            "  []",
        ),
        Duration::from_secs(60),
    );
    assert!(ok, "{text}");
    assert!(text.contains("exact"), "{text}");
}

/// A flood of solved captchas once filled the embedded single-use set and every captcha buyer
/// got `503` from then on; now the set makes room and buyers keep buying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_single_use_set_keeps_the_sale_going() {
    const TOKEN_SECRET: &str = "test-captcha-secret-0123456789abcdef-0123";
    let origin = Origin::start().await;
    let sales = format!(
        "  - {{ product: 42, stock: 10, starts_at: '{}', ends_at: '{}', captcha: token }}",
        at(-60),
        at(3600)
    );
    let edge = edge_with(
        Setup {
            store: "{ kind: memory }",
            origin: origin.addr,
            sales: &sales,
            limits: "  []",
            trusted: "[]",
            blocklist: "",
        },
        &format!("captcha: {{ token_secret: {TOKEN_SECRET}, single_use_capacity: 2 }}"),
    )
    .await;
    let url = edge.buy_url(42).await;
    let key = flashgate::ground::Secret::new(TOKEN_SECRET.as_bytes().to_vec());
    let exp = now_secs() * 1000 + 30_000;
    for (n, uid) in ["p", "q", "r", "s"].iter().enumerate() {
        let pass = flashgate::ground::signing::pass_token(&key, uid, 42, exp, &format!("pass{n}"));
        let answer = buy_with(
            &url,
            &[
                ("authorization", &bearer(&token(uid))),
                ("x-captcha", pass.as_bytes()),
            ],
        )
        .await;
        assert_eq!(answer, (200, "won".into()), "{uid}: the set holds 2 keys");
    }
}

/// An edge selling product 42 (open, 100 units) with these `http:` limits.
async fn with_http(origin: &Origin, http: &str) -> Edge {
    let sales = sale(42, 100, -60);
    let setup = Setup {
        store: "{ kind: memory }",
        origin: origin.addr,
        sales: &sales,
        limits: "  []",
        trusted: "[]",
        blocklist: "",
    };
    edge_with(setup, &format!("http: {http}")).await
}

/// An unsigned-looking JWT with this header and claims and a junk signature.
fn forged(header: Value, claims: Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(b"not a signature at all")
    )
}

/// A raw buy of `path` with an `Authorization` header and the `extra` header lines.
fn raw_buy(path: &str, token: &str, extra: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer {token}\r\n{extra}\r\n")
        .into_bytes()
}

fn raw_get(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: shop\r\n{extra}\r\n").into_bytes()
}

/// Request-level hostility, each on its own connection, each with the status it gets. After
/// all of them the edge still sells, and nothing hostile reached the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_hostile_request_gets_its_status_and_never_reaches_the_origin() {
    let origin = Origin::start().await;
    let edge = with_http(&origin, "{ keepalive_timeout: 1s, keepalive_requests: 3 }").await;
    let buy = edge.buy_path(42).await.unwrap();
    let good = token("hostile-good");
    let now = now_secs();
    let claims = json!({"sub": "mallory", "exp": now + 600});
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(LOGIN_SECRET.as_bytes()),
    )
    .unwrap();
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"not-the-login-secret-not-the-login-secret"),
    )
    .unwrap();
    let bad_buy = |product: &str| {
        let mut parts: Vec<&str> = buy.split('/').collect();
        // The buy path is /…/{product}/{token}: swap the product.
        let at = parts
            .iter()
            .position(|p| *p == "42")
            .expect("product in the buy path");
        parts[at] = product;
        parts.join("/")
    };
    let huge_token = "a".repeat(100_000);
    let many_headers: String = (0..100)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "v".repeat(200)))
        .collect();
    let too_many_headers: String = (0..300).map(|i| format!("X-Pad-{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        // Pingora drops the Content-Length (RFC 9112 §6.3) and closes after the answer; the
        // buy, now chunked, is refused before any forward.
        (
            "Content-Length with Transfer-Encoding",
            raw_buy(
                &buy,
                &good,
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            411,
        ),
        (
            "obfuscated Transfer-Encoding with Content-Length",
            raw_buy(
                &buy,
                &good,
                "Content-Length: 5\r\nTransfer-Encoding: chunked, identity\r\n",
            ),
            400,
        ),
        (
            "Transfer-Encoding with a space before the colon",
            raw_buy(&buy, &good, "Transfer-Encoding : chunked\r\n"),
            400,
        ),
        (
            "two different Content-Lengths",
            raw_buy(&buy, &good, "Content-Length: 0\r\nContent-Length: 5\r\n"),
            400,
        ),
        (
            "NUL in a header value",
            raw_buy(&buy, &good, "X-Evil: a\0b\r\n"),
            400,
        ),
        (
            "CR in a header value",
            raw_buy(&buy, &good, "X-Evil: a\rb\r\n"),
            400,
        ),
        (
            "a chunked buy",
            raw_buy(&buy, &good, "Transfer-Encoding: chunked\r\n"),
            411,
        ),
        (
            "a 2 MB Content-Length on a buy",
            raw_buy(&buy, &good, "Content-Length: 2000000\r\n"),
            413,
        ),
        (
            "a 20 KB path",
            raw_get(&format!("/static/{}", "a".repeat(20_000)), ""),
            414,
        ),
        (
            "a 70 KB header",
            raw_get("/", &format!("X-Big: {}\r\n", "b".repeat(70_000))),
            431,
        ),
        (
            "100 headers, 20 KB in all",
            raw_get("/", &many_headers),
            431,
        ),
        (
            "300 small headers (more than the parser takes)",
            raw_get("/", &too_many_headers),
            400,
        ),
        ("a 100 KB login token", raw_buy(&buy, &huge_token, ""), 431),
        (
            "an overflowing product id",
            raw_buy(&bad_buy("99999999999999999999999"), &good, ""),
            404,
        ),
        (
            "a negative product id",
            raw_buy(&bad_buy("-42"), &good, ""),
            404,
        ),
        (
            "a product id that is not a number",
            raw_buy(&bad_buy("4x2"), &good, ""),
            404,
        ),
        (
            "JWT alg none",
            raw_buy(
                &buy,
                &forged(json!({"alg": "none", "typ": "JWT"}), claims.clone()),
                "",
            ),
            401,
        ),
        ("JWT HS512", raw_buy(&buy, &hs512, ""), 401),
        (
            "JWT RS256",
            raw_buy(
                &buy,
                &forged(json!({"alg": "RS256", "typ": "JWT"}), claims.clone()),
                "",
            ),
            401,
        ),
        (
            "JWT expired",
            raw_buy(
                &buy,
                &token_of(json!({"sub": "mallory", "exp": now - 600})),
                "",
            ),
            401,
        ),
        (
            "JWT without exp",
            raw_buy(&buy, &token_of(json!({"sub": "mallory"})), ""),
            401,
        ),
        (
            "JWT with an empty sub",
            raw_buy(&buy, &token_of(json!({"sub": "", "exp": now + 600})), ""),
            401,
        ),
        (
            "JWT signed with another key",
            raw_buy(&buy, &wrong_key, ""),
            401,
        ),
        (
            "an unknown method",
            b"BREW /sale/42/button.js HTTP/1.1\r\nHost: shop\r\n\r\n".to_vec(),
            405,
        ),
        ("traversal", raw_get("/static/../../etc/passwd", ""), 404),
        (
            "encoded traversal",
            raw_get("/static/%2e%2e/%2e%2e/etc/passwd", ""),
            404,
        ),
        (
            "encoded-slash traversal",
            raw_get("/static/..%2f..%2fetc%2fpasswd", ""),
            404,
        ),
        (
            "invalid UTF-8 in the path",
            b"GET /static/\xff\xfe.js HTTP/1.1\r\nHost: shop\r\n\r\n".to_vec(),
            400,
        ),
        (
            "an absolute-form target for another host",
            raw_get("http://evil.example/etc/passwd", ""),
            400,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, request, want) in &cases {
        let got = raw::exchange(&edge.base, request, Duration::from_secs(5)).await;
        let statuses = got.statuses();
        if statuses.first() != Some(want) {
            wrong.push(format!(
                "{what}: want {want}, got {statuses:?} {:?}",
                got.text().lines().next()
            ));
        }
        if *want >= 400 && *want != 401 && *want != 404 && *want != 405 && !got.closed {
            wrong.push(format!(
                "{what}: the connection stayed open after a framing refusal"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert!(
        origin.forwards().is_empty(),
        "nothing hostile reached the origin"
    );

    // Still selling.
    let c = reqwest::Client::new();
    assert_eq!(
        buy_outcome(&c, &edge.buy_url(42).await, "after-the-storm").await,
        (200, "won".into())
    );
    assert_eq!(origin.forwards().len(), 1);
}

/// Pipelined requests are answered in order; a connection's requests are capped
/// (`http.keepalive_requests`, the last answer saying `Connection: close`); an idle or
/// half-sent request on a kept-alive connection is closed after `http.keepalive_timeout`; a
/// crowd of half-open connections does not stop the edge serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_pipelined_capped_idle_and_half_open() {
    let origin = Origin::start().await;
    let edge = with_http(
        &origin,
        "{ keepalive_timeout: 1s, keepalive_requests: 5, header_timeout: 1s }",
    )
    .await;

    // Five pipelined requests, in one write: five answers, in order.
    let five: Vec<u8> = [
        "/sale/42/button.js",
        "/",
        "/nope",
        "/sale/42/button.js",
        "/nope",
    ]
    .iter()
    .flat_map(|t| raw_get(t, ""))
    .collect();
    let got = raw::exchange(&edge.base, &five, Duration::from_secs(5)).await;
    assert_eq!(got.statuses(), [200, 200, 404, 200, 404], "{}", got.text());
    // The fifth was the last this connection may make: it said so, and it was closed.
    let last = got
        .text()
        .rsplit("HTTP/1.1 ")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(last.contains("connection: close"), "{last}");
    assert!(got.closed, "closed after keepalive_requests");

    // Seven pipelined: five answered, then closed.
    let seven: Vec<u8> = (0..7).flat_map(|_| raw_get("/nope", "")).collect();
    let got = raw::exchange(&edge.base, &seven, Duration::from_secs(5)).await;
    assert_eq!(got.statuses(), [404; 5], "{}", got.text());
    assert!(got.closed);

    // One request, then half of a second one, then nothing: closed after the keep-alive
    // timeout (1 s here), not held.
    let mut stream = raw::connect(&edge.base).await;
    let mut first = raw_get("/nope", "");
    first.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: sh");
    tokio::io::AsyncWriteExt::write_all(&mut stream, &first)
        .await
        .unwrap();
    let got = raw::read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(got.statuses(), [404]);
    assert!(got.closed, "a half-sent second request is not held");
    assert!(
        got.took < Duration::from_secs(5),
        "closed after {:?}",
        got.took
    );

    // An idle kept-alive connection is closed too.
    let got = raw::exchange(&edge.base, &raw_get("/nope", ""), Duration::from_secs(10)).await;
    assert!(
        got.closed && got.took < Duration::from_secs(5),
        "idle for {:?}",
        got.took
    );

    // A head trickled a byte at a time, each read well inside the keep-alive timeout: closed
    // once the whole head has taken longer than header_timeout (1 s here).
    let mut stream = raw::connect(&edge.base).await;
    let started = Instant::now();
    let mut closed_after = None;
    for b in b"GET /nope HTTP/1.1\r\nHost: shop\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if tokio::io::AsyncWriteExt::write_all(&mut stream, &[*b])
            .await
            .is_err()
        {
            closed_after = Some(started.elapsed());
            break;
        }
        let got = raw::read_until_closed(&mut stream, Duration::from_millis(250)).await;
        if got.closed {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("a trickled head is not held");
    assert!(
        closed_after < Duration::from_secs(4),
        "closed after {closed_after:?}"
    );
    let page = metrics_when(
        &edge,
        r#"flashgate_slow_clients_total{reason="header_timeout"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        sample(
            &page,
            r#"flashgate_slow_clients_total{reason="header_timeout"}"#
        ),
        Some(1.0),
        "{page}"
    );

    // 300 half-open connections (a header begun, never finished) do not stop the edge.
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = raw::connect(&edge.base).await;
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: sh")
            .await
            .unwrap();
        held.push(s);
    }
    let started = Instant::now();
    let c = reqwest::Client::new();
    assert_eq!(
        buy_outcome(&c, &edge.buy_url(42).await, "past-the-crowd").await,
        (200, "won".into())
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(held);
}

/// A flood from one address is refused by the address's limit before any token is decoded:
/// forged tokens count against the per-IP limit, and past it are `429`, not `401`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_limited_before_its_tokens_are_decoded() {
    let origin = Origin::start().await;
    let limits = "  - { name: per-ip, key: ip, requests: 5, per: 60s, expected_keys: 1000 }";
    let edge = start(&origin, &sale(42, 100, -60), limits, "").await;
    let url = edge.buy_url(42).await;
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.push(buy_with(&url, &[("authorization", b"Bearer not.a.token")]).await);
    }
    let want: Vec<(u16, String)> = [(401, "login_required"); 5]
        .into_iter()
        .chain([(429, "rate_limited"); 3])
        .map(|(s, o)| (s, o.to_string()))
        .collect();
    assert_eq!(seen, want);
    // Another address is not affected.
    let other = token("other-address");
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(other)
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
