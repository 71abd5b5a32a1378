//! The Pingora services: routing and the proxy phases, the admin listener, reload and upgrade.
//! No business rule lives here — the checkout (`crate::checkout`) decides every buy and settles
//! every forward, and the composition root (`crate::root`) opens the stores; this module only
//! moves bytes between them and the sockets.
//!
//! - `routes`: which route a request is for.
//! - `proxy`: the `ProxyHttp` phases (answer at the edge, or forward a winner).
//! - `fingerprint`: the assets' content-hashed names.
//! - `static_files`, `button`, `sale_info`, `challenge`: what the public listener serves besides
//!   buys.
//! - `admin`: `/metrics`, `/healthz`, `/readyz` on the admin listener.
//! - `settler`: the background task that asks the origin about forwards of unknown outcome
//!   (embedded store), over HTTP.
//! - `guard`: what the public listener refuses from the request head alone (framing, sizes).
//! - `limit_sync`: `scope: cluster` limits' counts exchanged with Redis.
//! - `slow`: request heads and HTTP/2 prefaces bounded in time (`http.header_timeout`, from
//!   the accept), slow clients counted; `hello`: the TLS handshake bounded the same way.
//! - `answer`: each outcome's status and body; `respond`: writing edge-made answers;
//!   `rate_headers`: the headers of a `429`.
//! - `queue_sync`: the waiting rooms' ticks (`crate::queue::tick`) every 200 ms.
//! - `warmup`: the store connected before the public listener opens.
//! - `upgrade`: handing the listening sockets to a new process (`run --upgrade`).
//! - `access_log`: one JSON line per request, written by a thread of its own.
//! - `live`: what the configuration decides, swapped whole by `reload` (SIGHUP, which
//!   `hangup` takes over, or `POST /admin/reload`).
//! - `shop`: the shop's routes (`routes:`) matched after the sale's own, with their policy
//!   and counters; `upstream`: their pools (`upstreams:`) on Pingora's load balancer, health
//!   checks and passive ejection.
//! - `tls`: HTTPS on the public listener (HTTP/2 and HTTP/1.1 by ALPN), presenting the
//!   certificate of the configuration in place, so a reload renews it.

internal!(mod access_log);
internal!(mod admin);
internal!(mod answer);
pub mod button;
internal!(mod challenge);
internal!(mod fingerprint);
mod guard;
pub mod hangup;
mod hello;
mod limit_sync;
mod live;
mod proxy;
mod queue_sync;
internal!(mod rate_headers);
mod reload;
internal!(mod respond);
internal!(mod routes);
internal!(mod sale_info);
mod settler;
mod shop;
internal!(mod slow);
internal!(mod static_files);
internal!(mod tls);
internal!(mod upgrade);
mod upstream;
mod warmup;

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::GenBackgroundService;
use pingora::services::listening::Service;

use crate::checkout::Checkout;
use crate::config::Config;
use crate::ground::metrics::Metrics;
use crate::queue::store::QueueStore;
use crate::stock::single_use::SingleUse;
use crate::stock::{StockStore, StoreError};

pub use live::Live;
pub use proxy::Edge;
pub use reload::{ReloadError, Reloaded};

/// Why the gateway could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The checkout (blocklist, catalog) could not be built.
    #[error(transparent)]
    Checkout(#[from] crate::checkout::BuildError),
    /// The embedded store's journal could not be opened.
    #[error("store.path: {0}")]
    Store(#[from] StoreError),
    /// The static directory could not be loaded.
    #[error(transparent)]
    Static(#[from] static_files::StaticError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The access log could not be opened.
    #[error(transparent)]
    AccessLog(#[from] access_log::AccessLogError),
}

/// Bytes of each public connection's write buffer: an answer's head and a small body (the
/// sale page) leave in one send.
const WRITE_BUFFER_BYTES: usize = 4096;

/// The stores a gateway works over, opened from the configuration's `store:` by the
/// composition root (`crate::root`).
pub struct Stores {
    /// Where stock lives.
    pub stock: Arc<dyn StockStore>,
    /// Where used captchas are remembered.
    pub single_use: Arc<dyn SingleUse>,
    /// Where the waiting rooms live.
    pub queue: Arc<dyn QueueStore>,
}

/// Everything the listeners share, held in an `Arc`: what the configuration decides ([`Live`],
/// swapped whole by a reload) and what outlives any one configuration (metrics, access log).
pub struct Gateway {
    live: ArcSwap<Live>,
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// The access log, when configured and the gateway runs (never for `check`).
    pub access_log: Option<access_log::AccessLog>,
    /// Failed forwards are reported once per period with a count: each winner of an origin
    /// outage sees one.
    pub forward_failures: crate::ground::logging::SharedThrottle,
    /// Held by the reload under way, so reloads run one at a time.
    reloading: tokio::sync::Mutex<()>,
    /// The waiting rooms: their store and every queued sale's view (kept across reloads).
    pub queues: Arc<crate::queue::Queues>,
    /// The TLS handshakes under way on the public listener, each bounded by a watchdog.
    handshakes: hello::Handshakes,
}

impl Gateway {
    /// Assemble the gateway from `config` around `stores` (opened by the composition root,
    /// `crate::root`), writing the access log to `access_log` when one is open.
    pub fn assemble(
        config: Config,
        stores: Stores,
        access_log: Option<access_log::AccessLog>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, GatewayError> {
        for sale in &config.sales {
            metrics.set_remaining(sale.product, sale.stock);
        }
        let Stores {
            stock: store,
            single_use,
            queue: queue_store,
        } = stores;
        let queues = Arc::new(crate::queue::Queues::new(queue_store));
        for sale in config.sales.iter().filter(|s| s.queue.is_some()) {
            metrics.queue_sale(sale.product);
        }
        let checkout = Checkout::build(&config, store, single_use, metrics.clone())?;
        let live = Live::build(config, checkout, &metrics.shop, None)?;
        Ok(Gateway {
            live: ArcSwap::from_pointee(live),
            metrics,
            access_log,
            forward_failures: crate::ground::logging::SharedThrottle::new(
                std::time::Duration::from_secs(5),
            ),
            reloading: tokio::sync::Mutex::new(()),
            queues,
            handshakes: hello::Handshakes::default(),
        })
    }

    /// The configuration in place now. A request takes it once, when it arrives, and keeps it
    /// to its end.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Put `live` in place of the running configuration.
    fn swap(&self, live: Live) {
        self.live.store(Arc::new(live));
    }
}

/// The Pingora server, its listening sockets ready before the gateway is assembled: in an
/// upgrade they are taken over from the running process first ([`upgrade`]), so that the
/// embedded store's journal is opened only after that process has let it go.
pub struct Prepared {
    server: Server,
}

/// Prepare the server for `config`; with `upgrade`, take the listening sockets over from the
/// gateway running on the same port (asking it to hand them over when its pid file names it).
pub fn prepare(config: &Config, upgrade: bool) -> anyhow::Result<Prepared> {
    let port = config.listen.port();
    let conf = ServerConf {
        threads: config.threads,
        // Short grace: a flash sale has no long-lived requests to wait for.
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        upgrade_sock: upgrade::socket(port).to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    hangup::take_over()?;
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    if upgrade {
        if upgrade::ask_old_process(port)? {
            tracing::info!("upgrade: waiting for the listening sockets (up to 5 s)");
        } else {
            tracing::warn!(
                pid_file = %upgrade::pid_file(port).display(),
                "upgrade: no running flashgate is recorded for port {port}; send the old process \
                 SIGQUIT now (within 5 s)"
            );
        }
    }
    // Blocks in an upgrade until the sockets arrive; exits the process if they do not.
    server.bootstrap();
    Ok(Prepared { server })
}

/// The HTTP/2 settings of every connection (`http.h2`): fixed at start, like the listener.
fn h2_options(h2: &crate::config::H2Limits) -> pingora::protocols::http::v2::server::H2Options {
    let mut options = pingora::protocols::http::v2::server::H2Options::default();
    options
        .max_concurrent_streams(h2.max_concurrent_streams)
        .max_header_list_size(h2.max_header_list_size)
        .max_pending_accept_reset_streams(h2.max_pending_reset_streams)
        .max_local_error_reset_streams(Some(h2.max_error_resets));
    options
}

/// Run the gateway on the prepared server until the process is told to stop (SIGTERM:
/// graceful; SIGINT: fast; SIGQUIT: hand the sockets to an upgrade, then stop).
pub fn run(prepared: Prepared, gateway: Gateway) -> anyhow::Result<()> {
    let Prepared { mut server } = prepared;
    let gateway = Arc::new(gateway);
    let live = gateway.live();
    let config = &live.config;

    let mut proxy = pingora::proxy::http_proxy(&server.configuration, Edge::new(gateway.clone()));
    let mut options = pingora::apps::HttpServerOptions::default();
    // Pingora counts the reuses of a connection after its first request.
    options.keepalive_request_limit = Some(config.http.keepalive_requests.saturating_sub(1));
    // An HTTP/2 connection with no stream open is idle, like a kept-alive HTTP/1.1 one.
    options.h2_idle_timeout = Some(std::time::Duration::from_secs(config.http.keepalive_secs));
    proxy.server_options = Some(options);
    proxy.h2_options = Some(h2_options(&config.http.h2));
    let mut public = Service::new(
        "flashgate public".to_string(),
        slow::Guarded::new(proxy, gateway.clone()),
    );
    // Pingora's default write buffer (1,460 bytes) cannot hold an answer's head with the sale
    // page (1.3 KB), so they left in two sends; 4 KiB takes both in one (beside the 64 KiB
    // read buffer every connection has).
    let listener = ListenerConfig::tcp(config.listen.to_string())
        .l4_buffer(L4BufferSettings::default().write(WRITE_BUFFER_BYTES));
    match &config.tls {
        Some(tls) => {
            let settings = tls::settings(gateway.clone())?;
            // Set before the listener is added: each listener takes the callback it finds.
            public
                .endpoints()
                .set_pre_tls_callback(Arc::new(hello::HelloDeadline::new(gateway.clone())));
            public.add_listener(listener.tls(settings));
            tls.log_identity("public listener speaks HTTPS (HTTP/2 and HTTP/1.1) with");
        }
        None => public.add_listener(listener),
    }

    let mut admin = Service::new(
        "flashgate admin".to_string(),
        admin::Admin::new(gateway.clone()),
    );
    admin.add_tcp(&config.admin_listen.to_string());
    admin.threads = Some(1);

    let settler = GenBackgroundService::new(
        "flashgate settlement".to_string(),
        Arc::new(settler::Settler::new(gateway.clone())),
    );

    // The public listener opens once the store is warm (connected, scripts loaded).
    let warm = server.add_service(GenBackgroundService::new(
        "flashgate warm-up".to_string(),
        Arc::new(warmup::Warmup::new(gateway.clone())),
    ));
    server.add_service(public).add_dependency(&warm);
    server.add_service(admin);
    server.add_service(settler);
    server.add_service(GenBackgroundService::new(
        "flashgate limit sync".to_string(),
        Arc::new(limit_sync::LimitSync::new(gateway.clone())),
    ));
    server.add_service(GenBackgroundService::new(
        "flashgate queue ticks".to_string(),
        Arc::new(queue_sync::QueueSync::new(gateway.clone())),
    ));
    server.add_service(GenBackgroundService::new(
        "flashgate health checks".to_string(),
        Arc::new(upstream::HealthChecks::new(gateway.clone())),
    ));
    server.add_service(GenBackgroundService::new(
        "flashgate SIGHUP".to_string(),
        Arc::new(hangup::Hangup::new(gateway.clone())),
    ));
    upgrade::write_pid(config.listen.port())?;
    tracing::info!(
        listen = %config.listen,
        https = config.tls.is_some(),
        admin = %config.admin_listen,
        store = live.checkout.store().kind(),
        "flashgate running"
    );
    server.run_forever()
}
