//! Logging for both binaries: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), and
//! [`Throttle`] for warnings that would otherwise repeat per request.

/// Install the subscriber; call once at the start of `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
