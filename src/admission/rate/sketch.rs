//! The count–min sketch a local limit counts with: `rows` rows of `slots` counters, one set for
//! the current window (windows of `per`, counted from the sketch's creation), each counter as
//! narrow as the limit allows — a byte for limits up to 254, two bytes up to 65,534, four
//! beyond — since a count is only ever compared with the limit, and a counter stops (saturates)
//! one past it.
//!
//! A key's `rows` counters are found from one 64-bit hash by double hashing
//! (`h1 + i·h2`, Kirsch and Mitzenmacher), so a request hashes its key once. Counting is
//! lock-free (an atomic compare-and-swap per row) and allocates nothing.
//!
//! When a window ends, the first request of the next one claims the reset and zeroes the
//! counters; requests counted by other threads while it zeroes may be lost (an under-count of a
//! few requests at a window's first instant, never an over-count).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// The counters, in the narrowest width that holds one past the limit.
enum Counters {
    U8(Box<[AtomicU8]>),
    U16(Box<[AtomicU16]>),
    U32(Box<[AtomicU32]>),
}

macro_rules! saturating_increment {
    ($cell:expr, $max:expr) => {{
        let cell = $cell;
        match cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v < $max).then(|| v + 1)
        }) {
            Ok(before) => u64::from(before) + 1,
            Err(at_max) => u64::from(at_max),
        }
    }};
}

impl Counters {
    fn new(len: usize, limit: u64) -> Self {
        if limit < u64::from(u8::MAX) {
            Counters::U8((0..len).map(|_| AtomicU8::new(0)).collect())
        } else if limit < u64::from(u16::MAX) {
            Counters::U16((0..len).map(|_| AtomicU16::new(0)).collect())
        } else {
            Counters::U32((0..len).map(|_| AtomicU32::new(0)).collect())
        }
    }

    /// Bytes one counter takes for `limit`.
    fn width(limit: u64) -> usize {
        if limit < u64::from(u8::MAX) {
            1
        } else if limit < u64::from(u16::MAX) {
            2
        } else {
            4
        }
    }

    /// Add one at `i` (saturating); the count after.
    fn increment(&self, i: usize) -> u64 {
        match self {
            Counters::U8(c) => saturating_increment!(&c[i], u8::MAX),
            Counters::U16(c) => saturating_increment!(&c[i], u16::MAX),
            Counters::U32(c) => saturating_increment!(&c[i], u32::MAX),
        }
    }

    fn clear(&self) {
        match self {
            Counters::U8(c) => c.iter().for_each(|x| x.store(0, Ordering::Relaxed)),
            Counters::U16(c) => c.iter().for_each(|x| x.store(0, Ordering::Relaxed)),
            Counters::U32(c) => c.iter().for_each(|x| x.store(0, Ordering::Relaxed)),
        }
    }
}

/// Counts of many keys in fixed windows, in fixed memory.
pub struct WindowSketch {
    rows: usize,
    /// `slots - 1`; `slots` is a power of two.
    mask: u64,
    per_ms: u64,
    started: Instant,
    /// The window (counted from 1) the counters hold.
    window: AtomicU64,
    hasher: RandomState,
    counters: Counters,
}

impl WindowSketch {
    /// A sketch of `rows` rows of `slots` (rounded up to a power of two) counters over windows
    /// of `per`, for a limit of `limit` requests per window.
    pub fn new(per: Duration, rows: usize, slots: usize, limit: u64) -> Self {
        let slots = slots.max(1).next_power_of_two();
        let rows = rows.max(1);
        WindowSketch {
            rows,
            mask: slots as u64 - 1,
            per_ms: (per.as_millis() as u64).max(1),
            started: Instant::now(),
            window: AtomicU64::new(1),
            hasher: RandomState::new(),
            counters: Counters::new(rows * slots, limit),
        }
    }

    /// Bytes the counters of such a sketch take.
    pub fn bytes(rows: usize, slots: usize, limit: u64) -> usize {
        rows.max(1) * slots.max(1).next_power_of_two() * Counters::width(limit)
    }

    /// Count one event of `key` now: its count in this window (at most one past the
    /// counter's capacity) and the milliseconds until the window ends.
    pub fn observe<K: Hash + ?Sized>(&self, key: &K) -> (u64, u64) {
        let elapsed = self.started.elapsed().as_millis() as u64;
        let window = elapsed / self.per_ms + 1;
        let reset_ms = window * self.per_ms - elapsed;
        let held = self.window.load(Ordering::Acquire);
        if held < window
            && self
                .window
                .compare_exchange(held, window, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.counters.clear();
        }
        let hash = self.hasher.hash_one(key);
        let h1 = hash & 0xffff_ffff;
        // Odd, so that the rows' positions differ for every slot count.
        let h2 = (hash >> 32) | 1;
        let slots = self.mask + 1;
        let mut least = u64::MAX;
        for row in 0..self.rows as u64 {
            let slot = h1.wrapping_add(row.wrapping_mul(h2)) & self.mask;
            let count = self.counters.increment((row * slots + slot) as usize);
            least = least.min(count);
        }
        (least, reset_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_key_and_saturates_one_past_a_byte() {
        let s = WindowSketch::new(Duration::from_secs(60), 4, 1024, 5);
        for n in 1..=5 {
            assert_eq!(s.observe("u1").0, n);
        }
        assert_eq!(s.observe("u2").0, 1);
        for _ in 0..400 {
            s.observe("u1");
        }
        assert_eq!(s.observe("u1").0, 255, "a byte counter stops at its top");
    }

    #[test]
    fn the_width_follows_the_limit() {
        assert_eq!(WindowSketch::bytes(4, 1 << 21, 5), 8 << 20);
        assert_eq!(WindowSketch::bytes(4, 1 << 21, 254), 8 << 20);
        assert_eq!(WindowSketch::bytes(4, 1 << 21, 255), 16 << 20);
        assert_eq!(WindowSketch::bytes(1, 1, 100_000), 4);
        let wide = WindowSketch::new(Duration::from_secs(60), 1, 1, 100_000);
        for _ in 0..70_000 {
            wide.observe(&());
        }
        assert_eq!(wide.observe(&()).0, 70_001);
    }

    #[test]
    fn a_new_window_starts_from_zero() {
        let s = WindowSketch::new(Duration::from_millis(50), 4, 64, 10);
        s.observe("k");
        s.observe("k");
        let (_, reset) = s.observe("k");
        assert!(reset <= 50);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(s.observe("k").0, 1);
    }
}
