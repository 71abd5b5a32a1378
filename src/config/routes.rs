//! `routes:` — the rest of the shop, in order: each route matches a host (exact or `*.suffix`),
//! a path (prefix or exact) and methods, names the upstream its requests go to, and carries its
//! own policy: which `limits:` apply, the blocklist, the login, the largest body, the `Host`
//! and `X-Forwarded-*` sent upstream, and how often an idempotent request may be tried again.
//! The sale's own routes come first; a request no route matches is `404`. Read as written
//! ([`FileRoute`]) and resolved into [`Route`], every mistake placed at its line and column.

use std::collections::HashSet;

use serde::Deserialize;

use super::context::Reading;
use super::error::ConfigError;
use super::upstreams::{valid_name, Upstream};
use super::Limit;

/// The default largest body of a route's request (nginx's `client_max_body_size` is 1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// The most retries a route may allow.
pub const MAX_RETRIES: u8 = 5;

/// `routes[]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    /// The route's name in metrics and logs (default `route-<index>`).
    #[serde(default)]
    pub name: Option<String>,
    /// `shop.example.com`, or `*.example.com` for any subdomain; any host when not given.
    #[serde(default)]
    pub host: Option<String>,
    /// A path prefix (default `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// An exact path, instead of `path`.
    #[serde(default)]
    pub exact: Option<String>,
    /// The methods matched; any when not given.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// The upstream its requests go to.
    pub upstream: String,
    /// The names of the `limits:` rules its requests count against.
    #[serde(default)]
    pub limits: Vec<String>,
    /// Whether the blocklist applies (default true).
    #[serde(default = "default_true")]
    pub blocklist: bool,
    /// `none` (default), `optional` or `required`.
    #[serde(default)]
    pub login: LoginPolicy,
    /// The largest request body, in bytes (`413` beyond).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// The `Host` sent upstream; the client's when not given.
    #[serde(default)]
    pub upstream_host: Option<String>,
    /// Whether `X-Forwarded-For`, `-Proto` and `-Host` are sent (default true).
    #[serde(default = "default_true")]
    pub forwarded: bool,
    /// How often a safe request (`GET`, `HEAD`, `OPTIONS`, `TRACE`) may be tried again, on
    /// another server, when nothing was sent (default 1).
    #[serde(default = "default_retries")]
    pub retries: u8,
}

fn default_true() -> bool {
    true
}
fn default_max_body() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn default_retries() -> u8 {
    1
}

/// `routes[].login`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LoginPolicy {
    /// The login is not read; no UID goes upstream.
    #[default]
    None,
    /// A valid login's UID goes upstream, signed; a request without one (or with a bad one)
    /// goes as a guest.
    Optional,
    /// A valid login is needed (`401 login_required` without one); its UID goes upstream,
    /// signed.
    Required,
}

/// Which hosts a route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Any host.
    Any,
    /// This host exactly (lowercase, without a port).
    Exact(String),
    /// Any host ending in `.suffix` (`*.example.com`: `a.example.com`, not `example.com`).
    Suffix(String),
}

impl HostMatch {
    /// Whether `host` (lowercase, without a port) is matched.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Suffix(s) => {
                host.len() > s.len() + 1
                    && host.ends_with(s.as_str())
                    && host.as_bytes()[host.len() - s.len() - 1] == b'.'
            }
        }
    }

    /// Whether every host `other` matches, this matches too.
    fn covers(&self, other: &HostMatch) -> bool {
        match (self, other) {
            (HostMatch::Any, _) => true,
            (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
            (HostMatch::Suffix(s), HostMatch::Exact(h)) => HostMatch::Suffix(s.clone()).matches(h),
            (HostMatch::Suffix(a), HostMatch::Suffix(b)) => {
                a == b || HostMatch::Suffix(a.clone()).matches(b)
            }
            _ => false,
        }
    }
}

/// Which paths a route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Paths starting with this.
    Prefix(String),
    /// This path only.
    Exact(String),
}

impl PathMatch {
    /// Whether `path` is matched.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Exact(p) => path == p,
        }
    }

    fn covers(&self, other: &PathMatch) -> bool {
        match (self, other) {
            (PathMatch::Prefix(a), PathMatch::Prefix(b) | PathMatch::Exact(b)) => {
                b.starts_with(a.as_str())
            }
            (PathMatch::Exact(a), PathMatch::Exact(b)) => a == b,
            (PathMatch::Exact(_), PathMatch::Prefix(_)) => false,
        }
    }
}

/// `routes[i]` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its name.
    pub name: String,
    /// The hosts it matches.
    pub host: HostMatch,
    /// The paths it matches.
    pub path: PathMatch,
    /// The methods it matches (uppercase); None: any.
    pub methods: Option<Vec<http::Method>>,
    /// The index of its upstream in `Config::upstreams`.
    pub upstream: usize,
    /// The indexes of the `limits:` rules that apply, in file order.
    pub limits: Vec<usize>,
    /// Whether the blocklist applies.
    pub blocklist: bool,
    /// What the login does.
    pub login: LoginPolicy,
    /// The largest body.
    pub max_body_bytes: u64,
    /// The `Host` sent upstream; None: the client's.
    pub upstream_host: Option<String>,
    /// Whether `X-Forwarded-*` are sent.
    pub forwarded: bool,
    /// Retries of an idempotent request when nothing was sent.
    pub retries: u8,
}

impl Route {
    /// Whether a request for `method` `host` `path` is this route's.
    pub fn matches(&self, method: &http::Method, host: &str, path: &str) -> bool {
        self.host.matches(host)
            && self.path.matches(path)
            && self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    /// Whether every request `later` matches, this route matches first: `later` never
    /// matches.
    pub fn shadows(&self, later: &Route) -> bool {
        let methods = match (&self.methods, &later.methods) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b.iter().all(|m| a.contains(m)),
        };
        methods && self.host.covers(&later.host) && self.path.covers(&later.path)
    }
}

/// Resolve `routes:` against the resolved `upstreams` and `limits`.
pub(crate) fn resolve(
    cx: &Reading,
    file: &[FileRoute],
    upstreams: &[Upstream],
    limits: &[Limit],
) -> Result<Vec<Route>, ConfigError> {
    let mut names = HashSet::new();
    let mut routes = Vec::with_capacity(file.len());
    for (i, r) in file.iter().enumerate() {
        let at = |field: &str| format!("routes[{i}].{field}");
        let name = r.name.clone().unwrap_or_else(|| format!("route-{i}"));
        if !valid_name(&name) {
            return Err(cx.err(
                &at("name"),
                format!(
                    "route name {name:?}: use letters, digits, '-' and '_' (it is a metric label)"
                ),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(cx.err(&at("name"), format!("a route named {name:?} comes earlier")));
        }
        let host = match &r.host {
            None => HostMatch::Any,
            Some(h) => host_match(h).ok_or_else(|| {
                cx.err(
                    &at("host"),
                    format!(
                        "host is a name such as shop.example.com, or *.example.com for its \
                         subdomains; found {h:?}"
                    ),
                )
            })?,
        };
        let path = match (&r.path, &r.exact) {
            (Some(_), Some(_)) => {
                return Err(cx.err(
                    &at("exact"),
                    "a route has path (a prefix) or exact, not both",
                ))
            }
            (None, None) => PathMatch::Prefix("/".into()),
            (Some(p), None) => PathMatch::Prefix(checked_path(cx, &at("path"), p)?),
            (None, Some(p)) => PathMatch::Exact(checked_path(cx, &at("exact"), p)?),
        };
        let methods = match &r.methods {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(cx.err(
                    &at("methods"),
                    "methods lists at least one method, or is left out for any",
                ))
            }
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(j, m)| {
                        let upper = m.trim().to_ascii_uppercase();
                        http::Method::from_bytes(upper.as_bytes())
                            .ok()
                            .filter(|_| upper.bytes().all(|b| b.is_ascii_uppercase()))
                            .ok_or_else(|| {
                                cx.err(
                                    &format!("routes[{i}].methods[{j}]"),
                                    format!(
                                        "expected an HTTP method such as GET or POST; found {m:?}"
                                    ),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let upstream = upstreams
            .iter()
            .position(|u| u.name == r.upstream)
            .ok_or_else(|| {
                let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
                cx.err(
                    &at("upstream"),
                    if known.is_empty() {
                        format!("no upstream named {:?}: upstreams: lists none", r.upstream)
                    } else {
                        format!(
                            "no upstream named {:?}; upstreams: has {}",
                            r.upstream,
                            known.join(", ")
                        )
                    },
                )
            })?;
        let limits = r
            .limits
            .iter()
            .enumerate()
            .map(|(j, name)| {
                limits.iter().position(|l| &l.name == name).ok_or_else(|| {
                    cx.err(
                        &format!("routes[{i}].limits[{j}]"),
                        format!("no limit named {name:?} in limits:"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if r.retries > MAX_RETRIES {
            return Err(cx.err(&at("retries"), format!("retries is 0 to {MAX_RETRIES}")));
        }
        let upstream_host = r
            .upstream_host
            .as_ref()
            .map(|h| {
                let h = cx.required(&at("upstream_host"), h)?;
                http::HeaderValue::from_str(&h).map_err(|_| {
                    cx.err(
                        &at("upstream_host"),
                        format!("{h:?} cannot be a Host header"),
                    )
                })?;
                Ok::<_, ConfigError>(h)
            })
            .transpose()?;
        routes.push(Route {
            name,
            host,
            path,
            methods,
            upstream,
            limits,
            blocklist: r.blocklist,
            login: r.login,
            max_body_bytes: r.max_body_bytes,
            upstream_host,
            forwarded: r.forwarded,
            retries: r.retries,
        });
    }
    Ok(routes)
}

fn checked_path(cx: &Reading, at: &str, p: &str) -> Result<String, ConfigError> {
    if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
        return Err(cx.err(
            at,
            format!("expected a path starting with /, without a query; found {p:?}"),
        ));
    }
    Ok(p.to_string())
}

/// `shop.example.com` or `*.example.com`, lowercase; None if it is neither.
fn host_match(text: &str) -> Option<HostMatch> {
    let text = text.trim().to_ascii_lowercase();
    let (suffix, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest.to_string()),
        None => (false, text),
    };
    let label = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label) {
        return None;
    }
    Some(if suffix {
        HostMatch::Suffix(name)
    } else {
        HostMatch::Exact(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_by_suffix() {
        let exact = host_match("Shop.Example.com").unwrap();
        assert!(exact.matches("shop.example.com"));
        assert!(!exact.matches("a.shop.example.com"));
        let suffix = host_match("*.example.com").unwrap();
        assert!(suffix.matches("a.example.com"));
        assert!(suffix.matches("a.b.example.com"));
        assert!(!suffix.matches("example.com"));
        assert!(!suffix.matches("badexample.com"));
        for bad in ["", "*.", "a..b", "a b", "*.*.a", "http://a"] {
            assert_eq!(host_match(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_earlier_broader_route_shadows_a_later_one() {
        let route = |host: HostMatch, path: PathMatch, methods: Option<Vec<http::Method>>| Route {
            name: "r".into(),
            host,
            path,
            methods,
            upstream: 0,
            limits: Vec::new(),
            blocklist: true,
            login: LoginPolicy::None,
            max_body_bytes: 1,
            upstream_host: None,
            forwarded: true,
            retries: 1,
        };
        let all = route(HostMatch::Any, PathMatch::Prefix("/".into()), None);
        let api = route(
            HostMatch::Exact("a.b".into()),
            PathMatch::Prefix("/api/".into()),
            Some(vec![http::Method::GET]),
        );
        assert!(all.shadows(&api));
        assert!(!api.shadows(&all));
        let cart = route(HostMatch::Any, PathMatch::Exact("/api/cart".into()), None);
        assert!(
            !api.shadows(&cart),
            "any host and every method are more than api matches"
        );
        assert!(cart.matches(&http::Method::POST, "x", "/api/cart"));
        assert!(!cart.matches(&http::Method::POST, "x", "/api/cart/1"));
    }
}
