//! The configuration file exactly as it is written: serde structs with `deny_unknown_fields`, so
//! a misspelt key is an error with its line and column, never silently ignored. Nothing here is
//! checked across fields or resolved from the environment; `config::validate` turns this into
//! the canonical [`crate::config::Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::store::Fsync;

use super::values::{HumanDuration, IdRange, Network, Timestamp, UidValue};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: SocketAddr,
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    #[serde(default = "default_threads")]
    pub threads: usize,
    pub secrets: FileSecrets,
    #[serde(default)]
    pub trusted_proxies: Vec<Network>,
    pub origin: FileOrigin,
    #[serde(default)]
    pub store: FileStore,
    #[serde(default = "default_static_dir")]
    pub static_dir: PathBuf,
    pub catalog: FileCatalog,
    #[serde(default)]
    pub sales: Vec<FileSale>,
    #[serde(default)]
    pub limits: Vec<FileLimit>,
    #[serde(default)]
    pub blocklist: Option<FileBlocklist>,
    #[serde(default)]
    pub allowlist_uids: Vec<UidValue>,
    /// How long a sold-out answer from the store is trusted locally before asking again.
    #[serde(default = "default_sold_out_hint")]
    pub sold_out_hint: HumanDuration,
    /// Settings of the captchas that sales ask for with `captcha: pow | token`.
    #[serde(default)]
    pub captcha: FileCaptchaSettings,
    /// Which rate-limit headers a `429` carries.
    #[serde(default)]
    pub rate_limit_headers: RateLimitHeaders,
    /// The access log, if any.
    #[serde(default)]
    pub access_log: Option<FileAccessLog>,
    /// Bearer token of the admin listener's `POST /admin/reload` (`${ENV}` like the secrets).
    #[serde(default)]
    pub admin_token: Option<String>,
    /// HTTPS on the public listener: its certificate and key.
    #[serde(default)]
    pub tls: Option<FileTls>,
    /// What the public listener takes from one client: sizes, keep-alive.
    #[serde(default)]
    pub http: FileHttp,
    /// The shop's server pools, by name.
    #[serde(default)]
    pub upstreams: std::collections::BTreeMap<String, super::upstreams::FileUpstream>,
    /// The rest of the shop: host and path to an upstream, in order.
    #[serde(default)]
    pub routes: Vec<super::routes::FileRoute>,
}

/// `http:` — the public listener's limits on what one client sends (docs/configuration.md, "Limits on the
/// public listener").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileHttp {
    /// The request target (path and query) at most, in bytes; longer: `414`.
    pub max_uri_bytes: usize,
    /// The request's header fields at most, in bytes (names and values); more: `431`.
    pub max_header_bytes: usize,
    /// The request's header fields at most, in number; more: `431` (HTTP/1.1's parser refuses
    /// more than 256 with `400` first).
    pub max_header_count: usize,
    /// A request body at most, in bytes (`Content-Length`); more: `413`.
    pub max_body_bytes: u64,
    /// How long a keep-alive connection may wait for its next request (and, per read, for the
    /// rest of its header) before it is closed.
    pub keepalive_timeout: HumanDuration,
    /// Requests one connection may make; the last answer says `Connection: close`.
    pub keepalive_requests: u32,
    /// A request's whole head must arrive within this (from the accept for a connection's
    /// first request, from its first byte for later ones).
    pub header_timeout: HumanDuration,
    /// HTTP/2's own settings.
    pub h2: FileH2,
}

/// `http.h2:` — what one HTTP/2 connection may do (docs/configuration.md, "Limits on the public listener").
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FileH2 {
    /// Streams open at once on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: Option<u32>,
    /// A request's decoded header list at most, in bytes, each field counted with 32 more
    /// (`SETTINGS_MAX_HEADER_LIST_SIZE`, RFC 9113 §6.5.2).
    pub max_header_list_size: Option<u32>,
    /// The rapid-reset budget: streams the client opened and reset before the edge took them.
    pub max_pending_reset_streams: Option<usize>,
    /// Streams the edge may reset for the client's protocol errors before it ends the
    /// connection with `ENHANCE_YOUR_CALM`.
    pub max_error_resets: Option<usize>,
}

impl Default for FileHttp {
    fn default() -> Self {
        FileHttp {
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_header_count: 256,
            max_body_bytes: 16 * 1024,
            keepalive_timeout: HumanDuration(std::time::Duration::from_secs(15)),
            keepalive_requests: 1000,
            header_timeout: HumanDuration(std::time::Duration::from_secs(10)),
            h2: FileH2::default(),
        }
    }
}

/// `tls:` — the public listener speaks TLS (HTTP/2 and HTTP/1.1 by ALPN) with this certificate
/// chain and key. Both are PEM file paths and may use `${ENV}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// The certificate chain, leaf first.
    pub cert: String,
    /// The leaf's private key.
    pub key: String,
}

/// `access_log:` — one JSON line per request, written off the hot path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAccessLog {
    /// A file (appended to), or `stdout`.
    pub path: std::path::PathBuf,
    /// The routes logged; every route when not given.
    #[serde(default)]
    pub routes: Option<Vec<LogRoute>>,
    /// Lines waiting for the writer at most; more are dropped and counted.
    #[serde(default = "default_access_log_buffer")]
    pub buffer: usize,
}

/// A route of the public listener, as `access_log.routes` names it.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogRoute {
    /// `GET /` and `/static/*`.
    Static,
    /// `GET /sale/{product}/button.js`.
    Button,
    /// `GET /api/challenge`.
    Challenge,
    /// `POST /buy/{product}/{token}`.
    Buy,
    /// A request a route of `routes:` matched.
    Shop,
    /// Anything else.
    Other,
}

impl LogRoute {
    /// Every route.
    pub const ALL: [LogRoute; 6] = [
        LogRoute::Static,
        LogRoute::Button,
        LogRoute::Challenge,
        LogRoute::Buy,
        LogRoute::Shop,
        LogRoute::Other,
    ];
}

/// `rate_limit_headers:` — which headers tell a refused client about the limit it hit.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitHeaders {
    /// `RateLimit` and `RateLimit-Policy` of draft-ietf-httpapi-ratelimit-headers-10.
    #[default]
    Draft,
    /// The older `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
    Legacy,
    /// Both sets.
    Both,
}

/// `captcha:` — how proof-of-work challenges and external pass tokens are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCaptchaSettings {
    /// Leading zero bits a proof of work needs while the sale is calm.
    #[serde(default = "default_pow_difficulty")]
    pub difficulty: u8,
    /// The most leading zero bits the difficulty rises to under load.
    #[serde(default = "default_pow_max_difficulty")]
    pub max_difficulty: u8,
    /// Buys per second of one sale above which the difficulty rises by a bit each second.
    #[serde(default = "default_raise_above")]
    pub raise_above: u64,
    /// Lifetime of a challenge; also the longest lifetime accepted for a pass token.
    #[serde(default = "default_challenge_ttl")]
    pub challenge_ttl: HumanDuration,
    /// HMAC key shared with the external captcha service (`${ENV}` like other secrets).
    #[serde(default)]
    pub token_secret: Option<String>,
    /// Embedded store: how many used challenges and passes are remembered at once.
    #[serde(default = "default_single_use_capacity")]
    pub single_use_capacity: usize,
}

impl Default for FileCaptchaSettings {
    fn default() -> Self {
        FileCaptchaSettings {
            difficulty: default_pow_difficulty(),
            max_difficulty: default_pow_max_difficulty(),
            raise_above: default_raise_above(),
            challenge_ttl: default_challenge_ttl(),
            token_secret: None,
            single_use_capacity: default_single_use_capacity(),
        }
    }
}

/// `secrets:`; values may be `${ENV_VAR}` references.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSecrets {
    pub login: String,
    pub edge: String,
}

/// `origin:` — where winners are forwarded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOrigin {
    /// One server, `http://host:port`; or `upstream`.
    #[serde(default)]
    pub url: Option<String>,
    /// A pool of `upstreams:` (several order backends on one database), instead of `url`.
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default = "default_origin_path")]
    pub path: String,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    #[serde(default = "default_origin_timeout")]
    pub timeout: HumanDuration,
    /// How long after an ambiguous forward the embedded store asks the origin about it.
    #[serde(default = "default_settle_after")]
    pub settle_after: HumanDuration,
}

/// `store.kind`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Memory,
    Redis,
}

/// `store:` — where stock lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStore {
    #[serde(default)]
    pub kind: StoreKind,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub cluster: Option<Vec<String>>,
    /// A master found through Redis Sentinel.
    #[serde(default)]
    pub sentinel: Option<FileSentinel>,
    #[serde(default = "default_store_timeout")]
    pub timeout: HumanDuration,
    /// Wait for replicas to acknowledge each reservation.
    #[serde(default)]
    pub wait: Option<FileWait>,
    /// Embedded store: directory of its journal (durable across restarts).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Embedded store: when the journal reaches the disk.
    #[serde(default)]
    pub fsync: Fsync,
    /// Store calls per second one sale's store takes (for `flashgate check`'s warning).
    #[serde(default)]
    pub capacity: Option<u64>,
}

impl Default for FileStore {
    fn default() -> Self {
        FileStore {
            kind: StoreKind::Memory,
            url: None,
            cluster: None,
            sentinel: None,
            timeout: default_store_timeout(),
            wait: None,
            path: None,
            fsync: Fsync::default(),
            capacity: None,
        }
    }
}

/// `store.sentinel:` — the monitored master's name and the sentinels to ask for it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSentinel {
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    pub master: String,
    /// Sentinel URLs, `redis://host:26379`.
    pub nodes: Vec<String>,
}

/// `store.wait:` — replicas that must acknowledge each reservation, and for how long.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWait {
    /// At least 1.
    pub replicas: u32,
    /// Above zero, at most the store's timeout.
    pub timeout: HumanDuration,
}

/// `catalog:` — every product id the shop knows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCatalog {
    #[serde(default)]
    pub products: Vec<IdRange>,
    #[serde(default)]
    pub products_file: Option<PathBuf>,
    #[serde(default = "default_false_positive_rate")]
    pub false_positive_rate: f64,
}

/// `captcha:` of a sale.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Captcha {
    /// No captcha: any logged-in user may buy.
    #[default]
    None,
    /// Proof of work solved by the page.
    Pow,
    /// A pass token from an external captcha service.
    Token,
}

/// One entry of `sales:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSale {
    pub product: u64,
    pub stock: u64,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    #[serde(default)]
    pub captcha: Captcha,
    /// What the page shows (`showcase`): the title, the displayed price, an image.
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub price: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub queue: Option<FileQueue>,
}

/// `limits[].key`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LimitKey {
    /// One counter per client IP.
    Ip,
    /// One counter per logged-in user.
    Uid,
    /// One counter for everyone.
    Global,
}

/// `limits[].scope`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LimitScope {
    /// Each edge counts on its own (a client spreading over `n` edges gets `n` times the
    /// limit).
    #[default]
    Local,
    /// All edges on the same Redis count together, synced every `sync_interval`.
    Cluster,
}

/// One entry of `limits:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimit {
    pub name: String,
    pub key: LimitKey,
    pub requests: u64,
    pub per: HumanDuration,
    #[serde(default)]
    pub dry_run: bool,
    /// How many distinct keys one window may see; sizes the counting sketch.
    #[serde(default)]
    pub expected_keys: Option<usize>,
    /// Whether the edges count together.
    #[serde(default)]
    pub scope: LimitScope,
    /// How often a `scope: cluster` rule sends its counts to Redis and learns the others'.
    #[serde(default)]
    pub sync_interval: Option<HumanDuration>,
    /// Whether buys count against it (default true); `false` for a limit only shop routes
    /// name.
    #[serde(default = "default_true")]
    pub buys: bool,
}

fn default_true() -> bool {
    true
}

/// `blocklist:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBlocklist {
    pub file: PathBuf,
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}
fn default_threads() -> usize {
    1
}
fn default_static_dir() -> PathBuf {
    PathBuf::from("static")
}
fn default_origin_path() -> String {
    "/orders".to_string()
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}
fn default_origin_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5))
}
fn default_settle_after() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}
fn default_store_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(50))
}
fn default_false_positive_rate() -> f64 {
    0.001
}
fn default_sold_out_hint() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}
fn default_pow_difficulty() -> u8 {
    16
}
fn default_pow_max_difficulty() -> u8 {
    22
}
fn default_raise_above() -> u64 {
    1000
}
fn default_challenge_ttl() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}
fn default_access_log_buffer() -> usize {
    65_536
}
fn default_single_use_capacity() -> usize {
    1_000_000
}

/// `sales[].queue:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileQueue {
    #[serde(default)]
    pub mode: QueueMode,
    #[serde(default)]
    pub prequeue: Option<HumanDuration>,
    pub admit_per_second: u64,
    #[serde(default)]
    pub pass_ttl: Option<HumanDuration>,
    #[serde(default)]
    pub stock_multiple: Option<u64>,
}

/// `sales[].queue.mode`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    /// Visitors are let through in the order they joined.
    #[default]
    Fifo,
    /// Everyone who joined during the pre-queue gets a random place at the start (a verifiable
    /// draw, `queue::draw`); later arrivals queue behind them in arrival order.
    Shuffle,
}

impl QueueMode {
    /// The name used in the config, `check` and `/api/queue/draw`.
    pub fn name(self) -> &'static str {
        match self {
            QueueMode::Fifo => "fifo",
            QueueMode::Shuffle => "shuffle",
        }
    }
}
