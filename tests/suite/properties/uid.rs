//! The UID alphabet and its header form (`uid`): every admitted UID goes to its header form and
//! back; the header form is always a valid HTTP header value that survives transit unchanged
//! (visible ASCII only, so nothing to trim or re-encode); a header value stands for at most one
//! UID and each UID has exactly one header form.

use flashgate::ground::uid::{from_header, to_header, valid};
use http::HeaderValue;
use proptest::prelude::*;

use super::strategies::{admitted_uid, hostile_text, refused_uid};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn an_admitted_uid_round_trips_through_its_header_form(uid in admitted_uid()) {
        prop_assert!(valid(&uid));
        let form = to_header(&uid);
        prop_assert_eq!(from_header(&form), Some(uid.clone()));
        prop_assert!(form.bytes().all(|b| b.is_ascii_graphic()), "{}", form);
        let value = HeaderValue::from_str(&form).expect("a header value");
        prop_assert_eq!(value.to_str().expect("visible ASCII"), form.as_ref());
        // Only what needs escaping is escaped: ids of visible ASCII are their own form.
        let plain = uid.bytes().all(|b| b.is_ascii_graphic() && b != b'%' && b != b'+');
        prop_assert_eq!(form == uid.as_str(), plain);
    }

    #[test]
    fn a_header_value_stands_for_at_most_one_uid(
        value in prop_oneof![
            hostile_text(40),
            "([A-Za-z0-9]|%[0-9A-Fa-f]{2}|%|\\+| ){0,20}",
        ],
    ) {
        if let Some(uid) = from_header(&value) {
            prop_assert!(valid(&uid));
            prop_assert_eq!(to_header(&uid), value.as_str(), "the one header form");
        }
    }

    #[test]
    fn outside_the_alphabet_is_refused(uid in refused_uid()) {
        prop_assert!(!valid(&uid));
        prop_assert_eq!(from_header(&to_header(&uid)), None);
    }

}
