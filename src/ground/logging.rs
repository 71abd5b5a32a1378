//! Logging for both binaries: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), and
//! [`Throttle`] / [`SharedThrottle`] for warnings that would otherwise repeat per request.

/// Install the subscriber; call once at the start of `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets a warning that can repeat many times a second (a store or database outage seen by every
/// request or every round) through at most once per `every`, and counts the ones it held back,
/// so an outage is one line every few seconds that says how often it happened.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// A throttle letting one warning through per `every`.
    pub const fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(held)`: log this one now, noting `held` more since the last; `None`: hold it back.
    pub fn admit(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < self.every)
        {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

/// A [`Throttle`] shared by every request without a lock: the edge's per-request warnings
/// (the store or the origin unavailable) go through one of these. The first caller after a
/// period wins the right to log (a compare-and-swap on the time of the last line); the others
/// are counted.
#[derive(Debug)]
pub struct SharedThrottle {
    every_ms: u64,
    /// Milliseconds since `origin` of the last line let through, plus one (0: none yet).
    last: AtomicU64,
    held: AtomicU64,
    origin: Instant,
}

impl SharedThrottle {
    /// A throttle letting one warning through per `every`.
    pub fn new(every: Duration) -> Self {
        SharedThrottle {
            every_ms: u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
            last: AtomicU64::new(0),
            held: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// `Some(held)`: log this one now, noting `held` more since the last; `None`: hold it back.
    pub fn admit(&self) -> Option<u64> {
        let now = u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.every_ms;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::AcqRel));
        }
        self.held.fetch_add(1, Ordering::AcqRel);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_one_through_per_period_across_threads_and_the_rest_counted() {
        let t = SharedThrottle::new(Duration::from_millis(200));
        let admitted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if t.admit().is_some() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        // 4,000 calls well within one period (debug builds included): one line.
        assert_eq!(admitted.load(Ordering::Relaxed), 1);
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(t.admit(), Some(3999));
        assert_eq!(t.admit(), None);
    }

    #[test]
    fn one_through_per_period_and_the_rest_counted() {
        let mut t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.admit(), Some(0));
        assert_eq!(t.admit(), None);
        assert_eq!(t.admit(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.admit(), Some(2));
        assert_eq!(t.admit(), None);
    }
}
