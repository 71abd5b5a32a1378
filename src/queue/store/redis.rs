//! The waiting room in Redis (or a Redis Cluster): `lua/queue_join.lua` per visitor and
//! `lua/queue_tick.lua` per edge every few hundred ms, both on the sale's hash tag. Redis
//! keeps the queue across an edge's restart, so the epoch is fixed (0).

use async_trait::async_trait;
use redis::Script;

use super::{Joined, Pace, QueueState, QueueStore};
use crate::queue::ticket::Place;
use crate::stock::redis::RedisClient;
use crate::stock::{SaleKeys, StoreError};

/// Every sale's queue, in Redis.
pub struct RedisQueue {
    client: RedisClient,
    join: Script,
    tick: Script,
}

impl RedisQueue {
    /// Queues reached through `client`.
    pub fn new(client: RedisClient) -> Self {
        RedisQueue {
            client,
            join: Script::new(include_str!("../../../lua/queue_join.lua")),
            tick: Script::new(include_str!("../../../lua/queue_tick.lua")),
        }
    }
}

fn protocol(script: &'static str, answer: impl std::fmt::Debug) -> StoreError {
    StoreError::Protocol {
        script,
        answer: format!("{answer:?}"),
    }
}

#[async_trait]
impl QueueStore for RedisQueue {
    async fn join(
        &self,
        sale: &SaleKeys,
        uid: &str,
        starts_at_ms: u64,
    ) -> Result<Joined, StoreError> {
        let mut inv = self.join.prepare_invoke();
        inv.key(&sale.queue)
            .key(&sale.queue_members)
            .arg(uid)
            .arg(starts_at_ms);
        let (place, joined_ms): (String, i64) = self.client.invoke(inv).await?;
        let parsed = Place::parse(&place).zip(u64::try_from(joined_ms).ok());
        let (place, joined_ms) = parsed.ok_or_else(|| protocol("queue_join.lua", &place))?;
        Ok(Joined { place, joined_ms })
    }

    async fn tick(&self, sale: &SaleKeys, pace: &Pace) -> Result<QueueState, StoreError> {
        let mut inv = self.tick.prepare_invoke();
        inv.key(&sale.queue)
            .key(&sale.queue_window)
            .key(&sale.stock)
            .key(&sale.buyers)
            .arg(pace.starts_at_ms)
            .arg(pace.admit_per_second)
            .arg(pace.stock_multiple)
            .arg(pace.pass_ttl_ms);
        let v: Vec<i64> = self.client.invoke(inv).await?;
        let [now, pre, post, sealed, admitted, admitted_now, remaining, buyers] = v[..] else {
            return Err(protocol("queue_tick.lua", &v));
        };
        let count = |n: i64| u64::try_from(n).ok();
        let bad = || protocol("queue_tick.lua", &v);
        Ok(QueueState {
            now_ms: count(now).ok_or_else(bad)?,
            pre: count(pre).ok_or_else(bad)?,
            post: count(post).ok_or_else(bad)?,
            sealed: count(sealed),
            admitted: count(admitted).ok_or_else(bad)?,
            admitted_now: count(admitted_now).ok_or_else(bad)?,
            remaining: count(remaining),
            buyers: count(buyers).ok_or_else(bad)?,
        })
    }

    fn epoch(&self) -> u64 {
        0
    }
}
