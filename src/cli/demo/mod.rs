//! `flashgate demo`: a whole sale on one machine with one command. It starts the edge (this
//! binary, `run`, as a child process) with a demo sale that opens a few seconds later, the
//! order backend behind it, and a storm against it. Then it prints the storm's table, the orders
//! the backend holds, and the URLs of the live page and the metrics. It exits by itself
//! (stopping what it started); with `--keep` the servers stay up until Ctrl-C. Everything
//! listens on 127.0.0.1 and lives in a temporary directory.
//!
//! The order backend is `flashgate-orders` on SQLite when that binary sits next to this one and
//! `redis-server` is installed (it confirms orders against the sale in Redis, so the edge then
//! sells from a private redis-server); otherwise the edge sells from the embedded store and a
//! stand-in origin in this process takes the orders (see `backend`). A stand-in shop (`shop`)
//! stands behind the edge's one route, `/shop/`, as the rest of a shop would.

mod backend;
mod origin;
mod shop;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};

use crate::cli::storm;
use backend::{Backend, Running};

/// The demo's settings (flags of `flashgate demo`).
#[derive(Debug, Clone)]
pub struct Demo {
    /// The edge's public address (a taken port is replaced by a free one; port 0: any).
    pub listen: SocketAddr,
    /// The edge's admin address (same rule).
    pub admin: SocketAddr,
    /// Users in the storm.
    pub users: usize,
    /// Units on sale.
    pub stock: u64,
    /// Longest storm.
    pub duration: Duration,
    /// `pow` or `none`.
    pub captcha: String,
    /// Proof-of-work bits, for `captcha: pow`.
    pub difficulty: u8,
    /// Leave the servers running until Ctrl-C.
    pub keep: bool,
    /// Draw the storm's progress bar.
    pub progress: bool,
    /// Use the stand-in origin even when `flashgate-orders` could run.
    pub stand_in: bool,
}

fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for secrets: {e}"))?;
    Ok(hex::encode(bytes))
}

/// Bind `addr`, or a free port on the same address if it is taken. The caller holds the
/// listener until just before the process that will listen there starts, so no other pick
/// (ours or anyone's) can take the port meanwhile.
fn reserve(addr: SocketAddr) -> anyhow::Result<(SocketAddr, TcpListener)> {
    if addr.port() != 0 {
        if let Ok(listener) = TcpListener::bind(addr) {
            return Ok((addr, listener));
        }
    }
    let listener = TcpListener::bind(SocketAddr::new(addr.ip(), 0))
        .with_context(|| format!("no free port on {}", addr.ip()))?;
    let free = listener.local_addr()?;
    if addr.port() != 0 {
        eprintln!("demo: {addr} is taken; using {free}");
    }
    Ok((free, listener))
}

/// The sale page's files: ./static when run from the repository, else the sources' copy.
fn static_dir() -> PathBuf {
    let here = PathBuf::from("static");
    if here.join("index.html").is_file() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("static")
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Run the demo.
pub async fn run(demo: Demo) -> anyhow::Result<()> {
    if !matches!(demo.captcha.as_str(), "pow" | "none") {
        bail!("--captcha is pow or none");
    }
    let tmp = tempfile::Builder::new()
        .prefix("flashgate-demo-")
        .tempdir()?;
    let (login, edge) = (random_secret()?, random_secret()?);
    let http = storm::http::Http::new(4);
    let exe = std::env::current_exe().context("finding this executable")?;

    let backend = if demo.stand_in {
        Backend::stand_in(&edge, "--stand-in").await?
    } else {
        Backend::start(tmp.path(), &login, &edge, &http).await?
    };

    let shop = shop::start().await?;

    // The edge, with a sale opening in a few seconds.
    let (listen, listen_guard) = reserve(demo.listen)?;
    let (admin, admin_guard) = reserve(demo.admin)?;
    let opens = SystemTime::now() + Duration::from_secs(4);
    let config = tmp.path().join("flashgate.yaml");
    std::fs::write(
        &config,
        format!(
            "# written by flashgate demo\n\
             listen: {listen}\nadmin_listen: {admin}\nthreads: 1\n\
             secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
             origin: {{ url: '{origin}', path: /orders }}\n\
             store: {store}\n\
             static_dir: '{static_dir}'\n\
             catalog: {{ products: [1-1000] }}\n\
             sales:\n  - {{ product: 42, stock: {stock}, starts_at: '{starts}', ends_at: '{ends}', captcha: {captcha} }}\n\
             limits:\n\
             \x20 - {{ name: per-uid, key: uid, requests: 5, per: 10s, expected_keys: 100000 }}\n\
             \x20 - {{ name: global, key: global, requests: 100000, per: 1s }}\n\
             captcha: {{ difficulty: {bits}, max_difficulty: {max}, raise_above: 5000 }}\n\
             upstreams:\n  shop: {{ servers: ['{shop}'], health: {{ path: /shop/health }} }}\n\
             routes:\n  - {{ name: shop, path: /shop/, upstream: shop }}\n",
            origin = backend.origin(),
            store = backend.store(),
            static_dir = static_dir().display(),
            stock = demo.stock,
            starts = rfc3339(opens),
            ends = rfc3339(opens + Duration::from_secs(3600)),
            captcha = demo.captcha,
            bits = demo.difficulty,
            max = demo.difficulty.saturating_add(4).min(32),
            shop = shop,
        ),
    )?;
    if backend.needs_stock_load() {
        let out = Command::new(&exe)
            .args(["stock", "load", "--config"])
            .arg(&config)
            .env("FLASHGATE_LOGIN_SECRET", &login)
            .env("FLASHGATE_EDGE_SECRET", &edge)
            .output()
            .context("running flashgate stock load")?;
        if !out.status.success() {
            bail!(
                "stock load failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let log = tmp.path().join("edge.log");
    drop((listen_guard, admin_guard));
    let mut edge_child = Running(
        Command::new(&exe)
            .args(["run", "--config"])
            .arg(&config)
            .env("FLASHGATE_LOGIN_SECRET", &login)
            .env("FLASHGATE_EDGE_SECRET", &edge)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting the edge")?,
    );
    let ready = format!("http://{admin}/healthz");
    backend::wait_http(&http, "the edge", &ready, &mut edge_child, &log).await?;
    eprintln!(
        "demo: edge on http://{listen}; sale of {} units of product 42 (captcha {}) opens at {}; \
         storm of {} users",
        demo.stock,
        demo.captcha,
        rfc3339(opens),
        demo.users
    );

    let report = storm::run(storm::Plan {
        target: format!("http://{listen}"),
        login_secret: login.clone(),
        users: demo.users,
        duration: demo.duration,
        requests: 1_000_000,
        connections: 64,
        bots: 0.05,
        unknown: 0.02,
        product: 42,
        captcha_secret: None,
        wait: Duration::from_secs(30),
        progress: demo.progress,
    })
    .await?;
    print!("\n{}", report.table());

    // What reached the order backend.
    let won = report.count("won");
    let (orders, consistent) = backend.orders_line(&http, 42, demo.stock, won).await;
    println!("\n{orders}");
    let visitor = storm::mint(&login, std::iter::once("demo-visitor".to_string()))?;
    println!(
        "live page:    http://{listen}/?product=42#token={}",
        visitor[0]
    );
    let shop_url = format!("http://{listen}/shop/42");
    let shop_answer = match shop_url.parse() {
        Ok(uri) => http
            .send(http::Method::GET, uri, &[])
            .await
            .map(|a| a.status.as_u16().to_string())
            .unwrap_or_else(|e| format!("no answer: {e}")),
        Err(e) => format!("bad URL: {e}"),
    };
    println!(
        "shop page:    {shop_url} ({shop_answer}: the shop's server, through the edge's routes:)"
    );
    println!("metrics:      http://{admin}/metrics");
    if report.won_twice > 0 {
        bail!("{} users won twice", report.won_twice);
    }
    if !consistent {
        bail!(
            "the order backend disagrees with the storm ({won} won, stock {})",
            demo.stock
        );
    }

    if demo.keep {
        println!("\nThe edge and the order backend keep running; Ctrl-C stops them.");
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
    }
    drop(edge_child);
    drop(backend);
    Ok(())
}
