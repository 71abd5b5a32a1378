//! The `captcha:` section resolved: proof-of-work difficulty and how it rises under load, the
//! lifetime of challenges and passes, the pass-token secret of an external captcha service, and
//! the size of the embedded single-use set. Also the rule that ties sales to it: a sale with
//! `captcha: token` needs `captcha.token_secret`.

use std::time::Duration;

use super::context::Reading;
use super::error::ConfigError;
use super::schema::{Captcha, FileConfig};
use super::{Secret, MIN_SECRET_BYTES};

/// The hardest proof of work accepted in the file: 2^32 hashes is minutes in a browser.
pub const MAX_POW_BITS: u8 = 32;

/// `captcha:` resolved.
#[derive(Debug, Clone)]
pub struct CaptchaSettings {
    /// Leading zero bits a proof of work needs while the sale is calm.
    pub difficulty: u8,
    /// The ceiling the difficulty rises to under load.
    pub max_difficulty: u8,
    /// Buys per second of one sale above which the difficulty rises.
    pub raise_above: u64,
    /// Lifetime of a challenge, and the longest a pass token may live.
    pub challenge_ttl: Duration,
    /// The key pass tokens are signed with, if any sale uses `captcha: token`.
    pub token_secret: Option<Secret>,
    /// Used challenges and passes the embedded store remembers at once.
    pub single_use_capacity: usize,
}

impl Default for CaptchaSettings {
    fn default() -> Self {
        CaptchaSettings {
            difficulty: 16,
            max_difficulty: 22,
            raise_above: 1000,
            challenge_ttl: Duration::from_secs(60),
            token_secret: None,
            single_use_capacity: 1_000_000,
        }
    }
}

impl CaptchaSettings {
    /// Resolve `captcha:` and check the sales that ask for a captcha against it. `others` are the
    /// login and edge secrets, which the token secret must differ from.
    pub(super) fn resolve(
        cx: &Reading,
        file: &FileConfig,
        others: [&Secret; 2],
    ) -> Result<CaptchaSettings, ConfigError> {
        let c = &file.captcha;
        if c.difficulty > MAX_POW_BITS {
            return Err(cx.err(
                "captcha.difficulty",
                format!(
                    "difficulty is in leading zero bits, 0 to {MAX_POW_BITS}; found {}",
                    c.difficulty
                ),
            ));
        }
        if c.max_difficulty < c.difficulty || c.max_difficulty > MAX_POW_BITS {
            return Err(cx.err(
                "captcha.max_difficulty",
                format!(
                    "max_difficulty must be between difficulty ({}) and {MAX_POW_BITS}; found {}",
                    c.difficulty, c.max_difficulty
                ),
            ));
        }
        if c.raise_above == 0 {
            return Err(cx.err(
                "captcha.raise_above",
                "raise_above is buys per second of one sale and must be at least 1",
            ));
        }
        let ttl = c.challenge_ttl.0;
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600) {
            return Err(cx.err(
                "captcha.challenge_ttl",
                "challenge_ttl must be between 1s and 1h",
            ));
        }
        if c.single_use_capacity == 0 {
            return Err(cx.err(
                "captcha.single_use_capacity",
                "single_use_capacity must be at least 1",
            ));
        }
        // An unset variable leaves the secret unset: there is no development fallback, because the
        // external captcha service has to hold the same key.
        let mut unset = None;
        let token_secret = match &c.token_secret {
            None => None,
            Some(text) => match cx.secret("captcha.token_secret", text)? {
                Err(missing) => {
                    unset = Some(missing);
                    None
                }
                Ok(secret) => {
                    if others.contains(&&secret) {
                        return Err(cx.err(
                            "captcha.token_secret",
                            "captcha.token_secret must differ from secrets.login and \
                             secrets.edge: the captcha service must not be able to sign \
                             anything else",
                        ));
                    }
                    Some(secret)
                }
            },
        };
        if token_secret.is_none() {
            if let Some(i) = file.sales.iter().position(|s| s.captcha == Captcha::Token) {
                let why = match unset {
                    Some(names) => format!("captcha.token_secret names {names}, which is not set"),
                    None => "captcha.token_secret is not set".to_string(),
                };
                return Err(cx.err(
                    &format!("sales[{i}].captcha"),
                    format!(
                        "product {} asks for captcha: token, but {why}: set it to the key the \
                         captcha service signs passes with (at least {MIN_SECRET_BYTES} bytes)",
                        file.sales[i].product
                    ),
                ));
            }
        }
        Ok(CaptchaSettings {
            difficulty: c.difficulty,
            max_difficulty: c.max_difficulty,
            raise_above: c.raise_above,
            challenge_ttl: ttl,
            token_secret,
            single_use_capacity: c.single_use_capacity,
        })
    }
}
