//! The demo's order backend. The real one, `flashgate-orders`, confirms every order against the
//! sale in Redis (and consumes the sale's ledger there), so when its binary sits next to this
//! one and `redis-server` is installed, the demo starts a private redis-server on a free port of
//! 127.0.0.1, sells from it, and runs `flashgate-orders` on SQLite in the demo's temporary
//! directory. Otherwise the edge sells from the embedded store and the stand-in origin
//! ([`super::origin`]) takes the orders.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flashgate::ground::Secret;
use serde_json::Value;

use super::origin::{self, Orders};
use crate::cli::storm::http::Http;

/// A child process, stopped when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The order backend the demo runs.
pub enum Backend {
    /// `flashgate-orders` on SQLite, with the sale in a private redis-server.
    Real {
        /// `flashgate-orders run`.
        _orders: Running,
        /// The redis-server.
        _redis: Running,
        /// The order API, `http://addr`.
        api: String,
        /// `redis://127.0.0.1:port`.
        redis_url: String,
    },
    /// The stand-in origin in this process.
    StandIn {
        /// Where it listens.
        addr: SocketAddr,
        /// What it received.
        orders: Arc<Orders>,
    },
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// `flashgate-orders` next to this executable, if it is there.
fn orders_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.with_file_name("flashgate-orders");
    candidate.is_file().then_some(candidate)
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Wait until `ready` says yes; fail if `child` exits or 30 s pass.
async fn wait_for<F, Fut>(
    what: &str,
    child: &mut Running,
    log: &Path,
    ready: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready().await {
        if let Ok(Some(status)) = child.0.try_wait() {
            bail!("{what} exited with {status}:\n{}", log_of(log));
        }
        if Instant::now() > deadline {
            bail!("{what} was not ready within 30 s:\n{}", log_of(log));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Wait until `url` answers 2xx.
pub async fn wait_http(
    http: &Http,
    what: &str,
    url: &str,
    child: &mut Running,
    log: &Path,
) -> anyhow::Result<()> {
    wait_for(what, child, log, || async {
        let Ok(uri) = url.parse() else { return false };
        matches!(http.send(http::Method::GET, uri, &[]).await, Ok(a) if a.status.is_success())
    })
    .await
}

impl Backend {
    /// Start the real backend if it can run here, else the stand-in.
    pub async fn start(
        dir: &Path,
        login: &str,
        edge: &str,
        http: &Http,
    ) -> anyhow::Result<Backend> {
        let Some(orders_bin) = orders_binary() else {
            return Self::stand_in(edge, "flashgate-orders is not built next to flashgate").await;
        };
        let Some(redis_bin) = on_path("redis-server") else {
            return Self::stand_in(
                edge,
                "flashgate-orders needs Redis and redis-server is not installed",
            )
            .await;
        };
        let redis_port = free_port()?;
        let redis_log = dir.join("redis.log");
        let mut redis = Running(
            Command::new(&redis_bin)
                .args([
                    "--port",
                    &redis_port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--appendonly", "no", "--dir"])
                .arg(dir)
                .stdout(std::fs::File::create(&redis_log)?)
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server")?,
        );
        let redis_addr = SocketAddr::from(([127, 0, 0, 1], redis_port));
        wait_for("redis-server", &mut redis, &redis_log, || async {
            tokio::net::TcpStream::connect(redis_addr).await.is_ok()
        })
        .await?;
        let redis_url = format!("redis://{redis_addr}");

        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = dir.join("orders.log");
        let db = format!("sqlite://{}", dir.join("orders.db").display());
        let mut orders = Running(
            Command::new(&orders_bin)
                .args([
                    "run",
                    "--listen",
                    &addr.to_string(),
                    "--database",
                    &db,
                    "--redis",
                    &redis_url,
                ])
                .env("FLASHGATE_LOGIN_SECRET", login)
                .env("FLASHGATE_EDGE_SECRET", edge)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()
                .with_context(|| format!("starting {}", orders_bin.display()))?,
        );
        let api = format!("http://{addr}");
        wait_http(
            http,
            "flashgate-orders",
            &format!("{api}/healthz"),
            &mut orders,
            &log,
        )
        .await?;
        eprintln!(
            "demo: order backend {} on {addr} ({db}), sale in redis-server {redis_addr}",
            orders_bin.display()
        );
        Ok(Backend::Real {
            _orders: orders,
            _redis: redis,
            api,
            redis_url,
        })
    }

    /// The stand-in origin; `why` is said on stderr.
    pub async fn stand_in(edge: &str, why: &str) -> anyhow::Result<Backend> {
        let (addr, orders) = origin::start(Secret::new(edge.as_bytes().to_vec())).await?;
        eprintln!("demo: stand-in order backend on {addr} ({why})");
        Ok(Backend::StandIn { addr, orders })
    }

    /// Where the edge sends winners.
    pub fn origin(&self) -> String {
        match self {
            Backend::Real { api, .. } => api.clone(),
            Backend::StandIn { addr, .. } => format!("http://{addr}"),
        }
    }

    /// The edge's `store:` value.
    pub fn store(&self) -> String {
        match self {
            Backend::Real { redis_url, .. } => {
                format!("{{ kind: redis, url: '{redis_url}', timeout: 500ms }}")
            }
            Backend::StandIn { .. } => "{ kind: memory }".to_string(),
        }
    }

    /// Whether the stock must be loaded into Redis before the edge starts.
    pub fn needs_stock_load(&self) -> bool {
        matches!(self, Backend::Real { .. })
    }

    /// The orders line of the report, and whether it is consistent with `stock` and the `won`
    /// answers the storm saw.
    pub async fn orders_line(
        &self,
        http: &Http,
        product: u64,
        stock: u64,
        won: u64,
    ) -> (String, bool) {
        match self {
            Backend::StandIn { orders, .. } => {
                let total = orders.total.load(Ordering::Relaxed);
                let signed = orders.signed.load(Ordering::Relaxed);
                (
                    format!("orders total: {total} (stock {stock}; {signed} with a valid edge signature)"),
                    total <= stock && signed == total && total == won,
                )
            }
            Backend::Real { api, .. } => {
                // The ledger consumer may still be turning reservations into orders: wait a little
                // for the database to catch up with what the storm saw.
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut summary = Value::Null;
                loop {
                    if let Ok(uri) = format!("{api}/sales/{product}").parse() {
                        if let Ok(a) = http.send(http::Method::GET, uri, &[]).await {
                            summary = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
                        }
                    }
                    let sold = summary["sold"].as_u64().unwrap_or(0);
                    if sold >= won || Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let sold = summary["sold"].as_u64().unwrap_or(0);
                (
                    format!(
                        "orders total: {sold} (stock {stock}; in flashgate-orders' SQLite database: \
                         {} pending payment, {} paid)",
                        summary["pending"], summary["paid"]
                    ),
                    sold <= stock && sold == won,
                )
            }
        }
    }
}
