//! The proof of work: find a decimal `nonce` such that SHA-256 of the UTF-8 string
//! `"<challenge>:<nonce>"` starts with `difficulty` zero bits. Checking costs one hash; finding
//! costs 2^difficulty hashes on average. The page solves it in a Web Worker
//! (`static/pow-worker.js`), `flashgate storm` with [`solve`].

use sha2::{Digest, Sha256};

use crate::ground::signing::decimal;

/// Leading zero bits of a hash.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Whether `nonce` is a proof of `difficulty` bits for `challenge`. `nonce` must be 1 to 20
/// ASCII digits.
pub fn work_ok(challenge: &str, nonce: &str, difficulty: u8) -> bool {
    if nonce.is_empty() || nonce.len() > 20 || !nonce.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let hash = Sha256::new()
        .chain_update(challenge.as_bytes())
        .chain_update(b":")
        .chain_update(nonce.as_bytes())
        .finalize();
    leading_zero_bits(&hash) >= u32::from(difficulty)
}

/// Find the smallest nonce proving `difficulty` bits for `challenge`, trying at most `limit`
/// nonces.
pub fn solve(challenge: &str, difficulty: u8, limit: u64) -> Option<u64> {
    let mut prefix = Sha256::new();
    prefix.update(challenge.as_bytes());
    prefix.update(b":");
    let mut buf = [0u8; 20];
    (0..limit).find(|nonce| {
        let digits = decimal(*nonce, &mut buf);
        let hash = prefix.clone().chain_update(digits).finalize();
        leading_zero_bits(&hash) >= u32::from(difficulty)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leading_zero_bits() {
        assert_eq!(leading_zero_bits(&[0x00, 0x00, 0x80]), 16);
        assert_eq!(leading_zero_bits(&[0x00, 0x0f]), 12);
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn a_solution_checks_and_is_the_first_one() {
        let nonce = solve("abc", 12, 1 << 24).expect("12 bits are found");
        assert!(work_ok("abc", &nonce.to_string(), 12));
        let hash = Sha256::digest(format!("abc:{nonce}"));
        assert!(
            leading_zero_bits(&hash) >= 12,
            "matches the documented string"
        );
        for smaller in 0..nonce {
            assert!(!work_ok("abc", &smaller.to_string(), 12));
        }
        assert!(!work_ok("abd", &nonce.to_string(), 12) || solve("abd", 12, nonce + 1).is_some());
    }

    #[test]
    fn agrees_with_the_page_worker() {
        // static/pow-worker.js finds the same nonce (tests/browser/pow.test.mjs).
        assert_eq!(solve("abc-def", 16, 1 << 24), Some(131_983));
    }

    #[test]
    fn refuses_non_decimal_nonces() {
        assert!(work_ok("x", "0", 0));
        for bad in ["", "-1", "0x1", "1 ", "123456789012345678901", "١"] {
            assert!(!work_ok("x", bad, 0), "{bad:?}");
        }
    }

    #[test]
    fn solve_gives_up_at_the_limit() {
        assert_eq!(solve("abc", 32, 10), None);
    }
}
