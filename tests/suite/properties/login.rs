//! The login check (`admission::login`): whatever a client writes in `Authorization` and
//! `Cookie` never panics and is never a login, unless it carries a token minted with the login
//! secret; a token minted for any UID of the alphabet comes back as that UID, however the
//! headers around it are written.

use base64::Engine;
use flashgate::admission::login::{mint, token_from, Login, SESSION_COOKIE};
use flashgate::ground::Secret;
use proptest::prelude::*;

use super::strategies::{admitted_uid, login_secret, now_secs, other_secret, refused_uid};

fn login() -> Login {
    Login::new(&login_secret())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `Bearer` in any case, with any spacing around the token.
fn bearer(token: &str) -> impl Strategy<Value = String> {
    let token = token.to_string();
    (
        "[bB][eE][aA][rR][eE][rR]",
        "[ \t]{0,3}",
        "[ \t]{0,3}",
        "[ \t]{0,3}",
    )
        .prop_map(move |(scheme, lead, gap, tail)| format!("{lead}{scheme} {gap}{token}{tail}"))
}

/// Other cookies: names that are not the session cookie's, values without `;`.
fn other_cookies() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        ("[a-z_]{1,8}", "[^;]{0,12}").prop_map(|(n, v)| format!("{n}={v}")),
        0..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_header_bytes_are_a_login(
        authorization in prop::option::of(prop::collection::vec(any::<u8>(), 0..160)),
        cookie in prop::option::of(prop::collection::vec(any::<u8>(), 0..160)),
    ) {
        let token = token_from(authorization.as_deref(), cookie.as_deref());
        if let Some(token) = token {
            prop_assert!(!token.is_empty(), "an empty token is no token");
            prop_assert_eq!(login().verify(token), None);
        }
    }

    #[test]
    fn no_header_text_is_a_login(
        scheme in "(Bearer |bearer |Basic |)",
        text in "\\PC{0,120}",
        name in "(fg_session|other| fg_session )",
    ) {
        let authorization = format!("{scheme}{text}");
        let cookie = format!("{name}={text}");
        let token = token_from(Some(authorization.as_bytes()), Some(cookie.as_bytes()));
        prop_assert_eq!(token.and_then(|t| login().verify(t)), None);
    }

    #[test]
    fn jwt_shaped_strings_are_not_logins(
        alg in "(HS256|HS512|none|RS256|hs256)",
        sub in admitted_uid(),
        signature in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        // A well-formed header and payload for a live user, with a signature nobody made.
        let header = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        let payload = serde_json::json!({"sub": sub, "exp": now_secs() + 3600});
        let token = format!("{header}.{}.{}", b64(payload.to_string().as_bytes()), b64(&signature));
        prop_assert_eq!(login().verify(&token), None);
    }

    #[test]
    fn a_minted_token_round_trips_to_its_uid(
        (uid, authorization) in admitted_uid().prop_flat_map(|uid| {
            let token = mint(&login_secret(), &uid, now_secs() + 3600);
            (Just(uid), bearer(&token))
        }),
    ) {
        let token = token_from(Some(authorization.as_bytes()), None);
        prop_assert_eq!(token.and_then(|t| login().verify(t)), Some(uid));
    }

    #[test]
    fn a_minted_token_in_a_cookie_round_trips_among_other_cookies(
        uid in admitted_uid(),
        before in other_cookies(),
        after in other_cookies(),
        authorization in prop::option::of("(Basic [a-zA-Z0-9=]{0,20}|Digest x|Bearer|Bearer \t|)"),
    ) {
        let token = mint(&login_secret(), &uid, now_secs() + 3600);
        let mut pairs = before;
        pairs.push(format!(" {SESSION_COOKIE}={token} "));
        pairs.extend(after);
        let cookie = pairs.join(";");
        let found = token_from(authorization.as_deref().map(str::as_bytes), Some(cookie.as_bytes()));
        prop_assert_eq!(found, Some(token.as_str()));
        prop_assert_eq!(login().verify(&token), Some(uid));
    }

    #[test]
    fn an_empty_session_cookie_hides_no_login(
        uid in admitted_uid(),
        empty in "[ \t]{0,2}",
        before in other_cookies(),
    ) {
        // A browser may hold an emptied session cookie beside the live one (another path).
        let token = mint(&login_secret(), &uid, now_secs() + 3600);
        let mut pairs = before;
        pairs.push(format!("{SESSION_COOKIE}={empty}"));
        pairs.push(format!("{SESSION_COOKIE}={token}"));
        let cookie = pairs.join("; ");
        prop_assert_eq!(token_from(None, Some(cookie.as_bytes())), Some(token.as_str()));
    }

    #[test]
    fn a_token_minted_with_another_secret_is_refused(uid in admitted_uid(), other in other_secret()) {
        let token = mint(&other, &uid, now_secs() + 3600);
        prop_assert_eq!(login().verify(&token), None);
    }

    #[test]
    fn an_expired_token_is_refused(uid in admitted_uid(), ago in 6u64..10_000_000) {
        let token = mint(&login_secret(), &uid, now_secs() - ago);
        prop_assert_eq!(login().verify(&token), None);
    }

    #[test]
    fn a_sub_outside_the_alphabet_is_refused(uid in refused_uid()) {
        let token = mint(&login_secret(), &uid, now_secs() + 3600);
        prop_assert_eq!(login().verify(&token), None);
    }

    #[test]
    fn any_change_to_a_minted_token_is_refused(
        uid in admitted_uid(),
        at in any::<prop::sample::Index>(),
        with in proptest::char::range('!', '~'),
    ) {
        let token = mint(&login_secret(), &uid, now_secs() + 3600);
        let mut chars: Vec<char> = token.chars().collect();
        let i = at.index(chars.len());
        prop_assume!(chars[i] != with);
        chars[i] = with;
        let changed: String = chars.into_iter().collect();
        prop_assert_eq!(login().verify(&changed), None, "{} accepted", changed);
    }
}

#[test]
fn the_secret_used_by_these_properties_is_a_real_one() {
    // Guard against a vacuous suite: the fixed key does verify its own tokens.
    let token = mint(&login_secret(), "u1", now_secs() + 60);
    assert_eq!(login().verify(&token).as_deref(), Some("u1"));
    assert_eq!(Login::new(&Secret::new(vec![1; 32])).verify(&token), None);
}

/// A claim value of any JSON type a login service might write (or get wrong).
fn claim_value(around: u64) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        4 => (around - 100_000..around + 100_000).prop_map(|n| json!(n)),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => (0.0f64..4e9).prop_map(|f| json!(f)),
        1 => "[0-9a-z]{0,10}".prop_map(|s| json!(s)),
        1 => Just(json!(null)),
        1 => Just(json!(true)),
        1 => Just(json!([1])),
    ]
}

/// A subject of any JSON type, mostly valid.
fn subject() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        6 => admitted_uid().prop_map(|s| json!(s)),
        2 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<u64>().prop_map(|n| json!(n)),
        1 => (-1e6f64..1e6).prop_map(|f| json!(f)),
        1 => Just(json!(null)),
        1 => Just(json!({"id": 1})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// flashgate reads tokens itself (`admission::jwt`, one pass); the `jsonwebtoken` crate it
    /// replaced is the reference: for any claims a login service might write — right or wrong
    /// types, with or without `exp`, `nbf`, `aud` and other claims — signed with the right key
    /// or another, as HS256 or HS384, both agree on whether the token is a login and on its UID.
    #[test]
    fn the_login_check_agrees_with_the_jsonwebtoken_crate(
        sub in prop::option::of(subject()),
        exp in prop::option::of(claim_value(now_secs())),
        nbf in prop::option::of(prop::option::of(now_secs() - 100_000..now_secs() + 100_000)),
        aud in prop::option::of("[a-z]{1,6}"),
        right_key in prop::bool::weighted(0.9),
        hs384 in prop::bool::weighted(0.1),
    ) {
        use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
        let mut claims = serde_json::Map::new();
        if let Some(sub) = sub { claims.insert("sub".into(), sub); }
        if let Some(exp) = exp { claims.insert("exp".into(), exp); }
        // nbf: absent, or an integer (a malformed nbf is refused here and ignored by the crate).
        if let Some(Some(nbf)) = nbf { claims.insert("nbf".into(), nbf.into()); }
        if let Some(aud) = aud { claims.insert("aud".into(), aud.into()); }
        let key = if right_key { login_secret() } else { other_secret_fixed() };
        let alg = if hs384 { Algorithm::HS384 } else { Algorithm::HS256 };
        let token = encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key.bytes()))
            .expect("signs");

        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Sub { Text(String), Unsigned(u64), Signed(i64) }
        #[derive(serde::Deserialize)]
        struct Claims { sub: Sub }
        let reference = decode::<Claims>(
            &token,
            &DecodingKey::from_secret(login_secret().bytes()),
            &validation,
        )
        .ok()
        .map(|d| match d.claims.sub {
            Sub::Text(s) => s,
            Sub::Unsigned(n) => n.to_string(),
            Sub::Signed(n) => n.to_string(),
        })
        .filter(|uid| flashgate::ground::uid::valid(uid));
        // An `exp` within a second of now may fall either side of the two clock readings.
        if let Some(e) = claims.get("exp").and_then(|e| e.as_u64()) {
            prop_assume!(e.abs_diff(now_secs().saturating_sub(5)) > 2);
        }
        if let Some(n) = claims.get("nbf").and_then(|n| n.as_u64()) {
            prop_assume!(n.abs_diff(now_secs() + 5) > 2);
        }
        prop_assert_eq!(login().verify(&token), reference, "claims {:?}", claims);
    }
}

fn other_secret_fixed() -> Secret {
    Secret::new(b"another-login-secret-another-login-secret".to_vec())
}
