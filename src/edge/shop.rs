//! The shop's routes (`routes:`), as the public listener matches them after the sale's own:
//! the first route whose host, path and methods match takes the request. Each route's answers
//! are counted by status class with their latency (`flashgate_route_*`), its counters resolved
//! when the configuration is built, so counting an answer hashes no label.

use std::borrow::Cow;
use std::time::Duration;

use http::Method;
use percent_encoding::percent_decode_str;
use pingora::http::RequestHeader;
use prometheus::{Histogram, IntCounter};

use crate::config::Route;
use crate::ground::metrics::{status_class, ShopMetrics, STATUS_CLASSES};

/// One route's counters.
struct Counters {
    answers: [IntCounter; 5],
    seconds: Histogram,
}

/// The routes of one configuration with their counters, in file order.
pub struct ShopRoutes {
    counters: Vec<Counters>,
}

impl ShopRoutes {
    /// The counters of `routes`.
    pub fn build(routes: &[Route], metrics: &ShopMetrics) -> Self {
        let counters = routes
            .iter()
            .map(|r| Counters {
                answers: STATUS_CLASSES
                    .map(|class| metrics.route_requests.with_label_values(&[&r.name, class])),
                seconds: metrics.route_seconds.with_label_values(&[&r.name]),
            })
            .collect();
        ShopRoutes { counters }
    }

    /// Count an answer of route `i` with `status`, `elapsed` after its request arrived.
    pub fn answered(&self, i: usize, status: u16, elapsed: Duration) {
        if let Some(c) = self.counters.get(i) {
            c.answers[status_class(status)].inc();
            c.seconds.observe(elapsed.as_secs_f64());
        }
    }
}

/// The path a route is matched against: `raw` percent-decoded, as a shop's server will read
/// it, so no spelling of a path reaches a route other than the one its meaning would. None
/// (the edge answers `400`) for a path a server could take otherwise than the edge: a `.` or
/// `..` segment, an empty segment (`//`), a backslash, a `;` (a path parameter), a control
/// character, an escape that is not UTF-8 — spelled plainly or percent-encoded.
pub fn route_path(raw: &str) -> Option<Cow<'_, str>> {
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    // `;` starts a path parameter some servers drop (`/a;x/` read as `/a/`, `/..;/` as `/../`).
    if decoded
        .bytes()
        .any(|b| b == b'\\' || b == b';' || b < 0x20 || b == 0x7f)
    {
        return None;
    }
    let segments: Vec<&str> = decoded.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        let empty_inside = segment.is_empty() && i != 0 && i != last;
        if (i == 0 && !segment.is_empty()) || empty_inside || *segment == "." || *segment == ".." {
            return None;
        }
    }
    Some(decoded)
}

/// The index of the first of `routes` that `method`, `host` and `path` match.
pub fn find(routes: &[Route], method: &Method, host: &str, path: &str) -> Option<usize> {
    routes.iter().position(|r| r.matches(method, host, path))
}

/// The host a request is for, lowercase and without its port: the `Host` header (HTTP/1.1)
/// or the target's authority (HTTP/2). Empty when it names none.
pub fn request_host(req: &RequestHeader) -> String {
    let raw = req
        .uri
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| absolute_form_host(req.raw_path()))
        .or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(strip_port)
        })
        .unwrap_or_default();
    raw.trim_end_matches('.').to_ascii_lowercase()
}

/// The host of an absolute-form request target (`GET http://host/path`), which Pingora keeps
/// only in the raw target (and sends upstream as the `Host`).
fn absolute_form_host(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let (scheme, rest) = text.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(strip_port(host))
}

/// `host[:port]` without the port (an IPv6 literal keeps its brackets off).
fn strip_port(host: &str) -> String {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_matched_as_a_server_reads_it_or_refused() {
        assert_eq!(route_path("/account/x").as_deref(), Some("/account/x"));
        assert_eq!(route_path("/%61ccount/").as_deref(), Some("/account/"));
        assert_eq!(route_path("/").as_deref(), Some("/"));
        assert_eq!(route_path("/a/").as_deref(), Some("/a/"));
        for bad in [
            "/x/../account/",
            "/x/%2e%2e/account/",
            "/x/%2E./a",
            "/./a",
            "/a/.",
            "/a//b",
            "/a%2f%2fb",
            "/p/..;/a",
            "/account;x/y",
            "/a%3bb",
            "/a\\b",
            "/a%5cb",
            "/a%00",
            "/a%ff",
            "x/a",
            "/a/..",
        ] {
            assert_eq!(route_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_host_is_lowercase_without_its_port() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("host", "Shop.Example.com:8080").unwrap();
        assert_eq!(request_host(&req), "shop.example.com");
        req.insert_header("host", "[::1]:80").unwrap();
        assert_eq!(request_host(&req), "::1");
        req.insert_header("host", "example.com.").unwrap();
        assert_eq!(request_host(&req), "example.com");
        let host = |raw: &[u8]| absolute_form_host(raw);
        assert_eq!(
            host(b"http://Admin.Example.com:80/x").as_deref(),
            Some("Admin.Example.com")
        );
        assert_eq!(host(b"https://u@a.test/x").as_deref(), Some("a.test"));
        assert_eq!(host(b"/x"), None);
    }
}
