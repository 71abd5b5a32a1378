//! The shop's upstream pools (`upstreams:`), built on Pingora's load balancer
//! (`pingora-load-balancing`): each pool's servers are a static [`Backends`] view on the pool's
//! [`HealthRegistry`], picked in turn by weight ([`RoundRobin`]) or by consistent hashing
//! ([`KetamaHashing`]) on a key of the request. A server is picked only while its active health
//! checks pass (`health`) and it is not ejected: connects that failed `eject.failures` times in
//! a row leave it out for `eject.for` (passive ejection, this module's own). The peer a request
//! connects to carries the pool's timeouts, keep-alive, TLS (SNI, CA, verification, client
//! certificate) and HTTP version.
//!
//! A reload builds new pools; one whose health check is unchanged keeps its registry, so the
//! servers that stay keep the health they had ([`Pools::build`]).

mod health;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use futures::FutureExt;
use pingora::lb::discovery::Static;
use pingora::lb::selection::consistent::KetamaHashing;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{CertKey, WrappedX509};
use prometheus::IntCounter;

use crate::config::{Selection, Upstream, UpstreamTls};
use crate::ground::clock::now_ms;
use crate::ground::metrics::{status_class, ShopMetrics, STATUS_CLASSES};

pub use health::HealthChecks;
use health::PoolHealth;

/// Every pool of one configuration, in the order of `Config::upstreams`.
pub struct Pools {
    pools: Vec<Pool>,
}

impl Pools {
    /// Build the pools of `upstreams`; a pool of `previous` with the same name and the same
    /// health check lends its registry, so its servers keep their health.
    pub fn build(upstreams: &[Upstream], previous: Option<&Pools>, metrics: &ShopMetrics) -> Self {
        let pools = upstreams
            .iter()
            .map(|u| {
                let kept = previous.and_then(|p| {
                    p.pools
                        .iter()
                        .find(|old| old.name == u.name && old.health.fits(u))
                        .map(|old| Arc::clone(&old.health))
                });
                Pool::build(u, kept.unwrap_or_else(|| PoolHealth::new(u)), metrics)
            })
            .collect();
        Pools { pools }
    }

    /// The pool at `index` of `Config::upstreams`.
    pub fn get(&self, index: usize) -> Option<&Pool> {
        self.pools.get(index)
    }

    /// Every pool.
    pub fn iter(&self) -> impl Iterator<Item = &Pool> {
        self.pools.iter()
    }

    /// Set `flashgate_upstream_healthy` for every server of every pool.
    pub fn export_health(&self, metrics: &ShopMetrics) {
        metrics.server_healthy.reset();
        for pool in &self.pools {
            for (i, server) in pool.servers.iter().enumerate() {
                metrics
                    .server_healthy
                    .with_label_values(&[&pool.name, &server.name])
                    .set(i64::from(pool.up(i)));
            }
        }
    }
}

/// How a pool's servers are picked.
enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Hashing(LoadBalancer<KetamaHashing>),
}

/// The index of a server in its pool, carried by its [`Backend`].
#[derive(Clone, Copy)]
struct ServerIndex(usize);

/// One server's passive state and counters.
struct ServerState {
    /// `host:port` as a label.
    name: String,
    /// Connects that failed in a row.
    failures: AtomicU32,
    /// Until when it is ejected (ms since the epoch; 0: not).
    ejected_until_ms: AtomicU64,
    /// Its answers by status class, and `error`.
    answers: [IntCounter; 6],
    ejections: IntCounter,
    /// Its peer: the address with the pool's settings.
    peer: HttpPeer,
    /// Its address.
    addr: Option<std::net::SocketAddr>,
}

/// One upstream pool.
pub struct Pool {
    /// Its name in `upstreams:`.
    pub name: String,
    balancer: Balancer,
    health: Arc<PoolHealth>,
    servers: Vec<ServerState>,
    selection: Selection,
    eject_failures: u32,
    eject_ms: u64,
}

/// The most servers tried to find one up, per pick.
const MAX_ITERATIONS: usize = 512;

impl Pool {
    fn build(u: &Upstream, health: Arc<PoolHealth>, metrics: &ShopMetrics) -> Self {
        let backends: BTreeSet<Backend> = u
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut backend = Backend {
                    addr: pingora::protocols::l4::socket::SocketAddr::Inet(s.addr),
                    weight: s.weight,
                    ext: Default::default(),
                };
                backend.ext.insert(ServerIndex(i));
                backend
            })
            .collect();
        let view =
            || Backends::new_with_health_registry(Static::new(backends.clone()), health.registry());
        let balancer = match u.selection {
            Selection::RoundRobin => {
                let lb = LoadBalancer::<RoundRobin>::from_backends(view());
                update(lb.update().now_or_never());
                Balancer::RoundRobin(lb)
            }
            _ => {
                let lb = LoadBalancer::<KetamaHashing>::from_backends(view());
                update(lb.update().now_or_never());
                Balancer::Hashing(lb)
            }
        };
        let servers = u
            .servers
            .iter()
            .map(|s| {
                let name = s.addr.to_string();
                let answers = [
                    STATUS_CLASSES[0],
                    STATUS_CLASSES[1],
                    STATUS_CLASSES[2],
                    STATUS_CLASSES[3],
                    STATUS_CLASSES[4],
                    "error",
                ]
                .map(|class| {
                    metrics
                        .server_requests
                        .with_label_values(&[&u.name, &name, class])
                });
                ServerState {
                    ejections: metrics.ejections.with_label_values(&[&u.name, &name]),
                    name,
                    failures: AtomicU32::new(0),
                    ejected_until_ms: AtomicU64::new(0),
                    answers,
                    peer: peer(u, s),
                    addr: Some(s.addr),
                }
            })
            .collect();
        Pool {
            name: u.name.clone(),
            balancer,
            health,
            servers,
            selection: u.selection.clone(),
            eject_failures: u.eject.failures,
            eject_ms: u64::try_from(u.eject.duration.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// How this pool picks (what the hash key is).
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// A server that is up and not in `tried`, by the pool's selection with `key` (ignored by
    /// round robin). None: no server is up.
    pub fn pick(&self, key: &[u8], tried: &[usize]) -> Option<usize> {
        let now = now_ms();
        let accept = |b: &Backend, healthy: bool| {
            healthy && index(b).is_some_and(|i| !tried.contains(&i) && !self.ejected(i, now))
        };
        let picked = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select_with(key, MAX_ITERATIONS, accept),
            Balancer::Hashing(lb) => lb.select_with(key, MAX_ITERATIONS, accept),
        };
        picked.as_ref().and_then(index)
    }

    /// How many servers the pool has.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// The addresses of the servers that may be picked now, in the pool's order.
    pub fn addrs_up(&self) -> Vec<std::net::SocketAddr> {
        (0..self.servers.len())
            .filter(|i| self.up(*i))
            .filter_map(|i| self.servers[i].addr)
            .collect()
    }

    /// The peer of server `i`.
    pub fn peer(&self, i: usize) -> Option<&HttpPeer> {
        self.servers.get(i).map(|s| &s.peer)
    }

    /// The `host:port` of server `i`.
    pub fn server_name(&self, i: usize) -> &str {
        self.servers.get(i).map_or("", |s| s.name.as_str())
    }

    /// A connect to server `i` succeeded.
    pub fn connected(&self, i: usize) {
        if let Some(s) = self.servers.get(i) {
            s.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A connect to server `i` failed: after `eject.failures` in a row it is ejected.
    pub fn connect_failed(&self, i: usize) {
        let Some(s) = self.servers.get(i) else {
            return;
        };
        if self.eject_failures == 0 {
            return;
        }
        let failures = s.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.eject_failures {
            s.failures.store(0, Ordering::Relaxed);
            s.ejected_until_ms
                .store(now_ms().saturating_add(self.eject_ms), Ordering::Relaxed);
            s.ejections.inc();
            tracing::warn!(
                upstream = %self.name, server = %s.name,
                "upstream server ejected for {} ms after {failures} failed connects in a row",
                self.eject_ms
            );
        }
    }

    /// Count an answer of server `i`: its status, or None for a connection that failed.
    pub fn answered(&self, i: usize, status: Option<u16>) {
        if let Some(s) = self.servers.get(i) {
            // The sixth counter, after the status classes, is `error`.
            let class = status.map_or(STATUS_CLASSES.len(), status_class);
            s.answers[class].inc();
        }
    }

    /// Whether server `i` may be picked now: healthy and not ejected.
    pub fn up(&self, i: usize) -> bool {
        let healthy = match &self.balancer {
            Balancer::RoundRobin(lb) => self.ready(lb.backends(), i),
            Balancer::Hashing(lb) => self.ready(lb.backends(), i),
        };
        healthy && !self.ejected(i, now_ms())
    }

    fn ready(&self, backends: &Backends, i: usize) -> bool {
        backends
            .get_backend()
            .iter()
            .find(|b| index(b) == Some(i))
            .is_some_and(|b| backends.ready(b))
    }

    fn ejected(&self, i: usize, now: u64) -> bool {
        self.servers
            .get(i)
            .is_some_and(|s| s.ejected_until_ms.load(Ordering::Relaxed) > now)
    }

    /// The pool's health checks.
    fn health(&self) -> &Arc<PoolHealth> {
        &self.health
    }
}

fn index(b: &Backend) -> Option<usize> {
    b.ext.get::<ServerIndex>().map(|i| i.0)
}

/// A static view's update never waits and never fails; say so if it ever did.
fn update(done: Option<pingora::Result<()>>) {
    match done {
        Some(Ok(())) => {}
        Some(Err(e)) => tracing::error!("upstream pool: {e}"),
        None => tracing::error!("upstream pool: a static view's update waited"),
    }
}

/// The peer of server `s` of `u`: its address with the pool's timeouts, keep-alive, TLS and
/// HTTP version.
fn peer(u: &Upstream, s: &crate::config::Server) -> HttpPeer {
    let sni = u
        .tls
        .as_ref()
        .map(|t| t.sni.clone().unwrap_or_else(|| s.host.clone()))
        .unwrap_or_default();
    let mut peer = HttpPeer::new(s.addr, u.tls.is_some(), sni);
    let o = &mut peer.options;
    o.connection_timeout = Some(u.connect_timeout);
    o.total_connection_timeout = Some(u.connect_timeout);
    o.read_timeout = Some(u.read_timeout);
    o.write_timeout = Some(u.write_timeout);
    o.idle_timeout = Some(u.idle_timeout);
    o.alpn = if u.h2 { ALPN::H2 } else { ALPN::H1 };
    if let Some(tls) = &u.tls {
        tls_options(&mut peer, tls);
    }
    peer
}

/// TLS settings on `peer` (verification on unless `verify: false`).
fn tls_options(peer: &mut HttpPeer, tls: &UpstreamTls) {
    peer.options.verify_cert = tls.verify;
    peer.options.verify_hostname = tls.verify;
    if let Some(ca) = &tls.ca {
        let list: Vec<WrappedX509> = ca
            .iter()
            .map(|der| WrappedX509::new(der.clone(), pingora::utils::tls::parse_x509))
            .collect();
        peer.options.ca = Some(Arc::from(list.into_boxed_slice()));
    }
    if let Some((chain, key)) = &tls.client {
        peer.client_cert_key = Some(Arc::new(CertKey::new(chain.clone(), key.clone())));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Eject, HttpCheck, Server};
    use crate::ground::metrics::Metrics;

    fn upstream(name: &str, ports: &[u16], interval_ms: u64) -> Upstream {
        Upstream {
            name: name.to_string(),
            servers: ports
                .iter()
                .map(|p| Server {
                    addr: ([127, 0, 0, 1], *p).into(),
                    host: "127.0.0.1".into(),
                    weight: 1,
                })
                .collect(),
            selection: Selection::RoundRobin,
            health: Some(crate::config::HealthCheck {
                http: Some(HttpCheck {
                    path: "/healthz".into(),
                    status: 200,
                    host: None,
                }),
                interval: Duration::from_millis(interval_ms),
                timeout: Duration::from_secs(1),
                fall: 1,
                rise: 1,
            }),
            eject: Eject {
                failures: 2,
                duration: Duration::from_secs(10),
            },
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            h2: false,
            tls: None,
        }
    }

    #[test]
    fn a_reload_keeps_the_registry_of_a_pool_checked_the_same_way() {
        let metrics = Metrics::new().unwrap();
        let first = Pools::build(&[upstream("shop", &[1, 2], 500)], None, &metrics.shop);
        let registry = |p: &Pools| p.get(0).unwrap().health().registry();
        // A server added, the check unchanged: the same registry (the servers that stay keep
        // their health).
        let same = Pools::build(
            &[upstream("shop", &[1, 2, 3], 500)],
            Some(&first),
            &metrics.shop,
        );
        assert!(Arc::ptr_eq(&registry(&first), &registry(&same)));
        // Another interval, or another name: a registry of its own.
        let other = Pools::build(
            &[upstream("shop", &[1, 2], 900)],
            Some(&first),
            &metrics.shop,
        );
        assert!(!Arc::ptr_eq(&registry(&first), &registry(&other)));
        let renamed = Pools::build(
            &[upstream("web", &[1, 2], 500)],
            Some(&first),
            &metrics.shop,
        );
        assert!(!Arc::ptr_eq(&registry(&first), &registry(&renamed)));
    }

    #[test]
    fn an_ejected_server_is_not_picked_until_its_time_is_out() {
        let metrics = Metrics::new().unwrap();
        let mut u = upstream("shop", &[1, 2], 500);
        u.health = None;
        u.eject.failures = 2;
        let pools = Pools::build(&[u], None, &metrics.shop);
        let pool = pools.get(0).unwrap();
        pool.connect_failed(0);
        assert!(pool.up(0), "one failure of two");
        pool.connect_failed(0);
        assert!(!pool.up(0), "ejected");
        for _ in 0..10 {
            assert_eq!(pool.pick(b"", &[]), Some(1));
        }
        assert_eq!(pool.pick(b"", &[1]), None, "no other server");
    }
}
