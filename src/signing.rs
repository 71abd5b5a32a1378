//! Everything the edge signs with its secret, in one place so the order backend and third-party
//! origins verify exactly what the edge wrote:
//!
//! - the sale path token: `hex(HMAC-SHA256(edge, "sale-path\n{product}\n{starts_at_ms}"))[..32]`,
//!   the same on every edge node and unguessable before the sale opens;
//! - the origin signature: `hex(HMAC-SHA256(edge, "{uid}\n{product}\n{reservation}\n{timestamp}"))`
//!   sent as `X-Flashgate-Signature` beside the four headers it covers; the timestamp is Unix
//!   milliseconds, so every attempt of a forward (a retry included) is signed anew. UIDs never contain
//!   control characters (login refuses them), so the newline-joined form is unambiguous.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Hex characters of the sale path token (128 bits).
pub const SALE_TOKEN_HEX: usize = 32;

fn mac(key: &Secret) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    HmacSha256::new_from_slice(key.bytes()).expect("HMAC takes a key of any length")
}

/// The secret part of a sale's buy path.
pub fn sale_path_token(edge: &Secret, product: u64, starts_at_ms: u64) -> String {
    let mut m = mac(edge);
    m.update(format!("sale-path\n{product}\n{starts_at_ms}").as_bytes());
    let mut token = hex::encode(m.finalize().into_bytes());
    token.truncate(SALE_TOKEN_HEX);
    token
}

/// The `X-Flashgate-Signature` of a forwarded winner.
pub fn origin_signature(
    edge: &Secret,
    uid: &str,
    product: u64,
    reservation: &str,
    timestamp: u64,
) -> String {
    let mut m = mac(edge);
    m.update(format!("{uid}\n{product}\n{reservation}\n{timestamp}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Check an `X-Flashgate-Signature` in constant time.
pub fn verify_origin_signature(
    edge: &Secret,
    uid: &str,
    product: u64,
    reservation: &str,
    timestamp: u64,
    signature: &str,
) -> bool {
    let expected = origin_signature(edge, uid, product, reservation, timestamp);
    constant_time_eq(expected.as_bytes(), signature.as_bytes())
}

/// Compare two byte strings without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Secret {
        Secret::new(b"0123456789abcdef0123456789abcdef".to_vec())
    }

    #[test]
    fn sale_token_depends_on_product_and_start() {
        let a = sale_path_token(&key(), 42, 1000);
        assert_eq!(a.len(), SALE_TOKEN_HEX);
        assert_eq!(a, sale_path_token(&key(), 42, 1000));
        assert_ne!(a, sale_path_token(&key(), 43, 1000));
        assert_ne!(a, sale_path_token(&key(), 42, 1001));
    }

    #[test]
    fn origin_signature_verifies_and_rejects_changes() {
        let sig = origin_signature(&key(), "u1", 42, "42-1", 99);
        assert!(verify_origin_signature(&key(), "u1", 42, "42-1", 99, &sig));
        assert!(!verify_origin_signature(&key(), "u2", 42, "42-1", 99, &sig));
        assert!(!verify_origin_signature(
            &key(),
            "u1",
            42,
            "42-1",
            100,
            &sig
        ));
    }
}
