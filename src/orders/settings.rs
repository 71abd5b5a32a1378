//! `flashgate-orders` settings: an optional YAML file (`conf/orders.yaml`), overridden by
//! command-line flags. The edge secret comes from `edge_secret:` (usually
//! `${FLASHGATE_EDGE_SECRET}`) or the `FLASHGATE_EDGE_SECRET` variable; with neither, the
//! edge's development secret is used with a loud warning, so `flashgate demo` works out of the
//! box and a real deployment cannot miss it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{
    expand_env, ConfigError, Expanded, Position, Secret, DEV_EDGE_SECRET, MIN_SECRET_BYTES,
};

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
    pub payment_timeout: Option<String>,
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
    pub claim_idle: Option<String>,
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

fn read_file(path: &Path) -> Result<OrdersFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|e| ConfigError::at(path, Position::of_yaml_error(&e), e))
}

fn duration(path: &Path, text: &str, what: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        ConfigError::at(
            path,
            Position::START,
            format!("{what}: expected a duration such as 15m, found {text:?} ({e})"),
        )
    })
}

/// Resolve the settings from the optional file, the flags and the environment.
pub fn resolve(flags: Overrides) -> Result<Settings, ConfigError> {
    let (file, path) = match &flags.config {
        Some(path) => (read_file(path)?, path.clone()),
        None => (OrdersFile::default(), PathBuf::from("(flags)")),
    };
    let payment_timeout = match (flags.payment_timeout, &file.payment_timeout) {
        (Some(d), _) => d,
        (None, Some(text)) => duration(&path, text, "payment_timeout")?,
        (None, None) => Duration::from_secs(15 * 60),
    };
    let claim_idle = match &file.ledger.claim_idle {
        Some(text) => duration(&path, text, "ledger.claim_idle")?,
        None => Duration::from_secs(30),
    };
    let written = file
        .edge_secret
        .clone()
        .unwrap_or_else(|| "${FLASHGATE_EDGE_SECRET}".to_string());
    let (edge_secret, development_secret) = match expand_env(&written, |n| std::env::var(n).ok())
        .map_err(|e| ConfigError::at(&path, Position::START, e))?
    {
        Expanded::Missing(_) => (Secret::new(DEV_EDGE_SECRET), true),
        Expanded::Value(v) if v.len() < MIN_SECRET_BYTES => {
            return Err(ConfigError::at(
                &path,
                Position::START,
                format!(
                    "edge_secret is {} bytes; a secret needs at least {MIN_SECRET_BYTES}",
                    v.len()
                ),
            ))
        }
        Expanded::Value(v) => (Secret::new(v.into_bytes()), false),
    };
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
        payment_timeout,
        edge_secret,
        development_secret,
        max_deliveries: file.ledger.max_deliveries.unwrap_or(5).max(1),
        claim_idle,
    })
}
