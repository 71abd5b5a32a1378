//! `flashgate demo`: a whole sale on one machine with one command. It starts the edge (this
//! binary, `run`, as a child process) on the embedded store with a demo sale that opens a few
//! seconds later, the order backend behind it — `flashgate-orders` on SQLite in a temporary
//! directory when that binary sits next to this one, else a stand-in origin in this process —
//! and a storm against it. Then it prints the storm's table, the orders the origin received, and
//! the URLs of the live page and the metrics. It exits by itself (stopping what it started);
//! with `--keep` the servers stay up until Ctrl-C. Everything listens on 127.0.0.1.

mod origin;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use flashgate::config::Secret;

use crate::storm;

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
}

/// A child process stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for secrets: {e}"))?;
    Ok(hex::encode(bytes))
}

/// `addr` if it can be bound now, else a free port on the same address.
fn usable(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    if addr.port() != 0 && TcpListener::bind(addr).is_ok() {
        return Ok(addr);
    }
    let free = TcpListener::bind(SocketAddr::new(addr.ip(), 0))
        .and_then(|l| l.local_addr())
        .with_context(|| format!("no free port on {}", addr.ip()))?;
    if addr.port() != 0 {
        eprintln!("demo: {addr} is taken; using {free}");
    }
    Ok(free)
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

/// The order backend, when its binary sits next to this one.
fn orders_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.with_file_name("flashgate-orders");
    candidate.is_file().then_some(candidate)
}

async fn wait_ready(
    http: &storm::http::Http,
    url: &str,
    child: &mut Running,
    log: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(uri) = url.parse() {
            if let Ok(answer) = http.send(http::Method::GET, uri, &[]).await {
                if answer.status.is_success() {
                    return Ok(());
                }
            }
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            bail!(
                "{url}: the process exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{url} did not answer within 30 s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let (listen, admin) = (usable(demo.listen)?, usable(demo.admin)?);
    let http = storm::http::Http::new(4);
    let exe = std::env::current_exe().context("finding this executable")?;

    // The order backend, or the stand-in.
    let mut orders_child = None;
    let (origin_addr, stand_in) = match orders_binary() {
        Some(bin) => {
            let addr = usable(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            let log = tmp.path().join("orders.log");
            let db = format!("sqlite://{}", tmp.path().join("orders.db").display());
            eprintln!("demo: order backend {} on {addr} ({db})", bin.display());
            let child = Command::new(&bin)
                .args(["run", "--listen", &addr.to_string(), "--database", &db])
                .env("FLASHGATE_LOGIN_SECRET", &login)
                .env("FLASHGATE_EDGE_SECRET", &edge)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let mut child = Running(child);
            wait_tcp(addr, &mut child, &log).await?;
            orders_child = Some(child);
            (addr, None)
        }
        None => {
            let (addr, orders) = origin::start(Secret::new(edge.as_bytes().to_vec())).await?;
            eprintln!("demo: stand-in order backend on {addr} (flashgate-orders is not installed next to {})", exe.display());
            (addr, Some(orders))
        }
    };

    // The edge, with a sale opening in a few seconds.
    let opens = SystemTime::now() + Duration::from_secs(4);
    let config = tmp.path().join("flashgate.yaml");
    std::fs::write(
        &config,
        format!(
            "# written by flashgate demo\n\
             listen: {listen}\nadmin_listen: {admin}\nthreads: 1\n\
             secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
             origin: {{ url: 'http://{origin_addr}', path: /orders }}\n\
             store: {{ kind: memory }}\n\
             static_dir: '{static_dir}'\n\
             catalog: {{ products: [1-1000] }}\n\
             sales:\n  - {{ product: 42, stock: {stock}, starts_at: '{starts}', ends_at: '{ends}', captcha: {captcha} }}\n\
             limits:\n\
             \x20 - {{ name: per-uid, key: uid, requests: 5, per: 10s, expected_keys: 100000 }}\n\
             \x20 - {{ name: global, key: global, requests: 100000, per: 1s }}\n\
             captcha: {{ difficulty: {bits}, max_difficulty: {max}, raise_above: 5000 }}\n",
            static_dir = static_dir().display(),
            stock = demo.stock,
            starts = rfc3339(opens),
            ends = rfc3339(opens + Duration::from_secs(3600)),
            captcha = demo.captcha,
            bits = demo.difficulty,
            max = demo.difficulty.saturating_add(4).min(32),
        ),
    )?;
    let log = tmp.path().join("edge.log");
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
    wait_ready(
        &http,
        &format!("http://{admin}/healthz"),
        &mut edge_child,
        &log,
    )
    .await?;
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
    println!();
    match &stand_in {
        Some(orders) => {
            let (total, signed) = (
                orders.total.load(Ordering::Relaxed),
                orders.signed.load(Ordering::Relaxed),
            );
            println!(
                "orders total: {total} (stock {}; {signed} with a valid edge signature)",
                demo.stock
            );
            if total > demo.stock || signed != total {
                bail!(
                    "the origin received {total} orders, {signed} signed, for {} units",
                    demo.stock
                );
            }
        }
        None => println!(
            "orders total: {won} (stock {}; confirmed by flashgate-orders)",
            demo.stock
        ),
    }
    let visitor = crate::storm::mint(&login, std::iter::once("demo-visitor".to_string()))?;
    println!(
        "live page:    http://{listen}/?product=42#token={}",
        visitor[0]
    );
    println!("metrics:      http://{admin}/metrics");
    if report.won_twice > 0 {
        bail!("{} users won twice", report.won_twice);
    }

    if demo.keep {
        println!("\nThe edge and the order backend keep running; Ctrl-C stops them.");
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
    }
    drop(edge_child);
    drop(orders_child);
    Ok(())
}

async fn wait_tcp(addr: SocketAddr, child: &mut Running, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Ok(Some(status)) = child.0.try_wait() {
            bail!(
                "flashgate-orders exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!("flashgate-orders did not listen on {addr} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
