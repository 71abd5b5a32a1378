//! The admission frontier of one sale's queue, as plain arithmetic: the embedded store runs it
//! in the process, and `lua/queue_tick.lua` is the same steps in Redis (keep them in step).
//!
//! Places are numbered in queue order from 1; `admitted` is the frontier F: every place up to F
//! has been let through. Each tick, at the store's clock:
//!
//! 1. Before the start nothing moves. At the first tick or join at or after the start, the
//!    pre-queue is sealed: its joiner count is fixed (`sealed`), later joins queue behind it.
//! 2. Buys are counted against the window's passes, oldest first (`used`: every admission up
//!    to it is counted as bought). The store knows how many buyers there are, not which pass
//!    each used, so the count is kept on the safe side: a new buyer uses up the oldest pass not
//!    yet counted, and a unit handed back frees the newest pass counted. Buys are counted
//!    before expired passes leave the window, so a buy made on a pass that then expired leaves
//!    with it. The passes still counted as unused are then never fewer than those really
//!    unused, however buys, hand-backs and expiries interleave. (The first version counted
//!    every buy since the window's oldest admission against the window, so buys made on
//!    passes that had since expired stood for window passes, and more were let through than
//!    the cap allows.)
//! 3. Admissions older than `pass_ttl` leave the window: their passes have expired.
//! 4. With no unit left, nothing moves and no credit gathers: nobody is let through after the
//!    sell-out.
//! 5. Credit grows by `admit_per_second` per second, capped at one second's worth.
//! 6. Outstanding passes are the window's admissions not counted as bought; at most
//!    `stock_multiple × remaining` may be outstanding.
//! 7. F advances by the whole credit, the room under that cap and the visitors still waiting,
//!    whichever is least.
//!
//! One approximation is left: an edge dates a pass from when its tick learned the admission,
//! up to one tick after the store made it, so a buy in a pass's last moments may come after
//! the store expired that admission; such a buy is counted against the window as it stands.

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

/// A batch of admissions: when, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    at_ms: u64,
    count: u64,
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
    /// Every admission up to this one is counted as bought (step 2).
    used: u64,
    /// The buyer count the last tick saw.
    seen: u64,
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
    #[cfg(test)]
    pub fn waiting(&self) -> u64 {
        (self.sealed.unwrap_or(self.pre) + self.post).saturating_sub(self.admitted)
    }

    /// One tick at `now_ms` with `remaining` units left and `buyers` buyers: how many places
    /// were let through.
    pub fn advance(&mut self, now_ms: u64, pace: &Pace, remaining: u64, buyers: u64) -> u64 {
        self.seal(now_ms, pace.starts_at_ms);
        self.count_buys(buyers);
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
        // Admissions before the window's oldest are gone, bought or not.
        self.used = self.used.max(self.window_start());
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
        let outstanding = self.admitted.saturating_sub(self.used);
        let room = (pace.stock_multiple * remaining).saturating_sub(outstanding);
        let waiting = (sealed + self.post).saturating_sub(self.admitted);
        let n = (self.credit.floor() as u64).min(room).min(waiting);
        if n > 0 {
            self.admitted += n;
            self.credit -= n as f64;
            self.window.push_back(Batch {
                at_ms: now_ms,
                count: n,
            });
            self.window_total += n;
        }
        n
    }

    /// The admissions before the window's oldest.
    fn window_start(&self) -> u64 {
        self.admitted.saturating_sub(self.window_total)
    }

    /// Step 2: count the buyers come or gone since the last tick against the window's passes.
    fn count_buys(&mut self, buyers: u64) {
        if buyers >= self.seen {
            self.used = (self.used + (buyers - self.seen)).min(self.admitted);
        } else {
            let back = self.seen - buyers;
            self.used = self.used.saturating_sub(back).max(self.window_start());
        }
        self.seen = buyers;
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

    /// The queue of the CI run that failed `two_edges_on_one_redis_share_one_queue`: three
    /// units, the first three let through in two batches (two, then one), all three buy, one
    /// unit comes back. When the first batch expires, the two buys (one made on that batch's
    /// passes) must not both stand for the second batch's one pass: #4 waits for it too, and
    /// #5 is never let through while #4 holds the only unit's pass.
    #[test]
    fn buys_on_expired_passes_never_make_room_for_more() {
        let pace = Pace {
            starts_at_ms: 10_000,
            admit_per_second: 10,
            stock_multiple: 1,
            pass_ttl_ms: 3_000,
        };
        let mut f = Frontier {
            pre: 12,
            ..Frontier::default()
        };
        assert_eq!(f.advance(10_000, &pace, 3, 0), 0);
        assert_eq!(f.advance(10_200, &pace, 3, 0), 2);
        assert_eq!(f.advance(10_300, &pace, 3, 0), 1);
        assert_eq!(f.advance(11_000, &pace, 0, 3), 0, "sold out");
        // #1's order is cancelled: one unit, two buyers.
        assert_eq!(f.advance(13_100, &pace, 1, 2), 0);
        assert_eq!(f.advance(13_250, &pace, 1, 2), 0, "the first batch expired");
        assert_eq!(
            f.advance(13_300, &pace, 1, 2),
            1,
            "#4, once #3's pass expired"
        );
        for t in (13_400..16_300).step_by(100) {
            assert_eq!(f.advance(t, &pace, 1, 2), 0, "#5 at {t} ms");
        }
        assert_eq!(
            f.advance(16_300, &pace, 1, 2),
            1,
            "#5, once #4's pass expired"
        );
    }

    /// A tiny generator for the simulation below (xorshift64*).
    struct Dice(u64);

    impl Dice {
        fn roll(&mut self, sides: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % sides
        }
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Holder {
        Unused,
        Bought,
        Done,
    }

    proptest::proptest! {
        /// Whatever the order of buys, hand-backs and expiries, a tick that lets anyone
        /// through leaves at most `stock_multiple × remaining` passes really unused.
        #[test]
        fn admissions_never_outrun_the_cap(
            seed in 1u64..u64::MAX,
            stock in 1u64..8,
            multiple in 1u64..4,
            rate in 1u64..30,
            ttl in 300u64..3_000,
            joiners in 1u64..40,
        ) {
            let pace = Pace {
                starts_at_ms: 1_000,
                admit_per_second: rate,
                stock_multiple: multiple,
                pass_ttl_ms: ttl,
            };
            let mut dice = Dice(seed);
            let mut f = Frontier { pre: joiners, ..Frontier::default() };
            let mut remaining = stock;
            // Per admitted place: when it was let through, and what its holder did.
            let mut holders: Vec<(u64, Holder)> = Vec::new();
            for step in 0..200u64 {
                let now = 1_000 + step * 100;
                for h in holders.iter_mut() {
                    let valid = now < h.0 + ttl;
                    match h.1 {
                        Holder::Unused if valid && remaining > 0 && dice.roll(4) == 0 => {
                            remaining -= 1;
                            h.1 = Holder::Bought;
                        }
                        Holder::Unused if !valid => h.1 = Holder::Done,
                        Holder::Bought if dice.roll(40) == 0 => {
                            remaining += 1;
                            h.1 = if valid { Holder::Unused } else { Holder::Done };
                        }
                        _ => {}
                    }
                }
                let buyers = holders.iter().filter(|h| h.1 == Holder::Bought).count() as u64;
                let n = f.advance(now, &pace, remaining, buyers);
                holders.extend((0..n).map(|_| (now, Holder::Unused)));
                let unused = holders
                    .iter()
                    .filter(|h| h.1 == Holder::Unused && now < h.0 + ttl)
                    .count() as u64;
                proptest::prop_assert!(
                    n == 0 || unused <= multiple * remaining,
                    "at {now} ms: {n} let through, {unused} passes unused, {remaining} left"
                );
            }
        }
    }
}
