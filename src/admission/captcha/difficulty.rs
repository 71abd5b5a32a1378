//! How hard a sale's proof of work is right now. Buys of the sale are counted in one-second
//! windows; when a window closes with more than `raise_above` buys, the difficulty rises by one
//! bit (doubling the work of every new challenge), up to `max_difficulty`. When a window closes
//! with at most half that rate, it falls back by one bit per quiet second, down to the
//! configured `difficulty`. Between the two it holds, so it does not flap at the threshold.
//!
//! Lock-free: a counter and the window's start are atomics; the one caller that moves the
//! window forward decides the new difficulty, the others keep counting.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

const WINDOW_MS: u64 = 1000;

/// The adaptive difficulty of one sale.
#[derive(Debug)]
pub struct Difficulty {
    base: u8,
    max: u8,
    raise_above: u64,
    current: AtomicU8,
    window_start_ms: AtomicU64,
    count: AtomicU64,
}

impl Difficulty {
    /// Start at `base` bits, never above `max`; rise above `raise_above` buys per second.
    pub fn new(base: u8, max: u8, raise_above: u64) -> Self {
        Difficulty {
            base,
            max: max.max(base),
            raise_above: raise_above.max(1),
            current: AtomicU8::new(base),
            window_start_ms: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Count one buy at `now_ms`.
    pub fn observe(&self, now_ms: u64) {
        self.roll(now_ms);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The difficulty of a challenge issued at `now_ms`.
    pub fn current(&self, now_ms: u64) -> u8 {
        self.roll(now_ms);
        self.current.load(Ordering::Relaxed)
    }

    /// Whether `other` was made with the same settings (a reload keeps this one then).
    pub fn same_settings(&self, other: &Difficulty) -> bool {
        (self.base, self.max, self.raise_above) == (other.base, other.max, other.raise_above)
    }

    fn roll(&self, now_ms: u64) {
        let start = self.window_start_ms.load(Ordering::Acquire);
        if start == 0 {
            // First use: open the first window.
            let _ = self.window_start_ms.compare_exchange(
                0,
                now_ms,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            return;
        }
        if now_ms < start + WINDOW_MS {
            return;
        }
        if self
            .window_start_ms
            .compare_exchange(start, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return; // another caller closes this window
        }
        let buys = self.count.swap(0, Ordering::AcqRel);
        let windows = ((now_ms - start) / WINDOW_MS).max(1);
        let per_second = buys / windows;
        let current = self.current.load(Ordering::Relaxed);
        let next = if per_second > self.raise_above {
            current.saturating_add(1).min(self.max)
        } else if per_second.saturating_mul(2) <= self.raise_above {
            let quiet = u8::try_from(windows).unwrap_or(u8::MAX);
            current.saturating_sub(quiet).max(self.base)
        } else {
            current
        };
        self.current.store(next, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burst(d: &Difficulty, second: u64, buys: u64) {
        for i in 0..buys {
            d.observe(second * 1000 + (i * 999) / buys.max(1));
        }
    }

    #[test]
    fn rises_a_bit_per_busy_second_up_to_the_ceiling() {
        let d = Difficulty::new(10, 13, 100);
        assert_eq!(d.current(1_000), 10);
        for second in 1..=6 {
            burst(&d, second, 150);
            assert_eq!(
                d.current((second + 1) * 1000),
                (10 + second as u8).min(13),
                "after busy second {second}"
            );
        }
    }

    #[test]
    fn holds_between_half_and_the_threshold_then_falls_back() {
        let d = Difficulty::new(10, 20, 100);
        d.current(1_000);
        burst(&d, 1, 500);
        burst(&d, 2, 500);
        assert_eq!(d.current(3_000), 12);
        burst(&d, 3, 80); // between half and the threshold: hold
        assert_eq!(d.current(4_000), 12);
        burst(&d, 4, 10); // quiet: one bit down
        assert_eq!(d.current(5_000), 11);
        // A long quiet spell goes all the way back, never below the base.
        assert_eq!(d.current(60_000), 10);
    }

    #[test]
    fn a_calm_sale_stays_at_the_base() {
        let d = Difficulty::new(8, 16, 1000);
        for second in 1..20 {
            burst(&d, second, 900);
        }
        assert_eq!(d.current(20_000), 8);
    }
}
