//! Test harness: a recording origin in-process, the real `flashgate` binary as a child process
//! on free ports, login tokens, and a raw-socket client for paths an HTTP client would
//! normalise.
#![allow(dead_code)]

pub mod crowd;
pub mod fault_origin;
pub mod http2;
pub mod https;
pub mod judge;
pub mod orders_server;
pub mod raw;
pub mod redis_server;
pub mod shop_server;
pub mod suite;
pub mod tcp_proxy;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use flashgate::admission::login;
use flashgate::ground::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const LOGIN_SECRET: &str = "test-login-secret-0123456789abcdef-0123";
pub const EDGE_SECRET: &str = "test-edge-secret-0123456789abcdef-01234";

/// A port nothing listens on right now, and one this test process has not handed out before
/// (the kernel may give a just-closed ephemeral port again: two calls in a row, or two tests at
/// once, would then get the same one).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 3339 time `offset_secs` from now.
pub fn at(offset_secs: i64) -> String {
    let t = if offset_secs >= 0 {
        SystemTime::now() + Duration::from_secs(offset_secs as u64)
    } else {
        SystemTime::now() - Duration::from_secs(offset_secs.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(t).to_string()
}

/// An HS256 login token for `uid` signed with `key`, expiring `ttl` seconds from now.
pub fn token_with(key: &str, uid: &str, ttl: i64) -> String {
    let exp = now_secs().saturating_add_signed(ttl);
    login::mint(&Secret::new(key.as_bytes()), uid, exp)
}

/// A valid login token for `uid`.
pub fn token(uid: &str) -> String {
    token_with(LOGIN_SECRET, uid, 3600)
}

/// One request the origin received.
#[derive(Debug, Clone)]
pub struct Forward {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
}

impl Forward {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

/// The test origin: answers 200 with the reservation and records every request.
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Forward>>>,
}

impl Origin {
    pub async fn start() -> Origin {
        let seen: Arc<Mutex<Vec<Forward>>> = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap| {
                let record = record.clone();
                async move {
                    let reservation = headers
                        .get("x-flashgate-reservation")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    record.lock().unwrap().push(Forward {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        headers,
                    });
                    (
                        StatusCode::OK,
                        [("content-type", "application/json")],
                        format!(r#"{{"outcome":"won","order":"{reservation}"}}"#),
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Origin { addr, seen }
    }

    pub fn forwards(&self) -> Vec<Forward> {
        self.seen.lock().unwrap().clone()
    }
}

/// The path of the repository's static directory.
pub fn static_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("static")
}

/// A running `flashgate run` child process.
pub struct Edge {
    child: Child,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub admin: String,
}

impl Edge {
    /// Write `yaml` (listening on `host`, ports `listen` and `admin`) and start.
    pub async fn start(
        yaml: &str,
        dir: tempfile::TempDir,
        host: &str,
        listen: u16,
        admin: u16,
    ) -> Edge {
        Self::start_scheme("http", yaml, dir, host, listen, admin).await
    }

    /// [`Edge::start`] for a configuration with `tls:`: the public listener speaks HTTPS, and
    /// `base` is an `https://` URL (the admin listener stays plain HTTP).
    pub async fn start_https(
        yaml: &str,
        dir: tempfile::TempDir,
        host: &str,
        listen: u16,
        admin: u16,
    ) -> Edge {
        Self::start_scheme("https", yaml, dir, host, listen, admin).await
    }

    async fn start_scheme(
        scheme: &str,
        yaml: &str,
        dir: tempfile::TempDir,
        host: &str,
        listen: u16,
        admin: u16,
    ) -> Edge {
        let config = dir.path().join("flashgate.yaml");
        std::fs::write(&config, yaml).unwrap();
        let child = Self::spawn(dir.path());
        let mut edge = Edge {
            child,
            dir,
            base: format!("{scheme}://{host}:{listen}"),
            admin: format!("http://{host}:{admin}"),
        };
        edge.wait_ready().await;
        edge
    }

    fn spawn(dir: &Path) -> Child {
        Self::spawn_with(dir, &[])
    }

    fn spawn_with(dir: &Path, flags: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("edge.log"))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_flashgate"))
            .arg("run")
            .args(flags)
            .arg("--config")
            .arg(dir.join("flashgate.yaml"))
            .env("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET)
            .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start flashgate")
    }

    /// The edge's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL the edge (no shutdown of any kind).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start `flashgate run --upgrade` on the same configuration: the new process takes the
    /// listening sockets over and this handle follows it. Returns the old process, which
    /// drains and exits on its own.
    pub fn upgrade(&mut self) -> Child {
        std::mem::replace(
            &mut self.child,
            Self::spawn_with(self.dir.path(), &["--upgrade"]),
        )
    }

    /// Start the edge again with the same configuration and ports (after [`Edge::kill`]).
    pub async fn restart(&mut self) {
        self.child = Self::spawn(self.dir.path());
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::Client::new();
        loop {
            let admin = client.get(format!("{}/healthz", self.admin)).send().await;
            // The test client speaks no TLS: an HTTPS listener is ready once it accepts.
            let public = match self.base.strip_prefix("https://") {
                Some(addr) => tokio::net::TcpStream::connect(addr).await.map(drop).is_ok(),
                None => client
                    .get(format!("{}/static/none", self.base))
                    .send()
                    .await
                    .is_ok(),
            };
            if admin.is_ok() && public {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("flashgate exited with {status}; log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("flashgate did not start; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("edge.log")).unwrap_or_default()
    }

    /// Reload the edge's configuration file (SIGHUP) and return once it runs the new one: the
    /// reload counter moved. Panics with the log if the file was refused or nothing happened
    /// within 60 s (a reload recompresses the page's assets: seconds on a loaded machine).
    pub async fn reload(&self) {
        let count = |page: &str, result: &str| {
            sample(
                page,
                &format!("flashgate_reloads_total{{result=\"{result}\"}}"),
            )
            .unwrap_or(0.0)
        };
        let before = self.metrics().await;
        let (ok, refused) = (count(&before, "ok"), count(&before, "refused"));
        let hup = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(hup.success(), "kill -HUP {}", self.pid());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let page = self.metrics().await;
            if count(&page, "ok") > ok {
                return;
            }
            assert!(
                count(&page, "refused") == refused,
                "the reload was refused; log:\n{}",
                self.log()
            );
            assert!(Instant::now() < deadline, "no reload; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Move `product`'s sale to start at `starts_at` (RFC 3339): rewrite its `starts_at` in the
    /// configuration file and [`Edge::reload`]. See [`start_in`].
    pub async fn reschedule(&self, product: u64, starts_at: &str) {
        let path = self.dir.path().join("flashgate.yaml");
        let yaml = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, with_start(&yaml, product, starts_at)).unwrap();
        self.reload().await;
    }

    /// The buy path `button.js` reveals for `product` (None while the sale is not open).
    pub async fn buy_path(&self, product: u64) -> Option<String> {
        let script = reqwest::get(format!("{}/sale/{product}/button.js", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let state: serde_json::Value =
            serde_json::from_str(flashgate::edge::button::state_of(&script)?).unwrap();
        state["buy_path"].as_str().map(str::to_string)
    }

    /// The full buy URL of an open sale.
    pub async fn buy_url(&self, product: u64) -> String {
        let path = self.buy_path(product).await.expect("the sale is open");
        format!("{}{path}", self.base)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The metrics page once `series` reads `value`. A request is counted in Pingora's logging
/// phase, after its answer is sent, so a client can see the answer a moment before the counter
/// moves; this waits (at most 5 s) instead of racing it.
pub async fn metrics_when(edge: &Edge, series: &str, value: f64) -> String {
    // Far above what it takes: a reload in a debug build on a loaded machine takes seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = edge.metrics().await;
        if sample(&page, series) == Some(value) || Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one metric sample line (`name{labels}`) in a Prometheus text page.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].trim().parse().ok())
}

/// POST a buy to `url` as `uid`: the status and the JSON body's `outcome` ("" if none).
pub async fn buy_outcome(c: &reqwest::Client, url: &str, uid: &str) -> (u16, String) {
    let resp = c
        .post(url)
        .bearer_auth(token(uid))
        .send()
        .await
        .expect("edge answers");
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, body["outcome"].as_str().unwrap_or("").to_string())
}

/// A client that connects from `ip` (any 127.0.0.0/8 address works on Linux loopback).
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// `GET request_line_path` sent as written (no client's normalising): the answer's status.
pub async fn raw_status(base: &str, request_line_path: &str) -> u16 {
    let head =
        format!("GET {request_line_path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    raw_request(base, &head).await
}

/// Send `head` as it is on a fresh connection to `base`; the answer's status.
pub async fn raw_request(base: &str, head: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// The parts of a configuration a test varies.
pub struct Setup<'a> {
    pub origin: SocketAddr,
    /// The `store:` value, e.g. `{ kind: memory }`; a Redis store is seeded with
    /// `flashgate stock load` before the edge starts.
    pub store: &'a str,
    pub sales: &'a str,
    pub limits: &'a str,
    pub trusted: &'a str,
    pub blocklist: &'a str,
}

/// Start an edge for `setup` on fresh ports.
pub async fn edge(setup: Setup<'_>) -> Edge {
    edge_with(setup, "").await
}

/// Start an edge for `setup` with `extra` top-level YAML (e.g. a `captcha:` section).
pub async fn edge_with(setup: Setup<'_>, extra: &str) -> Edge {
    edge_full(setup, "", extra).await
}

/// Start an edge for `setup` with more `origin:` keys (`origin_keys`, e.g. `timeout: 1s`) and
/// `extra` top-level YAML.
pub async fn edge_full(setup: Setup<'_>, origin_keys: &str, extra: &str) -> Edge {
    edge_on("127.0.0.1", setup, origin_keys, extra).await
}

/// [`edge_full`] listening on `host` (any 127.0.0.0/8 address: several edges on one machine).
pub async fn edge_on(host: &str, setup: Setup<'_>, origin_keys: &str, extra: &str) -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let blocklist = dir.path().join("blocklist.txt");
    std::fs::write(&blocklist, setup.blocklist).unwrap();
    let (listen, admin) = (free_port(), free_port());
    let yaml = format!(
        "listen: {host}:{listen}\n\
         admin_listen: {host}:{admin}\n\
         threads: 2\n\
         secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
         trusted_proxies: {trusted}\n\
         origin: {{ url: http://{origin}, path: /orders, connect_timeout: 500ms{origin_extra} }}\n\
         store: {store}\n\
         static_dir: {static_dir}\n\
         catalog: {{ products: [1-1000] }}\n\
         sales:\n{sales}\n\
         limits:\n{limits}\n\
         blocklist: {{ file: {blocklist} }}\n\
         {extra}\n",
        trusted = setup.trusted,
        store = setup.store,
        origin = setup.origin,
        origin_extra = if origin_keys.is_empty() {
            String::new()
        } else {
            format!(", {origin_keys}")
        },
        static_dir = static_dir().display(),
        sales = setup.sales,
        limits = setup.limits,
        blocklist = blocklist.display(),
    );
    if setup.store.contains("redis") {
        let config = dir.path().join("flashgate.yaml");
        std::fs::write(&config, &yaml).unwrap();
        let out = flashgate(&["stock", "load", "--config", &config.to_string_lossy()]);
        assert!(
            out.status.success(),
            "stock load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Edge::start(&yaml, dir, host, listen, admin).await
}

/// Start `product`'s sale on every edge of `edges` `lead` from now, once they are all running:
/// the test's time before the start is then its own, however long the machine took to start
/// the edges. Each edge's file is rewritten and reloaded ([`Edge::reschedule`]), all edges at
/// once. A loaded machine can take seconds over a round of reloads, and an edge given a start
/// the round then overruns opens its sale early for good (a queue's pre-queue closes), so a
/// first round reloads the files unchanged to time the reloads: the lead is at least four such
/// rounds. If the real round still left less than half of the
/// lead, it is done again further ahead. Returns the start.
pub async fn start_in(edges: &[&Edge], product: u64, lead: Duration) -> SystemTime {
    let reschedule_all = |secs: u64| async move {
        let starts = UNIX_EPOCH + Duration::from_secs(secs);
        let text = humantime::format_rfc3339_seconds(starts).to_string();
        let rounds = edges.iter().map(|edge| edge.reschedule(product, &text));
        futures::future::join_all(rounds).await;
        starts
    };
    let timed = Instant::now();
    futures::future::join_all(edges.iter().map(|edge| edge.reload())).await;
    let round = timed.elapsed();
    let mut lead = lead.max(round * 4);
    loop {
        // Whole seconds, as the file holds them.
        let starts = reschedule_all(now_secs() + lead.as_secs().max(1)).await;
        let left = starts.duration_since(SystemTime::now()).unwrap_or_default();
        if left >= lead / 2 {
            return starts;
        }
        eprintln!(
            "the reloads took {:?}: moving the start further ahead",
            lead - left
        );
        lead *= 2;
    }
}

/// `yaml` with the `starts_at` of `product`'s sale (a one-line flow mapping under `sales:`, as
/// every test writes them) replaced by `starts_at`.
pub fn with_start(yaml: &str, product: u64, starts_at: &str) -> String {
    let key = format!("product: {product},");
    let mut found = false;
    let lines: Vec<String> = yaml
        .lines()
        .map(|line| {
            let Some(at) = line.find("starts_at: ").filter(|_| line.contains(&key)) else {
                return line.to_string();
            };
            let value = at + "starts_at: ".len();
            let end = line[value..]
                .find(',')
                .map_or(line.len(), |comma| value + comma);
            found = true;
            format!("{}'{starts_at}'{}", &line[..value], &line[end..])
        })
        .collect();
    assert!(found, "no sale of product {product} in:\n{yaml}");
    lines.join("\n") + "\n"
}

/// Send `signal` (`-STOP`, `-CONT`, `-HUP`) to `child`.
pub fn signal(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args([signal, &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill {signal} {pid}");
}

/// Run the flashgate binary with the test secrets.
pub fn flashgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(args)
        .env("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET)
        .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET)
        .output()
        .expect("run flashgate")
}
