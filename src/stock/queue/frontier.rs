//! The admission frontier of one sale's queue, as plain arithmetic: the embedded store runs it
//! in the process, and `lua/queue_tick.lua` is the same steps in Redis (keep them in step).
//!
//! Places are numbered in queue order from 1; `admitted` is the frontier F: every place up to F
//! has been let through. Each tick, at the store's clock:
//!
//! 1. Before the start nothing moves. At the first tick or join at or after the start, the
//!    pre-queue is sealed: its joiner count is fixed (`sealed`), later joins queue behind it.
//! 2. Admissions older than `pass_ttl` leave the window: their passes have expired.
//! 3. With no unit left, nothing moves and no credit gathers: nobody is let through after the
//!    sell-out.
//! 4. Credit grows by `admit_per_second` per second, capped at one second's worth.
//! 5. Outstanding passes are the window's admissions less the buys made since the window's
//!    oldest admission; at most `stock_multiple × remaining` may be outstanding.
//! 6. F advances by the whole credit, the room under that cap and the visitors still waiting,
//!    whichever is least.

use std::collections::VecDeque;

/// One sale queue's admission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Start of the sale, ms since the epoch.
    pub starts_at_ms: u64,
    /// Places let through per second.
    pub admit_per_second: u64,
    /// Passes outstanding per unit left, at most.
    pub stock_multiple: u64,
    /// How long a pass lives, ms.
    pub pass_ttl_ms: u64,
}

/// A batch of admissions: when, how many, and the buyers then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    at_ms: u64,
    count: u64,
    buyers: u64,
}

/// The counters and frontier of one sale's queue.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    /// Joins during the pre-queue so far.
    pub pre: u64,
    /// Joins after the start so far.
    pub post: u64,
    /// The pre-queue's final count, once the sale started.
    pub sealed: Option<u64>,
    /// Every place up to this one was let through.
    pub admitted: u64,
    credit: f64,
    last_ms: u64,
    window: VecDeque<Batch>,
    window_total: u64,
}

impl Frontier {
    /// Seal the pre-queue if the sale started at `now_ms`.
    pub fn seal(&mut self, now_ms: u64, starts_at_ms: u64) {
        if self.sealed.is_none() && now_ms >= starts_at_ms {
            self.sealed = Some(self.pre);
        }
    }

    /// Visitors joined and not yet let through.
    pub fn waiting(&self) -> u64 {
        (self.sealed.unwrap_or(self.pre) + self.post).saturating_sub(self.admitted)
    }

    /// One tick at `now_ms` with `remaining` units left and `buyers` buyers: how many places
    /// were let through.
    pub fn advance(&mut self, now_ms: u64, pace: &Pace, remaining: u64, buyers: u64) -> u64 {
        self.seal(now_ms, pace.starts_at_ms);
        let Some(sealed) = self.sealed else {
            self.last_ms = now_ms;
            return 0;
        };
        while let Some(b) = self.window.front() {
            if b.at_ms + pace.pass_ttl_ms > now_ms {
                break;
            }
            self.window_total -= b.count;
            self.window.pop_front();
        }
        if self.last_ms == 0 {
            self.last_ms = pace.starts_at_ms;
        }
        if remaining == 0 {
            self.credit = 0.0;
            self.last_ms = now_ms;
            return 0;
        }
        let rate = pace.admit_per_second as f64;
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.credit = (self.credit + elapsed * rate / 1000.0).min(rate);
        self.last_ms = now_ms;
        let bought_since = self
            .window
            .front()
            .map_or(0, |b| buyers.saturating_sub(b.buyers));
        let outstanding = self.window_total.saturating_sub(bought_since);
        let room = (pace.stock_multiple * remaining).saturating_sub(outstanding);
        let waiting = (sealed + self.post).saturating_sub(self.admitted);
        let n = (self.credit.floor() as u64).min(room).min(waiting);
        if n > 0 {
            self.admitted += n;
            self.credit -= n as f64;
            self.window.push_back(Batch {
                at_ms: now_ms,
                count: n,
                buyers,
            });
            self.window_total += n;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: Pace = Pace {
        starts_at_ms: 10_000,
        admit_per_second: 10,
        stock_multiple: 2,
        pass_ttl_ms: 5_000,
    };

    #[test]
    fn nothing_moves_before_the_start_then_the_rate_holds() {
        let mut f = Frontier {
            pre: 100,
            ..Frontier::default()
        };
        assert_eq!(f.advance(9_999, &PACE, 1000, 0), 0);
        assert_eq!(f.sealed, None);
        assert_eq!(f.advance(10_000, &PACE, 1000, 0), 0);
        assert_eq!(f.sealed, Some(100));
        f.pre = 150; // a join the store counted after the seal does not change it
        let mut admitted = 0;
        for t in (10_200..=12_000).step_by(200) {
            admitted += f.advance(t, &PACE, 1000, 0);
        }
        assert_eq!(admitted, 20, "10 a second for 2 s");
        assert_eq!(f.admitted, 20);
        // A long pause gathers at most one second's credit.
        assert_eq!(f.advance(60_000, &PACE, 1000, 0), 10);
    }

    #[test]
    fn the_stock_caps_outstanding_passes_and_a_sell_out_stops_everything() {
        let mut f = Frontier {
            pre: 100,
            ..Frontier::default()
        };
        f.advance(10_000, &PACE, 3, 0);
        let mut t = 10_000;
        for _ in 0..8 {
            t += 500;
            f.advance(t, &PACE, 3, 0);
        }
        assert_eq!(f.admitted, 6, "2 × 3 units left");
        // Two buy: 2 of the 6 are used, 1 unit left: 2 × 1 = 2 may be out, 4 are.
        t += 500;
        assert_eq!(f.advance(t, &PACE, 1, 2), 0);
        // Passes expire after pass_ttl: the window empties, two more may go.
        t += 5_000;
        assert_eq!(f.advance(t, &PACE, 1, 2), 2);
        // Sold out: nothing more, however long.
        t += 10_000;
        assert_eq!(f.advance(t, &PACE, 0, 3), 0);
        assert_eq!(f.admitted, 8);
        // A unit comes back: the next are let through.
        t += 10_000;
        assert!(f.advance(t, &PACE, 1, 2) > 0);
    }

    #[test]
    fn never_more_than_joined() {
        let mut f = Frontier {
            pre: 3,
            ..Frontier::default()
        };
        f.advance(20_000, &PACE, 100, 0);
        f.advance(25_000, &PACE, 100, 0);
        assert_eq!(f.admitted, 3);
        assert_eq!(f.waiting(), 0);
        f.post = 2;
        f.advance(26_000, &PACE, 100, 0);
        assert_eq!(f.admitted, 5);
    }
}
