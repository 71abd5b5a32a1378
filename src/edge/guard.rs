//! What the public listener refuses before routing, from the request head alone: ambiguous
//! framing (`Content-Length` with `Transfer-Encoding`: `400`, the request smuggling
//! ingredient), an overlong target (`414`), too many or too large header fields (`431`), a
//! body over the limit (`413`) and a buy whose body has no length (`411`: chunked in
//! HTTP/1.1, or an HTTP/2 stream with DATA and no `Content-Length`). Pingora itself bounds the
//! whole head at 1 MiB and refuses two different `Content-Length`s; these are the limits ops
//! set in `http:` (`config::HttpLimits`), the same on HTTP/1.1 and HTTP/2. Each refusal closes
//! the connection: a body the edge did not read must not be taken for the next request.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use pingora::http::RequestHeader;

use crate::config::HttpLimits;
use crate::ground::Outcome;

/// What each header field costs toward `max_header_bytes`: its name, its value and the
/// `": "` and CRLF around them, as on the wire.
const FIELD_OVERHEAD: usize = 4;

/// The request's `Content-Length`, if it has one that reads as a number.
pub fn content_length(req: &RequestHeader) -> Option<u64> {
    let value = req.headers.get(CONTENT_LENGTH)?;
    std::str::from_utf8(value.as_bytes())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The refusal for `req`, if any; `buy` says whether it is for the buy route, and
/// `unframed_body` whether a body follows that no `Content-Length` announced (HTTP/2 DATA
/// frames: their length is known only at the end).
pub fn refuse(
    req: &RequestHeader,
    limits: &HttpLimits,
    buy: bool,
    unframed_body: bool,
) -> Option<Outcome> {
    let headers = &req.headers;
    if headers.len() > limits.max_header_count {
        return Some(Outcome::HeadersTooLarge);
    }
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
        None if (chunked || unframed_body) && buy => Some(Outcome::LengthRequired),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HttpLimits = HttpLimits {
        max_uri_bytes: 300,
        max_header_bytes: 2000,
        max_header_count: 50,
        max_body_bytes: 100,
        keepalive_secs: 5,
        keepalive_requests: 10,
        header_timeout: std::time::Duration::from_secs(1),
        h2: crate::config::H2Limits {
            max_concurrent_streams: 100,
            max_header_list_size: 4000,
            max_pending_reset_streams: 20,
            max_error_resets: 100,
        },
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
        assert_eq!(refuse(&ok, &LIMITS, true, false), None);
        let both = req(
            "/x",
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
        );
        assert_eq!(
            refuse(&both, &LIMITS, false, false),
            Some(Outcome::BadRequest)
        );
        let long = req(&format!("/{}", "a".repeat(300)), &[]);
        assert_eq!(
            refuse(&long, &LIMITS, false, false),
            Some(Outcome::UriTooLong)
        );
        let fat = req("/x", &[("x-pad", &"p".repeat(2000))]);
        assert_eq!(
            refuse(&fat, &LIMITS, false, false),
            Some(Outcome::HeadersTooLarge)
        );
        let big = req("/x", &[("content-length", "101")]);
        assert_eq!(
            refuse(&big, &LIMITS, false, false),
            Some(Outcome::BodyTooLarge)
        );
        let chunked = req("/x", &[("transfer-encoding", "chunked")]);
        assert_eq!(
            refuse(&chunked, &LIMITS, true, false),
            Some(Outcome::LengthRequired)
        );
        assert_eq!(refuse(&chunked, &LIMITS, false, false), None);
        // An HTTP/2 stream with DATA and no Content-Length: the same as chunked.
        let unframed = req("/x", &[]);
        assert_eq!(
            refuse(&unframed, &LIMITS, true, true),
            Some(Outcome::LengthRequired)
        );
        assert_eq!(refuse(&unframed, &LIMITS, true, false), None);
        let framed = req("/x", &[("content-length", "5")]);
        assert_eq!(refuse(&framed, &LIMITS, true, true), None);
    }

    #[test]
    fn too_many_fields_are_refused_however_small() {
        let pads: Vec<(String, String)> = (0..51).map(|i| (format!("x-{i}"), "v".into())).collect();
        let refs: Vec<(&str, &str)> = pads.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            refuse(&req("/x", &refs), &LIMITS, false, false),
            Some(Outcome::HeadersTooLarge)
        );
        assert_eq!(refuse(&req("/x", &refs[..50]), &LIMITS, false, false), None);
    }

    #[test]
    fn many_small_headers_count_like_one_big_one() {
        // 45 fields (under the count) of 48 bytes each: 2,160 bytes, over the size.
        let pads: Vec<(String, String)> = (0..45)
            .map(|i| (format!("x-{i:02}"), "v".repeat(39)))
            .collect();
        let refs: Vec<(&str, &str)> = pads.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            refuse(&req("/x", &refs), &LIMITS, false, false),
            Some(Outcome::HeadersTooLarge)
        );
        assert_eq!(refuse(&req("/x", &refs[..40]), &LIMITS, false, false), None);
    }
}
