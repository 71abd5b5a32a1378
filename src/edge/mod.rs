//! The Pingora service: routing and the proxy phases. No business rule lives here — admission
//! decides, the store reserves, this module only moves bytes between them and the sockets.
//!
//! - `routes`: which route a request is for.
//! - `proxy`: the `ProxyHttp` phases (answer at the edge, or forward a winner).
//! - `static_files`, `button`, `challenge`: what the public listener serves besides buys.
//! - `admin`: `/metrics`, `/healthz`, `/readyz` on the admin listener.
//! - `respond`: writing edge-made answers.

pub mod admin;
pub mod button;
pub mod challenge;
mod proxy;
pub mod respond;
pub mod routes;
pub mod static_files;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;
use pingora::upstreams::peer::HttpPeer;

use crate::admission::blocklist::Blocklist;
use crate::admission::captcha::CaptchaCheck;
use crate::admission::catalog::ProductFilter;
use crate::admission::login::Login;
use crate::admission::rate::RateLimiter;
use crate::admission::sale::SaleGate;
use crate::admission::Admission;
use crate::config::{Config, Store};
use crate::metrics::Metrics;
use crate::stock::memory::MemoryStore;
use crate::stock::redis::{RedisStore, Target};
use crate::stock::single_use::{MemorySingleUse, SingleUse};
use crate::stock::StockStore;

pub use proxy::Edge;
use static_files::StaticFiles;

/// Why the gateway could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The blocklist or another named file is wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The static directory could not be loaded.
    #[error(transparent)]
    Static(#[from] static_files::StaticError),
    /// The catalog filter could not be built.
    #[error(transparent)]
    Catalog(#[from] crate::admission::catalog::CatalogError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Everything the listeners share: built once from the configuration, held in an `Arc`.
pub struct Gateway {
    /// The configuration it was built from.
    pub config: Config,
    /// The admission chain.
    pub admission: Admission,
    /// Where stock lives.
    pub store: Arc<dyn StockStore>,
    /// Where used captchas are remembered (the same Redis as the stock, or this process).
    pub single_use: Arc<dyn SingleUse>,
    /// Every metric.
    pub metrics: Metrics,
    /// The sale page.
    pub static_files: StaticFiles,
    /// The origin winners are forwarded to.
    pub origin: HttpPeer,
}

impl Gateway {
    /// Assemble the gateway from `config`, with the store the configuration names.
    pub fn build(config: Config) -> Result<Self, BuildError> {
        let redis = |target, timeout| {
            let store = Arc::new(RedisStore::new(target, timeout));
            (
                store.clone() as Arc<dyn StockStore>,
                store as Arc<dyn SingleUse>,
            )
        };
        let (store, single_use) = match &config.store {
            Store::Memory => {
                let store = MemoryStore::new(config.sales.iter().map(|s| (s.product, s.stock)));
                let used = MemorySingleUse::new(config.captcha.single_use_capacity);
                (
                    Arc::new(store) as Arc<dyn StockStore>,
                    Arc::new(used) as Arc<dyn SingleUse>,
                )
            }
            Store::Redis { url, timeout } => redis(Target::Single(url.clone()), *timeout),
            Store::Cluster { urls, timeout } => redis(Target::Cluster(urls.clone()), *timeout),
        };
        Self::with_stores(config, store, single_use)
    }

    /// Assemble the gateway from `config` around an existing store, remembering used captchas
    /// in this process.
    pub fn with_store(config: Config, store: Arc<dyn StockStore>) -> Result<Self, BuildError> {
        let used = MemorySingleUse::new(config.captcha.single_use_capacity);
        Self::with_stores(config, store, Arc::new(used))
    }

    /// Assemble the gateway from `config` around existing stock and single-use stores.
    pub fn with_stores(
        config: Config,
        store: Arc<dyn StockStore>,
        single_use: Arc<dyn SingleUse>,
    ) -> Result<Self, BuildError> {
        let metrics = Metrics::new()?;
        let blocklist = match &config.blocklist_file {
            Some(path) => Blocklist::load(path)?,
            None => Blocklist::default(),
        };
        let rates = RateLimiter::new(&config.limits, &config.allowlist_uids, |name| {
            metrics.dry_run_counter(name)
        });
        let sales = config
            .sales
            .iter()
            .map(|s| SaleGate::new(s, &config.secrets.edge, config.sold_out_hint));
        for sale in &config.sales {
            metrics.set_remaining(sale.product, sale.stock);
        }
        let admission = Admission::new(
            ProductFilter::build(&config.catalog)?,
            sales,
            Login::new(&config.secrets.login),
            blocklist,
            rates,
            CaptchaCheck::new(&config.captcha, &config.secrets.edge, &config.sales),
        );
        let static_files = StaticFiles::load(&config.static_dir)?;
        let mut origin = HttpPeer::new(config.origin.addr, false, String::new());
        origin.options.connection_timeout = Some(config.origin.connect_timeout);
        origin.options.total_connection_timeout = Some(config.origin.connect_timeout);
        origin.options.read_timeout = Some(config.origin.timeout);
        origin.options.write_timeout = Some(config.origin.timeout);
        origin.options.idle_timeout = Some(std::time::Duration::from_secs(60));
        Ok(Gateway {
            config,
            admission,
            store,
            single_use,
            metrics,
            static_files,
            origin,
        })
    }
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Run the gateway until the process is told to stop (SIGTERM: graceful; SIGINT: fast).
pub fn run(gateway: Gateway) -> anyhow::Result<()> {
    let gateway = Arc::new(gateway);
    let config = &gateway.config;
    let conf = ServerConf {
        threads: config.threads,
        // Short grace: a flash sale has no long-lived requests to wait for.
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        pid_file: std::env::temp_dir()
            .join(format!("flashgate-{}.pid", config.listen.port()))
            .to_string_lossy()
            .into_owned(),
        upgrade_sock: std::env::temp_dir()
            .join(format!("flashgate-{}-upgrade.sock", config.listen.port()))
            .to_string_lossy()
            .into_owned(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut public = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Edge::new(gateway.clone()),
        "flashgate public",
    );
    public.add_tcp(&config.listen.to_string());

    let mut admin = Service::new(
        "flashgate admin".to_string(),
        admin::Admin::new(gateway.clone()),
    );
    admin.add_tcp(&config.admin_listen.to_string());
    admin.threads = Some(1);

    server.add_service(public);
    server.add_service(admin);
    tracing::info!(
        listen = %config.listen,
        admin = %config.admin_listen,
        store = gateway.store.kind(),
        "flashgate running"
    );
    server.run_forever()
}
