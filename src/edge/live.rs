//! What the configuration file decides, built into one value and swapped whole on a reload:
//! the parsed configuration, the checkout (sales, checks, limits, blocklist, catalog,
//! captcha), the static page, the origin to forward to, the `429`'s rate headers, and the
//! shop's routes and upstream pools. A request
//! takes the `Live` in place when it arrives and keeps it to its end, so no request sees half
//! of one configuration and half of another.

use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;

use super::rate_headers::RateHeaders;
use super::sale_info::SaleInfo;
use super::shop::ShopRoutes;
use super::static_files::StaticFiles;
use super::upstream::Pools;
use super::GatewayError;
use crate::checkout::Checkout;
use crate::config::Config;
use crate::ground::metrics::ShopMetrics;

/// One configuration, ready to serve.
pub struct Live {
    /// The configuration it was built from.
    pub config: Config,
    /// Sales, checks and stock: decides every buy, settles every forward.
    pub checkout: Checkout,
    /// The sale page.
    pub static_files: StaticFiles,
    /// What each sale is, as `GET /api/sale` answers (built with `static_files`' names).
    pub sale_info: SaleInfo,
    /// The origin winners are forwarded to.
    pub origin: HttpPeer,
    /// The headers of a `429`, per limit rule.
    pub rate_headers: RateHeaders,
    /// The shop's upstream pools, by `Config::upstreams` index.
    pub pools: Pools,
    /// The shop's routes with their counters.
    pub shop: ShopRoutes,
}

impl Live {
    /// Everything `config` decides around `checkout` (built from the same configuration); the
    /// pools of `previous` (the configuration in place, on a reload) lend their servers'
    /// health to the new pools that check them the same way.
    pub fn build(
        config: Config,
        checkout: Checkout,
        metrics: &ShopMetrics,
        previous: Option<&Live>,
    ) -> Result<Self, GatewayError> {
        let static_files = StaticFiles::load(&config.static_dir)?;
        let sale_info = SaleInfo::build(&config.sales, &static_files);
        let origin = origin_peer(&config);
        let rate_headers = RateHeaders::new(config.rate_limit_headers, &config.limits);
        let pools = Pools::build(&config.upstreams, previous.map(|p| &p.pools), metrics);
        let shop = ShopRoutes::build(&config.routes, metrics);
        Ok(Live {
            pools,
            shop,
            config,
            checkout,
            static_files,
            sale_info,
            origin,
            rate_headers,
        })
    }
}

/// The origin as Pingora connects to it, with the configured timeouts.
fn origin_peer(config: &Config) -> HttpPeer {
    let mut origin = HttpPeer::new(config.origin.addr, false, String::new());
    origin.options.connection_timeout = Some(config.origin.connect_timeout);
    origin.options.total_connection_timeout = Some(config.origin.connect_timeout);
    origin.options.read_timeout = Some(config.origin.timeout);
    origin.options.write_timeout = Some(config.origin.timeout);
    origin.options.idle_timeout = Some(Duration::from_secs(60));
    origin
}
