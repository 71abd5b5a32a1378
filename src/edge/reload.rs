//! Reloading the configuration file (SIGHUP, or `POST /admin/reload` on the admin listener):
//! read and check it again, build a new [`Live`] from it, and swap it in whole.
//!
//! What a reload changes: blocklist (its file is read again), allowlist, limits, sales,
//! catalog, captcha settings, static files (read again), origin, trusted proxies, rate headers,
//! the admin token, and the TLS certificate and key (read again: new handshakes present the new
//! certificate, see `edge::tls`). What it keeps: the stores (stock and buyers), the settlement
//! queue, each sale's sold-out hint and proof-of-work difficulty, and the counts of each limit
//! rule whose name, key, window and `expected_keys` stay (see `Checkout::rebuild`). What it
//! cannot change while running: the listeners and their threads, TLS on or off, the store, the
//! access log and the size of the embedded single-use set — those keep their running values,
//! and the answer and the log say a restart (or an upgrade) is needed to apply them.
//!
//! A file that fails to load is refused with its error (file:line:column), and the running
//! configuration stays. So is a new sale on the embedded store, which can take new sales only
//! at a start. Reloads run one at a time; the file is read and the new configuration built off
//! the async threads (`spawn_blocking`: files, and limit sketches of new rules, are big), and
//! requests in flight finish on the configuration they started with.

use std::sync::Arc;

use super::live::Live;
use super::{Gateway, GatewayError};
use crate::config::locate::Locations;
use crate::config::{read, Config, ConfigError, ProcessEnv, Store};
use crate::ground::metrics::ShopMetrics;
use crate::stock::SaleKeys;

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// The sections of the file that changed.
    pub changed: Vec<&'static str>,
    /// Changes that need a restart or an upgrade, kept at their running values meanwhile.
    pub restart_needed: Vec<String>,
    /// Things worth knowing about the new configuration.
    pub warnings: Vec<String>,
}

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load (its error names file, line and column).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// What the file names (blocklist, catalog, static files) does not load.
    #[error(transparent)]
    Build(#[from] GatewayError),
    /// The reload's work stopped before it was done.
    #[error("the reload did not finish: {0}")]
    Interrupted(String),
}

struct Staged {
    live: Live,
    text: String,
    changed: Vec<&'static str>,
    restart_needed: Vec<String>,
}

impl Gateway {
    /// Reload the configuration file; see the module docs.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        // One at a time: a tokio mutex, held across the awaits of one reload, never on the
        // path of a request.
        let _one_at_a_time = self.reloading.lock().await;
        let result = self.reload_now().await;
        match &result {
            Ok(done) => {
                self.metrics.reloads.ok.inc();
                let file = self.live().config.file.display().to_string();
                tracing::info!(
                    changed = ?done.changed,
                    "configuration reloaded from {file}"
                );
                if done.changed.contains(&"tls") {
                    if let Some(tls) = &self.live().config.tls {
                        tls.log_identity("new handshakes present the certificate of");
                    }
                }
                for what in &done.restart_needed {
                    tracing::warn!("reload: {what}");
                }
                for warning in &done.warnings {
                    tracing::warn!("reload: {warning}");
                }
            }
            Err(e) => {
                self.metrics.reloads.refused.inc();
                tracing::error!("reload refused, the configuration in use stays: {e}");
            }
        }
        result
    }

    async fn reload_now(&self) -> Result<Reloaded, ReloadError> {
        let old = self.live();
        let before = Arc::clone(&old);
        let metrics = Arc::clone(&self.metrics);
        let prepared = tokio::task::spawn_blocking(move || prepare(&before, &metrics.shop))
            .await
            .map_err(|e| ReloadError::Interrupted(e.to_string()))??;
        let warnings = check_sales(&old, &prepared).await?;
        let Staged {
            live,
            changed,
            restart_needed,
            ..
        } = prepared;
        self.swap(live);
        Ok(Reloaded {
            changed,
            restart_needed,
            warnings,
        })
    }
}

/// Read, check and build the new configuration next to `old`.
fn prepare(old: &Live, metrics: &ShopMetrics) -> Result<Staged, ReloadError> {
    let file = &old.config.file;
    let text = read::text(file)?;
    let mut config = Config::parse(file, &text, &ProcessEnv)?;
    let restart_needed = pin(&old.config, &mut config);
    let changed = changes(&old.config, &config);
    let checkout = old.checkout.rebuild(&config).map_err(GatewayError::from)?;
    let live = Live::build(config, checkout, metrics, Some(old))?;
    Ok(Staged {
        live,
        text,
        changed,
        restart_needed,
    })
}

/// Keep what cannot change while running at its running value; say what was asked.
fn pin(old: &Config, new: &mut Config) -> Vec<String> {
    let mut needed = Vec::new();
    let mut note = |what: &str, from: String, to: String| {
        needed.push(format!(
            "{what} changed ({from} -> {to}): kept as it is until a restart or an upgrade"
        ));
    };
    if new.listen != old.listen {
        note("listen", old.listen.to_string(), new.listen.to_string());
        new.listen = old.listen;
    }
    if new.admin_listen != old.admin_listen {
        note(
            "admin_listen",
            old.admin_listen.to_string(),
            new.admin_listen.to_string(),
        );
        new.admin_listen = old.admin_listen;
    }
    if new.threads != old.threads {
        note("threads", old.threads.to_string(), new.threads.to_string());
        new.threads = old.threads;
    }
    // Pingora takes the cap when the listener starts; the other `http:` limits are read per
    // request and reload.
    let (was, is) = (old.http.keepalive_requests, new.http.keepalive_requests);
    if was != is {
        note("http.keepalive_requests", was.to_string(), is.to_string());
        new.http.keepalive_requests = was;
    }
    // Pingora builds every HTTP/2 connection from the settings it was given at start.
    if new.http.h2 != old.http.h2 {
        note(
            "http.h2",
            format!("{:?}", old.http.h2),
            format!("{:?}", new.http.h2),
        );
        new.http.h2 = old.http.h2;
    }
    if new.store != old.store {
        note(
            "store",
            format!("{:?}", old.store),
            format!("{:?}", new.store),
        );
        new.store = old.store.clone();
    }
    if new.access_log != old.access_log {
        note(
            "access_log",
            format!("{:?}", old.access_log),
            format!("{:?}", new.access_log),
        );
        new.access_log = old.access_log.clone();
    }
    // A reload renews the certificate (the files are read again), but whether the listener
    // speaks TLS at all is fixed when it starts.
    match (&old.tls, &new.tls) {
        (Some(_), None) => {
            note("tls", "on".to_string(), "off".to_string());
            new.tls = old.tls.clone();
        }
        (None, Some(_)) => {
            note("tls", "off".to_string(), "on".to_string());
            new.tls = None;
        }
        _ => {}
    }
    let (was, is) = (
        old.captcha.single_use_capacity,
        new.captcha.single_use_capacity,
    );
    if was != is {
        note(
            "captcha.single_use_capacity",
            was.to_string(),
            is.to_string(),
        );
        new.captcha.single_use_capacity = was;
    }
    needed
}

/// The sections of the file that differ.
fn changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut changed = Vec::new();
    if old.secrets.login != new.secrets.login || old.secrets.edge != new.secrets.edge {
        changed.push("secrets");
    }
    if old.captcha.token_secret != new.captcha.token_secret || differs(&old.captcha, &new.captcha) {
        changed.push("captcha");
    }
    if old.admin_token != new.admin_token {
        changed.push("admin_token");
    }
    let sections: [(&'static str, &dyn std::fmt::Debug, &dyn std::fmt::Debug); 13] = [
        (
            "trusted_proxies",
            &old.trusted_proxies,
            &new.trusted_proxies,
        ),
        ("origin", &old.origin, &new.origin),
        ("static_dir", &old.static_dir, &new.static_dir),
        ("catalog", &old.catalog, &new.catalog),
        ("sales", &old.sales, &new.sales),
        ("limits", &old.limits, &new.limits),
        ("blocklist", &old.blocklist_file, &new.blocklist_file),
        ("allowlist_uids", &old.allowlist_uids, &new.allowlist_uids),
        ("sold_out_hint", &old.sold_out_hint, &new.sold_out_hint),
        (
            "rate_limit_headers",
            &old.rate_limit_headers,
            &new.rate_limit_headers,
        ),
        // The paths, and the certificate's fingerprint: a renewed certificate is a change.
        ("tls", &old.tls, &new.tls),
        ("upstreams", &old.upstreams, &new.upstreams),
        ("routes", &old.routes, &new.routes),
    ];
    for (name, a, b) in sections {
        if differs(a, b) {
            changed.push(name);
        }
    }
    changed
}

/// The new sales against the store: a sale the embedded store does not hold refuses the
/// reload (it takes new sales only at a start); the rest is worth a warning.
async fn check_sales(old: &Live, new: &Staged) -> Result<Vec<String>, ReloadError> {
    let config = &new.live.config;
    let embedded = matches!(config.store, Store::Memory { .. });
    let store = new.live.checkout.store();
    let mut warnings = Vec::new();
    for (i, sale) in config.sales.iter().enumerate() {
        let held = match store.stock(&SaleKeys::of(sale.product)).await {
            Ok(held) => held,
            Err(e) => {
                warnings.push(format!(
                    "the store could not be asked about product {}: {e}",
                    sale.product
                ));
                continue;
            }
        };
        match held {
            None if embedded => {
                let at = Locations::index(&new.text).find(&format!("sales[{i}].product"));
                return Err(ConfigError::at(
                    &config.file,
                    at,
                    format!(
                        "product {} is a new sale: the embedded store takes new sales only at a \
                         start (restart, or upgrade with store.path set)",
                        sale.product
                    ),
                )
                .into());
            }
            None => warnings.push(format!(
                "product {} is not in Redis yet: its buys are 404 unknown_product until \
                 `flashgate stock load` puts it there",
                sale.product
            )),
            Some(s) if embedded && s.remaining + s.buyers != sale.stock => warnings.push(format!(
                "product {}: the embedded store keeps the sale's stock of {} (the file now \
                     says {}); to start the sale over, stop the gateway and remove store.path",
                sale.product,
                s.remaining + s.buyers,
                sale.stock
            )),
            Some(_) => {}
        }
    }
    for sale in &old.config.sales {
        if config.sale(sale.product).is_none() {
            warnings.push(format!(
                "the sale of product {} is gone from the file: its buys are 404 unknown_product \
                 from now on",
                sale.product
            ));
        }
    }
    Ok(warnings)
}
