//! `GET /api/challenge?product=ID`: a proof-of-work challenge for a logged-in user of a sale
//! with `captcha: pow`. The answer is JSON, never cached:
//!
//! ```json
//! {"challenge":"1763812800000-16-3f0c…-9a1b…","difficulty":16,"expires_at_ms":1763812800000,
//!  "product":42,"algorithm":"sha256","header":"X-Captcha"}
//! ```
//!
//! The page finds a decimal nonce such that SHA-256 of `"<challenge>:<nonce>"` starts with
//! `difficulty` zero bits and buys with `X-Captcha: <challenge>.<nonce>`. Errors are the usual
//! outcome bodies: `401 login_required`, `404 unknown_product` (no such sale, or no `product`
//! parameter), `403 ended`, `404 not_found` (the sale asks for no proof of work).

use crate::admission::captcha::Challenge;
use crate::ground::signing::parse_decimal;

/// The `product` parameter of a query string: its decimal digits ([`parse_decimal`]).
pub fn product_param(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("product="))
        .and_then(parse_decimal)
}

/// The JSON body for `challenge` on `product`.
pub fn body(challenge: &Challenge, product: u64) -> String {
    // The challenge is digits, hex and dashes: nothing to escape.
    format!(
        "{{\"challenge\":\"{}\",\"difficulty\":{},\"expires_at_ms\":{},\"product\":{product},\
         \"algorithm\":\"sha256\",\"header\":\"X-Captcha\"}}",
        challenge.challenge, challenge.difficulty, challenge.expires_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_product_and_writes_json() {
        assert_eq!(product_param(Some("product=42")), Some(42));
        assert_eq!(product_param(Some("t=1&product=7")), Some(7));
        assert_eq!(product_param(Some("product=x")), None);
        assert_eq!(product_param(None), None);
        // Found by the property tests (tests/properties): `+7` was read as 7.
        assert_eq!(product_param(Some("product=+7")), None);
        let c = Challenge {
            challenge: "1-2-ab-cd".into(),
            difficulty: 2,
            expires_ms: 1,
        };
        let v: serde_json::Value = serde_json::from_str(&body(&c, 9)).unwrap();
        assert_eq!(v["challenge"], "1-2-ab-cd");
        assert_eq!(v["difficulty"], 2);
        assert_eq!(v["product"], 9);
    }
}
