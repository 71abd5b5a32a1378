//! What became of a request, by name: the outcome of every request the edge answers or forwards.
//! The names are the contract of the outcome table (README.md, "Outcomes"): JSON bodies carry
//! them and dashboards count by them. Each outcome's HTTP status and fixed body are the edge's
//! (`edge::answer`); admission, checkout and metrics know only the names.

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
    /// A shop route's request went to its upstream, whose answer passes through.
    Proxied,
    /// A shop route's upstream refused the connection, or broke it before answering.
    BadGateway,
    /// A shop route's upstream did not answer within its `read_timeout`.
    GatewayTimeout,
    /// A shop route's upstream has no server that is up (health checks, ejection).
    NoHealthyUpstream,
}

impl Outcome {
    /// Every outcome, for pre-registering metrics.
    pub const ALL: [Outcome; 28] = [
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
        Outcome::Proxied,
        Outcome::BadGateway,
        Outcome::GatewayTimeout,
        Outcome::NoHealthyUpstream,
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
            Outcome::Proxied => "proxied",
            Outcome::BadGateway => "bad_gateway",
            Outcome::GatewayTimeout => "gateway_timeout",
            Outcome::NoHealthyUpstream => "no_healthy_upstream",
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
    fn every_outcome_is_in_all_at_its_index_with_a_distinct_name() {
        let mut names = std::collections::BTreeSet::new();
        for o in Outcome::ALL {
            assert_eq!(Outcome::ALL[o.index()], o);
            assert!(names.insert(o.name()), "{} twice", o.name());
        }
    }
}
