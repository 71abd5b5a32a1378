//! The access log through the real binary: one JSON line per request of the routes asked
//! for, with no token in it; to stdout; written off the hot path (a writer that cannot write
//! blocks no request, and every line is either written or counted dropped); and warnings that
//! repeat per request (the store unavailable) logged once per period with a count.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use futures::StreamExt;
use serde_json::Value;

/// A configuration on free ports with `extra` YAML; returns it and its ports.
fn yaml(origin: &str, store: &str, extra: &str) -> (String, u16, u16) {
    let (listen, admin) = (free_port(), free_port());
    let text = format!(
        "listen: 127.0.0.1:{listen}\n\
         admin_listen: 127.0.0.1:{admin}\n\
         threads: 2\n\
         secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
         origin: {{ url: 'http://{origin}', path: /orders, connect_timeout: 500ms }}\n\
         store: {store}\n\
         static_dir: {}\n\
         catalog: {{ products: [1-100] }}\n\
         sales:\n  - {{ product: 42, stock: 5, starts_at: '{}', ends_at: '{}' }}\n\
         limits:\n  - {{ name: per-uid, key: uid, requests: 1000, per: 10s, expected_keys: 1000 }}\n\
         {extra}\n",
        static_dir().display(),
        at(-60),
        at(3600),
    );
    (text, listen, admin)
}

async fn start(origin: &str, store: &str, extra: &str) -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let (text, listen, admin) = yaml(origin, store, extra);
    Edge::start(&text, dir, "127.0.0.1", listen, admin).await
}

/// Lines of `path` once there are `n` (at most 5 s), parsed.
async fn lines_when(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_request_of_the_routes_asked_for_and_never_a_token() {
    let origin = Origin::start().await;
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("access.log");
    let extra = format!(
        "access_log: {{ path: {}, routes: [buy, challenge] }}",
        log.display()
    );
    let edge = start(&origin.addr.to_string(), "{ kind: memory }", &extra).await;
    let c = reqwest::Client::new();
    let url = edge.buy_url(42).await; // a button.js request: not logged
    let secret_segment = url.rsplit('/').next().unwrap().to_string();
    let alice = token("alice");

    // Not logged: the page and a static file.
    assert_eq!(
        c.get(format!("{}/", edge.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Logged: a win, a duplicate, one without a login, one with a forged path, a challenge.
    let won = c.post(&url).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(won.status(), 200);
    let dup = c.post(&url).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(dup.status(), 409);
    let anon = c.post(&url).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    let forged = c
        .post(format!("{}/buy/42/guess", edge.base))
        .bearer_auth(token("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let challenge = c
        .get(format!("{}/api/challenge?product=42", edge.base))
        .bearer_auth(token("carol"))
        .send()
        .await
        .unwrap();
    // The sale asks for no proof of work: 404 not_found.
    assert_eq!(challenge.status(), 404);

    let lines = lines_when(&log, 5).await;
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let got: Vec<(&str, &str, u64, &Value)> = lines
        .iter()
        .map(|l| {
            (
                l["route"].as_str().unwrap(),
                l["outcome"].as_str().unwrap(),
                l["status"].as_u64().unwrap(),
                &l["uid"],
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("buy", "won", 200, &Value::from("alice")),
            ("buy", "duplicate", 409, &Value::from("alice")),
            ("buy", "login_required", 401, &Value::Null),
            ("buy", "bad_sale_path", 403, &Value::Null),
            ("challenge", "not_found", 404, &Value::Null),
        ]
    );
    // The winner's reservation is the one the origin got.
    let forwarded = origin.forwards();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(
        lines[0]["reservation"],
        forwarded[0].header("x-flashgate-reservation")
    );
    assert!(lines[1..].iter().all(|l| l["reservation"].is_null()));
    for l in &lines {
        assert_eq!(l["client_ip"], "127.0.0.1");
        let latency = l["latency_ms"].as_f64().unwrap();
        assert!((0.0..5000.0).contains(&latency), "{l}");
        let time = humantime::parse_rfc3339(l["time"].as_str().unwrap()).unwrap();
        let age = std::time::SystemTime::now().duration_since(time).unwrap();
        assert!(age < Duration::from_secs(60), "{l}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [alice.as_str(), secret_segment.as_str(), "guess"] {
        assert!(!text.contains(secret), "the log holds a token: {text}");
    }
    assert_eq!(
        sample(&edge.metrics().await, "flashgate_access_log_dropped_total"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_stdout_every_route_by_default() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (text, listen, admin) = yaml(
        &origin.addr.to_string(),
        "{ kind: memory }",
        "access_log: { path: stdout }",
    );
    let config = dir.path().join("flashgate.yaml");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("stdout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["run", "--config"])
        .arg(&config)
        .env("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET)
        .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET)
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{listen}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("http://127.0.0.1:{admin}/healthz"))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the edge did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let script = reqwest::get(format!("{base}/sale/42/button.js"))
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    let lines = lines_when(&out, 2).await;
    let _ = child.kill();
    let _ = child.wait();
    let routes: Vec<_> = lines.iter().map(|l| l["route"].as_str().unwrap()).collect();
    assert_eq!(routes, ["static", "button"], "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l["outcome"] == "served" && l["status"] == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_cannot_write_blocks_no_request_and_drops_are_counted() {
    // The log is a named pipe that the test opens but does not read: once the pipe's buffer
    // and the writer's are full, the writer blocks in write(2) for as long as the test wants.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("access.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Opening a pipe for reading waits for its writer (the edge, at start).
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::File::open(fifo).unwrap())
    };
    let origin = Origin::start().await;
    let extra = format!(
        "access_log: {{ path: {}, routes: [static], buffer: 8 }}",
        fifo.display()
    );
    let edge = start(&origin.addr.to_string(), "{ kind: memory }", &extra).await;
    let reader = reader.join().unwrap();

    const REQUESTS: usize = 3000;
    let c = reqwest::Client::new();
    let url = format!("{}/static/none", edge.base);
    let started = Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(0..REQUESTS)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            async move { c.get(&url).send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let took = started.elapsed();
    assert!(statuses.iter().all(|&s| s == 404), "every request answered");
    let dropped = sample(
        &metrics_when(
            &edge,
            "flashgate_requests_total{outcome=\"not_found\",route=\"static\"}",
            REQUESTS as f64,
        )
        .await,
        "flashgate_access_log_dropped_total",
    )
    .unwrap();
    // ~64 KiB of pipe and ~64 KiB of the writer's buffer hold well under 1,000 lines.
    assert!(
        dropped >= 1000.0,
        "{dropped} dropped: the writer was never blocked? ({took:?})"
    );

    // Now read: every request is a line written or a line counted dropped.
    let counted = std::thread::spawn(move || {
        let mut n = 0usize;
        let mut lines = BufReader::new(reader).lines();
        while n + (dropped as usize) < REQUESTS {
            match lines.next() {
                Some(Ok(l)) => {
                    let v: Value = serde_json::from_str(&l).unwrap();
                    assert_eq!(v["route"], "static");
                    n += 1;
                }
                _ => break,
            }
        }
        n
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !counted.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the log's lines did not all arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = counted.join().unwrap();
    eprintln!("{REQUESTS} requests in {took:?}: {written} lines written, {dropped} dropped");
    assert_eq!(
        written + dropped as usize,
        REQUESTS,
        "written {written}, dropped {dropped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_reported_once_per_period_with_a_count() {
    // A Redis nobody listens on: every buy that reaches the store fails.
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let store = format!("{{ kind: redis, url: '{dead}', timeout: 50ms }}");
    let origin = Origin::start().await;
    let edge = start(&origin.addr.to_string(), &store, "").await;
    let url = edge.buy_url(42).await;
    let c = reqwest::Client::new();
    // Few enough to take far less than the 5 s period on a loaded machine.
    for n in 0..50 {
        let (status, outcome) = buy_outcome(&c, &url, &format!("u{n}")).await;
        assert_eq!((status, outcome.as_str()), (503, "store_unavailable"));
    }
    let reported = |log: &str| log.matches("reserve failed").count();
    let log = edge.log();
    assert_eq!(reported(&log), 1, "{log}");
    // After the period, the next failure is reported with the ones held back.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let (status, _) = buy_outcome(&c, &url, "late").await;
    assert_eq!(status, 503);
    let log = edge.log();
    assert_eq!(reported(&log), 2, "{log}");
    assert!(
        log.contains("(49 more store failures since the last report)"),
        "{log}"
    );
}
