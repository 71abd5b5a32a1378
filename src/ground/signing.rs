//! Everything the edge signs with its secret, in one place so the order backend and third-party
//! origins verify exactly what the edge wrote:
//!
//! - the sale path token: `hex(HMAC-SHA256(edge, "sale-path\n{product}\n{starts_at_ms}"))[..32]`,
//!   the same on every edge node and unguessable before the sale opens;
//! - the origin signature: `hex(HMAC-SHA256(edge, "{uid}\n{product}\n{reservation}\n{timestamp}"))`
//!   sent as `X-Flashgate-Signature` beside the four headers it covers, each as it is sent: the
//!   UID in its header form ([`crate::ground::uid::to_header`]), which has no newline, so the
//!   newline-joined form is unambiguous. The timestamp is Unix milliseconds, so every attempt of
//!   a forward (a retry included) is signed anew;
//! - the captcha challenge MAC: `HMAC-SHA256(edge, "flashgate-challenge\n{uid}\n{product}\n
//!   {expires_ms}\n{difficulty}\n{id}")[..16]`, binding a proof-of-work challenge to one user, one
//!   product, one expiry and one difficulty;
//! - the pass-token MAC, made by an external captcha service with its own key:
//!   `hex(HMAC-SHA256(token_secret, "flashgate-pass\n{uid}\n{product}\n{expires_ms}\n{id}"))`.
//! - the waiting room's ticket MAC: `HMAC-SHA256(edge, "flashgate-queue-ticket\n{uid}\n{product}\n
//!   {epoch}\n{number}\n{joined_ms}\n{starts_at_ms}\n{kind}")[..16]` (eight fields), binding a
//!   place in the queue to one user, one sale and one queue (`queue::ticket`);
//! - the waiting room's pass MAC: `HMAC-SHA256(edge, "flashgate-queue-pass\n{uid}\n{product}\n
//!   {number}\n{starts_at_ms}\n{expires_ms}\n{kind}")[..16]` (seven fields), the buy route's
//!   proof that this user was let through.
//!
//! Each signed string has a different number of fields, so no signature of one kind can stand in
//! for another. The captcha MACs are fed field by field, without formatting a string, because
//! they are checked on the reject path.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ground::Secret;

/// HMAC-SHA256, the one MAC of everything signed here.
pub type HmacSha256 = Hmac<Sha256>;

/// Hex characters of the sale path token (128 bits).
pub const SALE_TOKEN_HEX: usize = 32;

fn mac(key: &Secret) -> HmacSha256 {
    key.hmac()
}

/// The secret part of a sale's buy path.
pub fn sale_path_token(edge: &Secret, product: u64, starts_at_ms: u64) -> String {
    let mut m = mac(edge);
    m.update(format!("sale-path\n{product}\n{starts_at_ms}").as_bytes());
    let mut token = hex::encode(m.finalize().into_bytes());
    token.truncate(SALE_TOKEN_HEX);
    token
}

/// The `X-Flashgate-Signature` of a forwarded winner `uid` (the UID itself: it is signed in its
/// header form).
pub fn origin_signature(
    edge: &Secret,
    uid: &str,
    product: u64,
    reservation: &str,
    timestamp: u64,
) -> String {
    let uid = crate::ground::uid::to_header(uid);
    let mut m = mac(edge);
    m.update(format!("{uid}\n{product}\n{reservation}\n{timestamp}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The `X-Flashgate-Signature` of a shop route's request with a verified login `uid`: hex
/// HMAC-SHA256 over `"route\n{uid}\n{timestamp}"` (the UID in its header form). Three lines
/// beginning `route`: never the message of a forward (four lines) or a settlement question
/// (beginning `lookup`), so neither can be replayed as the other.
pub fn route_signature(edge: &Secret, uid: &str, timestamp: u64) -> String {
    let uid = crate::ground::uid::to_header(uid);
    let mut m = mac(edge);
    m.update(format!("route\n{uid}\n{timestamp}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Check the `X-Flashgate-Signature` of a shop route's request for `uid`, in constant time.
pub fn verify_route_signature(edge: &Secret, uid: &str, timestamp: u64, signature: &str) -> bool {
    let expected = route_signature(edge, uid, timestamp);
    constant_time_eq(expected.as_bytes(), signature.as_bytes())
}

/// How long after its `X-Flashgate-Timestamp` a signed forward is accepted by
/// `flashgate-orders` (either way, for clock skew). The edge's `origin.settle_after` should
/// outlast it.
pub const FORWARD_FRESH_MS: u64 = 30_000;

/// `X-Flashgate-Signature` of a settlement question, `GET {origin.path}/{reservation}`: hex
/// HMAC-SHA256 over `"lookup\n{reservation}\n{timestamp}"`. No forward signs a message of
/// that shape (three lines, not four), so a question can never be replayed as a buy.
pub fn lookup_signature(edge: &Secret, reservation: &str, timestamp: u64) -> String {
    let mut m = mac(edge);
    m.update(format!("lookup\n{reservation}\n{timestamp}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Check an `X-Flashgate-Signature` of a forward for `uid` (the UID itself, decoded from its
/// header form) in constant time.
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

/// Bytes of the challenge MAC carried in a challenge (128 bits, 32 hex characters).
pub const CHALLENGE_MAC_BYTES: usize = 16;

/// Decimal digits of `n` in `buf`, without allocating (shared with the proof-of-work check).
pub fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// The number `text` writes in decimal: ASCII digits only, and a value that fits. `str::parse`
/// alone would also take a leading `+`, a second spelling of every number; a path, a query or
/// a file that names a product by a number means exactly its digits. Leading zeros are read
/// (`042` is 42): see [`parse_signed_decimal`] for a number a signature covers.
pub fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// [`parse_decimal`] for a number that is signed as written (an origin's headers, a challenge):
/// only the one spelling [`decimal`] writes — no leading zero — so that what was signed and
/// what is read are the same text.
pub fn parse_signed_decimal(text: &str) -> Option<u64> {
    parse_decimal(text).filter(|_| text == "0" || !text.starts_with('0'))
}

fn update_fields(m: &mut HmacSha256, domain: &[u8], uid: &str, numbers: &[u64], id: &str) {
    let mut buf = [0u8; 20];
    m.update(domain);
    m.update(b"\n");
    m.update(uid.as_bytes());
    for n in numbers {
        m.update(b"\n");
        m.update(decimal(*n, &mut buf));
    }
    m.update(b"\n");
    m.update(id.as_bytes());
}

/// The MAC of a proof-of-work challenge (see the module docs), truncated to
/// [`CHALLENGE_MAC_BYTES`].
pub fn challenge_mac(
    edge: &Secret,
    uid: &str,
    product: u64,
    expires_ms: u64,
    difficulty: u8,
    id: &str,
) -> [u8; CHALLENGE_MAC_BYTES] {
    let mut m = mac(edge);
    let numbers = [product, expires_ms, u64::from(difficulty)];
    update_fields(&mut m, b"flashgate-challenge", uid, &numbers, id);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; CHALLENGE_MAC_BYTES];
    out.copy_from_slice(&full[..CHALLENGE_MAC_BYTES]);
    out
}

/// The MAC of a pass token from an external captcha service (see the module docs).
pub fn pass_mac(
    token_secret: &Secret,
    uid: &str,
    product: u64,
    expires_ms: u64,
    id: &str,
) -> [u8; 32] {
    let mut m = mac(token_secret);
    update_fields(&mut m, b"flashgate-pass", uid, &[product, expires_ms], id);
    m.finalize().into_bytes().into()
}

/// A complete pass token, `{expires_ms}-{id}-{hex mac}`, as an external captcha service mints
/// it after a person solved its puzzle. `id` must be unique per pass: it is what makes the pass
/// single use.
pub fn pass_token(
    token_secret: &Secret,
    uid: &str,
    product: u64,
    expires_ms: u64,
    id: &str,
) -> String {
    let mac = pass_mac(token_secret, uid, product, expires_ms, id);
    format!("{expires_ms}-{id}-{}", hex::encode(mac))
}

/// Bytes of a waiting-room ticket's or pass's MAC (128 bits).
pub const QUEUE_MAC_BYTES: usize = 16;

/// The MAC of a waiting-room ticket (see the module docs). `kind` is `p` (joined during the
/// pre-queue) or `a` (after the start); `uid` is the UID itself.
#[allow(clippy::too_many_arguments)]
pub fn queue_ticket_mac(
    edge: &Secret,
    uid: &str,
    product: u64,
    epoch: u64,
    kind: &str,
    number: u64,
    joined_ms: u64,
    starts_at_ms: u64,
) -> [u8; QUEUE_MAC_BYTES] {
    let mut m = mac(edge);
    let numbers = [product, epoch, number, joined_ms, starts_at_ms];
    update_fields(
        &mut m,
        b"flashgate-queue-ticket",
        &crate::ground::uid::to_header(uid),
        &numbers,
        kind,
    );
    truncated(m)
}

/// The MAC of a waiting-room pass (see the module docs).
pub fn queue_pass_mac(
    edge: &Secret,
    uid: &str,
    product: u64,
    kind: &str,
    number: u64,
    starts_at_ms: u64,
    expires_ms: u64,
) -> [u8; QUEUE_MAC_BYTES] {
    let mut m = mac(edge);
    let numbers = [product, number, starts_at_ms, expires_ms];
    update_fields(
        &mut m,
        b"flashgate-queue-pass",
        &crate::ground::uid::to_header(uid),
        &numbers,
        kind,
    );
    truncated(m)
}

/// The first [`QUEUE_MAC_BYTES`] of `m`'s MAC.
fn truncated(m: HmacSha256) -> [u8; QUEUE_MAC_BYTES] {
    let full = m.finalize().into_bytes();
    let mut out = [0u8; QUEUE_MAC_BYTES];
    out.copy_from_slice(&full[..QUEUE_MAC_BYTES]);
    out
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
    fn decimal_writes_every_digit() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(42, &mut buf), b"42");
        assert_eq!(decimal(u64::MAX, &mut buf), u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn numbers_are_read_in_exactly_their_digits() {
        assert_eq!(parse_decimal("42"), Some(42));
        assert_eq!(parse_decimal("042"), Some(42));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        // Found by the property tests (tests/properties): `+0` was read as 0.
        for bad in [
            "",
            "+0",
            "+42",
            "-1",
            " 1",
            "1 ",
            "1_000",
            "18446744073709551616",
            "\u{661}",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
        assert_eq!(parse_signed_decimal("0"), Some(0));
        assert_eq!(
            parse_signed_decimal("1800000000000"),
            Some(1_800_000_000_000)
        );
        for bad in ["00", "042", "+42"] {
            assert_eq!(parse_signed_decimal(bad), None, "{bad:?}");
        }
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 42, u64::MAX] {
            let text = std::str::from_utf8(decimal(n, &mut buf))
                .unwrap()
                .to_string();
            assert_eq!(parse_signed_decimal(&text), Some(n));
        }
    }

    #[test]
    fn challenge_mac_binds_every_field() {
        let base = challenge_mac(&key(), "u1", 42, 1000, 16, "ab");
        // The streamed MAC equals the MAC of the documented string.
        let mut m = mac(&key());
        m.update(b"flashgate-challenge\nu1\n42\n1000\n16\nab");
        assert_eq!(base[..], m.finalize().into_bytes()[..CHALLENGE_MAC_BYTES]);
        for other in [
            challenge_mac(&key(), "u2", 42, 1000, 16, "ab"),
            challenge_mac(&key(), "u1", 43, 1000, 16, "ab"),
            challenge_mac(&key(), "u1", 42, 1001, 16, "ab"),
            challenge_mac(&key(), "u1", 42, 1000, 15, "ab"),
            challenge_mac(&key(), "u1", 42, 1000, 16, "ac"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn pass_token_carries_its_mac() {
        let t = pass_token(&key(), "u1", 42, 5000, "p1");
        assert_eq!(
            t,
            format!(
                "5000-p1-{}",
                hex::encode(pass_mac(&key(), "u1", 42, 5000, "p1"))
            )
        );
        let mut m = mac(&key());
        m.update(b"flashgate-pass\nu1\n42\n5000\np1");
        assert_eq!(
            pass_mac(&key(), "u1", 42, 5000, "p1")[..],
            m.finalize().into_bytes()[..]
        );
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

    #[test]
    fn origin_signature_covers_the_uid_as_sent() {
        let mut m = mac(&key());
        m.update(b"jos%C3%A9\n42\n42-1\n99");
        assert_eq!(
            origin_signature(&key(), "jos\u{e9}", 42, "42-1", 99),
            hex::encode(m.finalize().into_bytes())
        );
    }
}
