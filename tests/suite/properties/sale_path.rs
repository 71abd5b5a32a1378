//! The sale's secret buy path (`admission::sale`, checked first by `Admission::identify`, the
//! buy path's own check in the checkout): only the token the edge derived for that product and
//! that sale start opens the buy, only inside the sale window, and the path the button script
//! reveals routes back to the same product and token.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, UNIX_EPOCH};

use flashgate::admission::blocklist::Blocklist;
use flashgate::admission::captcha::CaptchaCheck;
use flashgate::admission::login::{mint, Login};
use flashgate::admission::rate::RateLimiter;
use flashgate::admission::sale::SaleGate;
use flashgate::admission::{Admission, BuyRequest};
use flashgate::config::{Captcha, CaptchaSettings, Sale, Timestamp};
use flashgate::edge::routes::{classify, Endpoint};
use flashgate::ground::signing::{sale_path_token, SALE_TOKEN_HEX};
use flashgate::ground::Outcome;
use flashgate::ground::Secret;
use http::Method;
use proptest::prelude::*;

use super::strategies::{edge_secret, hostile_text, login_secret, now_secs, other_secret};

/// A sale of `product` open from `starts_ms` for `length_ms` (both whole seconds).
fn gate(product: u64, starts_ms: u64, length_ms: u64, edge: &Secret) -> SaleGate {
    let sale = Sale {
        product,
        stock: 1,
        starts_at: Timestamp(UNIX_EPOCH + Duration::from_millis(starts_ms)),
        ends_at: Timestamp(UNIX_EPOCH + Duration::from_millis(starts_ms + length_ms)),
        captcha: Captcha::None,
        showcase: Default::default(),
        queue: None,
    };
    SaleGate::new(&sale, edge, Duration::from_secs(1))
}

fn admission() -> Admission {
    Admission::new(
        Login::new(&login_secret()),
        Blocklist::default(),
        RateLimiter::new(&[], &[], |_| unreachable!("no rule")),
        CaptchaCheck::new(&CaptchaSettings::default(), &edge_secret()),
    )
}

/// A sale: product, start and length in whole seconds, as the configuration writes them.
fn sale() -> impl Strategy<Value = (u64, u64, u64)> {
    (
        any::<u64>(),
        (1_600_000_000u64..2_200_000_000).prop_map(|s| s * 1000),
        (1u64..86_400).prop_map(|s| s * 1000),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn only_the_derived_token_matches(
        (product, starts, length) in sale(),
        token in prop_oneof![hostile_text(40), "[0-9a-f]{32}", "[0-9a-fA-F]{30,34}"],
    ) {
        let g = gate(product, starts, length, &edge_secret());
        let right = sale_path_token(&edge_secret(), product, starts);
        prop_assert_eq!(right.len(), SALE_TOKEN_HEX);
        prop_assert!(g.token_matches(&right));
        prop_assert_eq!(g.token_matches(&token), token == right);
    }

    #[test]
    fn another_products_start_or_key_gives_another_token(
        (product, starts, length) in sale(),
        other_product in any::<u64>(),
        other_start in (1_600_000_000u64..2_200_000_000).prop_map(|s| s * 1000),
        other_key in other_secret(),
    ) {
        let g = gate(product, starts, length, &edge_secret());
        if other_product != product {
            prop_assert!(!g.token_matches(&sale_path_token(&edge_secret(), other_product, starts)));
        }
        if other_start != starts {
            prop_assert!(!g.token_matches(&sale_path_token(&edge_secret(), product, other_start)));
        }
        prop_assert!(!g.token_matches(&sale_path_token(&other_key, product, starts)));
    }

    #[test]
    fn the_revealed_path_routes_back_to_its_product_and_token(
        (product, starts, length) in sale(),
    ) {
        let g = gate(product, starts, length, &edge_secret());
        let path = g.buy_path();
        match classify(&Method::POST, &path) {
            Endpoint::Buy { product: Some(p), token } => {
                prop_assert_eq!(p, product);
                prop_assert!(g.token_matches(token));
            }
            other => prop_assert!(false, "{} routed to {:?}", path, other),
        }
    }

    #[test]
    fn a_buy_is_identified_only_with_the_right_token_inside_the_window(
        (product, starts, length) in sale(),
        offset in -100_000i64..100_000_000,
        right_token in any::<bool>(),
        token in hostile_text(40),
        right_product in any::<bool>(),
    ) {
        let g = gate(product, starts, length, &edge_secret());
        let now = starts.saturating_add_signed(offset);
        let buy_for = if right_product { product } else { product.wrapping_add(1) };
        let path_token = if right_token {
            sale_path_token(&edge_secret(), buy_for, starts)
        } else {
            token
        };
        let login = mint(&login_secret(), "u1", now_secs() + 3600);
        let req = BuyRequest {
            product,
            token: &path_token,
            login_token: Some(&login),
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            now_ms: now,
            captcha: None,
            queue_pass: None,
        };
        let expected = if now < starts {
            Err(Outcome::NotStarted)
        } else if now >= starts + length {
            Err(Outcome::Ended)
        } else if path_token != sale_path_token(&edge_secret(), product, starts) {
            Err(Outcome::BadSalePath)
        } else {
            Ok("u1".to_string())
        };
        let got = admission().identify(&g, &req).map_err(|r| r.outcome);
        prop_assert_eq!(got, expected);
    }
}
