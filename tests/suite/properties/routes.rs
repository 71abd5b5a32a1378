//! Routing (`edge::routes::classify`) and the challenge's `?product=` parameter
//! (`edge::challenge::product_param`): any method and any path are classified without a panic,
//! and a product id in a path or a query is exactly a decimal number that fits a `u64` — no
//! sign, no spaces, nothing else.

use flashgate::edge::challenge::product_param;
use flashgate::edge::routes::{classify, Endpoint};
use http::Method;
use proptest::prelude::*;

use super::strategies::hostile_text;

/// What a product segment means: ASCII digits only, and a value that fits.
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec![
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
            Method::TRACE,
            Method::CONNECT,
        ]),
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
            .prop_map(|m| Method::from_bytes(m.as_bytes()).expect("a token is a method")),
    ]
}

/// Product segments: numbers, near-numbers and anything else.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{1,24}",
        "[+-]?[0-9]{1,6}",
        "[ \t]?[0-9]{1,4}[ \t]?",
        "[0-9]{1,4}(\\.[0-9]|e[0-9]|_[0-9]|%30)",
        "[\u{660}-\u{669}\u{ff10}-\u{ff19}]{1,4}",
        hostile_text(24),
    ]
}

/// Paths: under each route's prefix, or anything at all.
fn path() -> impl Strategy<Value = String> {
    let rest = prop_oneof![hostile_text(40), "[a-z0-9/._%-]{0,30}"];
    prop_oneof![
        (segment(), rest.clone()).prop_map(|(p, t)| format!("/buy/{p}/{t}")),
        segment().prop_map(|p| format!("/buy/{p}")),
        segment().prop_map(|p| format!("/sale/{p}/button.js")),
        rest.clone().prop_map(|r| format!("/static/{r}")),
        prop::sample::select(vec![
            "/",
            "/api/challenge",
            "/buy/",
            "/sale/",
            "/static/",
            ""
        ])
        .prop_map(str::to_string),
        rest.prop_map(|r| format!("/{r}")),
        hostile_text(60),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_request_is_classified_by_the_rules(method in method(), path in path()) {
        let readable = method == Method::GET || method == Method::HEAD;
        let route = classify(&method, &path);
        let expected = if path == "/" || path == "/api/challenge" || path.starts_with("/static/") {
            if !readable {
                Endpoint::WrongMethod("GET, HEAD")
            } else if path == "/" {
                Endpoint::Index
            } else if path == "/api/challenge" {
                Endpoint::Challenge
            } else {
                Endpoint::Static(&path["/static/".len()..])
            }
        } else if let Some(rest) = path.strip_prefix("/sale/") {
            match rest.strip_suffix("/button.js").and_then(decimal) {
                None => Endpoint::NotFound,
                Some(_) if !readable => Endpoint::WrongMethod("GET, HEAD"),
                Some(product) => Endpoint::Button(product),
            }
        } else if let Some(rest) = path.strip_prefix("/buy/") {
            if method != Method::POST {
                Endpoint::WrongMethod("POST")
            } else {
                let (product, token) = rest.split_once('/').unwrap_or((rest, ""));
                Endpoint::Buy { product: decimal(product), token }
            }
        } else {
            Endpoint::NotFound
        };
        prop_assert_eq!(route, expected, "{} {:?}", method, path);
    }

    #[test]
    fn any_buy_path_routes_to_its_product_and_token(
        product in any::<u64>(),
        token in "[^/]{0,40}(/[^/]{0,10})?",
    ) {
        let path = format!("/buy/{product}/{token}");
        prop_assert_eq!(
            classify(&Method::POST, &path),
            Endpoint::Buy { product: Some(product), token: &token }
        );
    }

    #[test]
    fn the_challenge_product_is_a_decimal(
        before in prop::collection::vec("[a-z_]{1,8}=[^&]{0,8}", 0..3),
        value in segment(),
        after in prop::collection::vec("[a-z_]{0,8}=?[^&]{0,8}", 0..3),
    ) {
        let mut pairs = before.clone();
        pairs.push(format!("product={value}"));
        pairs.extend(after);
        let query = pairs.join("&");
        // The first `product=` pair counts (none of the others is one), and ends at `&`.
        prop_assume!(!before.iter().any(|p| p.starts_with("product=")));
        prop_assume!(!value.contains('&'));
        prop_assert_eq!(product_param(Some(&query)), decimal(&value), "{:?}", query);
    }

    #[test]
    fn any_query_is_read_without_a_panic(query in prop::option::of(hostile_text(80))) {
        let _ = product_param(query.as_deref());
    }
}
