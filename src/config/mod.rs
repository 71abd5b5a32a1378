//! flashgate's configuration: one YAML file (see `conf/flashgate.yaml`, documented in place),
//! read into the canonical [`Config`] that the rest of the program uses. The file format
//! (`schema`) and the canonical form are kept apart: the file may offer shorthands and defaults,
//! the canonical form is fully resolved — secrets read from the environment, URLs resolved to
//! addresses, the catalog's extra ids loaded, every cross-field rule checked. Every error names
//! the file, the line and the column. The order backend's `conf/orders.yaml` is read with the
//! same machinery (`read` for the file, `context` for positions, `${ENV}` and secrets, and
//! `redis_target` for where Redis is). `tls` reads the certificate and key files `tls:` names
//! and checks that they belong together (`pem` reads PEM files for it and for the upstreams).
//! `upstreams` resolves the shop's server pools and `routes` the shop's routes to them.

mod captcha;
mod catalog;
pub(crate) mod context;
mod env;
mod error;
mod limits;
pub(crate) mod locate;
mod pem;
mod queue;
pub(crate) mod read;
pub(crate) mod redis_target;
mod schema;
pub(crate) use schema::FileSentinel;
mod routes;
mod showcase;
mod store;
mod tls;
mod upstreams;
mod validate;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::ground::Secret;

pub use captcha::{CaptchaSettings, MAX_POW_BITS};
pub use catalog::{Catalog, ListedError, ListedFile, ListedIds};
pub use env::{expand as expand_env, Expanded};
pub use error::TlsError;
pub use error::{ConfigError, Position};
pub use queue::QueueSettings;
pub use routes::{HostMatch, LoginPolicy, PathMatch, Route};
pub use schema::{Captcha, LimitKey, LimitScope, LogRoute, QueueMode, RateLimitHeaders, StoreKind};
pub use showcase::{Image, Showcase, MAX_IMAGE_BYTES, MAX_PRICE_CHARS, MAX_TITLE_CHARS};
pub use store::{Fsync, ReplicaWait, Store, Target};
pub use tls::{Identity, Tls};
pub use upstreams::{Eject, HealthCheck, HttpCheck, Selection, Server, Upstream, UpstreamTls};
pub use validate::{DEV_EDGE_SECRET, DEV_LOGIN_SECRET};
pub use values::{HumanDuration, IdRange, Timestamp};

/// The smallest secret accepted, in bytes: HMAC-SHA256 keys shorter than its output are weak.
pub const MIN_SECRET_BYTES: usize = 32;

/// A fully resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from, for messages.
    pub file: PathBuf,
    /// Public listener for the sale page, button script and buy requests.
    pub listen: SocketAddr,
    /// Admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: SocketAddr,
    /// Worker threads of the public listener.
    pub threads: usize,
    /// Keys for login tokens and for everything the edge signs.
    pub secrets: Secrets,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Where winners are forwarded.
    pub origin: Origin,
    /// Where stock lives.
    pub store: Store,
    /// `store.capacity`: store calls per second one sale's store takes, if the file says;
    /// `flashgate check` warns when the global limit lets more through.
    pub store_capacity: Option<u64>,
    /// Directory of the static sale page.
    pub static_dir: PathBuf,
    /// Every product id the shop knows.
    pub catalog: Catalog,
    /// The configured sales, one per product.
    pub sales: Vec<Sale>,
    /// Rate limits, all applied to every buy.
    pub limits: Vec<Limit>,
    /// Blocklist file (`uid:`, `ip:`, `cidr:` lines), if any.
    pub blocklist_file: Option<PathBuf>,
    /// Users never rate limited.
    pub allowlist_uids: Vec<String>,
    /// How long a sold-out answer from the store is trusted before asking again.
    pub sold_out_hint: Duration,
    /// How captchas are checked for sales that ask for one.
    pub captcha: CaptchaSettings,
    /// Which rate-limit headers a `429` carries.
    pub rate_limit_headers: RateLimitHeaders,
    /// The access log, if one is configured.
    pub access_log: Option<AccessLogSettings>,
    /// Bearer token of `POST /admin/reload`; without one, only SIGHUP reloads.
    pub admin_token: Option<Secret>,
    /// HTTPS on the public listener (HTTP/2 and HTTP/1.1 by ALPN); None: plain HTTP/1.1.
    pub tls: Option<Tls>,
    /// The public listener's limits on what one client sends.
    pub http: HttpLimits,
    /// The shop's server pools.
    pub upstreams: Vec<Upstream>,
    /// The shop's routes, in order (after the sale's own).
    pub routes: Vec<Route>,
}

/// `http:` resolved: what the public listener takes from one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The request target at most, in bytes (`414` beyond).
    pub max_uri_bytes: usize,
    /// Header names and values at most, in bytes (`431` beyond).
    pub max_header_bytes: usize,
    /// Header fields at most (`431` beyond).
    pub max_header_count: usize,
    /// `Content-Length` at most (`413` beyond).
    pub max_body_bytes: u64,
    /// Idle time allowed between requests on a connection, in whole seconds (Pingora's unit).
    pub keepalive_secs: u64,
    /// Requests per connection.
    pub keepalive_requests: u32,
    /// The time a request head may take to arrive.
    pub header_timeout: Duration,
    /// HTTP/2's settings.
    pub h2: H2Limits,
}

/// `http.h2` resolved (the defaults filled in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Limits {
    /// Streams open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Decoded header list at most, in bytes (fields counted with 32 more each).
    pub max_header_list_size: u32,
    /// Streams reset by the client before the edge took them, at most (rapid reset).
    pub max_pending_reset_streams: usize,
    /// Streams the edge resets for protocol errors before `ENHANCE_YOUR_CALM`.
    pub max_error_resets: usize,
}

/// `access_log:` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// Where the lines go.
    pub target: LogTarget,
    /// The routes logged.
    pub routes: Vec<LogRoute>,
    /// Lines waiting for the writer at most.
    pub buffer: usize,
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output.
    Stdout,
    /// A file, appended to (created if missing).
    File(PathBuf),
}

/// `secrets:` resolved.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// HS256 key of login tokens.
    pub login: Secret,
    /// Key of sale paths, challenges and the headers sent to origin.
    pub edge: Secret,
    /// Names of the secrets that fell back to the built-in development values because their
    /// environment variables were not set. Empty in any real deployment.
    pub development: Vec<&'static str>,
}

/// `origin:` resolved.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `origin.url` as written (after `${ENV}` substitution), or `upstream <name>`, for
    /// messages.
    pub url: String,
    /// The address connected to (with `upstream`: its first server's).
    pub addr: SocketAddr,
    /// The pool of `Config::upstreams` winners go to, by index (`origin.upstream`).
    pub upstream: Option<usize>,
    /// The Host header sent.
    pub host: String,
    /// Path winners are POSTed to.
    pub path: String,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for the whole answer.
    pub timeout: Duration,
    /// Embedded store: how long after a forward whose outcome is unknown the edge asks the
    /// origin `GET {path}/{reservation}`; longer than the origin accepts a signed forward.
    pub settle_after: Duration,
}

/// One sale.
#[derive(Debug, Clone)]
pub struct Sale {
    /// The product on sale.
    pub product: u64,
    /// Units for sale.
    pub stock: u64,
    /// When buying opens.
    pub starts_at: Timestamp,
    /// When buying closes.
    pub ends_at: Timestamp,
    /// Captcha required of buyers.
    pub captcha: Captcha,
    /// The title, price and image the page shows.
    pub showcase: Showcase,
    /// The sale's waiting room, if it has one: then a buy needs the queue's pass.
    pub queue: Option<QueueSettings>,
}

/// One rate limit.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Name shown in logs and `check`.
    pub name: String,
    /// What is counted.
    pub key: LimitKey,
    /// Requests allowed per window.
    pub requests: u64,
    /// Window length.
    pub per: Duration,
    /// Count, never reject.
    pub dry_run: bool,
    /// Distinct keys one window is sized for.
    pub expected_keys: usize,
    /// Counted by this edge alone, or by all edges on the Redis store together.
    pub scope: Scope,
    /// Whether buys count against it (shop routes count against the limits they name).
    pub buys: bool,
}

/// `limits[].scope` resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This edge's own count.
    Local,
    /// Every edge's count, summed in Redis every `sync`.
    Cluster {
        /// How often the counts are exchanged.
        sync: Duration,
    },
}

/// What to look up when resolving a configuration; the process environment in production, a
/// fixed map in tests.
pub trait Environment {
    /// The value of variable `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// The environment variables the shipped configurations read their secrets from.
pub const SECRET_VARIABLES: [&str; 3] = [
    "FLASHGATE_LOGIN_SECRET",
    "FLASHGATE_EDGE_SECRET",
    "FLASHGATE_CAPTCHA_SECRET",
];

/// Which of [`SECRET_VARIABLES`] are set (and not empty) in `env`. A process that fell back to
/// a development secret while some of these are set is half-configured: the order backend
/// refuses to start so.
pub fn secret_variables_set(env: &dyn Environment) -> Vec<&'static str> {
    SECRET_VARIABLES
        .into_iter()
        .filter(|name| env.var(name).is_some_and(|v| !v.is_empty()))
        .collect()
}

impl Config {
    /// Read, parse and validate `path` against the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, &ProcessEnv)
    }

    /// Read, parse and validate `path` against `env`.
    pub fn load_with(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        let text = read::text(path)?;
        Self::parse(path, &text, env)
    }

    /// Parse and validate `text`, reporting errors against `path`.
    pub fn parse(path: &Path, text: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
        let (file, locations) = read::parse::<schema::FileConfig>(path, text)?;
        validate::resolve(path, file, &locations, env)
    }

    /// The sale of `product`, if one is configured.
    pub fn sale(&self, product: u64) -> Option<&Sale> {
        self.sales.iter().find(|s| s.product == product)
    }
}
