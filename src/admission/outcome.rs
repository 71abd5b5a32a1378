//! The answers the edge gives by itself. Each outcome has one fixed HTTP status and one fixed
//! JSON body (`{"outcome":"<name>"}`), both known at compile time so a reject allocates nothing.
//! The table is the contract in README.md ("Outcomes"); dashboards count by these names.

/// Every outcome of a request that the edge answers or forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Reserved a unit and forwarded to origin; origin's answer passes through.
    Won,
    /// Missing, forged or expired login token.
    LoginRequired,
    /// UID or IP on the blocklist.
    Blacklisted,
    /// The sale path token is wrong.
    BadSalePath,
    /// The sale requires a solved captcha.
    CaptchaRequired,
    /// The sale has a waiting room and the buy carries no valid pass from it.
    QueueRequired,
    /// The sale has not started.
    NotStarted,
    /// The sale is over.
    Ended,
    /// No such product, or no sale for it.
    UnknownProduct,
    /// This user already holds a unit.
    Duplicate,
    /// No units left.
    SoldOut,
    /// Over a rate limit.
    RateLimited,
    /// The stock store cannot be reached.
    StoreUnavailable,
    /// The origin cannot be reached.
    OriginUnavailable,
    /// A unit is reserved and its forward reached the origin, which gave no definite answer
    /// (a `5xx`, a dropped connection, a timeout): the order may exist. `202` with the URL
    /// that tells the buyer, once it is settled, whether they won.
    Pending,
    /// Static page, button script or other non-buy answer served.
    Served,
    /// Conditional request answered 304.
    NotModified,
    /// No such route or file.
    NotFound,
    /// Route exists, method does not.
    MethodNotAllowed,
    /// A request framed ambiguously (`Content-Length` with `Transfer-Encoding`): never
    /// forwarded, the connection closed.
    BadRequest,
    /// A buy with a chunked body: the edge needs its length first.
    LengthRequired,
    /// A body over `http.max_body_bytes`.
    BodyTooLarge,
    /// A request target over `http.max_uri_bytes`.
    UriTooLong,
    /// Header fields over `http.max_header_bytes`.
    HeadersTooLarge,
}

impl Outcome {
    /// Every outcome, for pre-registering metrics.
    pub const ALL: [Outcome; 24] = [
        Outcome::Won,
        Outcome::LoginRequired,
        Outcome::Blacklisted,
        Outcome::BadSalePath,
        Outcome::CaptchaRequired,
        Outcome::QueueRequired,
        Outcome::NotStarted,
        Outcome::Ended,
        Outcome::UnknownProduct,
        Outcome::Duplicate,
        Outcome::SoldOut,
        Outcome::RateLimited,
        Outcome::StoreUnavailable,
        Outcome::OriginUnavailable,
        Outcome::Pending,
        Outcome::Served,
        Outcome::NotModified,
        Outcome::NotFound,
        Outcome::MethodNotAllowed,
        Outcome::BadRequest,
        Outcome::LengthRequired,
        Outcome::BodyTooLarge,
        Outcome::UriTooLong,
        Outcome::HeadersTooLarge,
    ];

    /// The name used in JSON bodies and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Won => "won",
            Outcome::LoginRequired => "login_required",
            Outcome::Blacklisted => "blacklisted",
            Outcome::BadSalePath => "bad_sale_path",
            Outcome::CaptchaRequired => "captcha_required",
            Outcome::QueueRequired => "queue_required",
            Outcome::NotStarted => "not_started",
            Outcome::Ended => "ended",
            Outcome::UnknownProduct => "unknown_product",
            Outcome::Duplicate => "duplicate",
            Outcome::SoldOut => "sold_out",
            Outcome::RateLimited => "rate_limited",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::OriginUnavailable => "origin_unavailable",
            Outcome::Pending => "pending",
            Outcome::Served => "served",
            Outcome::NotModified => "not_modified",
            Outcome::NotFound => "not_found",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::BadRequest => "bad_request",
            Outcome::LengthRequired => "length_required",
            Outcome::BodyTooLarge => "body_too_large",
            Outcome::UriTooLong => "uri_too_long",
            Outcome::HeadersTooLarge => "headers_too_large",
        }
    }

    /// The HTTP status the edge answers with (for `Won`, the usual success status; the real
    /// one is origin's).
    pub const fn status(self) -> u16 {
        match self {
            Outcome::Won | Outcome::Served => 200,
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
            Outcome::StoreUnavailable | Outcome::OriginUnavailable => 503,
        }
    }

    /// The JSON body of an edge-made answer.
    pub const fn body(self) -> &'static [u8] {
        match self {
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
        }
    }

    /// Index into [`Outcome::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_the_name() {
        for o in Outcome::ALL {
            let v: serde_json::Value = serde_json::from_slice(o.body()).unwrap();
            assert_eq!(v["outcome"], o.name());
            assert_eq!(Outcome::ALL[o.index()], o);
        }
    }
}
