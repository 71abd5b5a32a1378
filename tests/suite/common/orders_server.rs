//! `flashgate-orders` processes for tests, on SQLite in a temp dir or on the machine's
//! PostgreSQL (database `test`) in a schema of their own that is dropped afterwards.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flashgate::ground::signing::origin_signature;
use flashgate::ground::Secret;
use flashgate::stock::Reservation;

use super::{free_port, EDGE_SECRET};

/// Where a test's orders live.
pub enum Database {
    /// A SQLite file in a temp dir.
    Sqlite(tempfile::TempDir),
    /// A fresh schema in the machine's PostgreSQL.
    Postgres { schema: String },
}

/// The machine's PostgreSQL (trust auth), overridable for other machines.
pub fn postgres_base() -> String {
    std::env::var("FLASHGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string())
}

/// The address of [`postgres_base`]'s server (its host must be an IP address).
pub fn postgres_addr() -> std::net::SocketAddr {
    let base = postgres_base();
    let authority = base
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("a postgres URL");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port
        .parse()
        .expect("FLASHGATE_TEST_POSTGRES names its server by IP address and port")
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .arg(postgres_base())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql (apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Database {
    /// A SQLite database.
    pub fn sqlite() -> Self {
        Database::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh PostgreSQL schema.
    pub fn postgres() -> Self {
        let schema = format!("fg_test_{}_{}", std::process::id(), free_port());
        psql(&format!("CREATE SCHEMA {schema}"));
        Database::Postgres { schema }
    }

    /// Both kinds, for tests that run on each.
    pub fn each() -> [fn() -> Database; 2] {
        [Database::sqlite, Database::postgres]
    }

    /// The URL the backend is given.
    pub fn url(&self) -> String {
        match self {
            Database::Sqlite(dir) => format!("sqlite://{}/orders.db", dir.path().display()),
            Database::Postgres { schema } => {
                format!("{}?options=-c%20search_path%3D{schema}", postgres_base())
            }
        }
    }

    /// The URL of the same database reached through 127.0.0.1:`port` (a [`super::tcp_proxy`]
    /// in front of PostgreSQL); SQLite has no address and is returned as it is.
    pub fn url_through(&self, port: u16) -> String {
        let url = self.url();
        let Database::Postgres { .. } = self else {
            return url;
        };
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').expect("a database path");
        let user = authority.rsplit_once('@').map_or("", |(u, _)| u);
        let at = if user.is_empty() { "" } else { "@" };
        format!("{scheme}://{user}{at}127.0.0.1:{port}/{path}")
    }

    /// Hold SQLite's write lock on this database until the lock is released, as a stuck
    /// writer or a long migration would.
    pub async fn sqlite_write_lock(&self) -> SqliteWriteLock {
        use sqlx::Connection;
        let Database::Sqlite(dir) = self else {
            panic!("a SQLite database")
        };
        let path = dir.path().join("orders.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("open the backend's SQLite file");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .expect("take the write lock");
        SqliteWriteLock { conn }
    }

    /// A name for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres { .. } => "postgres",
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Database::Postgres { schema } = self {
            psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// SQLite's write lock, held (see [`Database::sqlite_write_lock`]).
pub struct SqliteWriteLock {
    conn: sqlx::SqliteConnection,
}

impl SqliteWriteLock {
    /// Let writers in again.
    pub async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.conn)
            .await
            .expect("release the write lock");
    }
}

/// `flashgate-orders reconcile` against `database` and the Redis at `redis_url`, with `flags`
/// (`--dead-letters`, `--fix`).
pub fn reconcile(database: &Database, redis_url: &str, flags: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flashgate-orders"))
        .args([
            "reconcile",
            "--database",
            &database.url(),
            "--redis",
            redis_url,
        ])
        .args(flags)
        .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET)
        .output()
        .expect("run flashgate-orders reconcile")
}

/// A running `flashgate-orders run`.
pub struct OrdersServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    log: std::path::PathBuf,
    _logdir: tempfile::TempDir,
}

impl OrdersServer {
    /// Start on a free port against `database` and `redis_url`.
    pub async fn start(database: &Database, redis_url: &str, payment_timeout: &str) -> Self {
        let redis = ["--redis".to_string(), redis_url.to_string()];
        Self::launch(&database.url(), &redis, payment_timeout, None).await
    }

    /// Start with `yaml` as its settings file (`--config`); flags still override it.
    pub async fn start_with(
        database: &Database,
        redis_url: &str,
        payment_timeout: &str,
        yaml: &str,
    ) -> Self {
        let redis = ["--redis".to_string(), redis_url.to_string()];
        Self::launch(&database.url(), &redis, payment_timeout, Some(yaml)).await
    }

    /// Start against the database at `database_url` (e.g. through a proxy).
    pub async fn start_at(database_url: &str, redis_url: &str, payment_timeout: &str) -> Self {
        let redis = ["--redis".to_string(), redis_url.to_string()];
        Self::launch(database_url, &redis, payment_timeout, None).await
    }

    /// Start against a Redis Cluster given by its seed nodes.
    pub async fn start_on_cluster(
        database: &Database,
        urls: &[String],
        payment_timeout: &str,
    ) -> Self {
        let redis = ["--cluster".to_string(), urls.join(",")];
        Self::launch(&database.url(), &redis, payment_timeout, None).await
    }

    /// Start against the master the sentinels at `urls` monitor as `name`.
    pub async fn start_on_sentinel(database: &Database, name: &str, urls: &[String]) -> Self {
        let redis = [
            "--sentinel".to_string(),
            format!("{name}@{}", urls.join(",")),
        ];
        Self::launch(
            &database.url(),
            &redis,
            "15m",
            Some("reconcile: { every: 1s }\n"),
        )
        .await
    }

    /// [`OrdersServer::start_with`] at `database_url` with the settings file `yaml`.
    pub async fn start_at_with(database_url: &str, redis_url: &str, yaml: &str) -> Self {
        let redis = ["--redis".to_string(), redis_url.to_string()];
        Self::launch(database_url, &redis, "15m", Some(yaml)).await
    }

    async fn launch(
        database_url: &str,
        redis: &[String],
        payment_timeout: &str,
        yaml: Option<&str>,
    ) -> Self {
        let port = free_port();
        let logdir = tempfile::tempdir().expect("temp dir");
        let config = logdir.path().join("orders.yaml");
        let mut args = vec![
            "run".to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--database".into(),
            database_url.to_string(),
            "--payment-timeout".into(),
            payment_timeout.to_string(),
        ];
        args.extend(redis.iter().cloned());
        if let Some(yaml) = yaml {
            std::fs::write(&config, yaml).expect("write the settings file");
            args.extend([
                "--config".to_string(),
                config.to_string_lossy().into_owned(),
            ]);
        }
        let mut server = OrdersServer {
            child: None,
            port,
            args,
            log: logdir.path().join("orders.log"),
            _logdir: logdir,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_flashgate-orders"))
            .args(&self.args)
            .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start flashgate-orders");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/healthz", self.base())).await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("flashgate-orders exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "flashgate-orders did not start:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process hangs — connections are still accepted by the kernel, nothing is
    /// answered — until [`OrdersServer::resume`].
    pub fn pause(&self) {
        super::signal(self.child.as_ref().expect("running"), "-STOP");
    }

    /// SIGCONT after [`OrdersServer::pause`].
    pub fn resume(&self) {
        super::signal(self.child.as_ref().expect("running"), "-CONT");
    }

    /// Start again with the same settings.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// GET a JSON document.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = reqwest::get(format!("{}{path}", self.base()))
            .await
            .expect("orders answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    /// The Prometheus page.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base()))
            .await
            .expect("orders answers")
            .text()
            .await
            .expect("metrics text")
    }

    /// POST /orders for `r` as the edge would, stamped `ts`, with `signature` instead of the
    /// right one if given.
    pub async fn forward_response(
        &self,
        r: &Reservation,
        ts: u64,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let secret = Secret::new(EDGE_SECRET.as_bytes().to_vec());
        let right = origin_signature(&secret, &r.uid, r.product, &r.id, ts);
        reqwest::Client::new()
            .post(format!("{}/orders", self.base()))
            .header(
                "x-flashgate-uid",
                flashgate::ground::uid::to_header(&r.uid).as_ref(),
            )
            .header("x-flashgate-product", r.product.to_string())
            .header("x-flashgate-reservation", &r.id)
            .header("x-flashgate-timestamp", ts.to_string())
            .header("x-flashgate-signature", signature.unwrap_or(&right))
            .send()
            .await
            .expect("orders answers")
    }

    /// [`Self::forward_response`]'s status and JSON body.
    pub async fn forward(
        &self,
        r: &Reservation,
        ts: u64,
        signature: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let resp = self.forward_response(r, ts, signature).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    /// POST with no body.
    pub async fn post(&self, path: &str) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base()))
            .send()
            .await
            .expect("orders answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }
}

impl Drop for OrdersServer {
    fn drop(&mut self) {
        self.kill();
    }
}
