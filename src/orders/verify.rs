//! Is this order request really from the edge? Only requests carrying the four
//! `X-Flashgate-*` facts and an `X-Flashgate-Signature` the edge made over them (see
//! `crate::ground::signing`), stamped within the freshness window, are accepted. Replays are caught by
//! the database (`used_signatures`), not here: this module is pure.

use crate::ground::signing::{parse_signed_decimal, verify_origin_signature};
use crate::ground::Secret;
use crate::stock::Reservation;

/// How far a request's timestamp may be from now.
pub const FRESH_MS: u64 = crate::ground::signing::FORWARD_FRESH_MS;

/// Why a request is refused (all answer 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    /// A header is missing or malformed.
    #[error("unsigned")]
    Unsigned,
    /// The signature does not match.
    #[error("forged")]
    Forged,
    /// The timestamp is outside the freshness window.
    #[error("stale")]
    Stale,
    /// This exact signed request was accepted before.
    #[error("replayed")]
    Replayed,
}

/// A verified order request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The reservation it is for.
    pub reservation: Reservation,
    /// Its signature (the replay key).
    pub signature: String,
    /// Its timestamp, ms since the epoch.
    pub timestamp_ms: u64,
}

/// Verify the edge's headers, looked up by `header(name)`. The UID arrives in its header form
/// (`crate::ground::uid`) and is decoded; the signature covers it as it arrived.
pub fn verify<'a>(
    edge: &Secret,
    now_ms: u64,
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<Signed, Unverified> {
    let uid = header("x-flashgate-uid")
        .and_then(crate::ground::uid::from_header)
        .ok_or(Unverified::Unsigned)?;
    // Numbers in exactly the spelling the edge signed them in: `+42` or `042` is not the `42`
    // the signature covers, though it would read as the same number.
    let product = header("x-flashgate-product")
        .and_then(parse_signed_decimal)
        .ok_or(Unverified::Unsigned)?;
    let reservation = header("x-flashgate-reservation").ok_or(Unverified::Unsigned)?;
    let timestamp_ms = header("x-flashgate-timestamp")
        .and_then(parse_signed_decimal)
        .ok_or(Unverified::Unsigned)?;
    let signature = header("x-flashgate-signature").ok_or(Unverified::Unsigned)?;
    if !verify_origin_signature(edge, &uid, product, reservation, timestamp_ms, signature) {
        return Err(Unverified::Forged);
    }
    if timestamp_ms.abs_diff(now_ms) > FRESH_MS {
        return Err(Unverified::Stale);
    }
    Ok(Signed {
        reservation: Reservation {
            id: reservation.to_string(),
            product,
            uid,
        },
        signature: signature.to_string(),
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground::signing::origin_signature;
    use std::collections::HashMap;

    fn key() -> Secret {
        Secret::new(vec![9u8; 32])
    }

    fn headers(ts: u64, sig: Option<String>) -> HashMap<&'static str, String> {
        let sig = sig.unwrap_or_else(|| origin_signature(&key(), "u1", 42, "42-1", ts));
        HashMap::from([
            ("x-flashgate-uid", "u1".to_string()),
            ("x-flashgate-product", "42".to_string()),
            ("x-flashgate-reservation", "42-1".to_string()),
            ("x-flashgate-timestamp", ts.to_string()),
            ("x-flashgate-signature", sig),
        ])
    }

    fn run(h: &HashMap<&'static str, String>, now: u64) -> Result<Signed, Unverified> {
        verify(&key(), now, |n| h.get(n).map(String::as_str))
    }

    #[test]
    fn accepts_fresh_signed_and_refuses_the_rest() {
        let now = 1_000_000;
        let ok = run(&headers(now - 1000, None), now).unwrap();
        assert_eq!(ok.reservation.id, "42-1");
        assert_eq!(
            run(&headers(now, Some("00".into())), now),
            Err(Unverified::Forged)
        );
        assert_eq!(
            run(&headers(now - 31_000, None), now),
            Err(Unverified::Stale)
        );
        // Found by the property tests (tests/properties): another spelling of a signed number
        // was accepted under the signature of the number.
        for (name, value) in [
            ("x-flashgate-product", "+42"),
            ("x-flashgate-product", "042"),
            ("x-flashgate-timestamp", &format!("+{now}")),
            ("x-flashgate-timestamp", &format!("0{now}")),
        ] {
            let mut h = headers(now, None);
            h.insert(name, value.to_string());
            assert_eq!(run(&h, now), Err(Unverified::Unsigned), "{name}: {value}");
        }
        let mut missing = headers(now, None);
        missing.remove("x-flashgate-uid");
        assert_eq!(run(&missing, now), Err(Unverified::Unsigned));
    }
}
