//! A sale's ledger stream as the order backend's consumer group reads it. `reserve.lua` appends
//! one entry per reservation to `flashgate:{product}:ledger`; the group
//! [`GROUP`] of every `flashgate-orders` instance reads each sale's ledger on its own — one
//! stream per command, so a Cluster routes each to the sale's node and one sale's trouble (a
//! lost group, a failing node) never stops another's. Entries a backend gives up on go to the
//! sale's dead-letter stream (`:ledger:dead`), from which `flashgate-orders reconcile --fix`
//! takes them back.

use std::time::Duration;

use redis::streams::{StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadReply};

use super::client::RedisClient;
use crate::config::Target;
use crate::stock::{Reservation, SaleKeys, StoreError};

/// The consumer group every backend instance joins.
pub const GROUP: &str = "flashgate-orders";

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stream entry id.
    pub id: String,
    /// The reservation it records (`{product}-{entry id}`); None for an entry without the fields
    /// `reserve.lua` writes.
    pub reservation: Option<Reservation>,
    /// Every field as written, for the dead-letter stream.
    pub fields: Vec<(String, String)>,
}

impl Entry {
    fn of(stream: StreamId) -> Entry {
        let text = |name: &str| stream.get::<String>(name);
        let reservation = match (text("uid"), text("product")) {
            (Some(uid), Some(product)) => product.parse::<u64>().ok().map(|product| Reservation {
                // `reserve.lua` names a reservation by its entry's id; entries written before
                // it did carry the id as a field.
                id: text("reservation").unwrap_or_else(|| format!("{product}-{}", stream.id)),
                product,
                uid,
            }),
            _ => None,
        };
        let mut fields: Vec<(String, String)> = stream
            .map
            .keys()
            .filter_map(|k| text(k).map(|v| (k.clone(), v)))
            .collect();
        fields.sort();
        Entry {
            id: stream.id,
            reservation,
            fields,
        }
    }
}

/// Where the next page of [`Ledgers::claim`] starts; `None` when the scan is done.
pub type Cursor = Option<String>;

/// The sale ledgers, as their consumer group reads them.
pub struct Ledgers {
    client: RedisClient,
}

fn entries(reply: Option<StreamReadReply>) -> Vec<Entry> {
    reply
        .map(|r| r.keys)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|key| key.ids)
        .map(Entry::of)
        .collect()
}

impl Ledgers {
    /// Ledgers at `target`, calls bounded by `timeout`. Connects on first use.
    pub fn new(target: Target, timeout: Duration) -> Self {
        Ledgers {
            client: RedisClient::new(target, timeout),
        }
    }

    /// Create the group on `sale`'s ledger (and the stream, if there is none), reading from the
    /// stream's first entry. False when the group was there already.
    pub async fn create_group(&self, sale: &SaleKeys) -> Result<bool, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("XGROUP")
            .arg("CREATE")
            .arg(&sale.ledger)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .ignore();
        match self.client.query::<()>(pipe).await {
            Ok(()) => Ok(true),
            Err(e) if e.redis().is_some_and(|e| answered(e, "BUSYGROUP")) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Entries of `sale` never delivered to any consumer of the group, at most `count`.
    pub async fn read_new(
        &self,
        sale: &SaleKeys,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.read_group(sale, consumer, ">", count).await
    }

    /// Entries of `sale` delivered to `consumer` and not yet acknowledged, after entry id
    /// `after` (`"0"` for the first page), at most `count`.
    pub async fn read_pending(
        &self,
        sale: &SaleKeys,
        consumer: &str,
        after: &str,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.read_group(sale, consumer, after, count).await
    }

    async fn read_group(
        &self,
        sale: &SaleKeys,
        consumer: &str,
        from: &str,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&sale.ledger)
            .arg(from);
        let (reply,): (Option<StreamReadReply>,) = self.client.query(pipe).await?;
        Ok(entries(reply))
    }

    /// Take over up to `count` entries of `sale` that other consumers have left pending for
    /// longer than `idle`, starting at `start` (`"0-0"` for a new scan).
    pub async fn claim(
        &self,
        sale: &SaleKeys,
        consumer: &str,
        idle: Duration,
        start: &str,
        count: usize,
    ) -> Result<(Vec<Entry>, Cursor), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("XAUTOCLAIM")
            .arg(&sale.ledger)
            .arg(GROUP)
            .arg(consumer)
            .arg(u64::try_from(idle.as_millis()).unwrap_or(u64::MAX))
            .arg(start)
            .arg("COUNT")
            .arg(count);
        let (reply,): (StreamAutoClaimReply,) = self.client.query(pipe).await?;
        let next = (reply.next_stream_id != "0-0").then_some(reply.next_stream_id);
        Ok((reply.claimed.into_iter().map(Entry::of).collect(), next))
    }

    /// Acknowledge entry `id` of `sale`: it is done.
    pub async fn ack(&self, sale: &SaleKeys, id: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.xack(&sale.ledger, GROUP, &[id]).ignore();
        self.client.query(pipe).await
    }

    /// Move `entry` of `sale` to the sale's dead-letter stream with the reason `why`, and
    /// acknowledge it. (A crash between the two leaves it in both; taking it back is
    /// idempotent.)
    pub async fn dead_letter(
        &self,
        sale: &SaleKeys,
        entry: &Entry,
        why: &str,
    ) -> Result<(), StoreError> {
        let mut fields = entry.fields.clone();
        if let Some(r) = &entry.reservation {
            // Its id is its ledger entry's id, which the dead-letter entry does not keep.
            fields.retain(|(k, _)| k != "reservation");
            fields.push(("reservation".into(), r.id.clone()));
        }
        fields.push(("error".into(), why.to_string()));
        fields.push(("entry".into(), entry.id.clone()));
        let mut pipe = redis::pipe();
        pipe.xadd(&sale.dead, "*", &fields).ignore();
        self.client.query::<()>(pipe).await?;
        self.ack(sale, &entry.id).await
    }

    /// Every entry of `sale`'s dead-letter stream.
    pub async fn dead(&self, sale: &SaleKeys) -> Result<Vec<Entry>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.xrange_all(&sale.dead);
        let (reply,): (StreamRangeReply,) = self.client.query(pipe).await?;
        Ok(reply.ids.into_iter().map(Entry::of).collect())
    }

    /// Remove entry `id` from `sale`'s dead-letter stream: it is settled.
    pub async fn forget_dead(&self, sale: &SaleKeys, id: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.xdel(&sale.dead, &[id]).ignore();
        self.client.query(pipe).await
    }
}

/// Whether Redis answered with the error `code`, for one command or inside a pipeline (where the
/// redis crate keeps codes it has no name for only in the server errors).
fn answered(e: &redis::RedisError, code: &str) -> bool {
    e.code() == Some(code)
        || e.clone()
            .into_server_errors()
            .is_some_and(|all| all.iter().any(|(_, server)| server.code() == code))
}

impl StoreError {
    /// Whether Redis answered that the consumer group does not exist (the ledger or its group
    /// was lost: data loss, a failover, a stray `DEL`).
    pub fn is_no_group(&self) -> bool {
        self.redis().is_some_and(|e| answered(e, "NOGROUP"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_code_inside_a_pipeline_failure() {
        let server = redis::make_extension_error("NOGROUP".into(), Some("no group".into()));
        assert!(answered(&server, "NOGROUP"));
        assert!(!answered(&server, "BUSYGROUP"));
    }
}
