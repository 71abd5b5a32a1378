//! What the configuration file decides, built into one value and swapped whole on a reload:
//! the parsed configuration, the checkout (sales, checks, limits, blocklist, catalog,
//! captcha), the static page, the origin to forward to and the `429`'s rate headers. A request
//! takes the `Live` in place when it arrives and keeps it to its end, so no request sees half
//! of one configuration and half of another.

use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;

use super::rate_headers::RateHeaders;
use super::sale_info::SaleInfo;
use super::static_files::StaticFiles;
use super::GatewayError;
use crate::checkout::Checkout;
use crate::config::Config;

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
}

impl Live {
    /// Everything `config` decides around `checkout` (built from the same configuration).
    pub fn build(config: Config, checkout: Checkout) -> Result<Self, GatewayError> {
        let static_files = StaticFiles::load(&config.static_dir)?;
        let sale_info = SaleInfo::build(&config.sales, &static_files);
        let origin = origin_peer(&config);
        let rate_headers = RateHeaders::new(config.rate_limit_headers, &config.limits);
        Ok(Live {
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
