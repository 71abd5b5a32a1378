//! The admission chain: everything that decides, locally and cheaply, whether a buy request may
//! ask the stock store for a unit. Each check is a small module and a pure function of the
//! request's facts and local state; none knows of HTTP or Pingora, so each is tested without a
//! socket. The checkout (`checkout::Checkout::buy`) finds the product's sale once — the
//! catalog's Bloom filter ([`catalog`], `unknown_product`), then the sale itself — and
//! [`Admission::identify`] and [`Admission::admit`] run the rest cheapest-first against that sale:
//!
//! 1. sale window (`not_started`, `ended`), then the secret buy-path token (`bad_sale_path`)
//! 2. what the address alone decides: the blocklist's `ip:`/`cidr:` entries (`blacklisted`) and
//!    the limits keyed on the address (`rate_limited`) — before the token is decoded, so a
//!    flood from a few addresses costs no signature check
//! 3. login (JWT, `login_required`)
//! 4. blocklist by UID (`blacklisted`)
//! 5. the limits keyed on the user and the global ones (`rate_limited`)
//! 6. captcha (`captcha_required`; sales with `captcha: none` skip it)
//! 7. the waiting room's pass, for a sale with a `queue:` ([`crate::queue::pass`], `queue_required`)
//! 8. local sold-out hint (`sold_out`)
//!
//! A captcha that checks out still has to be used only once. That needs state shared by every
//! edge, so it is the checkout's first store call: [`Admitted::pass`] is claimed in the
//! single-use store (`stock::single_use`) just before the reservation. Claiming it after the
//! sold-out hint keeps the rule that a reject costs no store round trip; a captcha sale costs a
//! winner two (claim, reserve) instead of one.
//!
//! The product check comes first, not after the window as in the first sketch of the design,
//! because the window belongs to a product's sale: there is no window to check until the
//! product is known. Both are a handful of nanoseconds.

internal!(mod blocklist);
internal!(mod bloom);
pub mod captcha;
internal!(mod catalog);
internal!(mod client_ip);
internal!(mod jwt);
pub mod login;
pub mod rate;
internal!(mod sale);

use crate::ground::Outcome;
use std::net::IpAddr;

use blocklist::Blocklist;
use captcha::{CaptchaCheck, SaleCaptcha};
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
    /// The `X-Queue-Pass` header, if any (sales with a `queue:`).
    pub queue_pass: Option<&'a str>,
}

/// A request that passed every check.
pub struct Admitted {
    /// The logged-in user.
    pub uid: String,
    /// The captcha to claim as used before reserving (sales with `captcha: pow | token`).
    pub pass: Option<captcha::CaptchaPass>,
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

/// The checks that do not belong to one sale, built once from the configuration.
pub struct Admission {
    login: Login,
    blocklist: Blocklist,
    rates: RateLimiter,
    captcha: CaptchaCheck,
}

impl Admission {
    /// Assemble the chain from its parts.
    pub fn new(
        login: Login,
        blocklist: Blocklist,
        rates: RateLimiter,
        captcha: CaptchaCheck,
    ) -> Self {
        Admission {
            login,
            blocklist,
            rates,
            captcha,
        }
    }

    /// The login verifier.
    pub fn login(&self) -> &Login {
        &self.login
    }

    /// The captcha check: issues challenges and checks solutions and passes.
    pub fn captcha(&self) -> &CaptchaCheck {
        &self.captcha
    }

    /// The blocklist.
    pub fn blocklist(&self) -> &Blocklist {
        &self.blocklist
    }

    /// The rate limits.
    pub fn rates(&self) -> &RateLimiter {
        &self.rates
    }

    /// The first checks, up to the login: the sale window, the buy-path token, what the
    /// address alone decides (blocklist, per-address limits), the login token. The user, or
    /// why not.
    pub fn identify(&self, gate: &SaleGate, req: &BuyRequest<'_>) -> Result<String, Reject> {
        gate.window(req.now_ms)?;
        if !gate.token_matches(req.token) {
            return Err(Outcome::BadSalePath.into());
        }
        if self.blocklist.blocks_ip(req.client_ip) {
            return Err(Outcome::Blacklisted.into());
        }
        if let Err(limited) = self.rates.check_address(client_ip::subject(req.client_ip)) {
            return Err(Reject {
                outcome: Outcome::RateLimited,
                rate: Some(limited),
            });
        }
        req.login_token
            .and_then(|t| self.login.verify(t))
            .ok_or_else(|| Outcome::LoginRequired.into())
    }

    /// Who a waiting-room visitor is: the address checks (blocklist, and with `limit` the
    /// per-address limits, as a buy), the login, the UID blocklist. The user, or why not.
    pub fn identify_visitor(
        &self,
        client: IpAddr,
        login_token: Option<&str>,
        limit: bool,
    ) -> Result<String, Reject> {
        if self.blocklist.blocks_ip(client) {
            return Err(Outcome::Blacklisted.into());
        }
        if limit {
            if let Err(limited) = self.rates.check_address(client_ip::subject(client)) {
                return Err(Reject {
                    outcome: Outcome::RateLimited,
                    rate: Some(limited),
                });
            }
        }
        let uid = login_token
            .and_then(|t| self.login.verify(t))
            .ok_or(Reject::from(Outcome::LoginRequired))?;
        if self.blocklist.blocks_uid(&uid) {
            return Err(Outcome::Blacklisted.into());
        }
        Ok(uid)
    }

    /// The rest of the chain for `uid` (from [`Admission::identify`]). A reject hands the uid
    /// back, so the caller can say whose request it was (the access log) without a copy.
    pub fn admit(
        &self,
        gate: &SaleGate,
        sale_captcha: &SaleCaptcha,
        req: &BuyRequest<'_>,
        uid: String,
    ) -> Result<Admitted, (Reject, String)> {
        match self.rest(gate, sale_captcha, req, &uid) {
            Ok(pass) => Ok(Admitted { uid, pass }),
            Err(reject) => Err((reject, uid)),
        }
    }

    fn rest(
        &self,
        gate: &SaleGate,
        sale_captcha: &SaleCaptcha,
        req: &BuyRequest<'_>,
        uid: &str,
    ) -> Result<Option<captcha::CaptchaPass>, Reject> {
        if self.blocklist.blocks_uid(uid) {
            return Err(Outcome::Blacklisted.into());
        }
        if let Err(limited) = self
            .rates
            .check_user(client_ip::subject(req.client_ip), uid)
        {
            return Err(Reject {
                outcome: Outcome::RateLimited,
                rate: Some(limited),
            });
        }
        let pass = self
            .captcha
            .check(sale_captcha, uid, req.product, req.captcha, req.now_ms)
            .map_err(|_| Outcome::CaptchaRequired)?;
        if let Some(queue) = &gate.queue {
            queue.check(uid, req.queue_pass, req.now_ms)?;
        }
        if gate.sold_out_hint(req.now_ms) {
            return Err(Outcome::SoldOut.into());
        }
        Ok(pass)
    }
}
