//! The one-screen summary `flashgate check` prints: what the configuration would run.

use std::fmt::Write;

use flashgate::admission::rate::sketch_bytes;
use flashgate::config::{LimitKey, Store};
use flashgate::edge::Live;

fn mib(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// Render the summary of `gw`.
pub fn summary(gw: &Live) -> String {
    let c = &gw.config;
    let mut s = String::new();
    let _ = writeln!(s, "{}: OK", c.file.display());
    let _ = writeln!(
        s,
        "  listen      {} ({} thread{})",
        c.listen,
        c.threads,
        if c.threads == 1 { "" } else { "s" }
    );
    match &c.tls {
        Some(tls) => {
            let id = &tls.identity;
            let _ = writeln!(
                s,
                "  tls         HTTPS, HTTP/2 and HTTP/1.1; {} ({} in the chain), key {}",
                tls.cert.display(),
                id.chain_len,
                tls.key.display()
            );
            let _ = writeln!(
                s,
                "              {}, valid {} -> {}, sha256 {}",
                id.subject, id.not_before, id.not_after, id.fingerprint
            );
        }
        None => {
            let _ = writeln!(s, "  tls         none: plain HTTP/1.1");
        }
    }
    let _ = writeln!(
        s,
        "  admin       {} (/metrics /healthz /readyz)",
        c.admin_listen
    );
    let _ = writeln!(
        s,
        "  origin      {} -> POST {}",
        c.origin.url, c.origin.path
    );
    let store = match &c.store {
        Store::Memory {
            path: Some(dir),
            fsync,
        } => format!(
            "memory (embedded, one machine), journal in {} (fsync {fsync:?})",
            dir.display()
        ),
        Store::Memory { path: None, .. } => {
            "memory (embedded, one machine), NOT durable: set store.path to keep the sale across restarts"
                .to_string()
        }
        Store::Redis { target, wait, .. } => {
            let waits = wait.map_or(String::new(), |w| {
                format!(
                    ", each reservation acknowledged by {} replica(s) within {:?} or answered 202 pending",
                    w.replicas, w.timeout
                )
            });
            format!("redis {target}{waits}")
        }
    };
    let _ = writeln!(s, "  store       {store}");
    if c.secrets.development.is_empty() {
        let _ = writeln!(s, "  secrets     from the environment");
    } else {
        let _ = writeln!(
            s,
            "  secrets     DEVELOPMENT ({}) - set FLASHGATE_LOGIN_SECRET / FLASHGATE_EDGE_SECRET",
            c.secrets.development.join(", ")
        );
    }
    let products = gw.checkout.products();
    if products.approximate() {
        let _ = writeln!(
            s,
            "  catalog     {} products, {} (listed ids in a Bloom filter at {}% false positives)",
            products.items(),
            mib(products.bytes() as usize),
            c.catalog.false_positive_rate * 100.0
        );
    } else {
        let _ = writeln!(
            s,
            "  catalog     {} products, {}, exact",
            products.items(),
            mib(products.bytes() as usize),
        );
    }
    let _ = writeln!(
        s,
        "  static      {} files from {}",
        gw.static_files.len(),
        c.static_dir.display()
    );
    let (uids, ips, nets) = gw.checkout.admission().blocklist().counts();
    match &c.blocklist_file {
        Some(path) => {
            let _ = writeln!(
                s,
                "  blocklist   {}: {uids} uids, {ips} ips, {nets} networks",
                path.display()
            );
        }
        None => {
            let _ = writeln!(s, "  blocklist   none");
        }
    }
    let _ = writeln!(
        s,
        "  allowlist   {} uids never rate limited",
        c.allowlist_uids.len()
    );
    let _ = writeln!(s, "  sales       {}", c.sales.len());
    for sale in &c.sales {
        let _ = writeln!(
            s,
            "    product {:<8} {:>8} units  {} -> {}  captcha {}",
            sale.product,
            sale.stock,
            sale.starts_at,
            sale.ends_at,
            format!("{:?}", sale.captcha).to_lowercase()
        );
        let show = &sale.showcase;
        let image = match &show.image {
            Some(flashgate::config::Image::Static(rel)) => format!("static_dir/{rel}"),
            Some(flashgate::config::Image::Https(url)) => url.clone(),
            None => "none".into(),
        };
        let _ = writeln!(
            s,
            "      shown as {}  price {}  image {}",
            show.title.as_ref().map_or_else(
                || format!("\"Product {}\" (default)", sale.product),
                |t| format!("{t:?}")
            ),
            show.price.as_deref().unwrap_or("none"),
            image
        );
        if let Some(q) = &sale.queue {
            let _ = writeln!(
                s,
                "      queue {}: joins from {} before the start, {} admitted/s, passes live {}, \
                 at most {} passes out per unit left",
                q.mode.name(),
                humantime::format_duration(q.prequeue),
                q.admit_per_second,
                humantime::format_duration(q.pass_ttl),
                q.stock_multiple
            );
        }
    }
    let cap = &c.captcha;
    let _ = writeln!(
        s,
        "  captcha     pow {}..{} bits (a bit more each second above {} buys/s), challenges live {}, \
         token secret {}",
        cap.difficulty,
        cap.max_difficulty,
        cap.raise_above,
        humantime::format_duration(cap.challenge_ttl),
        if cap.token_secret.is_some() { "set" } else { "not set" }
    );
    let _ = writeln!(s, "  limits      {}", c.limits.len());
    for l in &c.limits {
        let key = match l.key {
            LimitKey::Ip => "ip",
            LimitKey::Uid => "uid",
            LimitKey::Global => "global",
        };
        let _ = writeln!(
            s,
            "    {:<12} {} per {} by {key}{}  (sketch {} for {} keys)",
            l.name,
            l.requests,
            humantime::format_duration(l.per),
            if l.dry_run { ", dry run" } else { "" },
            mib(sketch_bytes(l)),
            l.expected_keys
        );
    }
    s
}
