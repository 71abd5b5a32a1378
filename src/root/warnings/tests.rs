//! Each warning, raised by the setting it is about and not by a safe one.

use std::path::Path;
use std::time::SystemTime;

use crate::config::{Config, Environment};

use super::*;

struct Env;

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "LOGIN" => Some("login-secret-login-secret-login-secret-0001".into()),
            "EDGE" => Some("edge-secret-edge-secret-edge-secret-edge-0002".into()),
            _ => None,
        }
    }
}

/// A safe configuration: real secrets, behind a trusted proxy, a sale open for years, a
/// global limit the store takes, small sketches, a durable embedded store.
const SAFE: &str = "\
listen: 0.0.0.0:8080
secrets: { login: '${LOGIN}', edge: '${EDGE}' }
trusted_proxies: [10.0.0.0/8]
origin: { url: 'http://127.0.0.1:8081' }
store: { kind: memory, path: /tmp/never-opened }
catalog: { products: [1-100] }
sales:
  - { product: 42, stock: 5, starts_at: 2026-01-01T00:00:00Z, ends_at: 2030-01-01T00:00:00Z }
limits:
  - { name: per-ip, key: ip, requests: 50, per: 10s, expected_keys: 100000 }
  - { name: global, key: global, requests: 20000, per: 1s }
";

fn config(text: &str) -> Config {
    Config::parse(Path::new("t.yaml"), text, &Env).unwrap()
}

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

const GIB: u64 = 1 << 30;

fn kinds(text: &str, now: &str, ip_blocks: usize) -> Vec<WarningKind> {
    warnings(&config(text), ip_blocks, at(now), Some(16 * GIB))
        .into_iter()
        .map(|w| w.kind)
        .collect()
}

#[test]
fn a_safe_configuration_has_none() {
    let found = warnings(&config(SAFE), 3, at("2027-01-01T00:00:00Z"), Some(16 * GIB));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_sale_already_over() {
    let found = warnings(&config(SAFE), 0, at("2030-01-01T02:00:00Z"), None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, WarningKind::SaleOver);
    assert!(
        found[0]
            .text
            .contains("product 42 ended at 2030-01-01T00:00:00Z (2h ago)"),
        "{}",
        found[0].text
    );
    assert!(kinds(SAFE, "2029-12-31T23:59:59Z", 0).is_empty());
}

#[test]
fn development_secrets() {
    let text = SAFE
        .replace("${LOGIN}", "${UNSET_L}")
        .replace("${EDGE}", "${UNSET_E}");
    assert_eq!(
        kinds(&text, "2027-01-01T00:00:00Z", 0),
        [WarningKind::DevelopmentSecrets]
    );
}

#[test]
fn forwarded_for_from_no_proxy_in_front_of_plain_http() {
    let text = SAFE.replace("trusted_proxies: [10.0.0.0/8]", "trusted_proxies: []");
    let found = warnings(&config(&text), 2, at("2027-01-01T00:00:00Z"), None);
    assert_eq!(found.len(), 1, "{found:?}");
    let w = &found[0];
    assert_eq!(w.kind, WarningKind::ForwardedFor);
    for says in [
        "trusted_proxies: none",
        "0.0.0.0:8080 serves plain HTTP",
        "load balancer",
        "per-IP limit per-ip (50 per 10s)",
        "2 ip:/cidr: entries",
    ] {
        assert!(w.text.contains(says), "{says:?} not in {}", w.text);
    }
    // Only a loopback proxy trusted (the shipped default) is no proxy on another machine.
    let loopback = SAFE.replace("[10.0.0.0/8]", "[127.0.0.1/32]");
    assert_eq!(
        kinds(&loopback, "2027-01-01T00:00:00Z", 0),
        [WarningKind::ForwardedFor]
    );
    // A listener only this machine reaches is fronted by a local proxy, or nothing.
    let local = text.replace("listen: 0.0.0.0:8080", "listen: 127.0.0.1:8080");
    assert!(kinds(&local, "2027-01-01T00:00:00Z", 0).is_empty());
}

#[test]
fn a_global_limit_above_the_store() {
    let redis = SAFE.replace(
        "store: { kind: memory, path: /tmp/never-opened }",
        "store: { kind: redis, url: 'redis://10.0.0.5:6379' }",
    );
    // 20,000 a second is under the estimate for one Redis node.
    assert!(kinds(&redis, "2027-01-01T00:00:00Z", 0).is_empty());
    let high = redis.replace("requests: 20000, per: 1s", "requests: 100000, per: 2s");
    let found = warnings(&config(&high), 0, at("2027-01-01T00:00:00Z"), None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, WarningKind::GlobalLimit);
    assert!(
        found[0].text.contains("lets 50000 buys a second through"),
        "{}",
        found[0].text
    );
    assert!(
        found[0].text.contains("30000 calls a second"),
        "{}",
        found[0].text
    );
    // A captcha sale costs two calls a winner: 20,000 becomes 40,000.
    let captcha = redis.replace(
        "ends_at: 2030-01-01T00:00:00Z }",
        "ends_at: 2030-01-01T00:00:00Z, captcha: pow }",
    );
    assert_eq!(
        kinds(&captcha, "2027-01-01T00:00:00Z", 0),
        [WarningKind::GlobalLimit]
    );
    // store.capacity says what this store takes.
    let measured = captcha.replace(
        "url: 'redis://10.0.0.5:6379'",
        "url: 'redis://10.0.0.5:6379', capacity: 50000",
    );
    assert!(kinds(&measured, "2027-01-01T00:00:00Z", 0).is_empty());
    // No global limit at all; a dry-run one limits nothing.
    let none = redis.replace(
        "  - { name: global, key: global, requests: 20000, per: 1s }\n",
        "",
    );
    assert_eq!(
        kinds(&none, "2027-01-01T00:00:00Z", 0),
        [WarningKind::GlobalLimit]
    );
    let dry = redis.replace("per: 1s }", "per: 1s, dry_run: true }");
    assert_eq!(
        kinds(&dry, "2027-01-01T00:00:00Z", 0),
        [WarningKind::GlobalLimit]
    );
    // The embedded store: no estimate unless store.capacity gives one.
    let memory_high = SAFE.replace("requests: 20000, per: 1s", "requests: 100000, per: 1s");
    assert!(kinds(&memory_high, "2027-01-01T00:00:00Z", 0).is_empty());
}

#[test]
fn the_memory_of_each_sketch_and_of_all() {
    // The default million keys take 8 MiB a rule (one-byte counters under a limit of 50): no
    // warning.
    let default = SAFE.replace(", expected_keys: 100000", "");
    let found = warnings(
        &config(&default),
        0,
        at("2027-01-01T00:00:00Z"),
        Some(16 * GIB),
    );
    assert!(found.is_empty(), "{found:?}");
    // Four million keys under a limit of 300 (two-byte counters): 64 MiB.
    let big = SAFE.replace(
        "requests: 50, per: 10s, expected_keys: 100000",
        "requests: 300, per: 10s, expected_keys: 4000000",
    );
    let found = warnings(&config(&big), 0, at("2027-01-01T00:00:00Z"), Some(16 * GIB));
    assert_eq!(found.len(), 1, "{found:?}");
    for says in [
        "limit per-ip takes 64 MiB",
        "8388608 counters",
        "2 byte(s) each",
    ] {
        assert!(found[0].text.contains(says), "{}", found[0].text);
    }
    // On a machine of 200 MiB, that is more than a quarter of it.
    let found = warnings(
        &config(&big),
        0,
        at("2027-01-01T00:00:00Z"),
        Some(200 << 20),
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[1].text.contains("64 MiB together"),
        "{}",
        found[1].text
    );
}

#[test]
fn an_embedded_store_without_a_journal() {
    let text = SAFE.replace(", path: /tmp/never-opened", "");
    assert_eq!(
        kinds(&text, "2027-01-01T00:00:00Z", 0),
        [WarningKind::NotDurable]
    );
}

#[test]
fn the_machines_memory_is_read() {
    let m = machine_memory().expect("/proc/meminfo on Linux");
    assert!(m > 64 << 20, "{m}");
}

/// A self-signed certificate valid for `days` from now (openssl CLI), in `dir`.
fn certificate(dir: &Path, days: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("c.pem"), dir.join("c.key"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=shop.test",
        ])
        .args(["-days", &days.to_string(), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the test certificate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[test]
fn a_certificate_that_expires_soon_and_no_proxy_warning_on_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), 30);
    // No proxy trusted, open to other machines: with tls: the edge terminates HTTPS itself.
    let text = format!(
        "{}tls: {{ cert: {}, key: {} }}\n",
        SAFE.replace("trusted_proxies: [10.0.0.0/8]", "trusted_proxies: []"),
        cert.display(),
        key.display()
    );
    let c = config(&text);
    let now = SystemTime::now();
    assert!(warnings(&c, 2, now, None).is_empty());
    // Valid for 30 days: nothing now; within two weeks of its end a line; after it, expired;
    // and before it starts, not valid yet.
    let day = 24 * 3600;
    let soon = now + std::time::Duration::from_secs(28 * day + day / 2);
    let found = warnings(&c, 0, soon, None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, WarningKind::Certificate);
    assert!(
        found[0].text.contains("CN=shop.test") && found[0].text.contains("expires in 1day"),
        "{}",
        found[0].text
    );
    let later = now + std::time::Duration::from_secs(31 * day);
    let found = warnings(&c, 0, later, None);
    assert!(found[0].text.contains("expired at"), "{}", found[0].text);
    let before = now - std::time::Duration::from_secs(3600);
    let found = warnings(&c, 0, before, None);
    assert!(
        found[0].text.contains("not valid for another"),
        "{}",
        found[0].text
    );
}

#[test]
fn a_route_that_can_never_match_is_named() {
    let shop = format!(
        "{SAFE}upstreams:\n  shop: {{ servers: ['127.0.0.1:9000'] }}\n\
         routes:\n\
         \x20 - {{ name: all, path: /products/, upstream: shop }}\n\
         \x20 - {{ name: one, exact: /products/1, upstream: shop }}\n\
         \x20 - {{ name: gets, path: /cart, methods: [GET], upstream: shop }}\n\
         \x20 - {{ name: posts, path: /cart/x, methods: [POST], upstream: shop }}\n\
         \x20 - {{ name: css, path: /static/shop/, upstream: shop }}\n\
         \x20 - {{ name: sub, host: '*.example.com', path: /a, upstream: shop }}\n\
         \x20 - {{ name: exact-host, host: a.example.com, path: /a/b, upstream: shop }}\n"
    );
    let found = warnings(&config(&shop), 3, at("2027-01-01T00:00:00Z"), Some(16 * GIB));
    let texts: Vec<&str> = found.iter().map(|w| w.text.as_str()).collect();
    assert!(found.iter().all(|w| w.kind == WarningKind::RouteNeverMatches), "{texts:?}");
    assert_eq!(found.len(), 3, "{texts:?}");
    assert!(texts[0].contains("\"one\"") && texts[0].contains("\"all\""), "{texts:?}");
    assert!(texts[1].contains("\"css\"") && texts[1].contains("/static/"), "{texts:?}");
    assert!(texts[2].contains("\"exact-host\"") && texts[2].contains("\"sub\""), "{texts:?}");
}
