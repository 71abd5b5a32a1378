//! One sale as the checkout holds it: everything a request for its product needs, found with
//! one lookup — the window, the buy-path token and the sold-out hint ([`SaleGate`]), the
//! captcha it asks for and its current difficulty ([`SaleCaptcha`]), and its names in the store
//! ([`SaleKeys`]), built once so the buy path formats no key.

use std::time::Duration;

use crate::admission::captcha::SaleCaptcha;
use crate::admission::sale::SaleGate;
use crate::config::{CaptchaSettings, Sale};
use crate::ground::Secret;
use crate::stock::SaleKeys;

/// A configured sale, ready for buys.
pub struct Offer {
    /// Window, buy-path token, sold-out hint.
    pub gate: SaleGate,
    /// The captcha it asks for.
    pub captcha: SaleCaptcha,
    /// Its names in the store.
    pub keys: SaleKeys,
}

impl Offer {
    /// Prepare `config`'s sale: its token from the `edge` secret, its sold-out `hint`, its
    /// captcha from `captcha`. On a reload, what the running sale of the same product knows —
    /// its sold-out hint, and its proof-of-work difficulty if those settings did not change —
    /// carries over from `previous`. (Its stock and buyers are the store's: nothing to carry.)
    pub fn carrying(
        config: &Sale,
        edge: &Secret,
        hint: Duration,
        captcha: &CaptchaSettings,
        previous: Option<&Offer>,
    ) -> Self {
        Offer {
            gate: SaleGate::carrying(config, edge, hint, previous.map(|p| &p.gate)),
            captcha: SaleCaptcha::carrying(config.captcha, captcha, previous.map(|p| &p.captcha)),
            keys: SaleKeys::of(config.product),
        }
    }

    /// The product on sale.
    pub fn product(&self) -> u64 {
        self.gate.product
    }
}
