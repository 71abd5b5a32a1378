//! A circuit breaker for the stock store. After `threshold` failures in a row the circuit opens:
//! calls fail at once, without waiting for a timeout, for `cooldown`. Then calls are let through
//! again; the first success closes the circuit, a failure opens it for another cooldown. While a
//! Redis outage lasts, buyers get `503 store_unavailable` in microseconds instead of each
//! waiting out the store timeout, and nothing piles up on a dead connection.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The breaker's state, shared by every call.
#[derive(Debug)]
pub struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    threshold: u32,
    cooldown_ms: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            threshold: threshold.max(1),
            cooldown_ms: cooldown.as_millis() as u64,
        }
    }

    /// Whether a call may go to the store at `now_ms`.
    pub fn allows(&self, now_ms: u64) -> bool {
        now_ms >= self.open_until_ms.load(Ordering::Acquire)
    }

    /// Record a successful call: the circuit closes.
    pub fn success(&self) {
        if self.failures.swap(0, Ordering::AcqRel) != 0 {
            self.open_until_ms.store(0, Ordering::Release);
        }
    }

    /// Record a failed call at `now_ms`.
    pub fn failure(&self, now_ms: u64) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.threshold {
            self.open_until_ms
                .store(now_ms + self.cooldown_ms, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers() {
        let b = Breaker::new(3, Duration::from_millis(500));
        assert!(b.allows(0));
        b.failure(10);
        b.failure(20);
        assert!(b.allows(20), "two failures keep it closed");
        b.failure(30);
        assert!(!b.allows(31), "third failure opens it");
        assert!(b.allows(530), "cooldown over: half open");
        b.failure(530);
        assert!(!b.allows(531), "a failed trial reopens");
        assert!(b.allows(1030));
        b.success();
        assert!(b.allows(1031));
        b.failure(1040);
        assert!(b.allows(1041), "after a success the count starts again");
    }
}
