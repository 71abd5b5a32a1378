//! The connection every Redis user of flashgate shares the shape of: one multiplexed connection
//! (a `ConnectionManager`, or the cluster client's connection) created on first use, every call
//! bounded by a timeout and guarded by a [`Breaker`]. While Redis is down, calls fail at once
//! ([`StoreError::CircuitOpen`]) and resume by themselves when Redis is back.
//!
//! Behind Redis Sentinel ([`Target::Sentinel`]) the master is asked of the sentinels, and its
//! role checked (`ROLE`), when the connection is made; a call that finds Redis unavailable, or
//! a master demoted to a replica (`READONLY`), drops the connection, so the next call asks the
//! sentinels again and follows a failover instead of writing to the old master.

use std::future::Future;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, RedisError, Script, ScriptInvocation};

use super::super::breaker::Breaker;
use super::super::StoreError;
use crate::config::Target;
use crate::ground::clock::now_ms;

/// Failures in a row that open the circuit.
const BREAKER_THRESHOLD: u32 = 3;
/// How long an open circuit fails calls before letting one through again.
const BREAKER_COOLDOWN: Duration = Duration::from_millis(500);

/// Whether a failed call says Redis is unavailable — no connection, no answer in time, a node
/// loading, down or failing over — rather than that it answered and refused this one command (a
/// wrong type, a missing consumer group, a group that exists, a script error). Only the first
/// kind counts toward opening the circuit: one sale's bad key must not stop every other sale.
fn unavailable(e: &StoreError) -> bool {
    use redis::{ErrorKind, ServerErrorKind as S};
    match e {
        StoreError::Unanswered(cause) => unavailable(cause),
        StoreError::Redis(e) => !matches!(
            e.kind(),
            ErrorKind::Extension
                | ErrorKind::UnexpectedReturnType
                | ErrorKind::Parse
                | ErrorKind::Server(
                    S::ResponseError | S::ExecAbort | S::NoScript | S::CrossSlot | S::NoPerm
                )
        ),
        _ => true,
    }
}

/// Whether a call that reached the connection and failed with `e` may have run in Redis: its
/// bytes may have been written before the failure. A refused connection never sent anything,
/// and one server's error reply says the command did not run (every script here checks before
/// it writes). On a Cluster the client retries a call whose connection failed, on another
/// connection and node, so the error it ends with need not be the first attempt's: any failure
/// may follow an attempt that ran.
fn may_have_run(e: &RedisError, cluster: bool) -> bool {
    use redis::ErrorKind;
    if cluster {
        return true;
    }
    if e.is_connection_refusal() {
        return false;
    }
    let server_replied =
        matches!(e.kind(), ErrorKind::Server(_)) || e.clone().into_server_errors().is_some();
    !server_replied
}

/// Whether a failed call says the connection must be made anew: Redis unavailable, or the
/// node is a replica now (`READONLY`: a failover demoted it).
fn reconnect(e: &StoreError) -> bool {
    let demoted = e
        .redis()
        .is_some_and(|e| e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly));
    demoted || unavailable(e)
}

#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A guarded, time-bounded Redis connection.
pub struct RedisClient {
    target: Target,
    /// The connection, once made; dropped to be made anew behind Sentinel (see the module doc).
    conn: ArcSwapOption<Conn>,
    /// Held while a connection is made, so concurrent calls make one.
    connecting: tokio::sync::Mutex<()>,
    timeout: Duration,
    breaker: Breaker,
}

impl RedisClient {
    /// A client for `target` whose calls each take at most `timeout`. Connects on first use.
    pub fn new(target: Target, timeout: Duration) -> Self {
        RedisClient {
            target,
            conn: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            timeout,
            breaker: Breaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN),
        }
    }

    /// The connection, made if there is none.
    async fn conn(&self) -> Result<Conn, RedisError> {
        if let Some(conn) = self.conn.load_full() {
            return Ok((*conn).clone());
        }
        let _making = self.connecting.lock().await;
        if let Some(conn) = self.conn.load_full() {
            return Ok((*conn).clone());
        }
        let conn = self.connect().await?;
        self.conn.store(Some(Arc::new(conn.clone())));
        Ok(conn)
    }

    /// Where it connects.
    pub fn target(&self) -> &Target {
        &self.target
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        let connect_timeout = self.timeout.max(Duration::from_millis(200));
        match &self.target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            Target::Cluster(urls) => {
                let client =
                    redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str))
                        .connection_timeout(connect_timeout)
                        .response_timeout(self.timeout)
                        .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
            Target::Sentinel { master, nodes } => {
                let mut sentinel = redis::sentinel::SentinelClient::build(
                    nodes.iter().map(String::as_str).collect(),
                    master.clone(),
                    None,
                    redis::sentinel::SentinelServerType::Master,
                )?;
                // The master the sentinels name, its role checked.
                let client = sentinel.async_get_client().await?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                Ok(Conn::Single(
                    ConnectionManager::new_with_config(client, config).await?,
                ))
            }
        }
    }

    /// Run `call` on the connection, bounded by the timeout and guarded by the breaker. A call
    /// that was handed to the connection and failed in a way that may have let it run is
    /// [`StoreError::Unanswered`]; one stopped before (the breaker open, no connection) is not.
    pub(super) async fn guarded<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if !self.breaker.allows(now_ms()) {
            return Err(StoreError::CircuitOpen);
        }
        let cluster = matches!(self.target, Target::Cluster(_));
        // Whether the call was handed to a connection (an atomic only to keep the future Send).
        let sent = AtomicBool::new(false);
        let attempt = async {
            let conn = self.conn().await.map_err(StoreError::from)?;
            sent.store(true, Ordering::Relaxed);
            call(conn).await.map_err(|e| {
                if may_have_run(&e, cluster) {
                    StoreError::Unanswered(Box::new(StoreError::Redis(e)))
                } else {
                    StoreError::Redis(e)
                }
            })
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) if sent.load(Ordering::Relaxed) => Err(StoreError::Unanswered(Box::new(
                StoreError::Timeout(self.timeout),
            ))),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        };
        match &result {
            Err(e) if unavailable(e) => self.breaker.failure(now_ms()),
            // An answer, even a refusal of this one command, says Redis is there.
            _ => self.breaker.success(),
        }
        if let (Target::Sentinel { .. }, Err(e)) = (&self.target, &result) {
            if reconnect(e) {
                // Ask the sentinels again at the next call: the master may have changed.
                self.conn.store(None);
            }
        }
        result
    }

    /// `WAIT replicas timeout` on the connection (and, on a Cluster, the node) that wrote
    /// `key` last: how many replicas acknowledged every write made so far on it. Bounded by
    /// the client's timeout like any call.
    pub async fn wait_for_replicas(
        &self,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> Result<u32, StoreError> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis() as u64);
        let key = key.to_string();
        self.guarded(|conn| async move {
            match conn {
                Conn::Single(mut c) => wait.query_async(&mut c).await,
                Conn::Cluster(mut c) => {
                    use redis::cluster_routing::{
                        Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
                    };
                    let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                    let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                    let answer = c.route_command(wait, node).await?;
                    redis::from_redis_value(answer).map_err(RedisError::from)
                }
            }
        })
        .await
    }

    /// Run a script (EVALSHA, re-sent on NOSCRIPT).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.guarded(|conn| async move {
            match conn {
                Conn::Single(mut c) => invocation.invoke_async(&mut c).await,
                Conn::Cluster(mut c) => invocation.invoke_async(&mut c).await,
            }
        })
        .await
    }

    /// Run a pipeline of plain commands.
    pub async fn query<T: FromRedisValue>(&self, cmd: redis::Pipeline) -> Result<T, StoreError> {
        self.guarded(|conn| async move {
            match conn {
                Conn::Single(mut c) => cmd.query_async(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
            }
        })
        .await
    }

    /// Make Redis hold `script`, so its first use is one round trip.
    pub async fn load_script(&self, script: &Script) -> Result<(), StoreError> {
        self.guarded(|conn| async move {
            match conn {
                Conn::Single(mut c) => script.prepare_invoke().load_async(&mut c).await,
                Conn::Cluster(mut c) => script.prepare_invoke().load_async(&mut c).await,
            }
        })
        .await
        .map(|_sha| ())
    }

    /// Whether Redis answers a PING.
    pub async fn ping(&self) -> bool {
        let mut ping = redis::pipe();
        ping.cmd("PING");
        self.query::<(String,)>(ping).await.is_ok()
    }
}
