//! One sale as the checkout holds it: everything a request for its product needs, found with
//! one lookup — the window, the buy-path token and the sold-out hint ([`SaleGate`]), the
//! captcha it asks for and its current difficulty ([`SaleCaptcha`]), and its names in the store
//! ([`SaleKeys`]), built once so the buy path formats no key.

use std::time::Duration;

use crate::admission::captcha::SaleCaptcha;
use crate::admission::sale::SaleGate;
use crate::config::{CaptchaSettings, Sale as SaleConfig, Secret};
use crate::stock::SaleKeys;

/// A configured sale, ready for buys.
pub struct Sale {
    /// Window, buy-path token, sold-out hint.
    pub gate: SaleGate,
    /// The captcha it asks for.
    pub captcha: SaleCaptcha,
    /// Its names in the store.
    pub keys: SaleKeys,
}

impl Sale {
    /// Prepare `config`'s sale: its token from the `edge` secret, its sold-out `hint`, its
    /// captcha from `captcha`.
    pub fn new(
        config: &SaleConfig,
        edge: &Secret,
        hint: Duration,
        captcha: &CaptchaSettings,
    ) -> Self {
        Sale {
            gate: SaleGate::new(config, edge, hint),
            captcha: SaleCaptcha::new(config.captcha, captcha),
            keys: SaleKeys::of(config.product),
        }
    }

    /// The product on sale.
    pub fn product(&self) -> u64 {
        self.gate.product
    }
}
