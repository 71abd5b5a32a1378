//! The ledger consumer: makes the orders the edge's forward never delivered. Every reservation
//! `reserve.lua` makes is appended to its sale's ledger stream; if the edge dies between the
//! reservation and the forward, or the origin was down, only the ledger knows the winner.
//!
//! One Redis Streams consumer group (`flashgate-orders`) over every sale's ledger, shared by all
//! backend instances. Each entry is placed as an order (idempotent: an order the forward made is
//! found and left alone; a released reservation makes none) and XACKed after the database
//! commit. Entries pending on a consumer that died are claimed with XAUTOCLAIM after
//! `claim_idle`. An entry that fails `max_deliveries` times is moved to the sale's dead-letter
//! stream (`flashgate:{product}:ledger:dead`) and counted in
//! `flashgate_orders_dead_letters_total`.
//!
//! Sales are discovered by their `flashgate:{product}:meta` key, written by
//! `flashgate stock load`, so a sale loaded after the backend started is picked up too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisError};

use super::model::Source;
use super::service::Orders;
use crate::stock::Reservation;
use crate::stock::SaleKeys;

/// The consumer group every backend instance joins.
pub const GROUP: &str = "flashgate-orders";

/// Ledger consumer settings.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// Redis URL.
    pub redis_url: String,
    /// This consumer's name in the group (unique per running instance).
    pub consumer: String,
    /// Failed deliveries before an entry goes to the dead-letter stream.
    pub max_deliveries: u32,
    /// Idle time after which another consumer's pending entry is claimed.
    pub claim_idle: Duration,
}

/// How often sales are looked for, own pending entries retried, and dead consumers' claimed.
const DISCOVER_EVERY: Duration = Duration::from_secs(2);
const RETRY_EVERY: Duration = Duration::from_secs(1);
const BLOCK_MS: usize = 500;

struct Consumer {
    orders: Arc<Orders>,
    settings: LedgerSettings,
    conn: ConnectionManager,
    ledgers: Vec<String>,
    attempts: HashMap<String, u32>,
}

/// Run the consumer until the process ends. Errors are logged and retried; it never returns
/// unless Redis cannot even be addressed.
pub async fn run(orders: Arc<Orders>, settings: LedgerSettings) -> Result<(), RedisError> {
    let client = redis::Client::open(settings.redis_url.as_str())?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(
            Duration::from_millis(BLOCK_MS as u64) + Duration::from_secs(5),
        ))
        .set_connection_timeout(Some(Duration::from_secs(2)));
    let conn = ConnectionManager::new_lazy_with_config(client, config)?;
    let mut consumer = Consumer {
        orders,
        settings,
        conn,
        ledgers: Vec::new(),
        attempts: HashMap::new(),
    };
    let mut discovered = Instant::now() - DISCOVER_EVERY;
    let mut retried = Instant::now();
    let mut claimed = Instant::now();
    loop {
        let round = async {
            if discovered.elapsed() >= DISCOVER_EVERY {
                consumer.discover().await?;
                discovered = Instant::now();
            }
            if consumer.ledgers.is_empty() {
                tokio::time::sleep(Duration::from_millis(BLOCK_MS as u64)).await;
                return Ok(());
            }
            if retried.elapsed() >= RETRY_EVERY {
                consumer.read("0", None).await?;
                retried = Instant::now();
            }
            if claimed.elapsed() >= consumer.settings.claim_idle.min(Duration::from_secs(10)) {
                consumer.claim().await?;
                claimed = Instant::now();
            }
            consumer.read(">", Some(BLOCK_MS)).await
        };
        if let Err(e) = round.await {
            tracing::warn!("ledger consumer: {e}; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Consumer {
    /// Find every sale's ledger and make sure the group exists on it.
    async fn discover(&mut self) -> Result<(), RedisError> {
        let mut cursor = 0u64;
        let mut found = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("flashgate:{*}:meta")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.conn)
                .await?;
            found.extend(keys.iter().filter_map(|k| product_of(k)));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for product in found {
            let ledger = SaleKeys::of(product).ledger;
            if self.ledgers.contains(&ledger) {
                continue;
            }
            let created: Result<(), RedisError> =
                self.conn.xgroup_create_mkstream(&ledger, GROUP, "0").await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e),
            }
            tracing::info!(%ledger, "consuming sale ledger");
            self.ledgers.push(ledger);
        }
        Ok(())
    }

    /// Read entries from every ledger: `">"` for new ones, `"0"` for this consumer's pending.
    async fn read(&mut self, from: &str, block: Option<usize>) -> Result<(), RedisError> {
        let mut options = StreamReadOptions::default()
            .group(GROUP, &self.settings.consumer)
            .count(100);
        if let Some(ms) = block {
            options = options.block(ms);
        }
        let ids: Vec<&str> = self.ledgers.iter().map(|_| from).collect();
        let reply: Option<StreamReadReply> = self
            .conn
            .xread_options(&self.ledgers, &ids, &options)
            .await?;
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in stream.ids {
                self.handle(&stream.key, entry).await?;
            }
        }
        Ok(())
    }

    /// Take over entries another consumer left pending longer than `claim_idle`.
    async fn claim(&mut self) -> Result<(), RedisError> {
        let idle = self.settings.claim_idle.as_millis() as u64;
        for ledger in self.ledgers.clone() {
            let reply: StreamAutoClaimReply = self
                .conn
                .xautoclaim_options(
                    &ledger,
                    GROUP,
                    &self.settings.consumer,
                    idle,
                    "0-0",
                    StreamAutoClaimOptions::default().count(100),
                )
                .await?;
            for entry in reply.claimed {
                self.handle(&ledger, entry).await?;
            }
        }
        Ok(())
    }

    /// Place one entry's order; ack it when done, dead-letter it when it keeps failing.
    async fn handle(&mut self, ledger: &str, entry: StreamId) -> Result<(), RedisError> {
        let reservation = match reservation_of(&entry) {
            Some(r) => r,
            None => return self.dead_letter(ledger, &entry, "malformed entry").await,
        };
        match self.orders.place(&reservation, Source::Ledger).await {
            Ok(_) => {
                self.attempts.remove(&entry.id);
                let _: i64 = self.conn.xack(ledger, GROUP, &[&entry.id]).await?;
                Ok(())
            }
            Err(e) => {
                let tries = self.attempts.entry(entry.id.clone()).or_insert(0);
                *tries += 1;
                tracing::warn!(entry = %entry.id, tries = *tries, "ledger entry failed: {e}");
                if *tries >= self.settings.max_deliveries {
                    self.dead_letter(ledger, &entry, &e.to_string()).await
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn dead_letter(
        &mut self,
        ledger: &str,
        entry: &StreamId,
        why: &str,
    ) -> Result<(), RedisError> {
        let mut fields: Vec<(String, String)> = entry
            .map
            .keys()
            .filter_map(|k| entry.get::<String>(k).map(|v| (k.clone(), v)))
            .collect();
        fields.push(("error".into(), why.to_string()));
        fields.push(("entry".into(), entry.id.clone()));
        let dead = format!("{ledger}:dead");
        let _: String = self.conn.xadd(&dead, "*", &fields).await?;
        let _: i64 = self.conn.xack(ledger, GROUP, &[&entry.id]).await?;
        self.attempts.remove(&entry.id);
        self.orders.metrics.dead_letters.inc();
        tracing::error!(entry = %entry.id, %dead, "ledger entry moved to the dead-letter stream: {why}");
        Ok(())
    }
}

/// The product of a `flashgate:{product}:meta` key.
fn product_of(key: &str) -> Option<u64> {
    key.strip_prefix("flashgate:{")?
        .strip_suffix("}:meta")?
        .parse()
        .ok()
}

fn reservation_of(entry: &StreamId) -> Option<Reservation> {
    Some(Reservation {
        id: entry.get("reservation")?,
        uid: entry.get("uid")?,
        product: entry.get::<String>("product")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_product_of_a_meta_key() {
        assert_eq!(product_of("flashgate:{42}:meta"), Some(42));
        assert_eq!(product_of("flashgate:{x}:meta"), None);
        assert_eq!(product_of("other:{42}:meta"), None);
    }
}
