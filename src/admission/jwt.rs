//! HS256 JSON Web Tokens (RFC 7519), verified in one pass: the HMAC key is expanded once per
//! secret, the signature is checked before any JSON is read, the header is matched as bytes
//! when it is the usual `{"alg":"HS256","typ":"JWT"}`, and the claims are read once, borrowing
//! from a stack buffer. Only what the login check needs is read: `alg` (HS256 and nothing
//! else), `exp` (required, a number of seconds), `nbf` (optional; a number when present) and `sub`
//! (a string or an integer). `tests/properties/login.rs` checks it against the `jsonwebtoken`
//! crate, which this replaced on the hot path (it parsed the claims twice).

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::ground::signing::HmacSha256;
use crate::ground::Secret;

/// `base64url({"alg":"HS256","typ":"JWT"})`, the header nearly every issuer writes.
const USUAL_HEADER: &[u8] = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/// Length of an HS256 signature in base64url without padding (32 bytes).
const SIGNATURE_CHARS: usize = 43;
/// Claims longer than this (decoded) are decoded onto the heap rather than the stack.
const STACK_CLAIMS: usize = 1024;

/// Why a token is refused. Callers treat every reason alike (the client is not logged in);
/// the reasons exist for tests and for anyone debugging a login service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    /// Not three base64url parts, or a part that is not base64url.
    #[error("not a JWT")]
    Malformed,
    /// The header is not JSON naming `alg: HS256`.
    #[error("not an HS256 token")]
    Algorithm,
    /// The signature is not the secret's.
    #[error("bad signature")]
    Signature,
    /// The claims are not a JSON object with the claims' types.
    #[error("bad claims")]
    Claims,
    /// No `exp`.
    #[error("no exp")]
    NoExpiry,
    /// `exp` is past (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is ahead (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// No `sub`.
    #[error("no sub")]
    NoSubject,
}

/// A verifier and signer of HS256 tokens with one secret.
#[derive(Clone)]
pub struct Hs256 {
    /// The HMAC with its key already expanded; cloned for each token.
    keyed: HmacSha256,
}

impl Hs256 {
    /// Tokens signed with `secret`.
    pub fn new(secret: &Secret) -> Self {
        Hs256 {
            keyed: secret.hmac(),
        }
    }

    /// The subject of `token` if it is signed with this secret, names HS256, and is valid at
    /// `now_secs` give or take `leeway_secs`.
    pub fn verify(
        &self,
        token: &str,
        now_secs: u64,
        leeway_secs: u64,
    ) -> Result<String, TokenRefused> {
        let bytes = token.as_bytes();
        let dot2 = memrchr(b'.', bytes).ok_or(TokenRefused::Malformed)?;
        let (message, signature) = (&bytes[..dot2], &bytes[dot2 + 1..]);
        let dot1 = message
            .iter()
            .position(|&b| b == b'.')
            .ok_or(TokenRefused::Malformed)?;
        let (header, claims) = (&message[..dot1], &message[dot1 + 1..]);

        if signature.len() != SIGNATURE_CHARS {
            return Err(TokenRefused::Signature);
        }
        let mut mac = [0u8; 32];
        URL_SAFE_NO_PAD
            .decode_slice(signature, &mut mac)
            .map_err(|_| TokenRefused::Malformed)?;
        let mut hmac = self.keyed.clone();
        hmac.update(message);
        hmac.verify_slice(&mac)
            .map_err(|_| TokenRefused::Signature)?;

        if header != USUAL_HEADER {
            check_header(header)?;
        }
        let mut stack = [0u8; STACK_CLAIMS];
        let heap;
        let json: &[u8] = if claims.len() / 4 * 3 + 3 <= STACK_CLAIMS {
            let n = URL_SAFE_NO_PAD
                .decode_slice(claims, &mut stack)
                .map_err(|_| TokenRefused::Malformed)?;
            &stack[..n]
        } else {
            heap = URL_SAFE_NO_PAD
                .decode(claims)
                .map_err(|_| TokenRefused::Malformed)?;
            &heap
        };
        // An object, not the array serde would also read positionally into the struct.
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(TokenRefused::Claims);
        }
        let claims: Claims<'_> = serde_json::from_slice(json).map_err(|_| TokenRefused::Claims)?;
        let exp = claims.exp.ok_or(TokenRefused::NoExpiry)?.0;
        if exp < now_secs.saturating_sub(leeway_secs) {
            return Err(TokenRefused::Expired);
        }
        if let Some(Seconds(nbf)) = claims.nbf {
            if nbf > now_secs.saturating_add(leeway_secs) {
                return Err(TokenRefused::NotYetValid);
            }
        }
        match claims.sub.ok_or(TokenRefused::NoSubject)? {
            Subject::Text(s) => Ok(s.into_owned()),
            Subject::Number(n) => Ok(n),
        }
    }

    /// A token for `sub` expiring at `exp_secs`, with the usual header.
    pub fn mint(&self, sub: &str, exp_secs: u64) -> String {
        #[derive(serde::Serialize)]
        struct Minted<'a> {
            sub: &'a str,
            exp: u64,
        }
        // Serialising a struct of a string and an integer cannot fail.
        let claims = serde_json::to_vec(&Minted { sub, exp: exp_secs })
            .expect("a string and an integer serialise");
        let mut token = String::with_capacity(USUAL_HEADER.len() + claims.len() * 4 / 3 + 48);
        token.push_str("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.");
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let mut hmac = self.keyed.clone();
        hmac.update(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(hmac.finalize().into_bytes(), &mut token);
        token
    }
}

impl fmt::Debug for Hs256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hs256(..)")
    }
}

fn memrchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().rposition(|&b| b == needle)
}

/// A header other than the usual bytes: JSON whose `alg` is `HS256`.
fn check_header(header: &[u8]) -> Result<(), TokenRefused> {
    #[derive(Deserialize)]
    struct Header<'a> {
        #[serde(borrow)]
        alg: Cow<'a, str>,
    }
    let mut buf = [0u8; 256];
    if header.len() / 4 * 3 + 3 > buf.len() {
        return Err(TokenRefused::Algorithm);
    }
    let n = URL_SAFE_NO_PAD
        .decode_slice(header, &mut buf)
        .map_err(|_| TokenRefused::Malformed)?;
    let parsed: Header<'_> =
        serde_json::from_slice(&buf[..n]).map_err(|_| TokenRefused::Algorithm)?;
    if parsed.alg == "HS256" {
        Ok(())
    } else {
        Err(TokenRefused::Algorithm)
    }
}

/// The claims the login reads; every other claim is skipped.
#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow, default)]
    sub: Option<Subject<'a>>,
    #[serde(default)]
    exp: Option<Seconds>,
    #[serde(default)]
    nbf: Option<Seconds>,
}

/// A NumericDate: seconds since the epoch, an integer or (RFC 7519 allows it) a fraction,
/// rounded; a negative, a string or a number beyond `u64` is refused.
struct Seconds(u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds since the epoch")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    Ok(Seconds(v.round() as u64))
                } else {
                    Err(E::custom("a NumericDate out of range"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `sub`: a string, or an integer written as a JSON number (then its decimal form).
enum Subject<'a> {
    Text(Cow<'a, str>),
    Number(String),
}

impl<'de: 'a, 'a> Deserialize<'de> for Subject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Subject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Subject::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Subject::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Subject::Text(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Subject::Number(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Subject::Number(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"login-secret-login-secret-login-secret!!";
    const NOW: u64 = 1_800_000_000;

    fn token(header: &str, claims: &str, key: &[u8]) -> String {
        let mut t = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(t.as_bytes());
        t.push('.');
        t.push_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        t
    }

    fn hs256(claims: &str) -> String {
        token(r#"{"alg":"HS256","typ":"JWT"}"#, claims, KEY)
    }

    #[test]
    fn the_usual_header_is_the_fast_path_and_any_hs256_header_is_accepted() {
        assert!(hs256("{}").starts_with(std::str::from_utf8(USUAL_HEADER).unwrap()));
        let j = Hs256::new(&Secret::new(KEY));
        for header in [
            r#"{"typ":"JWT","alg":"HS256"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"HS\u0032\u0035\u0036","kid":"k1"}"#,
        ] {
            let t = token(header, r#"{"sub":"u","exp":1800000060}"#, KEY);
            assert_eq!(j.verify(&t, NOW, 5).as_deref(), Ok("u"), "{header}");
        }
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"typ":"JWT"}"#,
            "[]",
            "not json",
        ] {
            let t = token(header, r#"{"sub":"u","exp":1800000060}"#, KEY);
            assert_eq!(
                j.verify(&t, NOW, 5),
                Err(TokenRefused::Algorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn claims_are_read_once_with_their_types() {
        let j = Hs256::new(&Secret::new(KEY));
        let ok = |claims: &str| j.verify(&hs256(claims), NOW, 5);
        assert_eq!(
            ok(r#"{"sub":"a\"b","exp":1800000000}"#).as_deref(),
            Ok("a\"b")
        );
        assert_eq!(ok(r#"{"sub":12,"exp":1800000000}"#).as_deref(), Ok("12"));
        assert_eq!(ok(r#"{"sub":-7,"exp":1800000000}"#).as_deref(), Ok("-7"));
        assert_eq!(
            ok(r#"{"iss":"x","aud":["a"],"sub":"u","exp":1800000000,"roles":[1,{"a":null}]}"#)
                .as_deref(),
            Ok("u")
        );
        assert_eq!(ok(r#"{"sub":"u","exp":1799999995}"#).as_deref(), Ok("u"));
        assert_eq!(
            ok(r#"{"sub":"u","exp":1799999994}"#),
            Err(TokenRefused::Expired)
        );
        assert_eq!(ok(r#"{"sub":"u"}"#), Err(TokenRefused::NoExpiry));
        assert_eq!(ok(r#"{"sub":"u","exp":null}"#), Err(TokenRefused::NoExpiry));
        assert_eq!(ok(r#"{"sub":"u","exp":1.8e9}"#).as_deref(), Ok("u"));
        assert_eq!(
            ok(r#"{"sub":"u","exp":1799999994.4}"#),
            Err(TokenRefused::Expired)
        );
        assert_eq!(ok(r#"{"sub":"u","exp":-1}"#), Err(TokenRefused::Claims));
        assert_eq!(
            ok(r#"{"sub":"u","exp":"1800000000"}"#),
            Err(TokenRefused::Claims)
        );
        assert_eq!(ok(r#"{"exp":1800000000}"#), Err(TokenRefused::NoSubject));
        assert_eq!(
            ok(r#"{"sub":1.5,"exp":1800000000}"#),
            Err(TokenRefused::Claims)
        );
        assert_eq!(
            ok(r#"{"sub":true,"exp":1800000000}"#),
            Err(TokenRefused::Claims)
        );
        assert_eq!(
            ok(r#"{"sub":"u","sub":"v","exp":1800000000}"#),
            Err(TokenRefused::Claims)
        );
        assert_eq!(
            ok(r#"{"sub":"u","exp":1800000100,"nbf":1800000006}"#),
            Err(TokenRefused::NotYetValid)
        );
        assert_eq!(
            ok(r#"{"sub":"u","exp":1800000100,"nbf":1800000005}"#).as_deref(),
            Ok("u")
        );
        assert_eq!(ok("[]"), Err(TokenRefused::Claims));
        assert_eq!(ok(r#"["u",1800000000]"#), Err(TokenRefused::Claims));
        let long = format!(
            r#"{{"sub":"u","exp":1800000000,"pad":"{}"}}"#,
            "x".repeat(4000)
        );
        assert_eq!(
            ok(&long).as_deref(),
            Ok("u"),
            "claims beyond the stack buffer"
        );
    }

    #[test]
    fn the_signature_is_checked_first_and_exactly() {
        let j = Hs256::new(&Secret::new(KEY));
        let good = hs256(r#"{"sub":"u","exp":1800000000}"#);
        assert!(j.verify(&good, NOW, 5).is_ok());
        let other = token(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"u","exp":1800000000}"#,
            b"another key",
        );
        assert_eq!(j.verify(&other, NOW, 5), Err(TokenRefused::Signature));
        let (message, _) = good.rsplit_once('.').unwrap();
        for bad in [
            format!("{message}."),
            format!("{message}.{}", "A".repeat(42)),
            format!("{message}.{}=", &good[good.len() - 43..]),
            format!("{}x", &good),
            good.replacen('.', "..", 1),
            "a.b".into(),
            "abc".into(),
            String::new(),
            "..".into(),
        ] {
            assert!(j.verify(&bad, NOW, 5).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn minted_tokens_verify_and_match_the_usual_form() {
        let j = Hs256::new(&Secret::new(KEY));
        let t = j.mint("u\"7€", 1_800_000_000);
        assert_eq!(j.verify(&t, NOW, 0).as_deref(), Ok("u\"7€"));
        assert_eq!(t, hs256(r#"{"sub":"u\"7€","exp":1800000000}"#));
    }
}
