//! Secrets fail closed: both binaries refuse to start with one secret set and another missing,
//! naming what is missing, and still start on the development secrets with none set; and
//! `flashgate check --probe-origin` tells whether the origin accepts the edge's signature,
//! without making an order.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::orders_server::{Database, OrdersServer};
use crate::common::redis_server::RedisServer;
use crate::common::*;

/// A configuration for the edge on free ports with its secrets from the environment.
fn edge_yaml(dir: &Path, origin: &str, edge_secret: &str) -> std::path::PathBuf {
    let yaml = format!(
        "listen: 127.0.0.1:{}\n\
         admin_listen: 127.0.0.1:{}\n\
         secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '{edge_secret}' }}\n\
         origin: {{ url: 'http://{origin}', path: /orders, connect_timeout: 500ms, timeout: 2s }}\n\
         static_dir: {}\n\
         catalog: {{ products: [1-100] }}\n\
         sales:\n  - {{ product: 42, stock: 5, starts_at: '{}', ends_at: '{}' }}\n\
         \x20 - {{ product: 43, stock: 5, starts_at: '{}', ends_at: '{}' }}\n",
        free_port(),
        free_port(),
        static_dir().display(),
        at(-60),
        at(3600),
        at(-7200),
        at(-3600),
    );
    let path = dir.join("flashgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `cmd` with none of the secret variables of the test runner's environment.
fn without_secrets(mut cmd: Command) -> Command {
    for name in flashgate::config::SECRET_VARIABLES {
        cmd.env_remove(name);
    }
    cmd
}

fn flashgate_cmd() -> Command {
    without_secrets(Command::new(env!("CARGO_BIN_EXE_flashgate")))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `cmd` to its end, at most `limit` (a binary that does not refuse would serve forever).
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: it did not refuse to start\n{}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_edge_refuses_one_secret_without_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let config = edge_yaml(dir.path(), "127.0.0.1:1", "${FLASHGATE_EDGE_SECRET}");
    // The login secret set, the edge's missing: `run` refuses, naming the edge's variable and
    // where it is written.
    let mut cmd = flashgate_cmd();
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET);
    let out = run_bounded(cmd, Duration::from_secs(10));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:3:", config.display()))
            && err.contains("secrets.edge names FLASHGATE_EDGE_SECRET, which is not set"),
        "{err}"
    );
    // The other way round, and through `check` too.
    let mut cmd = flashgate_cmd();
    cmd.args(["check", "--config"])
        .arg(&config)
        .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET);
    let out = run_bounded(cmd, Duration::from_secs(10));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("secrets.login names FLASHGATE_LOGIN_SECRET, which is not set"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_with_no_secret_set_starts_on_the_development_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = edge_yaml(dir.path(), "127.0.0.1:1", "${FLASHGATE_EDGE_SECRET}");
    let check = flashgate_cmd()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stdout(&check).contains("DEVELOPMENT (login, edge)"));
    // `run` serves; its log says loudly why it should not.
    let text = std::fs::read_to_string(&config).unwrap();
    let admin = text
        .lines()
        .find_map(|l| l.strip_prefix("admin_listen: "))
        .unwrap()
        .to_string();
    let log = std::fs::File::create(dir.path().join("edge.log")).unwrap();
    let mut child = flashgate_cmd()
        .args(["run", "--config"])
        .arg(&config)
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let healthy = loop {
        if let Ok(r) = reqwest::get(format!("http://{admin}/healthz")).await {
            break r.status() == 200;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("edge.log")).unwrap();
    assert!(healthy, "the edge did not start: {log}");
    assert!(log.contains("DEVELOPMENT SECRETS IN USE"), "{log}");
    // `run` logs what `check` warns about (product 43's sale ended an hour ago).
    assert!(log.contains("the sale of product 43 ended at"), "{log}");
}

fn orders_cmd(redis: &str, database: &Database) -> Command {
    let mut cmd = without_secrets(Command::new(env!("CARGO_BIN_EXE_flashgate-orders")));
    cmd.args(["run", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--database", &database.url(), "--redis", redis]);
    cmd
}

#[test]
fn the_order_backend_refuses_a_half_configured_environment() {
    // Nothing listens on this Redis: the refusal comes before any connection.
    let redis = format!("redis://127.0.0.1:{}", free_port());
    let database = Database::sqlite();
    let mut cmd = orders_cmd(&redis, &database);
    cmd.env("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET);
    let out = run_bounded(cmd, Duration::from_secs(10));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the edge secret is not set")
            && err.contains("FLASHGATE_EDGE_SECRET")
            && err.contains("while FLASHGATE_LOGIN_SECRET is"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_backend_with_no_secret_set_starts_on_the_development_secret() {
    let redis = RedisServer::start();
    let database = Database::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = orders_cmd(&redis.url(), &database);
    let port = cmd
        .get_args()
        .nth(2)
        .and_then(|a| a.to_str())
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap();
    let log = std::fs::File::create(dir.path().join("orders.log")).unwrap();
    let mut child = cmd.env("RUST_LOG", "warn").stderr(log).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            break r.status() == 200;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("orders.log")).unwrap();
    assert!(healthy, "flashgate-orders did not start: {log}");
    assert!(log.contains("DEVELOPMENT edge secret in use"), "{log}");
}

/// `flashgate check --probe-origin` against `origin` with the edge secret `edge_secret`.
fn probe(origin: &str, edge_secret: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config = edge_yaml(dir.path(), origin, "${PROBE_EDGE_SECRET}");
    let mut cmd = flashgate_cmd();
    cmd.args(["check", "--probe-origin", "--config"])
        .arg(&config)
        .env("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET)
        .env("PROBE_EDGE_SECRET", edge_secret);
    run_bounded(cmd, Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_tells_whether_the_order_backend_accepts_the_signature() {
    let redis = RedisServer::start();
    let database = Database::sqlite();
    let orders = OrdersServer::start(&database, &redis.url(), "15m").await;
    let origin = format!("127.0.0.1:{}", orders.port);

    // The same secret: accepted, and no order made.
    let out = probe(&origin, EDGE_SECRET);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{said}{}", stderr(&out));
    assert!(
        said.contains("OK: the origin accepts the edge's signature"),
        "{said}"
    );
    let (status, listed) = orders.get("/orders?user=flashgate-probe").await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["orders"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    assert!(
        orders
            .metrics()
            .await
            .contains("flashgate_orders_unauthorized_total{reason=\"stale\"} 1"),
        "the backend counted the probe as stale"
    );

    // Another secret: refused, and said so.
    let out = probe(&origin, "another-edge-secret-0123456789abcdef-xyz");
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("FAIL: the origin REFUSES the edge's signature"),
        "{said}"
    );
    assert!(orders
        .metrics()
        .await
        .contains("flashgate_orders_unauthorized_total{reason=\"forged\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_flags_an_origin_that_checks_nothing_and_one_that_is_down() {
    // The recording test origin answers 200 to anything: it took a forward an hour old.
    let origin = Origin::start().await;
    let out = probe(&origin.addr.to_string(), EDGE_SECRET);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("FAIL: the origin ACCEPTED a forward stamped an hour ago"),
        "{said}"
    );
    let seen = origin.forwards();
    assert_eq!(seen.len(), 1, "one request");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].header("x-flashgate-uid"), "flashgate-probe");

    // Nothing listening.
    let out = probe(&format!("127.0.0.1:{}", free_port()), EDGE_SECRET);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAIL: the origin at"), "{said}");
    assert!(said.contains("cannot be reached"), "{said}");
}
