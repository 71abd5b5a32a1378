//! Configuration: the shipped files are valid, and every kind of mistake is reported with the
//! file, line and column — through the library, through `flashgate check`, and for the order
//! backend's settings through `flashgate-orders`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use std::time::Duration;

use flashgate::config::Target;
use flashgate::config::{Config, ConfigError, Environment, Position};
use flashgate::orders::settings::{self, Overrides, Settings};

struct Env(HashMap<&'static str, &'static str>);

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

fn env() -> Env {
    Env(HashMap::from([
        ("LOGIN", "login-secret-login-secret-login-secret-0001"),
        ("EDGE", "edge-secret-edge-secret-edge-secret-edge-0002"),
        ("SHORT", "too-short"),
    ]))
}

const GOOD: &str = "\
listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9090
secrets:
  login: ${LOGIN}
  edge: ${EDGE}
origin:
  url: http://127.0.0.1:8081
catalog:
  products: [1-1000, 5000]
sales:
  - product: 42
    stock: 500
    starts_at: 2026-11-22T12:00:00Z
    ends_at: 2026-11-22T13:00:00Z
limits:
  - { name: per-uid, key: uid, requests: 5, per: 10s }
";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("f.yaml"), text, &env())
}

fn error_at(text: &str) -> (Position, String) {
    match parse(text) {
        Err(e @ ConfigError::At { .. }) => (e.position().unwrap(), e.to_string()),
        other => panic!("expected a positioned error, got {other:?}"),
    }
}

#[test]
fn a_good_file_resolves_everything() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.listen.port(), 8080);
    assert!(c.secrets.development.is_empty());
    assert_eq!(c.secrets.login.bytes(), env().0["LOGIN"].as_bytes());
    assert_eq!(c.catalog.len(), 1001);
    assert_eq!(c.sales[0].stock, 500);
    assert_eq!(c.limits[0].per.as_secs(), 10);
    assert_eq!(c.limits[0].expected_keys, 1_000_000);
    assert_eq!(c.origin.path, "/orders");
}

#[test]
fn unset_secrets_fall_back_to_marked_development_secrets() {
    let text = GOOD
        .replace("${LOGIN}", "${NOPE_LOGIN}")
        .replace("${EDGE}", "${NOPE_EDGE}");
    let c = parse(&text).unwrap();
    assert_eq!(c.secrets.development, ["login", "edge"]);
    assert!(String::from_utf8_lossy(c.secrets.login.bytes()).contains("DEVELOPMENT"));
}

#[test]
fn mistakes_name_line_and_column() {
    // (what, text replaced, replacement, where the error must point, what it must say)
    let cases = [
        (
            "an unknown key",
            "admin_listen",
            "listen2: 1\nadmin_listen",
            (2, 1),
            "unknown field `listen2`",
        ),
        (
            "a misspelt key",
            "  url:",
            "  urll:",
            (7, 3),
            "unknown field `urll`",
        ),
        (
            "a short secret",
            "${LOGIN}",
            "${SHORT}",
            (4, 10),
            "at least 32",
        ),
        (
            "a bad duration",
            "per: 10s",
            "per: 10 parsecs",
            (16, 50),
            "expected a duration",
        ),
        (
            "a sale outside the catalog",
            "product: 42",
            "product: 4242",
            (11, 14),
            "not in the catalog",
        ),
        (
            "ends before it starts",
            "ends_at: 2026-11-22T13",
            "ends_at: 2026-11-22T11",
            (14, 14),
            "is not after",
        ),
        (
            "a backwards range",
            "[1-1000,",
            "[1000-1,",
            (9, 14),
            "ends before it starts",
        ),
        (
            "a bad address",
            "127.0.0.1:9090",
            "127.0.0.1:99999",
            (2, 15),
            "invalid socket address",
        ),
    ];
    for (what, from, to, (line, column), says) in cases {
        let text = GOOD.replacen(from, to, 1);
        assert_ne!(text, GOOD, "{what}: the replacement applies");
        let (at, message) = error_at(&text);
        assert_eq!((at.line, at.column), (line, column), "{what}: {message}");
        assert!(
            message.starts_with(&format!("f.yaml:{line}:{column}: ")),
            "{message}"
        );
        assert!(message.contains(says), "{what}: {message}");
    }
}

/// `store.sentinel` and `store.wait`: what they resolve to, and their mistakes at file:line:col.
#[test]
fn redis_store_by_sentinel_and_with_a_replica_wait() {
    use flashgate::config::Target;
    use flashgate::config::{ReplicaWait, Store};
    let with = |store: &str| GOOD.replace("catalog:", &format!("store:\n{store}catalog:"));
    let c = parse(&with(
        "  kind: redis\n  sentinel: { master: shop, nodes: [redis://10.0.0.1:26379, redis://10.0.0.2:26379] }\n  timeout: 200ms\n  wait: { replicas: 1, timeout: 50ms }\n",
    ))
    .unwrap();
    let Store::Redis { target, wait, .. } = c.store else {
        panic!("a redis store")
    };
    assert_eq!(
        target,
        Target::Sentinel {
            master: "shop".into(),
            nodes: vec![
                "redis://10.0.0.1:26379".into(),
                "redis://10.0.0.2:26379".into()
            ],
        }
    );
    assert_eq!(
        wait,
        Some(ReplicaWait {
            replicas: 1,
            timeout: Duration::from_millis(50)
        })
    );
    let cases = [
        (
            "  kind: redis\n  url: redis://a:6379\n  sentinel: { master: m, nodes: [redis://b:26379] }\n",
            (11, 13),
            "give one of url",
        ),
        (
            "  kind: redis\n  sentinel: { master: m, nodes: [] }\n",
            (10, 33),
            "needs at least one sentinel",
        ),
        (
            "  kind: redis\n  url: redis://a:6379\n  wait: { replicas: 0, timeout: 10ms }\n",
            (11, 21),
            "at least 1",
        ),
        (
            "  kind: redis\n  url: redis://a:6379\n  timeout: 50ms\n  wait: { replicas: 1, timeout: 50ms }\n",
            (12, 33),
            "below store.timeout",
        ),
    ];
    for (store, (line, column), says) in cases {
        let (at, message) = error_at(&with(store));
        assert_eq!((at.line, at.column), (line, column), "{store}: {message}");
        assert!(message.contains(says), "{store}: {message}");
    }
}

/// `http:` limits that cannot hold are refused where they are written, and the HTTP/2
/// settings default from the HTTP/1.1 ones.
#[test]
fn http_limits_and_h2_settings() {
    let with = |http: &str| format!("{GOOD}http:\n{http}");
    let c = parse(&with(
        "  max_header_count: 100\n  h2: { max_concurrent_streams: 10 }\n",
    ))
    .unwrap();
    assert_eq!(c.http.max_header_count, 100);
    assert_eq!(c.http.h2.max_concurrent_streams, 10);
    assert_eq!(c.http.h2.max_header_list_size, 16384 + 32 * 100);
    assert_eq!(c.http.h2.max_pending_reset_streams, 20);
    let cases = [
        (
            "  max_body_bytes: 100000\n",
            (18, 19),
            "between 0 and 65536",
        ),
        ("  max_header_count: 3\n", (18, 21), "between 16 and 100000"),
        (
            "  h2: { max_concurrent_streams: 0 }\n",
            (18, 33),
            "between 1 and 10000",
        ),
        (
            "  h2: { max_header_list_size: 10 }\n",
            (18, 31),
            "between 1024",
        ),
        (
            "  h2: { max_pending_reset_streams: 0 }\n",
            (18, 36),
            "between 1 and 10000",
        ),
        ("  h2: { unknown: 1 }\n", (18, 9), "unknown field"),
    ];
    for (http, (line, column), says) in cases {
        let (at, message) = error_at(&with(http));
        assert_eq!((at.line, at.column), (line, column), "{http}: {message}");
        assert!(message.contains(says), "{http}: {message}");
    }
}

#[test]
fn short_secret_from_the_environment_names_the_value() {
    let (at, message) = error_at(&GOOD.replace("${EDGE}", "${SHORT}"));
    assert_eq!(at.line, 5);
    assert!(message.contains("secrets.edge is 9 bytes"), "{message}");
}

#[test]
fn shipped_config_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = Config::load(&root.join("conf/flashgate.yaml")).unwrap();
    assert!(!c.sales.is_empty());
}

#[test]
fn check_command_reports_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, GOOD.replace("stock: 500", "stock: lots")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["check", "--config"])
        .arg(&bad)
        .env("LOGIN", "login-secret-login-secret-login-secret-0001")
        .env("EDGE", "edge-secret-edge-secret-edge-secret-edge-0002")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:12:12:", bad.display())),
        "stderr: {stderr}"
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ok = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .current_dir(root)
        .args(["check", "--config", "conf/flashgate.yaml"])
        .env_remove("FLASHGATE_LOGIN_SECRET")
        .env_remove("FLASHGATE_EDGE_SECRET")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let summary = String::from_utf8_lossy(&ok.stdout);
    for part in [
        "listen",
        "sales",
        "product 42",
        "per-uid",
        "DEVELOPMENT",
        "catalog     1000 products",
        "shown as \"Flash phone X\"  price ¥99.00  image static_dir/img/phone.svg",
    ] {
        assert!(summary.contains(part), "summary lacks {part}:\n{summary}");
    }
}

#[test]
fn bad_blocklist_line_stops_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("block.txt");
    std::fs::write(&list, "uid:1\ncidr:300.0.0.0/8\n").unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "{GOOD}static_dir: {}\nblocklist: {{ file: {} }}\n",
            dir.path().display(),
            list.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["check", "--config"])
        .arg(&cfg)
        .env("LOGIN", "login-secret-login-secret-login-secret-0001")
        .env("EDGE", "edge-secret-edge-secret-edge-secret-edge-0002")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:1:", list.display())),
        "{stderr}"
    );
}

#[test]
fn captcha_sales_resolve_and_token_needs_a_secret() {
    let pow = GOOD.replace(
        "    ends_at: 2026-11-22T13:00:00Z\n",
        "    ends_at: 2026-11-22T13:00:00Z\n    captcha: pow\n",
    );
    let c = parse(&pow).unwrap();
    assert_eq!(c.sales[0].captcha, flashgate::config::Captcha::Pow);
    assert_eq!(c.captcha.difficulty, 16, "the documented default");

    // A token sale without a secret: the error points at the sale's captcha.
    let token = pow.replace("captcha: pow", "captcha: token");
    let (at, message) = error_at(&token);
    assert_eq!((at.line, at.column), (15, 14), "{message}");
    assert!(message.starts_with("f.yaml:15:14: "), "{message}");
    assert!(
        message.contains("captcha.token_secret is not set"),
        "{message}"
    );

    // Naming an unset variable says which.
    let unset = format!("{token}captcha: {{ token_secret: '${{NOPE_CAPTCHA}}' }}\n");
    let (at, message) = error_at(&unset);
    assert_eq!(at.line, 15, "{message}");
    assert!(message.contains("NOPE_CAPTCHA"), "{message}");

    // With a secret of 32 bytes or more it resolves.
    let with_secret = format!(
        "{token}captcha:\n  token_secret: captcha-secret-captcha-secret-captcha-0003\n  difficulty: 12\n"
    );
    let c = parse(&with_secret).unwrap();
    assert_eq!(c.captcha.difficulty, 12);
    assert!(c.captcha.token_secret.is_some());

    // A short one, one equal to another secret, and impossible difficulties are refused where
    // they stand.
    let short = format!("{token}captcha:\n  token_secret: ${{SHORT}}\n");
    let (at, message) = error_at(&short);
    assert_eq!((at.line, at.column), (19, 17), "{message}");
    assert!(message.contains("at least 32"), "{message}");
    let reused = format!("{token}captcha:\n  token_secret: ${{EDGE}}\n");
    assert!(error_at(&reused).1.contains("must differ"));
    let hard = format!("{pow}captcha: {{ difficulty: 20, max_difficulty: 10 }}\n");
    let (at, message) = error_at(&hard);
    assert_eq!(at.line, 18, "{message}");
    assert!(message.contains("max_difficulty"), "{message}");
    let typo = format!("{pow}captcha: {{ dificulty: 20 }}\n");
    assert!(error_at(&typo).1.contains("unknown field `dificulty`"));
}

#[test]
fn store_path_and_settlement_keys() {
    use flashgate::config::Fsync;
    use flashgate::config::Store;
    let c = parse(&format!(
        "{GOOD}store: {{ kind: memory, path: /var/lib/flashgate, fsync: always }}\n"
    ))
    .unwrap();
    assert_eq!(
        c.store,
        Store::Memory {
            path: Some("/var/lib/flashgate".into()),
            fsync: Fsync::Always
        }
    );
    assert_eq!(c.origin.settle_after, std::time::Duration::from_secs(60));
    let c = parse(GOOD).unwrap();
    assert_eq!(
        c.store,
        Store::Memory {
            path: None,
            fsync: Fsync::Everysec
        },
        "without path: in memory only"
    );

    let (at, message) = error_at(&format!(
        "{GOOD}store: {{ kind: redis, url: 'redis://127.0.0.1:1', path: /tmp/x }}\n"
    ));
    assert_eq!(at.line, 17);
    assert!(message.contains("store.path"), "{message}");
    let (at, message) = error_at(&format!(
        "{GOOD}store: {{ kind: memory, fsync: sometimes }}\n"
    ));
    assert_eq!(at.line, 17);
    assert!(message.contains("fsync"), "{message}");
    let (at, message) = error_at(&GOOD.replace(
        "  url: http://127.0.0.1:8081\n",
        "  url: http://127.0.0.1:8081\n  timeout: 5s\n  settle_after: 5s\n",
    ));
    assert_eq!(at.line, 9, "{message}");
    assert!(message.contains("settle_after must be longer"), "{message}");
}

const ORDERS: &str = "\
listen: 127.0.0.1:8081
database: sqlite://orders.db
payment_timeout: 15m
edge_secret: ${EDGE}
ledger:
  retry_for: 10m
  claim_idle: 30s
reconcile:
  every: 5s
";

fn orders(text: &str, flags: Overrides) -> Result<Settings, ConfigError> {
    settings::parse(Path::new("orders.yaml"), text, flags, &env())
}

#[test]
fn orders_settings_resolve_and_flags_override_the_file() {
    let s = orders(ORDERS, Overrides::default()).unwrap();
    assert_eq!(s.listen.port(), 8081);
    assert_eq!(s.database, "sqlite://orders.db");
    assert_eq!(
        s.redis,
        Target::Single("redis://127.0.0.1:6379".into()),
        "the default"
    );
    assert_eq!(s.payment_timeout, Duration::from_secs(15 * 60));
    assert_eq!(s.edge_secret.bytes(), env().0["EDGE"].as_bytes());
    assert!(!s.development_secret);
    assert_eq!(s.retry_for, Duration::from_secs(600));
    assert_eq!(s.claim_idle, Duration::from_secs(30));
    assert!(s.consumer.ends_with("-8081"), "{}", s.consumer);

    let flags = Overrides {
        listen: Some("127.0.0.1:9999".parse().unwrap()),
        database: Some("sqlite://other.db".into()),
        redis: Some("redis://127.0.0.1:7000".into()),
        cluster: None,
        sentinel: None,
        payment_timeout: Some(Duration::from_secs(5)),
        config: None,
    };
    let s = orders(ORDERS, flags).unwrap();
    assert_eq!(s.listen.port(), 9999);
    assert_eq!(s.database, "sqlite://other.db");
    assert_eq!(s.redis, Target::Single("redis://127.0.0.1:7000".into()));
    assert_eq!(s.payment_timeout, Duration::from_secs(5));

    // An unset variable falls back to the edge's development secret, marked as such.
    let s = orders(
        &ORDERS.replace("${EDGE}", "${NOPE_EDGE}"),
        Overrides::default(),
    )
    .unwrap();
    assert!(s.development_secret);
    assert!(String::from_utf8_lossy(s.edge_secret.bytes()).contains("DEVELOPMENT"));
}

#[test]
fn orders_settings_on_a_redis_cluster_like_the_edge() {
    let cluster =
        "listen: 127.0.0.1:8081\ncluster: [redis://10.0.0.1:7000, redis://10.0.0.2:7000]\n";
    let s = orders(cluster, Overrides::default()).unwrap();
    assert_eq!(
        s.redis,
        Target::Cluster(vec![
            "redis://10.0.0.1:7000".into(),
            "redis://10.0.0.2:7000".into()
        ])
    );
    // A flag wins over the file, either way round.
    let flags = Overrides {
        redis: Some("redis://127.0.0.1:6380".into()),
        ..Overrides::default()
    };
    assert_eq!(
        orders(cluster, flags).unwrap().redis,
        Target::Single("redis://127.0.0.1:6380".into())
    );
    let flags = Overrides {
        cluster: Some(vec!["redis://127.0.0.1:7001".into()]),
        ..Overrides::default()
    };
    assert_eq!(
        orders("redis: redis://127.0.0.1:6379\n", flags)
            .unwrap()
            .redis,
        Target::Cluster(vec!["redis://127.0.0.1:7001".into()])
    );
    // Both in the file is a mistake, shown where the cluster is.
    let both = format!("redis: redis://127.0.0.1:6379\n{cluster}");
    let err = orders(&both, Overrides::default()).unwrap_err().to_string();
    assert!(err.starts_with("orders.yaml:3:"), "{err}");
    assert!(err.contains("not two"), "{err}");
    // The retired ledger.max_deliveries (entries are retried for retry_for) is an unknown key,
    // placed in the file.
    let old = "ledger: { max_deliveries: 5 }\n";
    let err = orders(old, Overrides::default()).unwrap_err().to_string();
    assert!(err.starts_with("orders.yaml:1:"), "{err}");
    assert!(err.contains("max_deliveries"), "{err}");
    // A zero retry_for would dead-letter on the first blip; a zero claim_idle would have
    // instances steal each other's entries.
    for key in ["retry_for", "claim_idle"] {
        let err = orders(&format!("ledger:\n  {key}: 0s\n"), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("orders.yaml:2:"), "{err}");
        assert!(err.contains("at least 1s"), "{err}");
    }
    let grace = orders("ledger: { grace: 20s }\n", Overrides::default()).unwrap();
    assert_eq!(grace.grace, Duration::from_secs(20));
}

#[test]
fn orders_settings_mistakes_name_line_and_column() {
    // (what, text replaced, replacement, where the error must point, what it must say)
    let cases = [
        (
            "a duration typo",
            "15m",
            "15 minuets",
            (3, 18),
            "payment_timeout: expected a duration",
        ),
        (
            "a nested duration typo",
            "30s",
            "30 sec0nds",
            (7, 15),
            "ledger.claim_idle: expected a duration",
        ),
        (
            "a misspelt key",
            "  retry_for",
            "  retry_four",
            (6, 3),
            "unknown field `retry_four`",
        ),
        (
            "a short secret",
            "${EDGE}",
            "${SHORT}",
            (4, 14),
            "edge_secret is 9 bytes; a secret needs at least 32",
        ),
        (
            "a bad variable reference",
            "${EDGE}",
            "${EDGE",
            (4, 14),
            "unclosed ${",
        ),
        (
            "a bad address",
            "127.0.0.1:8081",
            "127.0.0.1:80810",
            (1, 9),
            "invalid socket address",
        ),
        (
            "a live reconcile every few milliseconds",
            "every: 5s",
            "every: 5ms",
            (9, 10),
            "reconcile.every must be at least 1s",
        ),
    ];
    for (what, from, to, (line, column), says) in cases {
        let text = ORDERS.replacen(from, to, 1);
        assert_ne!(text, ORDERS, "{what}: the replacement applies");
        let e = orders(&text, Overrides::default()).unwrap_err();
        let message = e.to_string();
        let at = e.position().unwrap_or_else(|| panic!("{what}: {message}"));
        assert_eq!((at.line, at.column), (line, column), "{what}: {message}");
        assert!(
            message.starts_with(&format!("orders.yaml:{line}:{column}: ")),
            "{message}"
        );
        assert!(message.contains(says), "{what}: {message}");
    }
}

#[test]
fn shipped_orders_settings_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let flags = Overrides {
        config: Some(root.join("conf/orders.yaml")),
        ..Overrides::default()
    };
    let s = settings::resolve_with(flags, &env()).unwrap();
    assert_eq!(s.payment_timeout, Duration::from_secs(15 * 60));
    assert_eq!(s.claim_idle, Duration::from_secs(30));
    assert_eq!(s.reconcile_every, Duration::from_secs(10));
}

#[test]
fn orders_binary_reports_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, ORDERS.replace("15m", "15 minuets")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flashgate-orders"))
        .args(["run", "--config"])
        .arg(&bad)
        .env("EDGE", "edge-secret-edge-secret-edge-secret-edge-0002")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "flashgate-orders: {}:3:18: payment_timeout: expected a duration",
            bad.display()
        )),
        "stderr: {stderr}"
    );
}

#[test]
fn rate_limit_headers_mode_and_limit_names() {
    use flashgate::config::RateLimitHeaders;
    assert_eq!(
        parse(GOOD).unwrap().rate_limit_headers,
        RateLimitHeaders::Draft
    );
    for (mode, want) in [
        ("draft", RateLimitHeaders::Draft),
        ("legacy", RateLimitHeaders::Legacy),
        ("both", RateLimitHeaders::Both),
    ] {
        let text = format!("{GOOD}rate_limit_headers: {mode}\n");
        assert_eq!(parse(&text).unwrap().rate_limit_headers, want);
    }
    let (at, message) = error_at(&format!("{GOOD}rate_limit_headers: newest\n"));
    assert_eq!((at.line, at.column), (17, 21), "{message}");
    assert!(message.contains("unknown variant `newest`"), "{message}");
    // A limit's name travels in the RateLimit headers: visible ASCII only.
    let (at, message) = error_at(&GOOD.replace("name: per-uid", "name: \"每用户\""));
    assert_eq!((at.line, at.column), (16, 13), "{message}");
    assert!(message.contains("visible ASCII"), "{message}");
}

#[test]
fn one_secret_set_and_the_other_missing_is_refused_naming_it() {
    // Only the login secret set: the edge's is named, where it is written.
    let (at, message) = error_at(&GOOD.replace("${EDGE}", "${NOPE_EDGE}"));
    assert_eq!((at.line, at.column), (5, 9), "{message}");
    assert!(
        message
            .contains("secrets.edge names NOPE_EDGE, which is not set, while secrets.login is set"),
        "{message}"
    );
    // Only the edge secret set.
    let (at, message) = error_at(&GOOD.replace("${LOGIN}", "${NOPE_LOGIN}"));
    assert_eq!((at.line, at.column), (4, 10), "{message}");
    assert!(
        message.contains("secrets.login names NOPE_LOGIN"),
        "{message}"
    );
    // A captcha secret set while neither of the others is: half-configured too.
    let text = GOOD
        .replace("${LOGIN}", "${NOPE_LOGIN}")
        .replace("${EDGE}", "${NOPE_EDGE}")
        + "captcha: { token_secret: captcha-secret-captcha-secret-captcha-0003 }\n";
    let (_, message) = error_at(&text);
    assert!(
        message.contains("captcha.token_secret is set, but secrets.login and secrets.edge are not"),
        "{message}"
    );
}

#[test]
fn check_warns_about_risky_settings_and_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let risky = dir.path().join("risky.yaml");
    let text = GOOD
        .replace("listen: 127.0.0.1:8080", "listen: 0.0.0.0:8080")
        .replace("2026-11-22T12", "2025-01-01T12")
        .replace("2026-11-22T13", "2025-01-02T13")
        .replace(
            "  - { name: per-uid",
            "  - { name: per-ip, key: ip, requests: 300, per: 10s, expected_keys: 4000000 }\n  - { name: per-uid",
        );
    std::fs::write(&risky, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["check", "--config"])
        .arg(&risky)
        .env("LOGIN", "login-secret-login-secret-login-secret-0001")
        .env("EDGE", "edge-secret-edge-secret-edge-secret-edge-0002")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    // The sale ended on 2025-01-02; the listener is open with no proxy trusted; the per-ip
    // limit is sized for four million keys under a limit of 300 (two-byte counters: 64 MiB);
    // the embedded store has no journal.
    for warning in [
        "  warnings    4",
        "! the sale of product 42 ended at 2025-01-02T13:00:00Z",
        "! X-Forwarded-For is believed from no proxy on another machine (trusted_proxies: none)",
        "the per-IP limit per-ip (300 per 10s) would count the whole crowd as one client",
        "! limit per-ip takes 64 MiB",
        "! store.path is not set",
    ] {
        if warning.contains("2026-11-22")
            && std::time::SystemTime::now()
                < humantime::parse_rfc3339("2026-11-22T13:00:00Z").unwrap()
        {
            continue;
        }
        assert!(said.contains(warning), "{warning:?} not in:\n{said}");
    }
}

#[test]
fn access_log_settings() {
    use flashgate::config::{LogRoute, LogTarget};
    assert!(parse(GOOD).unwrap().access_log.is_none());
    let c = parse(&format!("{GOOD}access_log: {{ path: /var/log/a.log }}\n")).unwrap();
    let log = c.access_log.unwrap();
    assert_eq!(log.target, LogTarget::File("/var/log/a.log".into()));
    assert_eq!(log.routes, LogRoute::ALL);
    assert_eq!(log.buffer, 65_536);
    let c = parse(&format!(
        "{GOOD}access_log: {{ path: stdout, routes: [buy, challenge], buffer: 10 }}\n"
    ))
    .unwrap();
    let log = c.access_log.unwrap();
    assert_eq!(log.target, LogTarget::Stdout);
    assert_eq!(log.routes, [LogRoute::Buy, LogRoute::Challenge]);
    for (what, text, (line, column), says) in [
        (
            "an unknown route",
            "access_log: { path: stdout, routes: [buys] }",
            (17, 38),
            "unknown variant `buys`",
        ),
        (
            "no route",
            "access_log: { path: stdout, routes: [] }",
            (17, 37),
            "routes is empty",
        ),
        (
            "no buffer",
            "access_log: { path: stdout, buffer: 0 }",
            (17, 37),
            "access_log.buffer is lines",
        ),
    ] {
        let (at, message) = error_at(&format!("{GOOD}{text}\n"));
        assert_eq!((at.line, at.column), (line, column), "{what}: {message}");
        assert!(message.contains(says), "{what}: {message}");
    }
}

#[test]
fn http_limits_default_and_refuse_what_cannot_work() {
    let http = parse(GOOD).unwrap().http;
    assert_eq!(
        (
            http.max_uri_bytes,
            http.max_header_bytes,
            http.max_body_bytes
        ),
        (8192, 16384, 16384)
    );
    assert_eq!((http.keepalive_secs, http.keepalive_requests), (15, 1000));
    assert_eq!(http.header_timeout, std::time::Duration::from_secs(10));
    let c = parse(&format!(
        "{GOOD}http: {{ max_header_bytes: 4096, keepalive_timeout: 2s, keepalive_requests: 1 }}\n"
    ))
    .unwrap();
    assert_eq!(
        (
            c.http.max_header_bytes,
            c.http.keepalive_secs,
            c.http.keepalive_requests
        ),
        (4096, 2, 1)
    );
    for (text, says) in [
        ("http: { keepalive_timeout: 500ms }", "whole seconds"),
        (
            "http: { max_header_bytes: 2000000 }",
            "between 1024 and 1048575",
        ),
        ("http: { keepalive_requests: 0 }", "between 1 and"),
        ("http: { header_timeout: 10ms }", "at least 100ms"),
        ("http: { max_uri: 10 }", "unknown field `max_uri`"),
    ] {
        let (at, message) = error_at(&format!("{GOOD}{text}\n"));
        assert_eq!(at.line, 17, "{text}: {message}");
        assert!(message.contains(says), "{text}: {message}");
    }
}

#[test]
fn cluster_scope_needs_redis_and_a_sync_shorter_than_the_window() {
    use flashgate::config::Scope;
    assert_eq!(parse(GOOD).unwrap().limits[0].scope, Scope::Local);
    let redis = format!("{GOOD}store: {{ kind: redis, url: 'redis://127.0.0.1:1' }}\n");
    let cluster = redis.replace("per: 10s }", "per: 10s, scope: cluster }");
    assert_eq!(
        parse(&cluster).unwrap().limits[0].scope,
        Scope::Cluster {
            sync: std::time::Duration::from_millis(500)
        }
    );
    for (text, says) in [
        (
            GOOD.replace("per: 10s }", "per: 10s, scope: cluster }"),
            "needs store.kind redis",
        ),
        (
            GOOD.replace("per: 10s }", "per: 10s, sync_interval: 1s }"),
            "sync_interval is for scope: cluster",
        ),
        (
            redis.replace(
                "per: 10s }",
                "per: 10s, scope: cluster, sync_interval: 10s }",
            ),
            "shorter than per",
        ),
        (
            redis.replace("per: 10s }", "per: 10s, scope: everywhere }"),
            "unknown variant `everywhere`",
        ),
    ] {
        let (at, message) = error_at(&text);
        assert_eq!(at.line, 16, "{message}");
        assert!(message.contains(says), "{message}");
    }
}

#[test]
fn showcase_fields_resolve_and_mistakes_point_at_them() {
    use flashgate::config::Image;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("img")).unwrap();
    std::fs::write(dir.path().join("img/phone.webp"), b"webp").unwrap();
    let with = |title: &str, price: &str, image: &str| {
        GOOD.replace(
            "catalog:",
            &format!("static_dir: {}\ncatalog:", dir.path().display()),
        )
        .replace(
            "    ends_at: 2026-11-22T13:00:00Z\n",
            &format!(
                "    ends_at: 2026-11-22T13:00:00Z\n    title: {title}\n    price: {price}\n    image: {image}\n"
            ),
        )
    };
    // Markup, quotes and non-ASCII are text; the page sets it with textContent.
    let c = parse(&with(
        r#""<script>alert('x')</script> \"Ünï\" 手机""#,
        "\"¥99.00\"",
        "img/phone.webp",
    ))
    .unwrap();
    let show = &c.sales[0].showcase;
    assert_eq!(
        show.title.as_deref(),
        Some("<script>alert('x')</script> \"Ünï\" 手机")
    );
    assert_eq!(show.price.as_deref(), Some("¥99.00"));
    assert_eq!(show.image, Some(Image::Static("img/phone.webp".into())));
    let c = parse(&with("Phone", "'9.99 €'", "https://cdn.example/p.webp")).unwrap();
    assert_eq!(
        c.sales[0].showcase.image,
        Some(Image::Https("https://cdn.example/p.webp".into()))
    );
    // Left out: the defaults.
    assert_eq!(parse(GOOD).unwrap().sales[0].showcase, Default::default());

    // Each mistake points at its value (lines 16, 17, 18 with the static_dir line added).
    let long = "x".repeat(121);
    let cases = [
        (
            with("\"a\\u0007b\"", "1", "img/phone.webp"),
            (16, 12),
            "U+0007",
        ),
        (with(&long, "1", "img/phone.webp"), (16, 12), "at most 120"),
        (with("\"  \"", "1", "img/phone.webp"), (16, 12), "is empty"),
        (
            with("A", &"9".repeat(33), "img/phone.webp"),
            (17, 12),
            "at most 32",
        ),
        (with("A", "1", "img/missing.webp"), (18, 12), "missing.webp"),
        (
            with("A", "1", "../etc/passwd"),
            (18, 12),
            "not a plain path",
        ),
        (
            with("A", "1", "http://cdn.example/p.webp"),
            (18, 12),
            "only https",
        ),
        (with("A", "1", "img"), (18, 12), "not a regular file"),
    ];
    for (text, (line, column), says) in cases {
        let (at, message) = error_at(&text);
        assert_eq!((at.line, at.column), (line, column), "{message}");
        assert!(message.contains(says), "{message}");
        assert!(
            message.contains("sales[0]") || message.starts_with("f.yaml:"),
            "{message}"
        );
    }
}

#[test]
fn a_sale_queue_resolves_with_defaults_and_its_mistakes_are_placed() {
    let queued = GOOD.replace(
        "    ends_at: 2026-11-22T13:00:00Z\n",
        "    ends_at: 2026-11-22T13:00:00Z\n    queue:\n      mode: shuffle\n      admit_per_second: 50\n",
    );
    let config = parse(&queued).unwrap();
    let q = config.sales[0].queue.expect("a queue");
    assert_eq!(q.mode, flashgate::config::QueueMode::Shuffle);
    assert_eq!(q.admit_per_second, 50);
    assert_eq!(q.prequeue, std::time::Duration::from_secs(600));
    assert_eq!(q.pass_ttl, std::time::Duration::from_secs(120));
    assert_eq!(q.stock_multiple, 2);
    assert!(parse(GOOD).unwrap().sales[0].queue.is_none());
    // (text replaced, replacement, where, what)
    let cases = [
        (
            "admit_per_second: 50",
            "admit_per_second: 0",
            (17, 25),
            "admit_per_second must be",
        ),
        (
            "mode: shuffle",
            "mode: lottery",
            (16, 13),
            "unknown variant `lottery`",
        ),
        (
            "mode: shuffle",
            "mode: fifo\n      pass_ttl: 0s",
            (17, 17),
            "pass_ttl must be",
        ),
        (
            "mode: shuffle",
            "mode: fifo\n      stock_multiple: 0",
            (17, 23),
            "stock_multiple must be",
        ),
        (
            "mode: shuffle",
            "mode: fifo\n      prequeue: soon",
            (17, 17),
            "expected a duration",
        ),
        (
            "mode: shuffle",
            "mode: fifo\n      admit: 5",
            (17, 7),
            "unknown field `admit`",
        ),
    ];
    for (from, to, (line, column), says) in cases {
        let (at, message) = error_at(&queued.replace(from, to));
        assert_eq!((at.line, at.column), (line, column), "{to}: {message}");
        assert!(message.contains(says), "{to}: {message}");
        assert!(message.starts_with("f.yaml:"), "{message}");
    }
    // Without admit_per_second: a missing field, placed at the queue.
    let (_, message) = error_at(&queued.replace("      admit_per_second: 50\n", ""));
    assert!(message.contains("admit_per_second"), "{message}");
}

#[test]
fn upstreams_and_routes_resolve_and_their_mistakes_are_placed() {
    let shop = format!(
        "{GOOD}upstreams:\n  shop:\n    servers: ['127.0.0.1:9000', {{ addr: '127.0.0.1:9001', weight: 3 }}]\n    \
         health: {{ path: /healthz }}\nroutes:\n  - name: pages\n    path: /products/\n    \
         upstream: shop\n    limits: [per-uid]\n"
    );
    let config = parse(&shop).unwrap();
    assert_eq!(config.upstreams.len(), 1);
    let pool = &config.upstreams[0];
    assert_eq!(pool.servers.len(), 2);
    assert_eq!(pool.servers[1].weight, 3);
    let health = pool.health.as_ref().expect("a health check");
    assert_eq!(health.http.as_ref().map(|h| h.status), Some(200));
    assert_eq!((health.fall, health.rise), (3, 2));
    assert_eq!(config.routes[0].upstream, 0);
    assert_eq!(config.routes[0].limits, vec![0]);
    assert_eq!(config.routes[0].max_body_bytes, 1024 * 1024);
    assert_eq!(config.routes[0].retries, 1);
    assert!(
        config.limits[0].buys,
        "a limit counts buys unless it says not"
    );
    // (text replaced, replacement, where, what)
    let cases = [
        (
            "upstream: shop",
            "upstream: shoq",
            (24, 15),
            "no upstream named \"shoq\"",
        ),
        (
            "'127.0.0.1:9000'",
            "'127.0.0.1'",
            (19, 15),
            "expected host:port",
        ),
        (
            "'127.0.0.1:9000'",
            "'http://a:80'",
            (19, 15),
            "no scheme or path",
        ),
        ("weight: 3", "weight: 0", (19, 33), "weight is 1 to"),
        (
            "limits: [per-uid]",
            "limits: [per-ip]",
            (25, 14),
            "no limit named \"per-ip\"",
        ),
        ("path: /healthz", "path: healthz", (20, 21), "health.path"),
        (
            "path: /products/",
            "path: /products/\n    exact: /x",
            (24, 12),
            "not both",
        ),
        ("name: pages", "name: 'a b'", (22, 11), "route name"),
        (
            "upstream: shop",
            "upstream: shop\n    retries: 9",
            (25, 14),
            "retries is 0 to 5",
        ),
        (
            "upstream: shop",
            "upstream: shop\n    login: always",
            (25, 12),
            "unknown variant `always`",
        ),
        (
            "upstream: shop",
            "upstream: shop\n    methods: [FETCH!]",
            (25, 15),
            "HTTP method",
        ),
    ];
    let mut wrong = Vec::new();
    for (from, to, (line, column), says) in cases {
        let (at, message) = error_at(&shop.replace(from, to));
        if (at.line, at.column) != (line, column) || !message.contains(says) {
            wrong.push(format!(
                "{to}: expected {line}:{column} {says:?}, got {message}"
            ));
        }
        assert!(message.starts_with("f.yaml:"), "{message}");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The origin may be a pool.
    let pooled = shop.replace("  url: http://127.0.0.1:8081", "  upstream: shop");
    let config = parse(&pooled).unwrap();
    assert_eq!(config.origin.upstream, Some(0));
    assert_eq!(config.origin.url, "upstream shop");
    let (at, message) =
        error_at(&shop.replace("  url: http://127.0.0.1:8081", "  upstream: orders"));
    assert_eq!((at.line, at.column), (7, 13), "{message}");
    assert!(
        message.contains("no upstream named \"orders\""),
        "{message}"
    );
    let (_, message) = error_at(&shop.replace(
        "  url: http://127.0.0.1:8081",
        "  url: http://127.0.0.1:8081\n  upstream: shop",
    ));
    assert!(message.contains("not both"), "{message}");
}
