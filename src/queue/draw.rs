//! The shuffle's draw: the random order of everyone who joined a `mode: shuffle` sale during its
//! pre-queue, made so that anyone can check it.
//!
//! - The seed is `HMAC-SHA256(edge secret, "queue-seed\n{product}\n{starts_at_ms}")` (32 bytes):
//!   every edge derives the same one, and nobody without the edge secret can know it before it
//!   is revealed. Its SHA-256 is published from the moment the pre-queue opens
//!   (`GET /api/queue/draw`), the seed itself from the start, so it cannot be chosen after the
//!   joiners are known.
//! - The generator: block `i` (from 0) is `SHA-256(seed ‖ i as 8 bytes big-endian)`, read as four
//!   64-bit big-endian numbers, in order.
//! - A number below `bound` is drawn by rejection: take the next number `r`, reject it while
//!   `r ≥ bound × ⌊2⁶⁴ / bound⌋`, answer `r mod bound` (uniform, no modulo bias).
//! - The order is a Fisher–Yates shuffle of the join numbers `1..=n` (`n` the pre-queue's
//!   joiners): for `i` from `n − 1` down to 1, swap the entries at `i` and at a number drawn
//!   below `i + 1`. The entry at index `k` gets place `k + 1`.
//!
//! Later arrivals are not drawn: they queue behind the `n` in arrival order.

use sha2::{Digest, Sha256};

use crate::ground::Secret;

/// The seed of `product`'s draw for a sale starting at `starts_at_ms`.
pub fn seed(edge: &Secret, product: u64, starts_at_ms: u64) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<Sha256>::new_from_slice(edge.bytes()).expect("HMAC takes any key length");
    m.update(format!("queue-seed\n{product}\n{starts_at_ms}").as_bytes());
    m.finalize().into_bytes().into()
}

/// The published commitment to `seed`: its SHA-256, in hex.
pub fn commitment(seed: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(seed))
}

/// The draw's numbers (see the module doc).
struct Numbers {
    seed: [u8; 32],
    block: u64,
    buf: [u64; 4],
    used: usize,
}

impl Numbers {
    fn new(seed: [u8; 32]) -> Self {
        Numbers {
            seed,
            block: 0,
            buf: [0; 4],
            used: 4,
        }
    }

    fn next(&mut self) -> u64 {
        if self.used == 4 {
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.block.to_be_bytes());
            let out = h.finalize();
            for (i, chunk) in out.chunks_exact(8).enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                self.buf[i] = u64::from_be_bytes(b);
            }
            self.block += 1;
            self.used = 0;
        }
        let r = self.buf[self.used];
        self.used += 1;
        r
    }

    /// A number below `bound` (> 0), without bias.
    fn below(&mut self, bound: u64) -> u64 {
        let zone = (u64::MAX / bound) * bound;
        loop {
            let r = self.next();
            if r < zone {
                return r % bound;
            }
        }
    }
}

/// The join numbers `1..=joiners` in the order of their places: entry `k` gets place `k + 1`.
pub fn order(seed: [u8; 32], joiners: u32) -> Vec<u32> {
    let mut order: Vec<u32> = (1..=joiners).collect();
    let mut numbers = Numbers::new(seed);
    for i in (1..order.len()).rev() {
        let j = numbers.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// The place (from 1) of every join number: entry `n − 1` is join number `n`'s place.
pub fn places(seed: [u8; 32], joiners: u32) -> Vec<u32> {
    let order = order(seed, joiners);
    let mut places = vec![0u32; order.len()];
    for (k, &join) in order.iter().enumerate() {
        places[join as usize - 1] = k as u32 + 1;
    }
    places
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new(vec![9u8; 32])
    }

    #[test]
    fn the_draw_is_a_deterministic_permutation() {
        let s = seed(&secret(), 42, 1_000);
        let a = order(s, 5000);
        assert_eq!(a, order(s, 5000), "the same seed draws the same order");
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=5000).collect::<Vec<_>>(), "a permutation");
        assert_ne!(a, (1..=5000).collect::<Vec<_>>(), "not the identity");
        // Another sale (product, start) draws another order.
        assert_ne!(a, order(seed(&secret(), 43, 1_000), 5000));
        assert_ne!(a, order(seed(&secret(), 42, 2_000), 5000));
        let p = places(s, 5000);
        for (k, &join) in a.iter().enumerate() {
            assert_eq!(p[join as usize - 1], k as u32 + 1);
        }
        assert!(order(s, 0).is_empty());
        assert_eq!(order(s, 1), [1]);
    }

    #[test]
    fn the_commitment_is_the_seeds_sha256() {
        let s = seed(&secret(), 42, 1_000);
        let c = commitment(&s);
        assert_eq!(c.len(), 64);
        assert_eq!(c, hex::encode(Sha256::digest(s)));
        assert_ne!(c, commitment(&seed(&Secret::new(vec![8u8; 32]), 42, 1_000)));
    }

    #[test]
    fn places_are_roughly_uniform() {
        // Over many seeds, join number 1 lands in each tenth of 10 places about equally often.
        let mut counts = [0u32; 10];
        for start in 0..2000u64 {
            let p = places(seed(&secret(), 1, start), 10);
            counts[p[0] as usize - 1] += 1;
        }
        for c in counts {
            assert!((120..=280).contains(&c), "{counts:?}");
        }
    }
}
