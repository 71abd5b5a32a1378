//! The login check (`admission::login`): whatever a client writes in `Authorization` and
//! `Cookie` never panics and is never a login, unless it carries a token minted with the login
//! secret; a token minted for any UID of the alphabet comes back as that UID, however the
//! headers around it are written.

use base64::Engine;
use flashgate::admission::login::{mint, token_from, Login, SESSION_COOKIE};
use flashgate::config::Secret;
use proptest::prelude::*;

use crate::strategies::{admitted_uid, login_secret, now_secs, other_secret, refused_uid};

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
            let token = mint(&login_secret(), &uid, now_secs() + 3600).expect("mints");
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
        let token = mint(&login_secret(), &uid, now_secs() + 3600).expect("mints");
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
        let token = mint(&login_secret(), &uid, now_secs() + 3600).expect("mints");
        let mut pairs = before;
        pairs.push(format!("{SESSION_COOKIE}={empty}"));
        pairs.push(format!("{SESSION_COOKIE}={token}"));
        let cookie = pairs.join("; ");
        prop_assert_eq!(token_from(None, Some(cookie.as_bytes())), Some(token.as_str()));
    }

    #[test]
    fn a_token_minted_with_another_secret_is_refused(uid in admitted_uid(), other in other_secret()) {
        let token = mint(&other, &uid, now_secs() + 3600).expect("mints");
        prop_assert_eq!(login().verify(&token), None);
    }

    #[test]
    fn an_expired_token_is_refused(uid in admitted_uid(), ago in 6u64..10_000_000) {
        let token = mint(&login_secret(), &uid, now_secs() - ago).expect("mints");
        prop_assert_eq!(login().verify(&token), None);
    }

    #[test]
    fn a_sub_outside_the_alphabet_is_refused(uid in refused_uid()) {
        let token = mint(&login_secret(), &uid, now_secs() + 3600).expect("mints");
        prop_assert_eq!(login().verify(&token), None);
    }

    #[test]
    fn any_change_to_a_minted_token_is_refused(
        uid in admitted_uid(),
        at in any::<prop::sample::Index>(),
        with in proptest::char::range('!', '~'),
    ) {
        let token = mint(&login_secret(), &uid, now_secs() + 3600).expect("mints");
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
    let token = mint(&login_secret(), "u1", now_secs() + 60).expect("mints");
    assert_eq!(login().verify(&token).as_deref(), Some("u1"));
    assert_eq!(Login::new(&Secret::new(vec![1; 32])).verify(&token), None);
}
