//! Single use of captchas: a solved challenge or an external pass buys at most one attempt.
//! [`SingleUse::claim`] marks a key used until it expires and says whether it was fresh. Keys
//! need not outlive their expiry: by then the captcha itself is refused.
//!
//! - [`MemorySingleUse`], for the embedded store: a bounded set in this process, ordered by
//!   expiry, so every expired key is forgotten whatever order keys were claimed in. When the
//!   set holds `capacity` keys that are all still live (a flood of solved challenges), it
//!   forgets the one closest to its expiry to make room, and says so in the log: that one key
//!   could be used once more in the moments it has left, which costs its holder another store
//!   call and nothing else; refusing every captcha buyer instead would stop the sale.
//! - The Redis store (`stock::redis`): `SET flashgate:{product}:pass:{key} 1 NX PX <ttl>`, one
//!   round trip, so a key used on one edge is used on all of them.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{SaleKeys, StoreError};
use crate::ground::logging::Throttle;

/// Remembers which captchas were used.
#[async_trait]
pub trait SingleUse: Send + Sync + 'static {
    /// Mark `key` of `sale` used until `expires_ms`. True the first time; false if it
    /// was used before and has not expired.
    async fn claim(
        &self,
        sale: &SaleKeys,
        key: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError>;
}

struct Inner {
    /// (product, key) → its expiry.
    live: HashMap<(u64, Box<str>), u64>,
    /// The same keys by expiry: the first is the next to expire.
    by_expiry: BTreeSet<(u64, u64, Box<str>)>,
    /// Live keys forgotten early for room, logged at most every 10 s.
    crowded: Throttle,
}

/// The embedded single-use set.
pub struct MemorySingleUse {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl MemorySingleUse {
    /// A set remembering at most `capacity` keys at once.
    pub fn new(capacity: usize) -> Self {
        MemorySingleUse {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                live: HashMap::new(),
                by_expiry: BTreeSet::new(),
                crowded: Throttle::new(Duration::from_secs(10)),
            }),
        }
    }

    /// Keys remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().live.len()
    }

    /// Whether no key is remembered.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn claim_now(&self, product: u64, key: &str, expires_ms: u64, now_ms: u64) -> bool {
        let mut inner = self.inner.lock();
        // Forget every expired key, wherever it was claimed.
        while let Some(first) = inner.by_expiry.first() {
            if first.0 > now_ms {
                break;
            }
            if let Some((_, p, k)) = inner.by_expiry.pop_first() {
                inner.live.remove(&(p, k));
            }
        }
        let entry = (product, Box::<str>::from(key));
        if inner.live.contains_key(&entry) {
            return false;
        }
        if inner.live.len() >= self.capacity {
            if let Some((_, p, k)) = inner.by_expiry.pop_first() {
                inner.live.remove(&(p, k));
            }
            if let Some(more) = inner.crowded.admit() {
                tracing::warn!(
                    capacity = self.capacity,
                    "captcha single-use set is full of live keys: forgot the one closest to expiry \
                     ({more} more since the last report); raise captcha.single_use_capacity"
                );
            }
        }
        inner
            .by_expiry
            .insert((expires_ms, product, entry.1.clone()));
        inner.live.insert(entry, expires_ms);
        true
    }
}

#[async_trait]
impl SingleUse for MemorySingleUse {
    async fn claim(
        &self,
        sale: &SaleKeys,
        key: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.claim_now(sale.product, key, expires_ms, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_expired_key_is_forgotten_whatever_the_claim_order() {
        let set = MemorySingleUse::new(10);
        let claim = |key: &str, expires: u64, now: u64| set.claim_now(1, key, expires, now);
        assert!(claim("long", 9_000, 0));
        assert!(claim("short", 1_000, 0));
        assert!(!claim("short", 1_000, 500), "used and live");
        assert!(!claim("long", 9_000, 500), "used and live");
        // At 1,000 "short" expired although it was claimed after "long".
        assert!(claim("other", 5_000, 1_000));
        assert_eq!(set.len(), 2, "short forgotten, long and other remembered");
        assert!(!claim("long", 9_000, 8_999));
        assert!(claim("x", 10_000, 9_000));
        assert_eq!(set.len(), 1, "long and other expired");
    }

    #[test]
    fn a_full_set_forgets_the_key_closest_to_expiry_and_keeps_serving() {
        let set = MemorySingleUse::new(2);
        let claim = |key: &str, expires: u64, now: u64| set.claim_now(1, key, expires, now);
        assert!(claim("a", 3_000, 0));
        assert!(claim("b", 1_000, 0));
        assert!(claim("c", 2_000, 100), "room made: no buyer refused");
        assert_eq!(set.len(), 2);
        assert!(!claim("a", 3_000, 200), "the longer-lived keys stay used");
        assert!(!claim("c", 2_000, 200));
        assert!(
            claim("b", 1_000, 200),
            "b, the closest to expiry, was forgotten"
        );
        // The same key in another sale is another key.
        assert!(set.claim_now(2, "a", 3_000, 200));
    }
}
