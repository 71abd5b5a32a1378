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

use crate::config::context::Ctx;
use crate::config::locate::Locations;
use crate::config::{
    read, ConfigError, Environment, HumanDuration, ProcessEnv, Secret, DEV_EDGE_SECRET,
};

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
    /// `redis://host:port`.
    pub redis: Option<String>,
    /// How long a buyer has to pay, e.g. `15m`.
    pub payment_timeout: Option<HumanDuration>,
    /// The edge's signing secret (`${ENV}` allowed).
    pub edge_secret: Option<String>,
    /// Ledger consumer settings.
    #[serde(default)]
    pub ledger: LedgerFile,
}

/// `ledger:` of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerFile {
    /// Failed deliveries before an entry goes to the dead-letter stream (default 5).
    pub max_deliveries: Option<u32>,
    /// Idle time before another consumer's pending entry is claimed (default 30s).
    pub claim_idle: Option<HumanDuration>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP listener.
    pub listen: SocketAddr,
    /// Database URL.
    pub database: String,
    /// Redis URL.
    pub redis: String,
    /// Payment deadline after an order is made.
    pub payment_timeout: Duration,
    /// The edge's signing secret.
    pub edge_secret: Secret,
    /// Whether the development secret is in use.
    pub development_secret: bool,
    /// Failed deliveries before dead-lettering.
    pub max_deliveries: u32,
    /// Idle time before claiming.
    pub claim_idle: Duration,
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
            let cx = Ctx::new(Path::new("(flags)"), &nowhere, env);
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
    let cx = Ctx::new(path, &locations, env);
    settle(&cx, file, flags)
}

/// The file's values under the flags, with the defaults for what neither gives.
fn settle(cx: &Ctx, file: OrdersFile, flags: Overrides) -> Result<Settings, ConfigError> {
    let written = file.edge_secret.as_deref().unwrap_or(DEFAULT_EDGE_SECRET);
    let (edge_secret, development_secret) =
        cx.secret_or_development("edge_secret", written, DEV_EDGE_SECRET)?;
    Ok(Settings {
        listen: flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081))),
        database: flags
            .database
            .or(file.database)
            .unwrap_or_else(|| "sqlite://flashgate-orders.db".to_string()),
        redis: flags
            .redis
            .or(file.redis)
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string()),
        payment_timeout: flags
            .payment_timeout
            .or(file.payment_timeout.map(|d| d.0))
            .unwrap_or(Duration::from_secs(15 * 60)),
        edge_secret,
        development_secret,
        max_deliveries: file.ledger.max_deliveries.unwrap_or(5).max(1),
        claim_idle: file
            .ledger
            .claim_idle
            .map_or(Duration::from_secs(30), |d| d.0),
    })
}
