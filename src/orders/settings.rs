//! `flashgate-orders` settings: an optional YAML file (`conf/orders.yaml`), overridden by
//! command-line flags. The file is read by the edge's configuration machinery, so it behaves
//! like `flashgate.yaml`: unknown keys are refused, durations are written the same way (`15m`,
//! `30s`), `${NAME}` is expanded the same way, and every error names the file, the line and the
//! column. The edge secret comes from `edge_secret:` (usually `${FLASHGATE_EDGE_SECRET}`) or
//! the `FLASHGATE_EDGE_SECRET` variable, checked like the edge's own secrets; with neither, the
//! edge's development secret is used with a loud warning, so `flashgate demo` works out of the
//! box and a real deployment cannot miss it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::context::Reading;
use crate::config::locate::Locations;
use crate::config::redis_target::{redis_target, RedisKeys};
use crate::config::Target;
use crate::config::{
    read, ConfigError, Environment, FileSentinel, HumanDuration, ProcessEnv, DEV_EDGE_SECRET,
};
use crate::ground::Secret;

/// Where the edge secret is read from when the file does not say.
const DEFAULT_EDGE_SECRET: &str = "${FLASHGATE_EDGE_SECRET}";

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersFile {
    /// HTTP listener.
    pub listen: Option<SocketAddr>,
    /// `sqlite://path` or `postgres://...`.
    pub database: Option<String>,
    /// `redis://host:port`: the edge's `store.url`.
    pub redis: Option<String>,
    /// Seed nodes of a Redis Cluster: the edge's `store.cluster` (instead of `redis`).
    pub cluster: Option<Vec<String>>,
    /// A master found through Redis Sentinel: the edge's `store.sentinel` (instead of `redis`).
    pub sentinel: Option<FileSentinel>,
    /// How long a buyer has to pay, e.g. `15m`.
    pub payment_timeout: Option<HumanDuration>,
    /// The edge's signing secret (`${ENV}` allowed).
    pub edge_secret: Option<String>,
    /// Ledger consumer settings.
    #[serde(default)]
    pub ledger: LedgerFile,
    /// Live reconcile settings.
    #[serde(default)]
    pub reconcile: ReconcileFile,
}

/// `reconcile:` of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileFile {
    /// How often the live reconcile compares every sale in Redis with the database and
    /// corrects Redis (default 10s; at once after a refusal for want of stock).
    pub every: Option<HumanDuration>,
}

/// `ledger:` of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerFile {
    /// How long an entry that cannot become an order is tried before it is dead-lettered, its
    /// unit held for `reconcile --fix` (default 1h).
    pub retry_for: Option<HumanDuration>,
    /// Idle time before another consumer's pending entry is claimed (default 30s).
    pub claim_idle: Option<HumanDuration>,
    /// How old a reservation must be before the consumer makes its order, so the edge's own
    /// forward settles it first (default 15s: above the edge's connect and origin timeouts).
    pub grace: Option<HumanDuration>,
    /// This instance's consumer name in the group (default `orders-{host}-{listen port}`).
    pub consumer: Option<String>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP listener.
    pub listen: SocketAddr,
    /// Database URL.
    pub database: String,
    /// Where the sales are: the edge's Redis or Redis Cluster.
    pub redis: Target,
    /// Payment deadline after an order is made.
    pub payment_timeout: Duration,
    /// The edge's signing secret.
    pub edge_secret: Secret,
    /// Whether the development secret is in use.
    pub development_secret: bool,
    /// How long a failing ledger entry is tried before it is dead-lettered.
    pub retry_for: Duration,
    /// Idle time before claiming.
    pub claim_idle: Duration,
    /// How old a ledger entry must be before it is placed.
    pub grace: Duration,
    /// The ledger consumer's name.
    pub consumer: String,
    /// How often the live reconcile runs.
    pub reconcile_every: Duration,
}

/// Flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--database`.
    pub database: Option<String>,
    /// `--redis`.
    pub redis: Option<String>,
    /// `--cluster`.
    pub cluster: Option<Vec<String>>,
    /// `--sentinel NAME@url,url`.
    pub sentinel: Option<Target>,
    /// `--payment-timeout`.
    pub payment_timeout: Option<Duration>,
}

/// Resolve the settings from the optional file, the flags and the process environment.
pub fn resolve(flags: Overrides) -> Result<Settings, ConfigError> {
    resolve_with(flags, &ProcessEnv)
}

/// Resolve the settings from the optional file, the flags and `env`.
pub fn resolve_with(flags: Overrides, env: &dyn Environment) -> Result<Settings, ConfigError> {
    match flags.config.clone() {
        Some(path) => {
            let text = read::text(&path)?;
            parse(&path, &text, flags, env)
        }
        None => {
            // No file: an error (a short FLASHGATE_EDGE_SECRET) has nowhere better to point.
            let nowhere = Locations::default();
            let cx = Reading::new(Path::new("(flags)"), &nowhere, env);
            settle(&cx, OrdersFile::default(), flags)
        }
    }
}

/// Resolve the settings from `text`, the contents of the file `path`, the flags and `env`.
/// `flags.config` is not read.
pub fn parse(
    path: &Path,
    text: &str,
    flags: Overrides,
    env: &dyn Environment,
) -> Result<Settings, ConfigError> {
    let (file, locations) = read::parse::<OrdersFile>(path, text)?;
    let cx = Reading::new(path, &locations, env);
    settle(&cx, file, flags)
}

/// The file's values under the flags, with the defaults for what neither gives.
fn settle(cx: &Reading, file: OrdersFile, flags: Overrides) -> Result<Settings, ConfigError> {
    let written = file.edge_secret.as_deref().unwrap_or(DEFAULT_EDGE_SECRET);
    let (edge_secret, development_secret) =
        cx.secret_or_development("edge_secret", written, DEV_EDGE_SECRET)?;
    let redis = match (flags.sentinel, flags.cluster, flags.redis) {
        (Some(target), ..) => target,
        (None, Some(urls), _) => Target::Cluster(urls),
        (None, None, Some(url)) => Target::Single(url),
        (None, None, None) => file_target(cx, file.redis, file.cluster, file.sentinel)?,
    };
    let listen = flags
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081)));
    Ok(Settings {
        listen,
        database: flags
            .database
            .or(file.database)
            .unwrap_or_else(|| "sqlite://flashgate-orders.db".to_string()),
        redis,
        payment_timeout: flags
            .payment_timeout
            .or(file.payment_timeout.map(|d| d.0))
            .unwrap_or(Duration::from_secs(15 * 60)),
        edge_secret,
        development_secret,
        retry_for: at_least(cx, "ledger.retry_for", file.ledger.retry_for, 3600)?,
        claim_idle: at_least(cx, "ledger.claim_idle", file.ledger.claim_idle, 30)?,
        grace: file.ledger.grace.map_or(Duration::from_secs(15), |d| d.0),
        consumer: file
            .ledger
            .consumer
            .unwrap_or_else(|| format!("orders-{}-{}", host_name(), listen.port())),
        reconcile_every: at_least(cx, "reconcile.every", file.reconcile.every, 10)?,
    })
}

/// The file's `redis`, `cluster` or `sentinel` (one at most, read as the edge reads its
/// `store`; `redis://127.0.0.1:6379` when none is given).
fn file_target(
    cx: &Reading,
    redis: Option<String>,
    cluster: Option<Vec<String>>,
    sentinel: Option<FileSentinel>,
) -> Result<Target, ConfigError> {
    let keys = RedisKeys {
        prefix: "",
        url_key: "redis",
        url: redis.as_ref(),
        cluster: cluster.as_ref(),
        sentinel: sentinel.as_ref(),
    };
    Ok(redis_target(cx, &keys)?
        .unwrap_or_else(|| Target::Single("redis://127.0.0.1:6379".to_string())))
}

/// `--sentinel NAME@redis://host:26379,redis://host2:26379` as a target.
pub fn sentinel_flag(flag: &str) -> Result<Target, String> {
    const EXPECTED: &str = "expected NAME@redis://host:26379[,redis://host2:26379...]";
    let (master, nodes) = flag.split_once('@').ok_or(EXPECTED)?;
    let nodes: Vec<String> = nodes
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    if master.is_empty() || nodes.is_empty() {
        return Err(EXPECTED.into());
    }
    Ok(Target::Sentinel {
        master: master.to_string(),
        nodes,
    })
}

/// A duration of at least a second (`default_secs` when unset): a zero `retry_for` would
/// dead-letter on the first blip, a zero `claim_idle` make instances steal each other's work.
fn at_least(
    cx: &Reading,
    path: &str,
    value: Option<HumanDuration>,
    default_secs: u64,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(Duration::from_secs(default_secs)),
        Some(d) if d.0 < Duration::from_secs(1) => {
            Err(cx.err(path, format!("{path} must be at least 1s")))
        }
        Some(d) => Ok(d.0),
    }
}

/// This machine's name, for a consumer name that stays the same across restarts.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
