//! The order backend's check of the edge's signed headers (`orders::verify`): whatever the
//! `X-Flashgate-*` headers say, nothing is accepted that the edge did not sign; what the edge
//! signed for any UID of the alphabet is accepted as exactly those facts, and any edit of one
//! header is refused.

use std::collections::HashMap;

use flashgate::ground::signing::origin_signature;
use flashgate::ground::uid::to_header;
use flashgate::orders::verify::{verify, FRESH_MS};
use proptest::prelude::*;

use super::strategies::{admitted_uid, edge_secret, hostile_text, other_secret};

const NOW: u64 = 1_800_000_000_000;

const NAMES: [&str; 5] = [
    "x-flashgate-uid",
    "x-flashgate-product",
    "x-flashgate-reservation",
    "x-flashgate-timestamp",
    "x-flashgate-signature",
];

/// The headers the edge writes for a forward.
fn signed(uid: &str, product: u64, reservation: &str, ts: u64) -> HashMap<&'static str, String> {
    let signature = origin_signature(&edge_secret(), uid, product, reservation, ts);
    HashMap::from([
        (NAMES[0], to_header(uid).into_owned()),
        (NAMES[1], product.to_string()),
        (NAMES[2], reservation.to_string()),
        (NAMES[3], ts.to_string()),
        (NAMES[4], signature),
    ])
}

fn check(h: &HashMap<&'static str, String>) -> bool {
    verify(&edge_secret(), NOW, |n| h.get(n).map(String::as_str)).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn what_the_edge_signed_is_accepted_as_signed(
        uid in admitted_uid(),
        product in any::<u64>(),
        reservation in "[0-9a-z-]{1,40}",
        skew in 0..=2 * FRESH_MS,
    ) {
        let ts = NOW - FRESH_MS + skew;
        let h = signed(&uid, product, &reservation, ts);
        let got = verify(&edge_secret(), NOW, |n| h.get(n).map(String::as_str)).expect("accepted");
        prop_assert_eq!(got.reservation.uid, uid);
        prop_assert_eq!(got.reservation.product, product);
        prop_assert_eq!(got.reservation.id, reservation);
        prop_assert_eq!(got.timestamp_ms, ts);
    }

    #[test]
    fn no_unsigned_headers_are_accepted(
        values in prop::collection::vec(prop::option::of(hostile_text(70)), 5),
        key in other_secret(),
        uid in admitted_uid(),
    ) {
        let mut h: HashMap<&'static str, String> = NAMES
            .iter()
            .zip(values)
            .filter_map(|(n, v)| Some((*n, v?)))
            .collect();
        prop_assert!(!check(&h));
        // Signed with another key: as forged as no signature at all.
        let forged = origin_signature(&key, &uid, 42, "42-1", NOW);
        h.extend(signed(&uid, 42, "42-1", NOW));
        h.insert(NAMES[4], forged);
        prop_assert!(!check(&h));
    }

    #[test]
    fn any_edit_of_one_header_is_refused(
        uid in admitted_uid(),
        product in any::<u64>(),
        reservation in "[0-9a-z-]{1,40}",
        which in 0usize..5,
        at in any::<prop::sample::Index>(),
        with in prop::sample::select(vec!['0', '1', '9', 'a', 'f', '%', '+', '-', ' ', 'A']),
        kind in any::<u8>(),
    ) {
        let mut h = signed(&uid, product, &reservation, NOW);
        let value = h.get_mut(NAMES[which]).expect("written");
        let mut chars: Vec<char> = value.chars().collect();
        let i = at.index(chars.len());
        match kind % 3 {
            0 => chars[i] = with,
            1 => chars.insert(i, with),
            _ => {
                chars.remove(i);
            }
        }
        let edited: String = chars.into_iter().collect();
        prop_assume!(edited != *value);
        *value = edited;
        prop_assert!(!check(&h), "{:?} accepted", h);
    }
}
