//! What is risky about a configuration that loads: settings that work but may hurt on sale day.
//! Each is a pure function of the configuration (and the clock, and the machine's memory), so
//! each is tested without a file or a socket. `flashgate check` prints them and `flashgate run`
//! logs them at start ([`Warning::log`]): the same list, given once.
//!
//! - a sale whose window is already over;
//! - the development secrets;
//! - `X-Forwarded-For` believed from no proxy while the listener is plain HTTP (no `tls:`)
//!   open to other machines: something in front likely terminates HTTPS (a load balancer, CDN
//!   or ingress), and then every shopper has that one address;
//! - a global limit above what the store can take (or none at all, on Redis);
//! - the memory each limit's count–min sketch takes, and all of them against the machine's;
//! - an embedded store that keeps nothing across a restart;
//! - an `origin.settle_after` shorter than the time in which the origin may still accept a
//!   forward;
//! - a TLS certificate that has expired, is not valid yet, or expires within two weeks.

use std::time::{Duration, SystemTime};

use crate::admission::rate::{sketch_bytes, slots_for};
use crate::config::{Captcha, Config, LimitKey, PathMatch, Store};
use crate::ground::signing::FORWARD_FRESH_MS;

/// Store calls per second one Redis node takes for one sale, when `store.capacity` does not
/// say: a sale's keys share one hash slot, so one node (even in a Cluster) serves all of its
/// reservations. Measured: 17.7 µs of Redis CPU per reserve script (docs/performance.md, "The storm alone"), that
/// is ~56,000 a second on one core before any network I/O; 30,000 leaves room for the I/O and
/// the ledger's readers.
pub const REDIS_CALLS_PER_SECOND: u64 = 30_000;

/// A certificate that expires within this long is worth a line (renewals run a month ahead).
const CERTIFICATE_EXPIRES_SOON: Duration = Duration::from_secs(14 * 24 * 3600);

/// A limit whose sketch takes this much is worth a line.
const LARGE_SKETCH: usize = 64 * 1024 * 1024;

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// A sale whose window is over.
    SaleOver,
    /// The built-in development secrets.
    DevelopmentSecrets,
    /// `X-Forwarded-For` believed from no proxy, a proxy in front likely.
    ForwardedFor,
    /// The global limit lets more through than the store takes.
    GlobalLimit,
    /// A limit's sketch, or all of them, take much memory.
    SketchMemory,
    /// The embedded store keeps nothing across a restart.
    NotDurable,
    /// The edge may ask the origin about a forward the origin can still accept.
    SettleTooSoon,
    /// The TLS certificate has expired, is not valid yet, or expires soon.
    Certificate,
    /// A shop route no request can reach: an earlier route, or the sale page, takes them all.
    RouteNeverMatches,
}

/// One warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// What to tell the operator.
    pub text: String,
}

fn warn(kind: WarningKind, text: String) -> Warning {
    Warning { kind, text }
}

impl Warning {
    /// Log it at start (`flashgate run`): as a banner for the development secrets, which must
    /// not scroll past unseen, as one line otherwise.
    pub fn log(&self) {
        if self.kind == WarningKind::DevelopmentSecrets {
            let bar = "!".repeat(78);
            tracing::warn!(
                "\n{bar}\n!! {}\n!! Start with --require-secrets so this can never happen \
                 unnoticed.\n{bar}",
                self.text
            );
        } else {
            tracing::warn!("{}", self.text);
        }
    }
}

/// Every warning about `c`, as of `now`. `ip_blocks` is the number of `ip:` and `cidr:`
/// entries of its blocklist; `memory` the machine's memory in bytes, if known.
pub fn warnings(
    c: &Config,
    ip_blocks: usize,
    now: SystemTime,
    memory: Option<u64>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    sales_over(c, now, &mut out);
    if !c.secrets.development.is_empty() {
        out.push(warn(
            WarningKind::DevelopmentSecrets,
            format!(
                "DEVELOPMENT SECRETS IN USE ({}): anyone can mint logins and forge sale paths; \
                 set FLASHGATE_LOGIN_SECRET and FLASHGATE_EDGE_SECRET (32+ bytes each) before a \
                 real sale",
                c.secrets.development.join(", ")
            ),
        ));
    }
    forwarded_for(c, ip_blocks, &mut out);
    global_limit(c, &mut out);
    sketches(c, memory, &mut out);
    if let Store::Memory { path, .. } = &c.store {
        if path.is_none() {
            out.push(warn(
                WarningKind::NotDurable,
                "store.path is not set: the embedded store keeps the sale in memory only, and a \
                 restart sells every unit again; set store.path for a durable sale"
                    .to_string(),
            ));
        }
        let accepts = Duration::from_millis(FORWARD_FRESH_MS);
        if c.origin.settle_after < c.origin.timeout + accepts {
            out.push(warn(
                WarningKind::SettleTooSoon,
                format!(
                    "origin.settle_after ({}) is shorter than origin.timeout plus the {} in which \
                     flashgate-orders accepts a signed forward: the edge may ask the origin about \
                     a forward it can still accept",
                    ago(c.origin.settle_after),
                    ago(accepts)
                ),
            ));
        }
    }
    certificate(c, now, &mut out);
    routes_never_matching(c, &mut out);
    out
}

/// A route every request of which an earlier route takes, or the sale page does (`/` and
/// `/static/` are the sale's on every host).
fn routes_never_matching(c: &Config, out: &mut Vec<Warning>) {
    for (i, route) in c.routes.iter().enumerate() {
        let by = c.routes[..i].iter().find(|earlier| earlier.shadows(route));
        let text = match (by, &route.path) {
            (Some(earlier), _) => format!(
                "route {:?} never matches: route {:?} comes first and takes every request it would",
                route.name, earlier.name
            ),
            (None, PathMatch::Exact(p)) if p == "/" => format!(
                "route {:?} never matches: / is the sale page's",
                route.name
            ),
            (None, PathMatch::Exact(p) | PathMatch::Prefix(p)) if p.starts_with("/static/") => {
                format!(
                    "route {:?} never matches: /static/ is the sale page's",
                    route.name
                )
            }
            _ => continue,
        };
        out.push(warn(WarningKind::RouteNeverMatches, text));
    }
}

fn certificate(c: &Config, now: SystemTime, out: &mut Vec<Warning>) {
    let Some(tls) = &c.tls else {
        return;
    };
    let id = &tls.identity;
    let file = tls.cert.display();
    let text = if let Ok(early) = id.not_before.0.duration_since(now) {
        format!(
            "the certificate in {file} ({}) is not valid for another {}: clients refuse it \
             until {}",
            id.subject,
            ago(early),
            id.not_before
        )
    } else {
        match id.valid_for(now) {
            None => format!(
                "the certificate in {file} ({}) expired at {}: clients refuse it; write the \
                 renewed one over the files and reload (SIGHUP)",
                id.subject, id.not_after
            ),
            Some(left) if left < CERTIFICATE_EXPIRES_SOON => format!(
                "the certificate in {file} ({}) expires in {} ({}): write the renewed one over \
                 the files and reload (SIGHUP)",
                id.subject,
                ago(left),
                id.not_after
            ),
            Some(_) => return,
        }
    };
    out.push(warn(WarningKind::Certificate, text));
}

/// `d` to the second, the minute past an hour, the hour past a day.
fn ago(d: Duration) -> String {
    let secs = d.as_secs();
    let unit = match secs {
        0..3600 => 1,
        3600..86400 => 60,
        _ => 3600,
    };
    humantime::format_duration(Duration::from_secs(secs / unit * unit)).to_string()
}

fn sales_over(c: &Config, now: SystemTime, out: &mut Vec<Warning>) {
    for sale in &c.sales {
        if let Ok(since) = now.duration_since(sale.ends_at.0) {
            out.push(warn(
                WarningKind::SaleOver,
                format!(
                    "the sale of product {} ended at {} ({} ago): every buy of it is \
                     403 ended",
                    sale.product,
                    sale.ends_at,
                    ago(since)
                ),
            ));
        }
    }
}

fn forwarded_for(c: &Config, ip_blocks: usize, out: &mut Vec<Warning>) {
    // A proxy on this machine (loopback) can only front a listener other machines reach
    // through it; one on another machine needs a non-loopback entry.
    // With `tls:` the edge terminates HTTPS itself: nothing is likely to stand in front.
    let remote_proxy_trusted = c.trusted_proxies.iter().any(|n| !n.addr().is_loopback());
    if remote_proxy_trusted || c.listen.ip().is_loopback() || c.tls.is_some() {
        return;
    }
    let per_ip: Vec<String> = c
        .limits
        .iter()
        .filter(|l| l.key == LimitKey::Ip && !l.dry_run)
        .map(|l| format!("{} ({} per {})", l.name, l.requests, ago(l.per)))
        .collect();
    let mut harm = Vec::new();
    if !per_ip.is_empty() {
        harm.push(format!(
            "the per-IP limit {} would count the whole crowd as one client and refuse it together",
            per_ip.join(", ")
        ));
    }
    if ip_blocks > 0 {
        harm.push(format!(
            "the blocklist's {ip_blocks} ip:/cidr: entries would never match a shopper (or block \
             everyone, if they list the proxy)"
        ));
    }
    if harm.is_empty() {
        harm.push("X-Real-IP sent to the origin would be the proxy's address".to_string());
    }
    out.push(warn(
        WarningKind::ForwardedFor,
        format!(
            "X-Forwarded-For is believed from no proxy on another machine (trusted_proxies: {}), \
             yet {} serves plain HTTP to other machines: shoppers' browsers speak HTTPS, so a \
             load balancer, CDN or ingress likely terminates it in front, and then every \
             request's client is that proxy's address: {}. List the proxy's addresses in \
             trusted_proxies",
            if c.trusted_proxies.is_empty() {
                "none".to_string()
            } else {
                c.trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            c.listen,
            harm.join("; ")
        ),
    ));
}

fn global_limit(c: &Config, out: &mut Vec<Warning>) {
    let capacity = match (c.store_capacity, &c.store) {
        (Some(n), _) => n,
        (None, Store::Redis { .. }) => REDIS_CALLS_PER_SECOND,
        // The embedded store is this process's memory: the edge runs out before it does.
        (None, Store::Memory { .. }) => return,
    };
    let source = if c.store_capacity.is_some() {
        "store.capacity"
    } else {
        "an estimate for one Redis node; set store.capacity to what yours measured"
    };
    // A captcha sale's winner costs two calls: the captcha's single use, then the reserve.
    let calls = if c.sales.iter().any(|s| s.captcha != Captcha::None) {
        2
    } else {
        1
    };
    let tightest = c
        .limits
        .iter()
        .filter(|l| l.key == LimitKey::Global && !l.dry_run)
        .map(|l| (l, l.requests as f64 / l.per.as_secs_f64()))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match tightest {
        None => out.push(warn(
            WarningKind::GlobalLimit,
            format!(
                "no global limit (one that is not dry_run): until a sale sells out, every buy \
                 that passes the other checks reaches the store, which takes about {capacity} \
                 calls a second ({source})"
            ),
        )),
        Some((limit, rate)) if rate * calls as f64 > capacity as f64 => out.push(warn(
            WarningKind::GlobalLimit,
            format!(
                "the global limit {} lets {rate:.0} buys a second through{}, above the {capacity} \
                 calls a second the store takes ({source}); and each edge counts its own, so \
                 N edges send N times as many",
                limit.name,
                if calls == 2 {
                    " (two store calls each: a captcha sale claims the captcha first)"
                } else {
                    ""
                }
            ),
        )),
        Some(_) => {}
    }
}

fn mib(bytes: usize) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

fn sketches(c: &Config, memory: Option<u64>, out: &mut Vec<Warning>) {
    let mut total = 0usize;
    for l in &c.limits {
        let bytes = sketch_bytes(l);
        total = total.saturating_add(bytes);
        if bytes >= LARGE_SKETCH {
            out.push(warn(
                WarningKind::SketchMemory,
                format!(
                    "limit {} takes {} for its count–min sketch (4 rows of {} counters, {} \
                     byte(s) each for a limit of {}), sized for expected_keys {}: set \
                     expected_keys to the crowd you expect (half the keys, half the memory)",
                    l.name,
                    mib(bytes),
                    slots_for(l.expected_keys),
                    bytes / (4 * slots_for(l.expected_keys)).max(1),
                    l.requests,
                    l.expected_keys
                ),
            ));
        }
    }
    if let Some(memory) = memory {
        if total as u64 > memory / 4 {
            out.push(warn(
                WarningKind::SketchMemory,
                format!(
                    "the limits' sketches take {} together, over a quarter of this machine's {}",
                    mib(total),
                    mib(usize::try_from(memory).unwrap_or(usize::MAX))
                ),
            ));
        }
    }
}

/// This machine's memory in bytes, from `/proc/meminfo`.
pub fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests;
