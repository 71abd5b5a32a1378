//! The captcha check (`admission::captcha`): no `X-Captcha` value passes a `pow` or `token`
//! sale unless the edge minted the challenge (and it is worked out) or the captcha service
//! minted the pass, and then only for the user and the product it was minted for, until it
//! expires; any change to what was minted is refused.

use std::time::Duration;

use flashgate::admission::captcha::{pow, CaptchaCheck, Challenge, SaleCaptcha};
use flashgate::config::{Captcha, CaptchaSettings};
use flashgate::ground::signing::pass_token;
use flashgate::ground::Secret;
use proptest::prelude::*;

use super::strategies::{admitted_uid, edge_secret, hostile_text, other_secret};

const TOKEN_KEY: &[u8] = b"property-token-secret-property-token-secret";
const TTL_MS: u64 = 60_000;
/// Products: 1 asks for proof of work, 2 too, 3 for a pass token.
const POW: u64 = 1;
const POW_TOO: u64 = 2;
const TOKEN: u64 = 3;

struct Fixture {
    check: CaptchaCheck,
    pow: SaleCaptcha,
    pow_too: SaleCaptcha,
    token: SaleCaptcha,
}

impl Fixture {
    /// Proof of work of `bits` (low, so the tests solve it in microseconds).
    fn new(bits: u8) -> Self {
        Self::keyed(bits, &edge_secret())
    }

    /// [`Fixture::new`] for an edge whose secret is `edge`.
    fn keyed(bits: u8, edge: &Secret) -> Self {
        let settings = CaptchaSettings {
            difficulty: bits,
            max_difficulty: bits,
            raise_above: u64::MAX,
            challenge_ttl: Duration::from_millis(TTL_MS),
            token_secret: Some(Secret::new(TOKEN_KEY.to_vec())),
            single_use_capacity: 1000,
        };
        Fixture {
            check: CaptchaCheck::new(&settings, edge),
            pow: SaleCaptcha::new(Captcha::Pow, &settings),
            pow_too: SaleCaptcha::new(Captcha::Pow, &settings),
            token: SaleCaptcha::new(Captcha::Token, &settings),
        }
    }

    fn sale(&self, product: u64) -> &SaleCaptcha {
        match product {
            POW => &self.pow,
            POW_TOO => &self.pow_too,
            _ => &self.token,
        }
    }

    fn passes(&self, uid: &str, product: u64, header: &str, now: u64) -> bool {
        self.check
            .check(self.sale(product), uid, product, Some(header), now)
            .is_ok()
    }

    /// A challenge for `uid` on `product`, issued at `now`, and the header that solves it.
    fn solved(&self, uid: &str, product: u64, now: u64) -> (Challenge, String) {
        let c = self
            .check
            .issue(self.sale(product), uid, product, now)
            .expect("a pow sale issues challenges");
        let nonce = pow::solve(&c.challenge, c.difficulty, 1 << 20).expect("low bits solve");
        let header = format!("{}.{nonce}", c.challenge);
        (c, header)
    }
}

/// Text shaped like a challenge or a pass, fields drawn from what near-misses are made of.
fn shaped() -> impl Strategy<Value = String> {
    (
        "[0-9]{1,14}",
        "[0-9]{1,2}",
        "[0-9a-fA-F_]{0,40}",
        "[0-9a-f]{0,64}",
        "[0-9]{0,21}",
        any::<bool>(),
    )
        .prop_map(|(expires, bits, id, mac, nonce, is_pow)| {
            if is_pow {
                format!("{expires}-{bits}-{id}-{mac}.{nonce}")
            } else {
                format!("{expires}-{id}-{mac}")
            }
        })
}

fn now_ms() -> impl Strategy<Value = u64> {
    1_000_000_000_000u64..4_000_000_000_000
}

/// Whether `changed` is `minted` with only the case of hex letters in its MAC changed (the MAC
/// is the last `-` field, up to the nonce): hex is read in either case, the same bytes.
fn mac_case_only(changed: &str, minted: &str) -> bool {
    let mac_start = minted.rfind('-').map_or(minted.len(), |i| i + 1);
    changed.len() == minted.len()
        && changed[..mac_start] == minted[..mac_start]
        && changed.eq_ignore_ascii_case(minted)
}

/// One edit of `text` at a character boundary: a character replaced, inserted or removed.
fn edit(text: &str, at: prop::sample::Index, with: char, kind: u8) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let i = at.index(chars.len());
    match kind % 3 {
        0 => chars[i] = with,
        1 => chars.insert(i, with),
        _ => {
            chars.remove(i);
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_unminted_text_passes(
        header in prop_oneof![hostile_text(300), shaped()],
        uid in admitted_uid(),
        bits in 0u8..=2,
        now in now_ms(),
    ) {
        let f = Fixture::new(bits);
        for product in [POW, TOKEN] {
            prop_assert!(!f.passes(&uid, product, &header, now), "{:?} passed {}", header, product);
        }
    }

    #[test]
    fn a_solved_challenge_passes_only_for_its_user_and_product_until_it_expires(
        uid in admitted_uid(),
        other in admitted_uid(),
        bits in 0u8..=6,
        now in now_ms(),
        later in 0u64..TTL_MS,
    ) {
        prop_assume!(uid != other);
        let f = Fixture::new(bits);
        let (challenge, header) = f.solved(&uid, POW, now);
        prop_assert!(f.passes(&uid, POW, &header, now + later));
        let pass = f.check.check(&f.pow, &uid, POW, Some(&header), now).expect("passes");
        let pass = pass.expect("a pow sale hands back a pass to claim");
        prop_assert_eq!(pass.product, POW);
        prop_assert_eq!(pass.expires_ms, challenge.expires_ms);
        prop_assert!(pass.key.starts_with("p:"));
        prop_assert!(!f.passes(&other, POW, &header, now), "another user");
        prop_assert!(!f.passes(&uid, POW_TOO, &header, now), "another product");
        prop_assert!(!f.passes(&uid, TOKEN, &header, now), "a token sale");
        prop_assert!(!f.passes(&uid, POW, &header, challenge.expires_ms), "expired");
        let elsewhere = Fixture::keyed(bits, &Secret::new(vec![7; 32]));
        prop_assert!(!elsewhere.passes(&uid, POW, &header, now), "another edge's key");
    }

    #[test]
    fn any_edit_of_a_challenge_is_refused(
        uid in admitted_uid(),
        bits in 0u8..=4,
        now in now_ms(),
        at in any::<prop::sample::Index>(),
        with in prop::sample::select(vec!['0', '1', '9', 'a', 'f', 'A', '-', '.', '+', ' ']),
        kind in any::<u8>(),
    ) {
        let f = Fixture::new(bits);
        let (challenge, header) = f.solved(&uid, POW, now);
        let nonce = &header[challenge.challenge.len()..];
        let changed = edit(&challenge.challenge, at, with, kind);
        prop_assume!(changed != challenge.challenge);
        prop_assume!(!mac_case_only(&changed, &challenge.challenge));
        // The nonce may need redoing for the changed text; a low difficulty makes that cheap,
        // so what refuses the edit is the MAC, not the work.
        let renonced = pow::solve(&changed, bits, 1 << 20)
            .map(|n| format!("{changed}.{n}"))
            .unwrap_or_default();
        for candidate in [format!("{changed}{nonce}"), renonced] {
            // Spaces at either end are trimmed before parsing: the same challenge.
            prop_assume!(candidate.trim() != header);
            prop_assert!(!f.passes(&uid, POW, &candidate, now), "{:?} passed", candidate);
        }
    }

    #[test]
    fn a_minted_pass_passes_only_for_its_user_and_product_until_it_expires(
        uid in admitted_uid(),
        other in admitted_uid(),
        id in "[A-Za-z0-9_]{1,64}",
        now in now_ms(),
        lives in 1u64..TTL_MS,
        later in 0u64..TTL_MS,
    ) {
        prop_assume!(uid != other);
        let f = Fixture::new(0);
        let expires = now + lives;
        let header = pass_token(&Secret::new(TOKEN_KEY.to_vec()), &uid, TOKEN, expires, &id);
        let at = now + later % lives;
        let pass = f.check.check(&f.token, &uid, TOKEN, Some(&header), at);
        let pass = pass.expect("passes").expect("a token sale hands back a pass to claim");
        prop_assert_eq!(pass.key, format!("t:{id}"));
        prop_assert_eq!(pass.expires_ms, expires);
        prop_assert!(!f.passes(&other, TOKEN, &header, at), "another user");
        prop_assert!(!f.passes(&uid, POW, &header, at), "a pow sale");
        prop_assert!(!f.passes(&uid, TOKEN, &header, expires), "expired");
    }

    #[test]
    fn a_pass_minted_with_another_key_or_edited_is_refused(
        uid in admitted_uid(),
        id in "[A-Za-z0-9_]{1,64}",
        now in now_ms(),
        key in other_secret(),
        at in any::<prop::sample::Index>(),
        with in prop::sample::select(vec!['0', '1', '9', 'a', 'f', 'A', '_', '-', '+', ' ']),
        kind in any::<u8>(),
    ) {
        let f = Fixture::new(0);
        let expires = now + TTL_MS / 2;
        let forged = pass_token(&key, &uid, TOKEN, expires, &id);
        prop_assert!(!f.passes(&uid, TOKEN, &forged, now));
        let minted = pass_token(&Secret::new(TOKEN_KEY.to_vec()), &uid, TOKEN, expires, &id);
        let changed = edit(&minted, at, with, kind);
        prop_assume!(changed.trim() != minted && !mac_case_only(&changed, &minted));
        prop_assert!(!f.passes(&uid, TOKEN, &changed, now), "{:?} passed", changed);
    }
}
