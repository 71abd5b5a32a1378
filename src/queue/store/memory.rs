//! The embedded store's queues: one [`Frontier`] and one UID → place map per sale, behind one
//! std mutex (nothing is awaited while it is held). The stock is read from the embedded stock
//! store at each tick. Nothing here is journaled (see the parent module).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::frontier::{Frontier, Pace};
use super::{Joined, QueueState, QueueStore};
use crate::ground::clock::now_ms;
use crate::queue::ticket::{Kind, Place};
use crate::stock::{SaleKeys, StockStore, StoreError};

#[derive(Default)]
struct SaleQueue {
    frontier: Frontier,
    members: HashMap<String, Joined>,
}

/// Every sale's queue, in the process.
pub struct MemoryQueue {
    stock: Arc<dyn StockStore>,
    sales: Mutex<HashMap<u64, SaleQueue>>,
    epoch: u64,
}

impl MemoryQueue {
    /// Queues whose stock is `stock`'s.
    pub fn new(stock: Arc<dyn StockStore>) -> Self {
        MemoryQueue {
            stock,
            sales: Mutex::default(),
            // A new queue per process: the start time tells them apart.
            epoch: now_ms(),
        }
    }
}

#[async_trait]
impl QueueStore for MemoryQueue {
    async fn join(
        &self,
        sale: &SaleKeys,
        uid: &str,
        starts_at_ms: u64,
    ) -> Result<Joined, StoreError> {
        let now = now_ms();
        let mut sales = self.sales.lock();
        let q = sales.entry(sale.product).or_default();
        if let Some(joined) = q.members.get(uid) {
            return Ok(*joined);
        }
        q.frontier.seal(now, starts_at_ms);
        let place = if q.frontier.sealed.is_none() {
            q.frontier.pre += 1;
            Place {
                kind: Kind::Pre,
                number: q.frontier.pre,
            }
        } else {
            q.frontier.post += 1;
            Place {
                kind: Kind::Post,
                number: q.frontier.post,
            }
        };
        let joined = Joined {
            place,
            joined_ms: now,
        };
        q.members.insert(uid.to_string(), joined);
        Ok(joined)
    }

    async fn tick(&self, sale: &SaleKeys, pace: &Pace) -> Result<QueueState, StoreError> {
        let stock = self.stock.stock(sale).await?;
        let (remaining, buyers) = stock.map_or((None, 0), |s| (Some(s.remaining), s.buyers));
        let now = now_ms();
        let mut sales = self.sales.lock();
        let q = sales.entry(sale.product).or_default();
        let admitted_now = q
            .frontier
            .advance(now, pace, remaining.unwrap_or(0), buyers);
        let f = &q.frontier;
        Ok(QueueState {
            now_ms: now,
            pre: f.pre,
            post: f.post,
            sealed: f.sealed,
            admitted: f.admitted,
            admitted_now,
            remaining,
            buyers,
        })
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }
}
