//! The admission chain: everything that decides, locally and cheaply, whether a buy request may
//! ask the stock store for a unit. Each check is a small module and a pure function of the
//! request's facts and local state; none knows of HTTP or Pingora, so each is tested without a
//! socket. [`Admission::check`] runs them cheapest-first, in the order of DESIGN.md:
//!
//! 1. product known? (Bloom filter over the catalog) and on sale here?
//! 2. sale window (`not_started`, `ended`), then the secret buy-path token (`bad_sale_path`)
//! 3. login (JWT, `login_required`)
//! 4. blocklist, by UID then by client IP (`blacklisted`)
//! 5. rate limits (`rate_limited`)
//! 6. captcha (`captcha_required`; sales with `captcha: none` skip it)
//! 7. local sold-out hint (`sold_out`)
//!
//! A captcha that checks out still has to be used only once. That needs state shared by every
//! edge, so it is the caller's first store call: [`Admitted::pass`] is claimed in the single-use
//! store (`stock::single_use`) just before the reservation. Claiming it after the sold-out hint
//! keeps the rule that a reject costs no store round trip; a captcha sale costs a winner two
//! (claim, reserve) instead of one.
//!
//! The product check comes first, not after the window as in the first sketch of the design,
//! because the window belongs to a product's sale: there is no window to check until the
//! product is known. Both are a handful of nanoseconds.

pub mod blocklist;
pub mod captcha;
pub mod catalog;
pub mod client_ip;
pub mod login;
pub mod outcome;
pub mod rate;
pub mod sale;

use std::collections::HashMap;
use std::net::IpAddr;

pub use outcome::Outcome;

use blocklist::Blocklist;
use captcha::CaptchaCheck;
use catalog::ProductFilter;
use login::Login;
use rate::{RateLimited, RateLimiter};
use sale::SaleGate;

/// The facts of one buy request the chain needs.
#[derive(Debug, Clone, Copy)]
pub struct BuyRequest<'a> {
    /// Product id from the path.
    pub product: u64,
    /// Buy-path token from the path.
    pub token: &'a str,
    /// The login token (Bearer or cookie), if any.
    pub login_token: Option<&'a str>,
    /// The client address (see [`client_ip`]).
    pub client_ip: IpAddr,
    /// Now, in ms since the epoch.
    pub now_ms: u64,
    /// The `X-Captcha` header, if any.
    pub captcha: Option<&'a str>,
}

/// A request that passed every check.
pub struct Admitted<'a> {
    /// Its sale.
    pub sale: &'a SaleGate,
    /// The logged-in user.
    pub uid: String,
    /// The captcha to claim as used before reserving (sales with `captcha: pow | token`).
    pub pass: Option<captcha::Pass>,
}

/// A request turned away, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// The outcome to answer with.
    pub outcome: Outcome,
    /// For `rate_limited`: what the rate headers say.
    pub rate: Option<RateLimited>,
}

impl From<Outcome> for Reject {
    fn from(outcome: Outcome) -> Self {
        Reject {
            outcome,
            rate: None,
        }
    }
}

/// All admission state, built once from the configuration.
pub struct Admission {
    products: ProductFilter,
    sales: HashMap<u64, SaleGate>,
    login: Login,
    blocklist: Blocklist,
    rates: RateLimiter,
    captcha: CaptchaCheck,
}

impl Admission {
    /// Assemble the chain from its parts.
    pub fn new(
        products: ProductFilter,
        sales: impl IntoIterator<Item = SaleGate>,
        login: Login,
        blocklist: Blocklist,
        rates: RateLimiter,
        captcha: CaptchaCheck,
    ) -> Self {
        Admission {
            products,
            sales: sales.into_iter().map(|s| (s.product, s)).collect(),
            login,
            blocklist,
            rates,
            captcha,
        }
    }

    /// The sale of `product`, if the product is in the catalog and on sale here.
    pub fn sale(&self, product: u64) -> Option<&SaleGate> {
        if !self.products.may_contain(product) {
            return None;
        }
        self.sales.get(&product)
    }

    /// Every sale.
    pub fn sales(&self) -> impl Iterator<Item = &SaleGate> {
        self.sales.values()
    }

    /// The catalog filter.
    pub fn products(&self) -> &ProductFilter {
        &self.products
    }

    /// The login verifier.
    pub fn login(&self) -> &Login {
        &self.login
    }

    /// The captcha check: issues challenges, knows each sale's difficulty.
    pub fn captcha(&self) -> &CaptchaCheck {
        &self.captcha
    }

    /// The blocklist.
    pub fn blocklist(&self) -> &Blocklist {
        &self.blocklist
    }

    /// Run the chain. On success the caller asks the store for a unit.
    pub fn check<'s>(&'s self, req: &BuyRequest<'_>) -> Result<Admitted<'s>, Reject> {
        let sale = self.sale(req.product).ok_or(Outcome::UnknownProduct)?;
        sale.window(req.now_ms)?;
        if !sale.token_matches(req.token) {
            return Err(Outcome::BadSalePath.into());
        }
        let uid = req
            .login_token
            .and_then(|t| self.login.verify(t))
            .ok_or(Outcome::LoginRequired)?;
        if self.blocklist.blocks_uid(&uid) || self.blocklist.blocks_ip(req.client_ip) {
            return Err(Outcome::Blacklisted.into());
        }
        if let Err(limited) = self.rates.check(req.client_ip, &uid) {
            return Err(Reject {
                outcome: Outcome::RateLimited,
                rate: Some(limited),
            });
        }
        let pass = self
            .captcha
            .check(&uid, req.product, req.captcha, req.now_ms)
            .map_err(|_| Outcome::CaptchaRequired)?;
        if sale.sold_out_hint(req.now_ms) {
            return Err(Outcome::SoldOut.into());
        }
        Ok(Admitted { sale, uid, pass })
    }
}
