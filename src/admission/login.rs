//! Login: a JWT signed HS256 with the login secret, carried as `Authorization: Bearer <jwt>` or
//! in the `fg_session` cookie. Only HS256 is accepted — `none`, RS256 and every other algorithm
//! are refused — `exp` and `sub` are required, `nbf` is honoured when present (a token not yet
//! valid is refused), `aud` is not checked (a token for the shop's other services is still the
//! user's login), and `sub` — a string, or an integer written as a number — is the user id. [`mint`] makes such
//! tokens, for the `flashgate token` command, the storm, the demo and the tests; in production
//! the shop's login service mints them with the same secret. The token itself is read by
//! [`super::jwt`].

use super::jwt::Hs256;
use crate::ground::Secret;

/// Name of the session cookie that may carry the login token.
pub const SESSION_COOKIE: &str = "fg_session";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// Verifies login tokens.
#[derive(Debug)]
pub struct Login {
    jwt: Hs256,
}

impl Login {
    /// A verifier for tokens signed with `secret`.
    pub fn new(secret: &Secret) -> Self {
        Login {
            jwt: Hs256::new(secret),
        }
    }

    /// The user id of a valid token, or None for a missing, forged, expired, wrongly-signed or
    /// malformed one, or one whose `sub` is outside the UID alphabet ([`crate::ground::uid`]).
    pub fn verify(&self, token: &str) -> Option<String> {
        let now_secs = crate::ground::clock::now_ms() / 1000;
        let uid = self.jwt.verify(token, now_secs, LEEWAY_SECS).ok()?;
        crate::ground::uid::valid(&uid).then_some(uid)
    }
}

/// A login token for `uid`, signed HS256 with `secret` and expiring at `expires_at_secs` (Unix
/// seconds): exactly what [`Login::verify`] accepts until then, if `uid` is in the UID
/// alphabet ([`crate::ground::uid::valid`]; the tests sign others too, to see them refused).
pub fn mint(secret: &Secret, uid: &str, expires_at_secs: u64) -> String {
    Hs256::new(secret).mint(uid, expires_at_secs)
}

/// The login token of a request: the Bearer token if there is one, else the session cookie,
/// from any of the request's `Cookie` headers (HTTP/2 clients send one per cookie).
pub fn token_from<'a>(
    authorization: Option<&'a [u8]>,
    cookies: impl IntoIterator<Item = &'a [u8]>,
) -> Option<&'a str> {
    if let Some(value) = authorization.and_then(|v| std::str::from_utf8(v).ok()) {
        // `get`, not indexing: byte 7 may fall inside a multi-byte character (`€€€`).
        let value = value.trim();
        let scheme = value.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer "));
        if let (Some(_), Some(token)) = (scheme, value.get(7..)) {
            let token = token.trim();
            if !token.is_empty() {
                return Some(token);
            }
        }
    }
    // The first session cookie with a value: an emptied one (a logout on another path) does
    // not hide a live one beside it.
    cookies
        .into_iter()
        .filter_map(|header| std::str::from_utf8(header).ok())
        .flat_map(|header| header.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim();
            (name.trim() == SESSION_COOKIE && !value.is_empty()).then_some(value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::json;

    const KEY: &[u8] = b"login-secret-login-secret-login-secret!!";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn mint(alg: Algorithm, key: &[u8], claims: serde_json::Value) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    #[test]
    fn accepts_valid_hs256_and_returns_sub() {
        let login = Login::new(&Secret::new(KEY.to_vec()));
        let t = mint(
            Algorithm::HS256,
            KEY,
            json!({"sub": "u42", "exp": now() + 60}),
        );
        assert_eq!(login.verify(&t).as_deref(), Some("u42"));
    }

    #[test]
    fn refuses_forged_expired_other_alg_none_and_missing_claims() {
        let login = Login::new(&Secret::new(KEY.to_vec()));
        let forged = mint(
            Algorithm::HS256,
            b"another-key-another-key-another-key!",
            json!({"sub": "u", "exp": now() + 60}),
        );
        let expired = mint(
            Algorithm::HS256,
            KEY,
            json!({"sub": "u", "exp": now() - 3600}),
        );
        let hs512 = mint(
            Algorithm::HS512,
            KEY,
            json!({"sub": "u", "exp": now() + 60}),
        );
        let no_exp = mint(Algorithm::HS256, KEY, json!({"sub": "u"}));
        let no_sub = mint(Algorithm::HS256, KEY, json!({"exp": now() + 60}));
        let control = mint(
            Algorithm::HS256,
            KEY,
            json!({"sub": "a\nb", "exp": now() + 60}),
        );
        // alg:none: header {"alg":"none"}, payload, empty signature.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(format!(r#"{{"sub":"u","exp":{}}}"#, now() + 60))
        );
        for t in [
            forged,
            expired,
            hs512,
            no_exp,
            no_sub,
            control,
            none,
            "garbage".into(),
        ] {
            assert_eq!(login.verify(&t), None, "accepted {t}");
        }
    }

    #[test]
    fn minted_tokens_verify_until_they_expire() {
        let secret = Secret::new(KEY.to_vec());
        let login = Login::new(&secret);
        let t = super::mint(&secret, "u7", now() + 60);
        assert_eq!(login.verify(&t).as_deref(), Some("u7"));
        let expired = super::mint(&secret, "u7", now() - 3600);
        assert_eq!(login.verify(&expired), None);
        let other = super::mint(&Secret::new(b"x".repeat(40)), "u7", now() + 60);
        assert_eq!(login.verify(&other), None);
    }

    #[test]
    fn nbf_in_the_future_is_refused_aud_is_not_checked_and_numeric_sub_is_an_id() {
        let login = Login::new(&Secret::new(KEY.to_vec()));
        let future = mint(
            Algorithm::HS256,
            KEY,
            json!({"sub": "u", "exp": now() + 7200, "nbf": now() + 3600}),
        );
        assert_eq!(login.verify(&future), None, "not valid before its nbf");
        let started = mint(
            Algorithm::HS256,
            KEY,
            json!({"sub": "u", "exp": now() + 7200, "nbf": now() - 10}),
        );
        assert_eq!(login.verify(&started).as_deref(), Some("u"));
        for aud in [json!("shop"), json!(["shop", "app"])] {
            let t = mint(
                Algorithm::HS256,
                KEY,
                json!({"sub": "u", "exp": now() + 60, "aud": aud}),
            );
            assert_eq!(login.verify(&t).as_deref(), Some("u"), "aud {aud}");
        }
        for (sub, uid) in [(json!(12345), "12345"), (json!(-7), "-7")] {
            let t = mint(
                Algorithm::HS256,
                KEY,
                json!({"sub": sub, "exp": now() + 60}),
            );
            assert_eq!(login.verify(&t).as_deref(), Some(uid));
        }
        for sub in [
            json!(1.5),
            json!(true),
            json!(null),
            json!({"id": 1}),
            json!(""),
        ] {
            let t = mint(
                Algorithm::HS256,
                KEY,
                json!({"sub": sub, "exp": now() + 60}),
            );
            assert_eq!(login.verify(&t), None, "sub {sub}");
        }
    }

    const NO_COOKIE: Option<&[u8]> = None;

    fn cookie(header: &[u8]) -> Option<&[u8]> {
        Some(header)
    }

    #[test]
    fn token_comes_from_bearer_then_cookie() {
        assert_eq!(token_from(Some(b"Bearer abc"), NO_COOKIE), Some("abc"));
        assert_eq!(token_from(Some(b"bearer  abc "), NO_COOKIE), Some("abc"));
        assert_eq!(
            token_from(None, cookie(b"a=1; fg_session=xyz")),
            Some("xyz")
        );
        assert_eq!(
            token_from(Some(b"Basic zzz"), cookie(b"fg_session=c")),
            Some("c")
        );
        assert_eq!(token_from(None, cookie(b"other=1")), None);
        // Never a panic on what a client writes; never an empty token.
        for hostile in [
            "€€€".as_bytes(),
            "Bearer".as_bytes(),
            "Bearer ".as_bytes(),
            "Bearer      ".as_bytes(),
            "Beare€ x".as_bytes(),
            "€€€€€€€€€€".as_bytes(),
            b"Bearer \xff\xfe",
        ] {
            assert_eq!(token_from(Some(hostile), NO_COOKIE), None, "{hostile:?}");
        }
        assert_eq!(
            token_from(Some("Bearer €".as_bytes()), NO_COOKIE),
            Some("€")
        );
        // Found by the property tests (tests/properties): an empty session cookie was the
        // token, hiding the live one after it.
        assert_eq!(
            token_from(None, cookie(b"fg_session=; fg_session=abc")),
            Some("abc")
        );
        assert_eq!(token_from(None, cookie(b"fg_session= ")), None);
        // HTTP/2 sends each cookie in a header of its own.
        let headers: [&[u8]; 3] = [b"theme=dark", b"fg_session=", b"fg_session=h2"];
        assert_eq!(token_from(None, headers), Some("h2"));
    }
}
