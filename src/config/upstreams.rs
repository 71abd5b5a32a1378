//! `upstreams:` — the shop's server pools, by name: their servers (host:port, weight), how a
//! server is picked, how its health is checked (actively, and passively from failed connects),
//! the timeouts and keep-alive of a connection to one, TLS to them and the HTTP version spoken.
//! Read as written ([`FileUpstream`]) and resolved into [`Upstream`]: host names resolved to
//! addresses, certificate files read, every mistake placed at its line and column. The edge
//! builds Pingora's load balancers from these (`edge::upstream`).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::context::Reading;
use super::error::ConfigError;
use super::pem::{read_chain, read_key};
use super::values::HumanDuration;

/// The most servers one pool may list (after host names are resolved).
pub const MAX_SERVERS: usize = 256;
/// The largest weight of one server.
pub const MAX_WEIGHT: usize = 1000;

/// `upstreams.<name>:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    /// `host:port`, or `{ addr: host:port, weight: N }`.
    pub servers: Vec<FileServer>,
    /// `round_robin` (default), or consistent hashing on `client_ip`, `uid` or `header:<name>`.
    #[serde(default)]
    pub selection: Option<String>,
    /// Active health checks; none: every server counts as healthy but for passive ejection.
    #[serde(default)]
    pub health: Option<FileHealth>,
    /// Passive ejection: a server whose connects fail this often in a row is left out.
    #[serde(default)]
    pub eject: FileEject,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    #[serde(default = "default_io_timeout")]
    pub read_timeout: HumanDuration,
    #[serde(default = "default_io_timeout")]
    pub write_timeout: HumanDuration,
    /// How long an idle keep-alive connection to a server stays in the pool.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// `h1` (default) or `h2` (with TLS by ALPN, else h2c with prior knowledge).
    #[serde(default)]
    pub protocol: Protocol,
    /// TLS to the servers.
    #[serde(default)]
    pub tls: Option<FileUpstreamTls>,
}

/// One server as written.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FileServer {
    /// `host:port`, weight 1.
    Addr(String),
    /// `{ addr: host:port, weight: N }`.
    Weighted {
        /// `host:port`.
        addr: String,
        /// Its share of the requests, relative to the others.
        weight: usize,
    },
}

/// `upstreams.<name>.health:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealth {
    /// `http` (default): a `GET` of `path` must answer `status`; `tcp`: a connect must succeed.
    #[serde(default)]
    pub check: CheckKind,
    #[serde(default = "default_health_path")]
    pub path: String,
    #[serde(default = "default_health_status")]
    pub status: u16,
    /// The `Host` of the check's request, the same for every server (default: `tls.sni`, else
    /// the first server's host).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_health_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_health_timeout")]
    pub timeout: HumanDuration,
    /// Failed checks in a row that mark a healthy server down.
    #[serde(default = "default_fall")]
    pub fall: usize,
    /// Passed checks in a row that mark a server that is down up again.
    #[serde(default = "default_rise")]
    pub rise: usize,
}

/// `upstreams.<name>.eject:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileEject {
    /// Connect failures in a row that eject a server (0: never).
    pub failures: u32,
    /// How long an ejected server is left out.
    #[serde(rename = "for")]
    pub duration: HumanDuration,
}

impl Default for FileEject {
    fn default() -> Self {
        FileEject {
            failures: 2,
            duration: HumanDuration(Duration::from_secs(10)),
        }
    }
}

/// `upstreams.<name>.tls:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstreamTls {
    /// The name sent in SNI and verified in the server's certificate (default: each server's
    /// host name; required when servers are written as IP addresses and `verify` is on).
    #[serde(default)]
    pub sni: Option<String>,
    /// A PEM file of the CA certificates that sign the servers' (default: the system's).
    #[serde(default)]
    pub ca: Option<String>,
    /// Whether the server's certificate is verified (default true).
    #[serde(default = "default_true")]
    pub verify: bool,
    /// A client certificate chain (PEM) to present, with `key`.
    #[serde(default)]
    pub cert: Option<String>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key: Option<String>,
}

/// `health.check`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// An HTTP `GET`.
    #[default]
    Http,
    /// A TCP connect (no TLS handshake, even with `tls:`).
    Tcp,
}

/// `protocol`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1.
    #[default]
    H1,
    /// HTTP/2.
    H2,
}

fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_io_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_health_path() -> String {
    "/".to_string()
}
fn default_health_status() -> u16 {
    200
}
fn default_health_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
fn default_health_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_fall() -> usize {
    3
}
fn default_rise() -> usize {
    2
}

/// One server of a pool, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Where it is.
    pub addr: SocketAddr,
    /// The host it was written with (a name, or the address), for SNI and the check's `Host`.
    pub host: String,
    /// Its share of the requests.
    pub weight: usize,
}

/// How a server of a pool is picked for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// In turn, by weight.
    RoundRobin,
    /// Consistent hashing (Ketama) on the client's address: one client, one server.
    ClientIp,
    /// Consistent hashing on the verified login's UID (the client's address without one).
    Uid,
    /// Consistent hashing on a request header (lowercase name; empty when absent).
    Header(String),
}

/// An active health check, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What is checked: `Some((path, status, host))` for HTTP, None for a TCP connect.
    pub http: Option<HttpCheck>,
    /// How often.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Failures in a row that mark a server down.
    pub fall: usize,
    /// Successes in a row that mark it up.
    pub rise: usize,
}

/// The HTTP request of a health check and the answer it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// The path asked.
    pub path: String,
    /// The status expected.
    pub status: u16,
    /// The `Host` sent, if set (else each server's host).
    pub host: Option<String>,
}

/// Passive ejection, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eject {
    /// Connect failures in a row (0: never eject).
    pub failures: u32,
    /// How long the server is left out.
    pub duration: Duration,
}

/// TLS to a pool's servers, resolved: the files read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The name sent and verified; None: each server's host.
    pub sni: Option<String>,
    /// The CA certificates (DER) that sign the servers'; None: the system's.
    pub ca: Option<Vec<Vec<u8>>>,
    /// Whether the server's certificate is verified.
    pub verify: bool,
    /// A client certificate chain (DER, leaf first) and its key (DER).
    pub client: Option<(Vec<Vec<u8>>, Vec<u8>)>,
}

/// `upstreams.<name>` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its name, as routes and metrics call it.
    pub name: String,
    /// Its servers.
    pub servers: Vec<Server>,
    /// How one is picked.
    pub selection: Selection,
    /// Active health checks, if any.
    pub health: Option<HealthCheck>,
    /// Passive ejection.
    pub eject: Eject,
    /// Time to connect (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time between two reads of the answer.
    pub read_timeout: Duration,
    /// Time for one write of the request.
    pub write_timeout: Duration,
    /// How long an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// HTTP/2 rather than HTTP/1.1.
    pub h2: bool,
    /// TLS, if the servers speak it.
    pub tls: Option<UpstreamTls>,
}

/// Resolve `upstreams:`.
pub(crate) fn resolve(
    cx: &Reading,
    file: &BTreeMap<String, FileUpstream>,
) -> Result<Vec<Upstream>, ConfigError> {
    file.iter()
        .map(|(name, u)| resolve_one(cx, name, u))
        .collect()
}

fn resolve_one(cx: &Reading, name: &str, u: &FileUpstream) -> Result<Upstream, ConfigError> {
    let at = |field: &str| format!("upstreams.{name}.{field}");
    if !valid_name(name) {
        return Err(cx.err(
            &format!("upstreams.{name}"),
            format!(
                "upstream name {name:?}: use letters, digits, '-' and '_' (it is a metric label)"
            ),
        ));
    }
    if u.servers.is_empty() {
        return Err(cx.err(&at("servers"), "an upstream needs at least one server"));
    }
    let mut servers = Vec::new();
    for (i, server) in u.servers.iter().enumerate() {
        let path = format!("upstreams.{name}.servers[{i}]");
        let (text, weight) = match server {
            FileServer::Addr(a) => (a.as_str(), 1),
            FileServer::Weighted { addr, weight } => (addr.as_str(), *weight),
        };
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(cx.err(
                &path,
                format!("weight is 1 to {MAX_WEIGHT}; found {weight}"),
            ));
        }
        let text = cx.required(&path, text)?;
        let (host, addrs) = resolve_server(&text).map_err(|e| cx.err(&path, e))?;
        for addr in addrs {
            if servers.iter().any(|s: &Server| s.addr == addr) {
                return Err(cx.err(&path, format!("{addr} is listed twice in this upstream")));
            }
            servers.push(Server {
                addr,
                host: host.clone(),
                weight,
            });
        }
    }
    if servers.len() > MAX_SERVERS {
        return Err(cx.err(
            &at("servers"),
            format!(
                "at most {MAX_SERVERS} servers an upstream; found {}",
                servers.len()
            ),
        ));
    }
    let selection = match &u.selection {
        None => Selection::RoundRobin,
        Some(text) => selection(text).ok_or_else(|| {
            cx.err(
                &at("selection"),
                format!(
                    "selection is round_robin (the default), or consistent hashing on \
                     client_ip, uid or header:<name>; found {text:?}"
                ),
            )
        })?,
    };
    let health = u.health.as_ref().map(|h| health(cx, name, h)).transpose()?;
    let tls = u.tls.as_ref().map(|t| tls(cx, name, t)).transpose()?;
    for (field, d) in [
        ("connect_timeout", u.connect_timeout.0),
        ("read_timeout", u.read_timeout.0),
        ("write_timeout", u.write_timeout.0),
        ("idle_timeout", u.idle_timeout.0),
    ] {
        if d.is_zero() {
            return Err(cx.err(&at(field), format!("{field} must be above zero")));
        }
    }
    if u.eject.failures > 0 && u.eject.duration.0.is_zero() {
        return Err(cx.err(&at("eject.for"), "eject.for must be above zero"));
    }
    Ok(Upstream {
        name: name.to_string(),
        servers,
        selection,
        health,
        eject: Eject {
            failures: u.eject.failures,
            duration: u.eject.duration.0,
        },
        connect_timeout: u.connect_timeout.0,
        read_timeout: u.read_timeout.0,
        write_timeout: u.write_timeout.0,
        idle_timeout: u.idle_timeout.0,
        h2: u.protocol == Protocol::H2,
        tls,
    })
}

/// A name fit for a metric label and a YAML key: letters, digits, `-`, `_`; 1 to 64 bytes.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `host:port` resolved: the host as written (brackets of an IPv6 address removed) and every
/// address it names.
fn resolve_server(text: &str) -> Result<(String, Vec<SocketAddr>), String> {
    let expected =
        || format!("expected host:port, such as 10.0.0.5:8080 or shop-1:8080; found {text:?}");
    if text.contains("://") || text.contains('/') {
        return Err(format!(
            "{}: a server is host:port, with no scheme or path",
            expected()
        ));
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
    let port: u16 = port.parse().map_err(|_| expected())?;
    if port == 0 || host.is_empty() {
        return Err(expected());
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host:?} resolves to no address"));
    }
    Ok((host, addrs))
}

fn selection(text: &str) -> Option<Selection> {
    match text.trim() {
        "round_robin" => Some(Selection::RoundRobin),
        "client_ip" => Some(Selection::ClientIp),
        "uid" => Some(Selection::Uid),
        other => {
            let name = other.strip_prefix("header:")?.trim();
            http::HeaderName::from_bytes(name.as_bytes())
                .ok()
                .map(|n| Selection::Header(n.as_str().to_string()))
        }
    }
}

fn health(cx: &Reading, name: &str, h: &FileHealth) -> Result<HealthCheck, ConfigError> {
    let at = |field: &str| format!("upstreams.{name}.health.{field}");
    if h.interval.0 < Duration::from_millis(100) {
        return Err(cx.err(&at("interval"), "health.interval is at least 100ms"));
    }
    if h.timeout.0.is_zero() {
        return Err(cx.err(&at("timeout"), "health.timeout must be above zero"));
    }
    for (field, n) in [("fall", h.fall), ("rise", h.rise)] {
        if !(1..=100).contains(&n) {
            return Err(cx.err(&at(field), format!("health.{field} is 1 to 100; found {n}")));
        }
    }
    let http = match h.check {
        CheckKind::Tcp => None,
        CheckKind::Http => {
            if !h.path.starts_with('/') || h.path.parse::<http::Uri>().is_err() {
                return Err(cx.err(
                    &at("path"),
                    format!("health.path is a path such as /healthz; found {:?}", h.path),
                ));
            }
            if !(100..=599).contains(&h.status) {
                return Err(cx.err(&at("status"), "health.status is an HTTP status, 100 to 599"));
            }
            Some(HttpCheck {
                path: h.path.clone(),
                status: h.status,
                host: h.host.clone(),
            })
        }
    };
    Ok(HealthCheck {
        http,
        interval: h.interval.0,
        timeout: h.timeout.0,
        fall: h.fall,
        rise: h.rise,
    })
}

fn tls(cx: &Reading, name: &str, t: &FileUpstreamTls) -> Result<UpstreamTls, ConfigError> {
    let at = |field: &str| format!("upstreams.{name}.tls.{field}");
    let sni = t
        .sni
        .as_ref()
        .map(|s| cx.required(&at("sni"), s))
        .transpose()?;
    let ca = match &t.ca {
        Some(file) => {
            let path = PathBuf::from(cx.required(&at("ca"), file)?);
            Some(certificates(cx, &at("ca"), &path)?)
        }
        None => None,
    };
    let client = match (&t.cert, &t.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let cert_path = PathBuf::from(cx.required(&at("cert"), cert)?);
            let key_path = PathBuf::from(cx.required(&at("key"), key)?);
            let chain = certificates(cx, &at("cert"), &cert_path)?;
            let key = read_key(&key_path).map_err(|e| cx.tls_err(&at("key"), e))?;
            Some((chain, key.secret_der().to_vec()))
        }
        (Some(_), None) => {
            return Err(cx.err(&at("cert"), "tls.cert needs tls.key, the certificate's key"))
        }
        (None, Some(_)) => {
            return Err(cx.err(
                &at("key"),
                "tls.key needs tls.cert, the certificate it is for",
            ))
        }
    };
    Ok(UpstreamTls {
        sni,
        ca,
        verify: t.verify,
        client,
    })
}

/// The certificates of a PEM file, each checked to be X.509 (DER).
fn certificates(
    cx: &Reading,
    at: &str,
    path: &std::path::Path,
) -> Result<Vec<Vec<u8>>, ConfigError> {
    let chain = read_chain(path).map_err(|e| cx.tls_err(at, e))?;
    chain
        .iter()
        .enumerate()
        .map(
            |(i, c)| match x509_parser::parse_x509_certificate(c.as_ref()) {
                Ok(_) => Ok(c.as_ref().to_vec()),
                Err(e) => Err(cx.err(
                    at,
                    format!(
                        "{}: certificate {} is not X.509: {e}",
                        path.display(),
                        i + 1
                    ),
                )),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_are_named_or_a_header() {
        assert_eq!(selection("round_robin"), Some(Selection::RoundRobin));
        assert_eq!(selection("client_ip"), Some(Selection::ClientIp));
        assert_eq!(selection("uid"), Some(Selection::Uid));
        assert_eq!(
            selection("header:X-Cart-Id"),
            Some(Selection::Header("x-cart-id".into()))
        );
        for bad in ["random", "header:", "header:bad name", "hash"] {
            assert_eq!(selection(bad), None, "{bad}");
        }
    }

    #[test]
    fn servers_are_host_and_port() {
        let (host, addrs) = resolve_server("127.0.0.1:8080").unwrap();
        assert_eq!((host.as_str(), addrs[0].port()), ("127.0.0.1", 8080));
        let (host, _) = resolve_server("[::1]:80").unwrap();
        assert_eq!(host, "::1");
        for bad in ["127.0.0.1", "http://a:80", "a:0", ":80", "a:http", "a:80/x"] {
            assert!(resolve_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_label_safe() {
        assert!(valid_name("shop-1_a"));
        for bad in ["", "a b", "a.b", &"x".repeat(65), "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
