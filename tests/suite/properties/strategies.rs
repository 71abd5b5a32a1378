//! The inputs the properties share: user ids inside and outside the UID alphabet, secrets,
//! hostile text, and the wall clock the login check reads.

use std::time::{SystemTime, UNIX_EPOCH};

use flashgate::ground::uid::MAX_UID_BYTES;
use flashgate::ground::Secret;
use proptest::prelude::*;

/// The login secret of the tests (a login service's key).
pub const LOGIN_KEY: &[u8] = b"property-login-secret-property-login-secret";
/// The edge secret of the tests.
pub const EDGE_KEY: &[u8] = b"property-edge-secret-property-edge-secret!!";

/// The tests' login secret.
pub fn login_secret() -> Secret {
    Secret::new(LOGIN_KEY.to_vec())
}

/// The tests' edge secret.
pub fn edge_secret() -> Secret {
    Secret::new(EDGE_KEY.to_vec())
}

/// Now, in Unix seconds (the login check reads the real clock).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A character the UID alphabet admits (anything but a control character), drawn mostly from
/// the characters that need care: ASCII punctuation, the space, `%` and `+`, non-ASCII.
fn uid_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('!', '~'),
        2 => prop::sample::select(vec![' ', '%', '+', '\u{a0}', 'é', '李', '€', '\u{200b}', '\u{feff}', '😀']),
        2 => any::<char>().prop_filter("not a control character", |c| !c.is_control()),
    ]
}

/// Any user id the edge admits: 1 to [`MAX_UID_BYTES`] bytes without control characters.
pub fn admitted_uid() -> impl Strategy<Value = String> {
    prop::collection::vec(uid_char(), 1..=48)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("at most MAX_UID_BYTES", |s| s.len() <= MAX_UID_BYTES)
}

/// A string the UID alphabet refuses: empty, too long, or holding a control character.
pub fn refused_uid() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (admitted_uid(), 0usize..=MAX_UID_BYTES).prop_map(|(uid, n)| {
            let mut long = uid.repeat(MAX_UID_BYTES / uid.len() + 1);
            long.push_str(&"x".repeat(n + 1));
            long
        }),
        (
            admitted_uid(),
            admitted_uid(),
            prop::sample::select(vec!['\0', '\n', '\r', '\t', '\u{7f}', '\u{85}', '\u{9f}'])
        )
            .prop_map(|(a, b, c)| format!("{a}{c}{b}")),
    ]
}

/// A secret of at least 32 bytes other than both of the tests' own.
pub fn other_secret() -> impl Strategy<Value = Secret> {
    prop::collection::vec(any::<u8>(), 32..64)
        .prop_filter("not one of the tests' keys", |k| {
            k.as_slice() != LOGIN_KEY && k.as_slice() != EDGE_KEY
        })
        .prop_map(Secret::new)
}

/// Hostile text: any Unicode, or text made of the characters the parsers split on, or digits
/// and hex, where near-misses live.
pub fn hostile_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect()),
        prop::collection::vec(
            prop::sample::select(vec![
                '0', '1', '9', 'a', 'f', 'F', 'x', '-', '.', ':', ',', ';', '=', '%', '+', ' ',
                '\t', '[', ']', '/', '\u{e9}', '\u{3000}',
            ]),
            0..max
        )
        .prop_map(|c| c.into_iter().collect()),
    ]
}
