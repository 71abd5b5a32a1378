//! User ids: which ones the edge admits, and how one travels to the origin.
//!
//! The alphabet is defined here once, and the login check ([`crate::admission::login`]) admits
//! nothing else: a UID is 1 to [`MAX_UID_BYTES`] bytes of UTF-8 without control characters.
//! Anything else a shop's login service puts in `sub` — `josé`, `李雷`, `" alice "`, `50%off` —
//! is a UID, stored by the order backend exactly as the token said.
//!
//! HTTP cannot carry every such UID in a header as it is: bytes above 0x7F are not text to most
//! HTTP libraries, and spaces at either end of a value are stripped in transit. So
//! `X-Flashgate-Uid` carries the UID's *header form*: every byte outside visible ASCII
//! (`!`..`~`), the space, `%` itself and `+` written as `%XX` (uppercase hex of the UTF-8
//! bytes), so any percent-decoder, form decoders included, gets the UID back.
//! Ids of letters, digits and punctuation — nearly all ids — are their own header form. The
//! edge's signature covers the header form, so an origin verifies the header as it arrived and
//! decodes it afterwards ([`from_header`]).

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Longest user id accepted, in bytes.
pub const MAX_UID_BYTES: usize = 128;

/// Bytes written as `%XX` in the header form, besides every byte above 0x7F: `+` too, because
/// form decoders (Java's `URLDecoder`, PHP's `urldecode`) read a bare `+` as a space.
const ESCAPED: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'+');

/// Whether `uid` is a user id the edge admits: 1 to [`MAX_UID_BYTES`] bytes, no control
/// characters (so it can be written into signed, newline-joined strings unambiguously).
pub fn valid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= MAX_UID_BYTES && !uid.chars().any(char::is_control)
}

/// The header form of `uid` (borrowed when it is its own header form).
pub fn to_header(uid: &str) -> Cow<'_, str> {
    utf8_percent_encode(uid, ESCAPED).into()
}

/// The UID a header form stands for. None unless `value` is the exact header form of a valid
/// UID: escapes of bad hex, bytes that decode to invalid UTF-8 or a control character, and
/// any other spelling of the same UID (a lowercase escape, an escaped letter) are refused, so
/// one UID has one header form and one signature.
pub fn from_header(value: &str) -> Option<String> {
    let uid = percent_decode_str(value).decode_utf8().ok()?;
    (valid(&uid) && to_header(&uid) == value).then(|| uid.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_ids_are_their_own_header_form() {
        for uid in ["alice", "u42", "user@example.com", "a-b_c.d~e", "x=1&y=2"] {
            assert!(matches!(to_header(uid), Cow::Borrowed(_)), "{uid}");
            assert_eq!(from_header(uid).as_deref(), Some(uid));
        }
    }

    #[test]
    fn every_admitted_id_survives_the_round_trip() {
        for (uid, form) in [
            ("josé", "jos%C3%A9"),
            (" alice ", "%20alice%20"),
            ("李雷", "%E6%9D%8E%E9%9B%B7"),
            ("50%off", "50%25off"),
            ("alice+shop@example.com", "alice%2Bshop@example.com"),
            ("a b", "a%20b"),
            ("\u{a0}", "%C2%A0"),
        ] {
            assert!(valid(uid), "{uid:?}");
            assert_eq!(to_header(uid), form);
            assert!(form.bytes().all(|b| b.is_ascii_graphic()), "{form}");
            assert_eq!(from_header(form).as_deref(), Some(uid));
        }
    }

    #[test]
    fn refuses_what_no_edge_writes() {
        for value in [
            "",
            "%",
            "%4",
            "%zz",
            "%c3%a9", // lowercase: not the one header form
            "%61",    // an escaped letter
            "jos\u{e9}",
            "%FF",   // not UTF-8
            "a%0Ab", // a control character
            "a b",   // a raw space
            &"x".repeat(MAX_UID_BYTES + 1),
        ] {
            assert_eq!(from_header(value), None, "{value:?}");
        }
    }

    #[test]
    fn the_alphabet() {
        assert!(valid(&"x".repeat(MAX_UID_BYTES)));
        assert!(!valid(&"x".repeat(MAX_UID_BYTES + 1)));
        assert!(!valid(""));
        assert!(!valid("a\nb"));
        assert!(!valid("a\u{7f}"));
        assert!(!valid("a\u{85}"));
    }
}
