//! The Redis stock store: several edge nodes share one sale's stock through Redis or a Redis
//! Cluster. A reservation is one `EVALSHA` of `lua/reserve.lua` — one round trip, atomic in
//! Redis — and a release one `EVALSHA` of `lua/release.lua`; those scripts (and the ones
//! [`sales::RedisSales`] runs for `flashgate stock load` and the order backend) are the only code
//! that changes stock in Redis. The redis crate's `Script` re-sends a script Redis has forgotten
//! (restart, failover, `SCRIPT FLUSH`) on its own, so a `NOSCRIPT` never reaches a buyer. Key
//! names come from [`SaleKeys`], built once per sale.
//!
//! - [`RedisStore`]: what the edge does — reserve, release, read the stock, claim a captcha.
//! - [`sales::RedisSales`]: everything else on a sale's keys — seeding it (`stock load`), and the
//!   order backend's side of the protocol (confirm, release of an order's unit, reconcile).
//! - [`ledger::Ledgers`]: the sale ledgers as the order backend's consumer group reads them.
//! - [`client::RedisClient`]: the guarded, time-bounded connection all of them use.
//!
//! A reserve that was sent and never answered ([`StoreError::Unanswered`]) may still run in
//! Redis, even long after (a partition that heals). Each reserve carries its [`Attempt`]: the
//! buyer is told `202 pending` with that attempt's status URL, and asking it runs
//! `lua/fence.lua`, which either finds the unit the attempt took or fences the attempt so that
//! `lua/reserve.lua` refuses it should it still arrive. A unit an unanswered reserve took stays
//! with that user, recorded in the sale's ledger, and the order backend's ledger consumer turns
//! it into an order (or its payment timeout returns it): never an oversell, never a buyer told
//! "try again" who holds an order. The same consumer settles a forward whose outcome the edge
//! cannot know ([`SettledBy::Ledger`]).

internal!(mod client);
pub mod ledger;
internal!(mod limits);
pub mod sales;

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::attempt::ATTEMPT_TTL;
use super::single_use::SingleUse;
use super::{
    Attempt, Holding, Reservation, Reserve, SaleKeys, SaleStock, SettledBy, StockStore, StoreError,
};
use crate::config::{ReplicaWait, Target};
pub use client::RedisClient;

/// The edge's stock in Redis.
pub struct RedisStore {
    client: RedisClient,
    reserve: Script,
    release: Script,
    discard: Script,
    fence: Script,
    /// `store.wait`: replicas that must acknowledge each reservation.
    wait: Option<ReplicaWait>,
}

impl RedisStore {
    /// A store for `target` whose calls each take at most `timeout`. Connects on first use.
    pub fn new(target: Target, timeout: Duration) -> Self {
        RedisStore {
            client: RedisClient::new(target, timeout),
            reserve: Script::new(include_str!("../../../lua/reserve.lua")),
            release: Script::new(include_str!("../../../lua/release.lua")),
            discard: Script::new(include_str!("../../../lua/discard.lua")),
            fence: Script::new(include_str!("../../../lua/fence.lua")),
            wait: None,
        }
    }

    /// The same store, waiting for `wait`'s replicas to acknowledge each reservation
    /// (`store.wait`): a reservation they do not acknowledge in time is
    /// [`Reserve::Unacknowledged`].
    pub fn waiting(mut self, wait: Option<ReplicaWait>) -> Self {
        self.wait = wait;
        self
    }
}

/// `discard.lua` for `reservation`, as `caller` (`edge` or `order`; see the script).
pub(super) fn discard_invocation<'a>(
    script: &'a Script,
    sale: &SaleKeys,
    reservation: &Reservation,
    caller: &str,
) -> redis::ScriptInvocation<'a> {
    unit_invocation(
        script,
        [&sale.buyers, &sale.confirmed, &sale.meta],
        reservation,
        caller,
    )
}

/// `release.lua` for `reservation`, as `caller` (`edge` or `order`; see the script).
pub(super) fn release_invocation<'a>(
    script: &'a Script,
    sale: &SaleKeys,
    reservation: &Reservation,
    caller: &str,
) -> redis::ScriptInvocation<'a> {
    unit_invocation(
        script,
        [&sale.stock, &sale.buyers, &sale.confirmed],
        reservation,
        caller,
    )
}

/// A script over one reservation's unit: `keys`, then uid, reservation id and `caller`.
fn unit_invocation<'a>(
    script: &'a Script,
    keys: [&String; 3],
    reservation: &Reservation,
    caller: &str,
) -> redis::ScriptInvocation<'a> {
    let mut inv = script.prepare_invoke();
    for key in keys {
        inv.key(key);
    }
    inv.arg(&reservation.uid).arg(&reservation.id).arg(caller);
    inv
}

/// Units left, buyers and ledger length of `sale`, if it exists: one pipelined round trip.
pub(super) async fn read_stock(
    client: &RedisClient,
    sale: &SaleKeys,
) -> Result<Option<SaleStock>, StoreError> {
    let mut pipe = redis::pipe();
    pipe.get(&sale.stock).hlen(&sale.buyers).xlen(&sale.ledger);
    let (remaining, buyers, ledger): (Option<i64>, u64, u64) = client.query(pipe).await?;
    Ok(remaining.map(|r| SaleStock {
        remaining: u64::try_from(r).unwrap_or(0),
        buyers,
        ledger,
    }))
}

/// `reserve.lua`'s answer, read from the reply as it is: the outcome compared as bytes, only the
/// winner's reservation id made into a `String`.
enum ReserveReply {
    Won { id: String, remaining: u64 },
    SoldOut,
    Duplicate(Holding),
    UnknownSale,
    Fenced,
}

/// A reservation id and whether an order holds it (`confirmed`), as two script reply items.
fn held(id: &redis::Value, confirmed: &redis::Value) -> Option<Holding> {
    use redis::Value;
    let Value::BulkString(id) = id else {
        return None;
    };
    let id = String::from_utf8(id.clone()).ok()?;
    match confirmed {
        Value::Int(1) => Some(Holding::Won(id)),
        Value::Int(0) => Some(Holding::Pending(id)),
        _ => None,
    }
}

impl redis::FromRedisValue for ReserveReply {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        use redis::Value;
        let unexpected =
            |v: &Value| redis::ParsingError::from(format!("reserve.lua answered {v:?}"));
        let Value::Array(items) = &v else {
            return Err(unexpected(&v));
        };
        let outcome = match items.first() {
            Some(Value::BulkString(b)) => b.as_slice(),
            Some(Value::SimpleString(s)) => s.as_bytes(),
            _ => return Err(unexpected(&v)),
        };
        match (outcome, &items[1..]) {
            (b"won", [Value::BulkString(id), Value::Int(remaining)]) => Ok(ReserveReply::Won {
                id: String::from_utf8(id.clone()).map_err(|_| unexpected(&v))?,
                remaining: u64::try_from(*remaining).map_err(|_| unexpected(&v))?,
            }),
            (b"sold_out", []) => Ok(ReserveReply::SoldOut),
            (b"duplicate", [id, confirmed]) => held(id, confirmed)
                .map(ReserveReply::Duplicate)
                .ok_or_else(|| unexpected(&v)),
            (b"unknown_sale", []) => Ok(ReserveReply::UnknownSale),
            (b"fenced", []) => Ok(ReserveReply::Fenced),
            _ => Err(unexpected(&v)),
        }
    }
}

/// `fence.lua`'s answer.
struct FenceReply(Holding);

impl redis::FromRedisValue for FenceReply {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        use redis::Value;
        let unexpected = |v: &Value| redis::ParsingError::from(format!("fence.lua answered {v:?}"));
        let Value::Array(items) = &v else {
            return Err(unexpected(&v));
        };
        match items.as_slice() {
            [Value::BulkString(tag), id, confirmed] if tag.as_slice() == b"held" => {
                held(id, confirmed)
                    .map(FenceReply)
                    .ok_or_else(|| unexpected(&v))
            }
            [Value::BulkString(tag)] if tag.as_slice() == b"nothing" => {
                Ok(FenceReply(Holding::Nothing))
            }
            _ => Err(unexpected(&v)),
        }
    }
}

#[async_trait]
impl StockStore for RedisStore {
    async fn reserve(
        &self,
        sale: &SaleKeys,
        uid: &str,
        attempt: &Attempt,
    ) -> Result<Reserve, StoreError> {
        let mut inv = self.reserve.prepare_invoke();
        inv.key(&sale.stock)
            .key(&sale.buyers)
            .key(&sale.ledger)
            .key(&sale.confirmed)
            .key(sale.attempt(attempt.as_str()))
            .arg(uid)
            .arg(sale.product)
            .arg(ATTEMPT_TTL.as_millis() as u64);
        let answer: ReserveReply = self.client.invoke(inv).await?;
        Ok(match answer {
            ReserveReply::Won { id, remaining } => {
                let reservation = Reservation {
                    id,
                    product: sale.product,
                    uid: uid.to_string(),
                };
                if let Some(wait) = self.wait {
                    // On the connection (and node) that ran the script, so the replicas'
                    // acknowledgement covers this reservation. An error here leaves the unit
                    // held and in the ledger, like a reserve that timed out.
                    let acked = self
                        .client
                        .wait_for_replicas(&sale.stock, wait.replicas, wait.timeout)
                        .await;
                    if !matches!(acked, Ok(n) if n >= wait.replicas) {
                        return Ok(Reserve::Unacknowledged { reservation });
                    }
                }
                Reserve::Won {
                    reservation,
                    remaining,
                }
            }
            ReserveReply::SoldOut => Reserve::SoldOut,
            ReserveReply::Duplicate(holding) => Reserve::Duplicate(holding),
            ReserveReply::UnknownSale => Reserve::UnknownSale,
            ReserveReply::Fenced => Reserve::Fenced,
        })
    }

    /// One `EVALSHA` of `lua/fence.lua`: the holding, or the attempt fenced.
    async fn fence(
        &self,
        sale: &SaleKeys,
        uid: &str,
        attempt: &Attempt,
    ) -> Result<Holding, StoreError> {
        let mut inv = self.fence.prepare_invoke();
        inv.key(&sale.buyers)
            .key(&sale.confirmed)
            .key(sale.attempt(attempt.as_str()))
            .arg(uid)
            .arg(ATTEMPT_TTL.as_millis() as u64);
        let answer: FenceReply = self.client.invoke(inv).await?;
        Ok(answer.0)
    }

    async fn release(
        &self,
        sale: &SaleKeys,
        reservation: &Reservation,
    ) -> Result<bool, StoreError> {
        let inv = release_invocation(&self.release, sale, reservation, "edge");
        let returned: i64 = self.client.invoke(inv).await?;
        Ok(returned == 1)
    }

    async fn discard(
        &self,
        sale: &SaleKeys,
        reservation: &Reservation,
    ) -> Result<bool, StoreError> {
        let inv = discard_invocation(&self.discard, sale, reservation, "edge");
        let discarded: i64 = self.client.invoke(inv).await?;
        Ok(discarded == 1)
    }

    /// The reservation `uid` holds and whether the order backend confirmed it (an order holds
    /// it, or is being written): two reads. Not atomic, and needs not be: a confirmation is
    /// never taken back while the reservation is held.
    async fn holding(&self, sale: &SaleKeys, uid: &str) -> Result<Holding, StoreError> {
        let mut pipe = redis::pipe();
        pipe.hget(&sale.buyers, uid);
        let (held,): (Option<String>,) = self.client.query(pipe).await?;
        let Some(id) = held else {
            return Ok(Holding::Nothing);
        };
        let mut pipe = redis::pipe();
        pipe.sismember(&sale.confirmed, &id);
        let (confirmed,): (bool,) = self.client.query(pipe).await?;
        Ok(if confirmed {
            Holding::Won(id)
        } else {
            Holding::Pending(id)
        })
    }

    /// Nothing to record: the order backend confirms the reservation itself
    /// (`lua/confirm.lua`) before it writes the order.
    async fn keep(&self, _sale: &SaleKeys, _reservation: &Reservation) -> Result<(), StoreError> {
        Ok(())
    }

    async fn stock(&self, sale: &SaleKeys) -> Result<Option<SaleStock>, StoreError> {
        read_stock(&self.client, sale).await
    }

    fn settled_by(&self) -> SettledBy {
        SettledBy::Ledger
    }

    fn kind(&self) -> &'static str {
        match self.client.target() {
            Target::Single(_) => "redis",
            Target::Cluster(_) => "redis-cluster",
            Target::Sentinel { .. } => "redis-sentinel",
        }
    }

    async fn ready(&self) -> bool {
        self.client.ping().await
    }

    async fn warm_up(&self) -> Result<(), StoreError> {
        self.client.load_script(&self.reserve).await?;
        self.client.load_script(&self.release).await?;
        self.client.load_script(&self.fence).await?;
        self.client.load_script(&self.discard).await
    }
}

/// Used captchas: `SET flashgate:{product}:pass:{key} 1 NX PX <ms to expiry>`, one round trip.
/// The key shares the sale's hash tag, so on a Cluster it lives beside the sale's stock.
#[async_trait]
impl SingleUse for RedisStore {
    async fn claim(
        &self,
        sale: &SaleKeys,
        key: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let ttl = expires_ms.saturating_sub(now_ms).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(sale.pass(key))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl);
        let (set,): (Option<String>,) = self.client.query(pipe).await?;
        Ok(set.is_some())
    }
}
