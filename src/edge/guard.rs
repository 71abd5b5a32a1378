//! What the public listener refuses before routing, from the request head alone: ambiguous
//! framing (`Content-Length` with `Transfer-Encoding`: `400`, the request smuggling
//! ingredient), an overlong target (`414`), oversized header fields (`431`), a body over the
//! limit (`413`) and a buy whose body has no length (`411`). Pingora itself bounds the whole
//! head at 1 MiB and refuses two different `Content-Length`s; these are the limits ops set in
//! `http:` (`config::HttpLimits`). Each refusal closes the connection: a body the edge did not
//! read must not be taken for the next request.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use pingora::http::RequestHeader;

use crate::admission::Outcome;
use crate::config::HttpLimits;

/// What each header field costs toward `max_header_bytes`: its name, its value and the
/// `": "` and CRLF around them, as on the wire.
const FIELD_OVERHEAD: usize = 4;

/// The refusal for `req`, if any; `buy` says whether it is for the buy route.
pub fn refuse(req: &RequestHeader, limits: &HttpLimits, buy: bool) -> Option<Outcome> {
    let headers = &req.headers;
    let chunked = headers.contains_key(TRANSFER_ENCODING);
    if chunked && headers.contains_key(CONTENT_LENGTH) {
        return Some(Outcome::BadRequest);
    }
    let target = req.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > limits.max_uri_bytes {
        return Some(Outcome::UriTooLong);
    }
    let head: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + FIELD_OVERHEAD)
        .sum();
    if head > limits.max_header_bytes {
        return Some(Outcome::HeadersTooLarge);
    }
    let length = headers.get(CONTENT_LENGTH).map(|v| {
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    });
    match length {
        // Pingora refuses a Content-Length it cannot read before this runs; be safe anyway.
        Some(None) => Some(Outcome::BadRequest),
        Some(Some(n)) if n > limits.max_body_bytes => Some(Outcome::BodyTooLarge),
        _ if chunked && buy => Some(Outcome::LengthRequired),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HttpLimits = HttpLimits {
        max_uri_bytes: 300,
        max_header_bytes: 2000,
        max_body_bytes: 100,
        keepalive_secs: 5,
        keepalive_requests: 10,
        header_timeout: std::time::Duration::from_secs(1),
    };

    fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn each_limit_has_its_status() {
        let ok = req("/x", &[("content-length", "100")]);
        assert_eq!(refuse(&ok, &LIMITS, true), None);
        let both = req(
            "/x",
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
        );
        assert_eq!(refuse(&both, &LIMITS, false), Some(Outcome::BadRequest));
        let long = req(&format!("/{}", "a".repeat(300)), &[]);
        assert_eq!(refuse(&long, &LIMITS, false), Some(Outcome::UriTooLong));
        let fat = req("/x", &[("x-pad", &"p".repeat(2000))]);
        assert_eq!(refuse(&fat, &LIMITS, false), Some(Outcome::HeadersTooLarge));
        let big = req("/x", &[("content-length", "101")]);
        assert_eq!(refuse(&big, &LIMITS, false), Some(Outcome::BodyTooLarge));
        let chunked = req("/x", &[("transfer-encoding", "chunked")]);
        assert_eq!(
            refuse(&chunked, &LIMITS, true),
            Some(Outcome::LengthRequired)
        );
        assert_eq!(refuse(&chunked, &LIMITS, false), None);
    }

    #[test]
    fn many_small_headers_count_like_one_big_one() {
        let pads: Vec<(String, String)> = (0..100)
            .map(|i| (format!("x-{i}"), "v".repeat(20)))
            .collect();
        let refs: Vec<(&str, &str)> = pads.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            refuse(&req("/x", &refs), &LIMITS, false),
            Some(Outcome::HeadersTooLarge)
        );
    }
}
