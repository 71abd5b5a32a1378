//! The Redis side of `scope: cluster` limits: one pipeline per rule and sync that adds this
//! edge's new counts (`INCRBY`, with an expiry of two windows) and answers each key's total
//! over all edges (`admission::rate::cluster`).

use redis::pipe;

use super::client::RedisClient;
use crate::stock::keys::rate_count;
use crate::stock::StoreError;

/// What a sync sends for one key: this edge's new requests in `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The rule's key (an address, a UID, or nothing for a global rule).
    pub key: Box<str>,
    /// The window the requests fell in.
    pub window: u64,
    /// How many.
    pub delta: u64,
}

/// Add `pushes` of rule `rule` (windows of `per_ms`) and return each with its total.
pub async fn sync_counts(
    client: &RedisClient,
    rule: &str,
    per_ms: u64,
    pushes: Vec<Push>,
) -> Result<Vec<(Push, u64)>, StoreError> {
    if pushes.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = pipe();
    for push in &pushes {
        let key = rate_count(rule, push.window, &push.key);
        p.cmd("INCRBY").arg(&key).arg(push.delta);
        p.cmd("PEXPIRE").arg(&key).arg(2 * per_ms).ignore();
    }
    let totals: Vec<u64> = client.query(p).await?;
    if totals.len() != pushes.len() {
        return Err(StoreError::Protocol {
            script: "the limit sync pipeline",
            answer: format!("{} totals for {} keys", totals.len(), pushes.len()),
        });
    }
    Ok(pushes.into_iter().zip(totals).collect())
}
