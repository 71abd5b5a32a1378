//! The captcha a sale asks for, checked after the rate limits and before the local sold-out
//! hint. Pure: no HTTP, no store; the one stateful step — that a challenge or pass is used only
//! once — is the [`CaptchaPass`] this check hands back, which the edge claims in the single-use store
//! (`stock::single_use`) after every local check has passed, so a reject never costs a store
//! round trip.
//!
//! - `captcha: pow`. `GET /api/challenge?product=ID` gives a logged-in user a challenge,
//!   `{expires_ms}-{difficulty}-{id}-{mac}`: the MAC (edge secret, see `signing`) binds it to
//!   that user, that product, that expiry and that difficulty; `id` is unique. The buy carries
//!   `X-Captcha: <challenge>.<nonce>` with a nonce solving the [`pow`] for the challenge's
//!   difficulty. The difficulty of new challenges rises while the sale is busy ([`difficulty`]).
//! - `captcha: token`. An external captcha service, after a person solved its puzzle, hands the
//!   page a pass `{expires_ms}-{id}-{mac}` signed with `captcha.token_secret` over the user,
//!   the product, the expiry and its unique id (`signing::pass_token`); the buy carries
//!   `X-Captcha: <pass>`. A pass may live at most `captcha.challenge_ttl`.
//!
//! Either way a failure is `403 captcha_required`. Checking allocates nothing until it
//! succeeds.

internal!(mod difficulty);
pub mod pow;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::{Captcha, CaptchaSettings, MAX_POW_BITS};
use crate::ground::signing::{
    challenge_mac, constant_time_eq, parse_signed_decimal, pass_mac, CHALLENGE_MAC_BYTES,
};
use crate::ground::Secret;

use difficulty::Difficulty;

/// Longest `X-Captcha` value looked at.
pub const MAX_HEADER_BYTES: usize = 256;
/// Longest pass id accepted.
pub const MAX_PASS_ID_BYTES: usize = 64;
/// Clock difference tolerated between the captcha service and the edge, in ms.
const PASS_SKEW_MS: u64 = 5_000;

/// A challenge handed to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The opaque challenge string.
    pub challenge: String,
    /// Leading zero bits the proof needs.
    pub difficulty: u8,
    /// When it stops being accepted, ms since the epoch.
    pub expires_ms: u64,
}

/// A captcha that checked out and must now be claimed as used, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptchaPass {
    /// The sale.
    pub product: u64,
    /// Unique key of the challenge or pass (`p:` or `t:` and its id).
    pub key: String,
    /// Until when the key must be remembered, ms since the epoch.
    pub expires_ms: u64,
}

/// A captcha that is missing, malformed, forged, expired, not worked out, or not for this user
/// and product: the buy is answered `captcha_required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("captcha missing, malformed, forged, expired, unworked, or for another user or product")]
pub struct CaptchaRefused;

/// One sale's captcha: what it asks for and, for `pow`, the difficulty of its challenges. Held
/// by the sale (`checkout::Offer`), so a buy finds it with the sale's one lookup.
pub struct SaleCaptcha {
    mode: Captcha,
    /// Shared with the sale it was carried over from on a reload.
    pow: Option<Arc<Difficulty>>,
}

impl SaleCaptcha {
    /// The captcha of a sale asking for `mode`, with the difficulty `settings` give.
    pub fn new(mode: Captcha, settings: &CaptchaSettings) -> Self {
        Self::carrying(mode, settings, None)
    }

    /// [`SaleCaptcha::new`] for a reload: a `pow` sale whose difficulty settings did not change
    /// keeps where its difficulty stands (raised under load, it stays raised).
    pub fn carrying(
        mode: Captcha,
        settings: &CaptchaSettings,
        previous: Option<&SaleCaptcha>,
    ) -> Self {
        let pow = (mode == Captcha::Pow).then(|| {
            let fresh = Difficulty::new(
                settings.difficulty,
                settings.max_difficulty,
                settings.raise_above,
            );
            previous
                .and_then(|p| p.pow.as_ref())
                .filter(|d| d.same_settings(&fresh))
                .map_or_else(|| Arc::new(fresh), Arc::clone)
        });
        SaleCaptcha { mode, pow }
    }

    /// What the sale asks for.
    pub fn mode(&self) -> Captcha {
        self.mode
    }

    /// The current proof-of-work difficulty of a `pow` sale.
    pub fn difficulty(&self, now_ms: u64) -> Option<u8> {
        self.pow.as_ref().map(|d| d.current(now_ms))
    }
}

/// Issues and checks captchas: the keys, the lifetimes and the challenge ids every sale shares.
pub struct CaptchaCheck {
    edge: Secret,
    token_secret: Option<Secret>,
    ttl_ms: u64,
    seed: u64,
    counter: AtomicU64,
}

impl CaptchaCheck {
    /// Check captchas with `settings`; challenges are signed with `edge`.
    pub fn new(settings: &CaptchaSettings, edge: &Secret) -> Self {
        CaptchaCheck {
            edge: edge.clone(),
            token_secret: settings.token_secret.clone(),
            ttl_ms: settings.challenge_ttl.as_millis() as u64,
            seed: unique_seed(),
            counter: AtomicU64::new(0),
        }
    }

    /// A fresh challenge for `uid` on `product`, if its sale asks for `pow`.
    pub fn issue(
        &self,
        sale: &SaleCaptcha,
        uid: &str,
        product: u64,
        now_ms: u64,
    ) -> Option<Challenge> {
        let difficulty = sale.difficulty(now_ms)?;
        let expires_ms = now_ms + self.ttl_ms;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:016x}{n:x}", self.seed);
        let mac = challenge_mac(&self.edge, uid, product, expires_ms, difficulty, &id);
        Some(Challenge {
            challenge: format!("{expires_ms}-{difficulty}-{id}-{}", hex::encode(mac)),
            difficulty,
            expires_ms,
        })
    }

    /// Check the `X-Captcha` value of a buy by `uid` of `product` (whose sale's captcha is
    /// `sale`) at `now_ms`. `Ok(None)`: the
    /// sale asks for no captcha. `Ok(Some(pass))`: valid; the pass must still be claimed.
    /// `Err(CaptchaRefused)`: answer `captcha_required`.
    pub fn check(
        &self,
        sale: &SaleCaptcha,
        uid: &str,
        product: u64,
        header: Option<&str>,
        now_ms: u64,
    ) -> Result<Option<CaptchaPass>, CaptchaRefused> {
        match sale.mode {
            Captcha::None => Ok(None),
            Captcha::Pow => {
                if let Some(d) = &sale.pow {
                    d.observe(now_ms);
                }
                self.check_pow(uid, product, header.ok_or(CaptchaRefused)?, now_ms)
                    .map(Some)
            }
            Captcha::Token => self
                .check_pass(uid, product, header.ok_or(CaptchaRefused)?, now_ms)
                .map(Some),
        }
    }

    fn check_pow(
        &self,
        uid: &str,
        product: u64,
        header: &str,
        now_ms: u64,
    ) -> Result<CaptchaPass, CaptchaRefused> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(CaptchaRefused);
        }
        let (challenge, nonce) = header.trim().rsplit_once('.').ok_or(CaptchaRefused)?;
        let mut parts = challenge.split('-');
        let (Some(expires), Some(bits), Some(id), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CaptchaRefused);
        };
        // In the one spelling the edge wrote: `+8` or `08` would be another challenge text
        // under the same MAC.
        let expires_ms = parse_signed_decimal(expires).ok_or(CaptchaRefused)?;
        let difficulty = parse_signed_decimal(bits)
            .and_then(|b| u8::try_from(b).ok())
            .ok_or(CaptchaRefused)?;
        if difficulty > MAX_POW_BITS
            || id.is_empty()
            || id.len() > 40
            || !id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(CaptchaRefused);
        }
        let mut given = [0u8; CHALLENGE_MAC_BYTES];
        hex::decode_to_slice(mac, &mut given).map_err(|_| CaptchaRefused)?;
        if now_ms >= expires_ms || expires_ms > now_ms + self.ttl_ms + PASS_SKEW_MS {
            return Err(CaptchaRefused);
        }
        let expected = challenge_mac(&self.edge, uid, product, expires_ms, difficulty, id);
        if !constant_time_eq(&expected, &given) || !pow::work_ok(challenge, nonce, difficulty) {
            return Err(CaptchaRefused);
        }
        Ok(CaptchaPass {
            product,
            key: format!("p:{id}"),
            expires_ms,
        })
    }

    fn check_pass(
        &self,
        uid: &str,
        product: u64,
        header: &str,
        now_ms: u64,
    ) -> Result<CaptchaPass, CaptchaRefused> {
        let secret = self.token_secret.as_ref().ok_or(CaptchaRefused)?;
        if header.len() > MAX_HEADER_BYTES {
            return Err(CaptchaRefused);
        }
        let mut parts = header.trim().split('-');
        let (Some(expires), Some(id), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CaptchaRefused);
        };
        let expires_ms = parse_signed_decimal(expires).ok_or(CaptchaRefused)?;
        if id.is_empty()
            || id.len() > MAX_PASS_ID_BYTES
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(CaptchaRefused);
        }
        let mut given = [0u8; 32];
        hex::decode_to_slice(mac, &mut given).map_err(|_| CaptchaRefused)?;
        // A pass living longer than a challenge could outlive its entry in the single-use set.
        if now_ms >= expires_ms || expires_ms > now_ms + self.ttl_ms + PASS_SKEW_MS {
            return Err(CaptchaRefused);
        }
        let expected = pass_mac(secret, uid, product, expires_ms, id);
        if !constant_time_eq(&expected, &given) {
            return Err(CaptchaRefused);
        }
        Ok(CaptchaPass {
            product,
            key: format!("t:{id}"),
            expires_ms,
        })
    }
}

/// A per-process value that keeps challenge ids of different edges (sharing one Redis) apart.
fn unique_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 32)
    })
}

#[cfg(test)]
#[path = "captcha/tests.rs"]
mod tests;
