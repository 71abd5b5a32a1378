//! Single use of captchas: a solved challenge or an external pass buys at most one attempt.
//! [`SingleUse::claim`] marks a key used until it expires and says whether it was fresh. Keys
//! need not outlive their expiry: by then the captcha itself is refused.
//!
//! - [`MemorySingleUse`], for the embedded store: a bounded set in this process. Keys are
//!   forgotten in the order they were claimed once expired. When the set holds `capacity` keys
//!   that have not expired it refuses new claims with [`StoreError::SingleUseFull`] (the buyer
//!   gets `503 store_unavailable` and retries) rather than forget a live key, which would let
//!   it be used again.
//! - The Redis store (`stock::redis`): `SET flashgate:{product}:pass:{key} 1 NX PX <ttl>`, one
//!   round trip, so a key used on one edge is used on all of them.

use std::collections::{HashSet, VecDeque};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{SaleKeys, StoreError};

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
    live: HashSet<(u64, Box<str>)>,
    order: VecDeque<(u64, u64, Box<str>)>,
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
                live: HashSet::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().live.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn claim_now(
        &self,
        product: u64,
        key: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        // Forget expired keys from the front. Expiries are close to claim order (every
        // challenge lives the same time); a key behind a longer-lived one waits its turn.
        while let Some((expires, _, _)) = inner.order.front() {
            if *expires > now_ms {
                break;
            }
            if let Some((_, p, k)) = inner.order.pop_front() {
                inner.live.remove(&(p, k));
            }
        }
        let entry = (product, Box::<str>::from(key));
        if inner.live.contains(&entry) {
            return Ok(false);
        }
        if inner.live.len() >= self.capacity {
            return Err(StoreError::SingleUseFull {
                capacity: self.capacity,
            });
        }
        inner
            .order
            .push_back((expires_ms, product, entry.1.clone()));
        inner.live.insert(entry);
        Ok(true)
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
        self.claim_now(sale.product, key, expires_ms, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_keys_are_forgotten_and_live_ones_never() {
        let set = MemorySingleUse::new(2);
        let claim = |key: &str, expires: u64, now: u64| set.claim_now(1, key, expires, now);
        assert!(matches!(claim("a", 1_000, 0), Ok(true)));
        assert!(matches!(claim("b", 2_000, 0), Ok(true)));
        assert!(matches!(claim("a", 1_000, 500), Ok(false)), "used and live");
        assert!(
            matches!(
                claim("c", 3_000, 500),
                Err(StoreError::SingleUseFull { capacity: 2 })
            ),
            "full of live keys: refuse rather than forget one"
        );
        assert_eq!(set.len(), 2);
        // At 1,000 "a" has expired: it is forgotten and there is room again.
        assert!(matches!(claim("c", 3_000, 1_000), Ok(true)));
        assert_eq!(set.len(), 2);
        assert!(matches!(claim("b", 2_000, 1_500), Ok(false)));
        assert!(matches!(claim("c", 3_000, 2_999), Ok(false)));
        assert!(matches!(claim("d", 9_000, 3_000), Ok(true)));
        assert_eq!(set.len(), 1, "b and c expired");
    }
}
