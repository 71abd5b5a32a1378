//! Active health checks: each pool's check is one of Pingora's (`HttpHealthCheck`: a `GET` of
//! `health.path` that must answer `health.status`, over the pool's TLS; `TcpHealthCheck`: a
//! TCP connect), set on the pool's own [`HealthRegistry`], whose servers turn down after
//! `fall` failures in a row and up after `rise` passes. One background service
//! ([`HealthChecks`]) runs every pool's pass at its `interval`, a pass at a time per pool, the
//! servers of a pass checked together. The registry and its schedule ([`PoolHealth`]) outlive
//! a reload that leaves the check as it was.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::health_check::{HealthCheck as Check, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::HealthRegistry;
use pingora::prelude::*;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{HealthCheck, Upstream, UpstreamTls};
use crate::edge::Gateway;
use crate::ground::clock::now_ms;

/// How often the service looks for a pool whose pass is due.
const TICK: Duration = Duration::from_millis(100);

/// A pool's health registry and when its next pass is due.
pub struct PoolHealth {
    registry: Arc<HealthRegistry>,
    /// What the check depends on: a pool with the same may keep this registry.
    check: Option<HealthCheck>,
    tls: Option<UpstreamTls>,
    servers_host: String,
    interval_ms: u64,
    timeout_ms: u64,
    next_ms: AtomicU64,
    running: AtomicBool,
}

impl PoolHealth {
    /// The registry of `u`, with its check set (none when `u` has no `health:`).
    pub fn new(u: &Upstream) -> Arc<Self> {
        let registry = Arc::new(HealthRegistry::new());
        if let Some(check) = &u.health {
            registry.set_health_check(build(u, check));
        }
        Arc::new(PoolHealth {
            registry,
            check: u.health.clone(),
            tls: u.tls.clone(),
            servers_host: first_host(u),
            interval_ms: u.health.as_ref().map_or(0, |h| millis(h.interval)),
            timeout_ms: u.health.as_ref().map_or(0, |h| millis(h.timeout)),
            next_ms: AtomicU64::new(0),
            running: AtomicBool::new(false),
        })
    }

    /// Whether `u` checks its servers exactly as this registry does.
    pub fn fits(&self, u: &Upstream) -> bool {
        self.check == u.health && self.tls == u.tls && self.servers_host == first_host(u)
    }

    /// The registry, for a pool's view of its servers.
    pub fn registry(&self) -> Arc<HealthRegistry> {
        Arc::clone(&self.registry)
    }

    /// Start a pass if one is due and none is under way: the pass to await, or None.
    fn due(self: &Arc<Self>, now: u64) -> Option<impl std::future::Future<Output = ()>> {
        if self.check.is_none() || self.next_ms.load(Ordering::Relaxed) > now {
            return None;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.next_ms
            .store(now.saturating_add(self.interval_ms), Ordering::Relaxed);
        let me = Arc::clone(self);
        // A pass is bounded: a server that trickles its answer must not hold the pool's health
        // still (dropping the pass cancels its checks).
        let bound = Duration::from_millis(self.interval_ms.saturating_add(self.timeout_ms));
        Some(async move {
            let _ = tokio::time::timeout(bound, me.registry.run_health_check(true)).await;
            me.running.store(false, Ordering::Release);
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The host a check asks for, and its SNI, when `health.host` and `tls.sni` say nothing.
fn first_host(u: &Upstream) -> String {
    u.servers
        .first()
        .map(|s| s.host.clone())
        .unwrap_or_default()
}

/// Pingora's check for `check` on `u`'s servers.
fn build(u: &Upstream, check: &HealthCheck) -> Box<dyn Check + Send + Sync> {
    match &check.http {
        None => {
            let mut tcp = TcpHealthCheck::new();
            tcp.consecutive_success = check.rise;
            tcp.consecutive_failure = check.fall;
            tcp.peer_template.options.connection_timeout = Some(check.timeout);
            tcp.peer_template.options.total_connection_timeout = Some(check.timeout);
            tcp
        }
        Some(http) => {
            let host = http
                .host
                .clone()
                .or_else(|| u.tls.as_ref().and_then(|t| t.sni.clone()))
                .unwrap_or_else(|| first_host(u));
            let mut h = HttpHealthCheck::new(&host, u.tls.is_some());
            h.consecutive_success = check.rise;
            h.consecutive_failure = check.fall;
            h.reuse_connection = false;
            let o = &mut h.peer_template.options;
            o.connection_timeout = Some(check.timeout);
            o.total_connection_timeout = Some(check.timeout);
            o.read_timeout = Some(check.timeout);
            o.write_timeout = Some(check.timeout);
            if let Some(tls) = &u.tls {
                h.peer_template.sni = tls.sni.clone().unwrap_or_else(|| first_host(u));
                super::tls_options(&mut h.peer_template, tls);
            }
            if let Ok(mut req) = RequestHeader::build("GET", http.path.as_bytes(), None) {
                if req.insert_header("host", host.as_str()).is_ok()
                    && req.insert_header("user-agent", "flashgate-health").is_ok()
                {
                    h.req = req;
                }
            }
            let expected = http.status;
            h.validator = Some(Box::new(move |resp: &ResponseHeader| {
                if resp.status.as_u16() == expected {
                    Ok(())
                } else {
                    Error::e_explain(
                        ErrorType::CustomCode("unexpected status", resp.status.as_u16()),
                        format!("health check expected {expected}"),
                    )
                }
            }));
            Box::new(h)
        }
    }
}

/// Runs the health checks of the configuration in place.
pub struct HealthChecks {
    gateway: Arc<Gateway>,
}

impl HealthChecks {
    /// Check `gateway`'s pools.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        HealthChecks { gateway }
    }
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let live = self.gateway.live();
            let now = now_ms();
            for pool in live.pools.iter() {
                if let Some(pass) = pool.health().due(now) {
                    tokio::spawn(pass);
                }
            }
        }
    }
}
