//! The Redis stock store: several edge nodes share one sale's stock through Redis or a Redis
//! Cluster. A reservation is one `EVALSHA` of `lua/reserve.lua` — one round trip, atomic in
//! Redis — and a release one `EVALSHA` of `lua/release.lua`; those scripts (and `lua/load.lua`,
//! which seeds a sale) are the only code that changes stock in Redis. The redis crate's
//! `Script` re-sends a script Redis has forgotten (restart, failover, `SCRIPT FLUSH`) on its
//! own, so a `NOSCRIPT` never reaches a buyer.
//!
//! Keys of one sale share the hash tag `{product}` — `flashgate:{42}:stock`, `:buyers`,
//! `:ledger`, `:seq`, `:meta`, `:confirmed` — so each script touches one Cluster slot.
//!
//! The order backend uses the same store for its side of the protocol: `confirm` (claim a
//! reservation for an order, `lua/confirm.lua`), `release_order` (return a cancelled order's
//! unit), `configured_stock` and `rewrite` (reconcile from the database, `lua/reconcile.lua`).
//!
//! One multiplexed connection serves every request (a `ConnectionManager`, or the cluster
//! client's connection), created on first use. Every call is bounded by `store.timeout` and
//! guarded by a [`Breaker`]: while Redis is down, calls fail at once and buyers get
//! `503 store_unavailable`; calls resume by themselves when Redis is back.
//!
//! A reserve that times out may still have run in Redis. The unit then stays with that user,
//! recorded in the sale's ledger, and the order backend's ledger consumer turns it into an
//! order (or its payment timeout returns it): never an oversell, at worst a late order.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, RedisError, Script, ScriptInvocation};
use tokio::sync::OnceCell;

use super::breaker::Breaker;
use super::single_use::SingleUse;
use super::{Reservation, Reserve, SaleStock, StockStore, StoreError};

/// Failures in a row that open the circuit.
const BREAKER_THRESHOLD: u32 = 3;
/// How long an open circuit fails calls before letting one through again.
const BREAKER_COOLDOWN: Duration = Duration::from_millis(500);

/// Where the store connects.
#[derive(Debug, Clone)]
pub enum Target {
    /// One Redis server.
    Single(String),
    /// A Redis Cluster, by seed nodes.
    Cluster(Vec<String>),
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The keys of one sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleKeys {
    /// Units left.
    pub stock: String,
    /// uid → reservation id.
    pub buyers: String,
    /// Stream of reservations.
    pub ledger: String,
    /// Reservation sequence.
    pub seq: String,
    /// Sale metadata (configured stock).
    pub meta: String,
    /// Reservations an order holds (see `lua/confirm.lua`).
    pub confirmed: String,
}

impl SaleKeys {
    /// The keys of `product`'s sale.
    pub fn of(product: u64) -> Self {
        let k = |part: &str| format!("flashgate:{{{product}}}:{part}");
        SaleKeys {
            stock: k("stock"),
            buyers: k("buyers"),
            ledger: k("ledger"),
            seq: k("seq"),
            meta: k("meta"),
            confirmed: k("confirmed"),
        }
    }
}

/// What `load` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// The sale now holds the configured stock; `dropped` buyers were removed (with --force).
    Loaded {
        /// Buyers removed.
        dropped: u64,
    },
    /// Refused: the sale has this many buyers and `force` was not given.
    HasBuyers(u64),
}

/// Stock in Redis.
pub struct RedisStore {
    target: Target,
    conn: OnceCell<Conn>,
    reserve: Script,
    release: Script,
    load: Script,
    confirm: Script,
    reconcile: Script,
    timeout: Duration,
    breaker: Breaker,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// A store for `target` whose calls each take at most `timeout`. Connects on first use.
    pub fn new(target: Target, timeout: Duration) -> Self {
        RedisStore {
            target,
            conn: OnceCell::new(),
            reserve: Script::new(include_str!("../../lua/reserve.lua")),
            release: Script::new(include_str!("../../lua/release.lua")),
            load: Script::new(include_str!("../../lua/load.lua")),
            confirm: Script::new(include_str!("../../lua/confirm.lua")),
            reconcile: Script::new(include_str!("../../lua/reconcile.lua")),
            timeout,
            breaker: Breaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN),
        }
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        match &self.target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(200))))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            Target::Cluster(urls) => {
                let client =
                    redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str))
                        .connection_timeout(self.timeout.max(Duration::from_millis(200)))
                        .response_timeout(self.timeout)
                        .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Run `call` on the connection, bounded by the timeout and guarded by the breaker.
    async fn guarded<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if !self.breaker.allows(now_ms()) {
            return Err(StoreError::Unavailable("circuit open".into()));
        }
        let attempt = async {
            let conn = self
                .conn
                .get_or_try_init(|| self.connect())
                .await
                .map_err(unavailable)?
                .clone();
            call(conn).await.map_err(unavailable)
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout),
        };
        match &result {
            Ok(_) => self.breaker.success(),
            Err(_) => self.breaker.failure(now_ms()),
        }
        result
    }

    async fn invoke<T: FromRedisValue>(
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

    async fn query<T: FromRedisValue>(&self, cmd: redis::Pipeline) -> Result<T, StoreError> {
        self.guarded(|conn| async move {
            match conn {
                Conn::Single(mut c) => cmd.query_async(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
            }
        })
        .await
    }

    async fn release_as(
        &self,
        reservation: &Reservation,
        caller: &str,
    ) -> Result<bool, StoreError> {
        let k = SaleKeys::of(reservation.product);
        let mut inv = self.release.prepare_invoke();
        inv.key(&k.stock)
            .key(&k.buyers)
            .key(&k.confirmed)
            .arg(&reservation.uid)
            .arg(&reservation.id)
            .arg(caller);
        let returned: i64 = self.invoke(inv).await?;
        Ok(returned == 1)
    }

    /// Return the unit of a cancelled order (the order backend's release; returns a unit even
    /// when the reservation is confirmed). True the first time only.
    pub async fn release_order(&self, reservation: &Reservation) -> Result<bool, StoreError> {
        self.release_as(reservation, "order").await
    }

    /// Claim `reservation` for an order. False when the reservation no longer holds a unit.
    pub async fn confirm(&self, reservation: &Reservation) -> Result<bool, StoreError> {
        let k = SaleKeys::of(reservation.product);
        let mut inv = self.confirm.prepare_invoke();
        inv.key(&k.buyers)
            .key(&k.confirmed)
            .arg(&reservation.uid)
            .arg(&reservation.id);
        let held: i64 = self.invoke(inv).await?;
        Ok(held == 1)
    }

    /// The stock `flashgate stock load` configured for `product`, if it was loaded.
    pub async fn configured_stock(&self, product: u64) -> Result<Option<u64>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.hget(SaleKeys::of(product).meta, "stock");
        let (stock,): (Option<u64>,) = self.query(pipe).await?;
        Ok(stock)
    }

    /// Rewrite `product`'s stock and buyers: `remaining` units, `holders` as (uid, reservation).
    pub async fn rewrite(
        &self,
        product: u64,
        remaining: u64,
        holders: &[(String, String)],
    ) -> Result<u64, StoreError> {
        let k = SaleKeys::of(product);
        let mut inv = self.reconcile.prepare_invoke();
        inv.key(&k.stock)
            .key(&k.buyers)
            .key(&k.confirmed)
            .arg(remaining);
        for (uid, id) in holders {
            inv.arg(uid).arg(id);
        }
        self.invoke(inv).await
    }

    /// Every buyer of `product` as (uid, reservation).
    pub async fn buyers(&self, product: u64) -> Result<Vec<(String, String)>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.hgetall(SaleKeys::of(product).buyers);
        let (all,): (Vec<(String, String)>,) = self.query(pipe).await?;
        Ok(all)
    }

    /// Seed `product`'s sale with `units`. Refuses a sale that has buyers unless `force`.
    /// Also loads the reserve and release scripts, so the first buy after a seed is one round
    /// trip.
    pub async fn load(&self, product: u64, units: u64, force: bool) -> Result<Load, StoreError> {
        let k = SaleKeys::of(product);
        let mut inv = self.load.prepare_invoke();
        inv.key(&k.stock)
            .key(&k.buyers)
            .key(&k.ledger)
            .key(&k.meta)
            .key(&k.confirmed)
            .arg(units)
            .arg(if force { "1" } else { "0" });
        let answer: (String, u64) = self.invoke(inv).await?;
        for script in [&self.reserve, &self.release, &self.confirm] {
            self.guarded(|conn| async move {
                match conn {
                    Conn::Single(mut c) => script.prepare_invoke().load_async(&mut c).await,
                    Conn::Cluster(mut c) => script.prepare_invoke().load_async(&mut c).await,
                }
            })
            .await?;
        }
        Ok(match answer.0.as_str() {
            "has_buyers" => Load::HasBuyers(answer.1),
            _ => Load::Loaded { dropped: answer.1 },
        })
    }
}

#[async_trait]
impl StockStore for RedisStore {
    async fn reserve(&self, product: u64, uid: &str) -> Result<Reserve, StoreError> {
        let k = SaleKeys::of(product);
        let mut inv = self.reserve.prepare_invoke();
        inv.key(&k.stock)
            .key(&k.buyers)
            .key(&k.ledger)
            .key(&k.seq)
            .arg(uid)
            .arg(product);
        let answer: Vec<String> = self.invoke(inv).await?;
        match answer.first().map(String::as_str) {
            Some("won") => match (answer.get(1), answer.get(2).and_then(|r| r.parse().ok())) {
                (Some(id), Some(remaining)) => Ok(Reserve::Won {
                    reservation: Reservation {
                        id: id.clone(),
                        product,
                        uid: uid.to_string(),
                    },
                    remaining,
                }),
                _ => Err(StoreError::Unavailable(format!(
                    "reserve.lua answered {answer:?}"
                ))),
            },
            Some("sold_out") => Ok(Reserve::SoldOut),
            Some("duplicate") => Ok(Reserve::Duplicate),
            Some("unknown_sale") => Ok(Reserve::UnknownSale),
            _ => Err(StoreError::Unavailable(format!(
                "reserve.lua answered {answer:?}"
            ))),
        }
    }

    async fn release(&self, reservation: &Reservation) -> Result<bool, StoreError> {
        self.release_as(reservation, "edge").await
    }

    async fn stock(&self, product: u64) -> Result<Option<SaleStock>, StoreError> {
        let k = SaleKeys::of(product);
        let mut pipe = redis::pipe();
        pipe.get(&k.stock).hlen(&k.buyers).xlen(&k.ledger);
        let (remaining, buyers, ledger): (Option<i64>, u64, u64) = self.query(pipe).await?;
        Ok(remaining.map(|r| SaleStock {
            remaining: u64::try_from(r).unwrap_or(0),
            buyers,
            ledger,
        }))
    }

    fn kind(&self) -> &'static str {
        match self.target {
            Target::Single(_) => "redis",
            Target::Cluster(_) => "redis-cluster",
        }
    }

    async fn ready(&self) -> bool {
        let mut ping = redis::pipe();
        ping.cmd("PING");
        self.query::<(String,)>(ping).await.is_ok()
    }
}

/// Used captchas: `SET flashgate:{product}:pass:{key} 1 NX PX <ms to expiry>`, one round trip.
/// The key shares the sale's hash tag, so on a Cluster it lives beside the sale's stock.
#[async_trait]
impl SingleUse for RedisStore {
    async fn claim(
        &self,
        product: u64,
        key: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let ttl = expires_ms.saturating_sub(now_ms).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(format!("flashgate:{{{product}}}:pass:{key}"))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl);
        let (set,): (Option<String>,) = self.query(pipe).await?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_sale_share_one_hash_tag() {
        let k = SaleKeys::of(42);
        for key in [
            &k.stock,
            &k.buyers,
            &k.ledger,
            &k.seq,
            &k.meta,
            &k.confirmed,
        ] {
            assert!(key.contains("{42}"), "{key}");
        }
        assert_eq!(k.stock, "flashgate:{42}:stock");
    }
}
