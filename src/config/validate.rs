//! Turns the file as written ([`FileConfig`]) into the canonical [`Config`]: environment
//! substitution, development-secret fallback, origin address resolution, the catalog's id file,
//! and every rule that spans fields. Each failure points at the value it is about. Sections
//! that resolve themselves ([`CaptchaSettings`], `tls`) are called from here; the helpers both use live
//! in `context`, so the dependency goes one way.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use super::captcha::CaptchaSettings;
use super::context::Reading;
use super::error::ConfigError;
use super::locate::Locations;
use super::redis_target::RedisKeys;
use super::schema::{FileConfig, FileStore, LogRoute, StoreKind};
use super::{
    AccessLogSettings, Catalog, Config, Environment, LogTarget, Origin, ReplicaWait, Sale, Secret,
    Secrets, Store, Upstream,
};
use crate::config::Target;

/// Development login secret, used only when `secrets.login` and `secrets.edge` both name unset
/// variables.
pub const DEV_LOGIN_SECRET: &[u8] = b"flashgate-DEVELOPMENT-login-secret-do-not-use-in-production";
/// Development edge secret, used only when `secrets.login` and `secrets.edge` both name unset
/// variables.
pub const DEV_EDGE_SECRET: &[u8] = b"flashgate-DEVELOPMENT-edge-secret-do-not-use-in-production";

/// Resolve and check everything.
pub fn resolve(
    file_path: &Path,
    file: FileConfig,
    loc: &Locations,
    env: &dyn Environment,
) -> Result<Config, ConfigError> {
    let cx = Reading::new(file_path, loc, env);
    if file.threads == 0 {
        return Err(cx.err("threads", "threads must be at least 1"));
    }
    if file.listen == file.admin_listen {
        return Err(cx.err("admin_listen", "admin_listen must differ from listen"));
    }

    let (login, edge, development) = resolve_secrets(&cx, &file)?;
    if login == edge {
        return Err(cx.err(
            "secrets.edge",
            "secrets.edge must differ from secrets.login: whoever can mint logins must not sign for the edge",
        ));
    }

    let upstreams = super::upstreams::resolve(&cx, &file.upstreams)?;
    let origin = resolve_origin(&cx, &file, &upstreams)?;
    let store = resolve_store(&cx, &file.store)?;
    let catalog = super::catalog::resolve_catalog(&cx, &file)?;
    let sales = resolve_sales(&cx, &file, &catalog)?;
    let limits = super::limits::resolve_limits(&cx, &file)?;
    let routes = super::routes::resolve(&cx, &file.routes, &upstreams, &limits)?;
    let captcha = CaptchaSettings::resolve(&cx, &file, [&login, &edge])?;
    let access_log = resolve_access_log(&cx, &file)?;
    let http = super::limits::resolve_http(&cx, &file.http)?;
    let tls = super::tls::resolve(&cx, &file.tls)?;
    // An unset variable leaves the token unset: `POST /admin/reload` is refused, SIGHUP works.
    let admin_token = match &file.admin_token {
        Some(text) => cx.secret("admin_token", text)?.ok(),
        None => None,
    };
    if !development.is_empty() && captcha.token_secret.is_some() {
        return Err(cx.err(
            "secrets.login",
            "captcha.token_secret is set, but secrets.login and secrets.edge are not: a \
             half-configured deployment would run on the public development secrets; set \
             them too (FLASHGATE_LOGIN_SECRET, FLASHGATE_EDGE_SECRET: 32+ bytes each, e.g. \
             openssl rand -hex 32)",
        ));
    }

    Ok(Config {
        file: file_path.to_path_buf(),
        listen: file.listen,
        admin_listen: file.admin_listen,
        threads: file.threads,
        secrets: Secrets {
            login,
            edge,
            development,
        },
        trusted_proxies: file.trusted_proxies.iter().map(|n| n.0).collect(),
        origin,
        store,
        store_capacity: file.store.capacity,
        static_dir: file.static_dir,
        catalog,
        sales,
        limits,
        blocklist_file: file.blocklist.map(|b| b.file),
        allowlist_uids: file.allowlist_uids.into_iter().map(|u| u.0).collect(),
        sold_out_hint: file.sold_out_hint.0,
        captcha,
        rate_limit_headers: file.rate_limit_headers,
        access_log,
        admin_token,
        http,
        tls,
        upstreams,
        routes,
    })
}

/// The most lines an access log may hold back for its writer (each is a few hundred bytes).
const MAX_ACCESS_LOG_BUFFER: usize = 1 << 22;

fn resolve_access_log(
    cx: &Reading,
    file: &FileConfig,
) -> Result<Option<AccessLogSettings>, ConfigError> {
    let Some(log) = &file.access_log else {
        return Ok(None);
    };
    let target = match log.path.to_str() {
        Some("stdout") => LogTarget::Stdout,
        Some("") => {
            return Err(cx.err(
                "access_log.path",
                "access_log.path is empty: a file, or stdout",
            ))
        }
        _ => LogTarget::File(log.path.clone()),
    };
    let routes =
        match &log.routes {
            None => LogRoute::ALL.to_vec(),
            Some(routes) if routes.is_empty() => return Err(cx.err(
                "access_log.routes",
                "access_log.routes is empty: name the routes to log (static, button, challenge, \
                 buy, other), or remove access_log to log nothing",
            )),
            Some(routes) => routes.clone(),
        };
    if log.buffer == 0 || log.buffer > MAX_ACCESS_LOG_BUFFER {
        return Err(cx.err(
            "access_log.buffer",
            format!(
                "access_log.buffer is lines, 1 to {MAX_ACCESS_LOG_BUFFER}; found {}",
                log.buffer
            ),
        ));
    }
    Ok(Some(AccessLogSettings {
        target,
        routes,
        buffer: log.buffer,
    }))
}

/// The login and edge secrets, and which of them fell back to the development secrets. They
/// fall back only together: with neither set, a development setup starts on the built-in keys
/// (and the binaries warn loudly); with one set and the other not, the deployment is
/// half-configured and refused, naming what is missing, rather than sign with a public key.
fn resolve_secrets(
    cx: &Reading,
    file: &FileConfig,
) -> Result<(Secret, Secret, Vec<&'static str>), ConfigError> {
    let login = cx.secret("secrets.login", &file.secrets.login)?;
    let edge = cx.secret("secrets.edge", &file.secrets.edge)?;
    match (login, edge) {
        (Ok(login), Ok(edge)) => Ok((login, edge, Vec::new())),
        (Err(_), Err(_)) => Ok((
            Secret::new(DEV_LOGIN_SECRET),
            Secret::new(DEV_EDGE_SECRET),
            vec!["login", "edge"],
        )),
        (Err(missing), Ok(_)) => Err(half_configured(
            cx,
            "secrets.login",
            &missing,
            "secrets.edge",
        )),
        (Ok(_), Err(missing)) => Err(half_configured(
            cx,
            "secrets.edge",
            &missing,
            "secrets.login",
        )),
    }
}

fn half_configured(cx: &Reading, path: &str, missing: &str, set: &str) -> ConfigError {
    cx.err(
        path,
        format!(
            "{path} names {missing}, which is not set, while {set} is set: set {missing} too \
             (32+ bytes, e.g. openssl rand -hex 32), or neither for development"
        ),
    )
}

fn resolve_origin(
    cx: &Reading,
    file: &FileConfig,
    upstreams: &[Upstream],
) -> Result<Origin, ConfigError> {
    let (url, addr, upstream, host) = match (&file.origin.url, &file.origin.upstream) {
        (Some(url), None) => {
            let (url, addr, host) = origin_url(cx, url)?;
            (url, addr, None, host)
        }
        (None, Some(name)) => {
            let index = upstreams
                .iter()
                .position(|u| &u.name == name)
                .ok_or_else(|| {
                    cx.err(
                        "origin.upstream",
                        format!("no upstream named {name:?} in upstreams:"),
                    )
                })?;
            let pool = &upstreams[index];
            if pool.tls.is_some() || pool.h2 {
                return Err(cx.err(
                    "origin.upstream",
                    format!(
                        "upstream {name:?} speaks TLS or h2: the origin is plain HTTP/1.1 (its \
                         settlement questions too)"
                    ),
                ));
            }
            let first = &pool.servers[0];
            let host = match first.addr {
                SocketAddr::V6(_) if first.host.contains(':') => {
                    format!("[{}]:{}", first.host, first.addr.port())
                }
                _ => format!("{}:{}", first.host, first.addr.port()),
            };
            (format!("upstream {name}"), first.addr, Some(index), host)
        }
        (Some(_), Some(_)) => {
            return Err(cx.err("origin.upstream", "origin has url or upstream, not both"))
        }
        (None, None) => {
            return Err(cx.err(
                "origin",
                "origin needs url (one server, http://host:port) or upstream (a pool of \
                 upstreams:)",
            ))
        }
    };
    if file.origin.settle_after.0 <= file.origin.timeout.0 {
        return Err(cx.err(
            "origin.settle_after",
            "origin.settle_after must be longer than origin.timeout: a forward may still be under way until then",
        ));
    }
    if !file.origin.path.starts_with('/') {
        return Err(cx.err("origin.path", "origin.path must start with /"));
    }
    Ok(Origin {
        url,
        addr,
        upstream,
        host,
        path: file.origin.path.clone(),
        connect_timeout: file.origin.connect_timeout.0,
        timeout: file.origin.timeout.0,
        settle_after: file.origin.settle_after.0,
    })
}

/// `origin.url` resolved: the URL as written, the address, and the `Host` it sends.
fn origin_url(cx: &Reading, url: &str) -> Result<(String, SocketAddr, String), ConfigError> {
    let url = cx.required("origin.url", url)?;
    let uri: http::Uri = url.parse().map_err(|e| {
        cx.err(
            "origin.url",
            format!("expected a URL such as http://127.0.0.1:8081, found {url:?} ({e})"),
        )
    })?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(cx.err(
                "origin.url",
                format!("origin scheme {other:?} is not supported: use http:// (terminate TLS to origin in a sidecar)"),
            ))
        }
        None => return Err(cx.err("origin.url", "origin.url needs a scheme: http://host:port")),
    }
    let host = uri
        .host()
        .ok_or_else(|| cx.err("origin.url", "origin.url has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let addr: SocketAddr = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| cx.err("origin.url", format!("cannot resolve origin host {host:?}")))?;
    let host_header = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| host.to_string());
    Ok((url, addr, host_header))
}

fn resolve_store(cx: &Reading, store: &FileStore) -> Result<Store, ConfigError> {
    let timeout = store.timeout.0;
    if store.capacity == Some(0) {
        return Err(cx.err(
            "store.capacity",
            "store.capacity is store calls per second and must be at least 1",
        ));
    }
    if timeout.is_zero() {
        return Err(cx.err("store.timeout", "store.timeout must be above zero"));
    }
    Ok(match store.kind {
        StoreKind::Memory => Store::Memory {
            path: store.path.clone(),
            fsync: store.fsync,
        },
        StoreKind::Redis if store.path.is_some() => return Err(cx.err(
            "store.path",
            "store.path is the embedded store's journal (kind: memory); Redis keeps its own data",
        )),
        StoreKind::Redis => Store::Redis {
            target: redis_target(cx, store)?,
            timeout,
            wait: replica_wait(cx, store)?,
        },
    })
}

/// `store.url`, `store.cluster` or `store.sentinel`: exactly one.
fn redis_target(cx: &Reading, store: &FileStore) -> Result<Target, ConfigError> {
    let keys = RedisKeys {
        prefix: "store.",
        url_key: "url",
        url: store.url.as_ref(),
        cluster: store.cluster.as_ref(),
        sentinel: store.sentinel.as_ref(),
    };
    super::redis_target::redis_target(cx, &keys)?.ok_or_else(|| {
        cx.err(
            "store.kind",
            "store kind redis needs url: redis://host:port, cluster: [urls] or sentinel: { master, nodes }",
        )
    })
}

/// `store.wait`, checked: at least one replica, a timeout above zero and within the store's.
fn replica_wait(cx: &Reading, store: &FileStore) -> Result<Option<ReplicaWait>, ConfigError> {
    let Some(wait) = &store.wait else {
        return Ok(None);
    };
    if wait.replicas == 0 {
        return Err(cx.err(
            "store.wait.replicas",
            "store.wait.replicas must be at least 1 (leave out store.wait not to wait)",
        ));
    }
    if wait.timeout.0.is_zero() || wait.timeout.0 >= store.timeout.0 {
        return Err(cx.err(
            "store.wait.timeout",
            format!(
                "store.wait.timeout must be above zero and below store.timeout ({:?}): the wait is part of the reservation's call",
                store.timeout.0
            ),
        ));
    }
    Ok(Some(ReplicaWait {
        replicas: wait.replicas,
        timeout: wait.timeout.0,
    }))
}

fn resolve_sales(
    cx: &Reading,
    file: &FileConfig,
    catalog: &Catalog,
) -> Result<Vec<Sale>, ConfigError> {
    let mut seen = HashSet::new();
    let mut sales = Vec::with_capacity(file.sales.len());
    for (i, s) in file.sales.iter().enumerate() {
        let at = |key: &str| format!("sales[{i}].{key}");
        if !catalog.has_sale_product(s.product) {
            return Err(cx.err(
                &at("product"),
                format!("product {} is not in the catalog", s.product),
            ));
        }
        if !seen.insert(s.product) {
            return Err(cx.err(
                &at("product"),
                format!(
                    "product {} has a second sale; one sale per product",
                    s.product
                ),
            ));
        }
        if s.stock == 0 {
            return Err(cx.err(&at("stock"), "stock must be at least 1"));
        }
        if s.ends_at <= s.starts_at {
            return Err(cx.err(
                &at("ends_at"),
                format!(
                    "ends_at {} is not after starts_at {}",
                    s.ends_at, s.starts_at
                ),
            ));
        }
        let queue = match &s.queue {
            Some(q) => Some(super::queue::resolve(cx, i, q)?),
            None => None,
        };
        sales.push(Sale {
            product: s.product,
            stock: s.stock,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            captcha: s.captcha,
            showcase: super::showcase::resolve(
                cx,
                i,
                s.title.as_deref(),
                s.price.as_deref(),
                s.image.as_deref(),
                &file.static_dir,
            )?,
            queue,
        });
    }
    Ok(sales)
}
