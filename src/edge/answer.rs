//! What the edge answers for each outcome: one fixed HTTP status and one fixed JSON body
//! (`{"outcome":"<name>"}`), both known at compile time so a reject allocates nothing. The table
//! is the outcome table (README.md, "Outcomes").

use crate::ground::Outcome;

/// The HTTP status the edge answers with (for `Won`, the usual success status; the real
/// one is origin's).
pub const fn status(outcome: Outcome) -> u16 {
    match outcome {
        Outcome::Won | Outcome::Served | Outcome::Proxied => 200,
        Outcome::Pending => 202,
        Outcome::NotModified => 304,
        Outcome::LoginRequired => 401,
        Outcome::Blacklisted
        | Outcome::BadSalePath
        | Outcome::CaptchaRequired
        | Outcome::QueueRequired
        | Outcome::NotStarted
        | Outcome::Ended => 403,
        Outcome::UnknownProduct | Outcome::NotFound => 404,
        Outcome::BadRequest => 400,
        Outcome::MethodNotAllowed => 405,
        Outcome::LengthRequired => 411,
        Outcome::BodyTooLarge => 413,
        Outcome::UriTooLong => 414,
        Outcome::HeadersTooLarge => 431,
        Outcome::Duplicate => 409,
        Outcome::SoldOut => 410,
        Outcome::RateLimited => 429,
        Outcome::StoreUnavailable | Outcome::OriginUnavailable | Outcome::NoHealthyUpstream => 503,
        Outcome::BadGateway => 502,
        Outcome::GatewayTimeout => 504,
    }
}

/// The JSON body of an edge-made answer.
pub const fn body(outcome: Outcome) -> &'static [u8] {
    match outcome {
        Outcome::Won => br#"{"outcome":"won"}"#,
        Outcome::LoginRequired => br#"{"outcome":"login_required"}"#,
        Outcome::Blacklisted => br#"{"outcome":"blacklisted"}"#,
        Outcome::BadSalePath => br#"{"outcome":"bad_sale_path"}"#,
        Outcome::CaptchaRequired => br#"{"outcome":"captcha_required"}"#,
        Outcome::QueueRequired => br#"{"outcome":"queue_required"}"#,
        Outcome::NotStarted => br#"{"outcome":"not_started"}"#,
        Outcome::Ended => br#"{"outcome":"ended"}"#,
        Outcome::UnknownProduct => br#"{"outcome":"unknown_product"}"#,
        Outcome::Duplicate => br#"{"outcome":"duplicate"}"#,
        Outcome::SoldOut => br#"{"outcome":"sold_out"}"#,
        Outcome::RateLimited => br#"{"outcome":"rate_limited"}"#,
        Outcome::StoreUnavailable => br#"{"outcome":"store_unavailable"}"#,
        Outcome::OriginUnavailable => br#"{"outcome":"origin_unavailable"}"#,
        Outcome::Pending => br#"{"outcome":"pending"}"#,
        Outcome::Served => br#"{"outcome":"served"}"#,
        Outcome::NotModified => br#"{"outcome":"not_modified"}"#,
        Outcome::NotFound => br#"{"outcome":"not_found"}"#,
        Outcome::MethodNotAllowed => br#"{"outcome":"method_not_allowed"}"#,
        Outcome::BadRequest => br#"{"outcome":"bad_request"}"#,
        Outcome::LengthRequired => br#"{"outcome":"length_required"}"#,
        Outcome::BodyTooLarge => br#"{"outcome":"body_too_large"}"#,
        Outcome::UriTooLong => br#"{"outcome":"uri_too_long"}"#,
        Outcome::HeadersTooLarge => br#"{"outcome":"headers_too_large"}"#,
        Outcome::Proxied => br#"{"outcome":"proxied"}"#,
        Outcome::BadGateway => br#"{"outcome":"bad_gateway"}"#,
        Outcome::GatewayTimeout => br#"{"outcome":"gateway_timeout"}"#,
        Outcome::NoHealthyUpstream => br#"{"outcome":"no_healthy_upstream"}"#,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_the_name() {
        for o in Outcome::ALL {
            let v: serde_json::Value = serde_json::from_slice(body(o)).unwrap();
            assert_eq!(v["outcome"], o.name());
        }
    }
}
