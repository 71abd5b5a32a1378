//! The waiting room's tickets and passes (`queue::ticket`): no text verifies unless the edge
//! signed it, and then only for the user and the product it was signed for (a pass only until
//! it expires); reading any text never panics; what was signed round-trips. And the draw
//! (`queue::draw`): for any seed and count, a permutation.

use flashgate::queue::draw;
use flashgate::queue::ticket::{Kind, Place, Signer, Ticket};
use proptest::prelude::*;

use super::strategies::{admitted_uid, edge_secret, hostile_text, other_secret};

const STARTS_MS: u64 = 1_000_000;

fn place() -> impl Strategy<Value = Place> {
    (any::<bool>(), 1..u64::MAX).prop_map(|(pre, number)| Place {
        kind: if pre { Kind::Pre } else { Kind::Post },
        number,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn hostile_text_is_neither_ticket_nor_pass(text in hostile_text(80), uid in admitted_uid()) {
        let s = Signer::new(&edge_secret(), 42, STARTS_MS);
        prop_assert_eq!(s.verify_ticket(&uid, &text), None);
        prop_assert_eq!(s.verify_pass(&uid, &text, 0), None);
        prop_assert!(Place::parse(&text).is_none_or(|p| p.number > 0));
    }

    #[test]
    fn what_the_edge_signed_round_trips_for_its_user_only(
        uid in admitted_uid(),
        other in admitted_uid(),
        place in place(),
        epoch in any::<u64>(),
        joined_ms in any::<u64>(),
        expires_ms in 1..u64::MAX,
        key in other_secret(),
    ) {
        let s = Signer::new(&edge_secret(), 42, STARTS_MS);
        let t = Ticket { epoch, place, joined_ms };
        let ticket = s.ticket(&uid, &t);
        prop_assert_eq!(s.verify_ticket(&uid, &ticket), Some(t));
        let pass = s.pass(&uid, place, expires_ms);
        prop_assert_eq!(s.verify_pass(&uid, &pass, expires_ms - 1).map(|p| p.place), Some(place));
        prop_assert_eq!(s.verify_pass(&uid, &pass, expires_ms), None);
        if other != uid {
            prop_assert_eq!(s.verify_ticket(&other, &ticket), None);
            prop_assert_eq!(s.verify_pass(&other, &pass, 0), None);
        }
        let forger = Signer::new(&key, 42, STARTS_MS);
        prop_assert_eq!(forger.verify_ticket(&uid, &ticket), None);
        prop_assert_eq!(Signer::new(&edge_secret(), 43, STARTS_MS).verify_pass(&uid, &pass, 0), None);
    }

    #[test]
    fn any_draw_is_a_permutation(seed in any::<[u8; 32]>(), n in 0u32..2000) {
        let mut order = draw::order(seed, n);
        order.sort_unstable();
        prop_assert_eq!(order, (1..=n).collect::<Vec<_>>());
    }
}
