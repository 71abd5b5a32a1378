//! `sales[].queue:` — a sale's waiting room: how visitors are ordered (`fifo`, or `shuffle` for
//! everyone who joined during the pre-queue), how long before the start they may join, how many
//! are let through per second, how long a let-through visitor may buy, and how many passes may
//! be out at once per unit left. Read as written (`schema::FileQueue`) and resolved into
//! [`QueueSettings`] with every error placed at its line and column.

use std::time::Duration;

use super::context::Reading;
use super::error::ConfigError;
use super::schema::{FileQueue, QueueMode};

/// A sale's waiting room, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// How places are given.
    pub mode: QueueMode,
    /// How long before `starts_at` visitors may join (default 10 minutes).
    pub prequeue: Duration,
    /// Visitors let through per second, all edges together.
    pub admit_per_second: u64,
    /// How long a let-through visitor's pass is good for (default 2 minutes).
    pub pass_ttl: Duration,
    /// At most this many unexpired, unused passes per unit left (default 2).
    pub stock_multiple: u64,
}

/// Default `prequeue`.
pub const DEFAULT_PREQUEUE: Duration = Duration::from_secs(600);
/// Default `pass_ttl`.
pub const DEFAULT_PASS_TTL: Duration = Duration::from_secs(120);
/// Default `stock_multiple`.
pub const DEFAULT_STOCK_MULTIPLE: u64 = 2;
/// The largest `admit_per_second`: far above any sale, small enough that the admission
/// arithmetic (doubles in the Redis script) stays exact.
pub const MAX_ADMIT_PER_SECOND: u64 = 1_000_000;

/// Resolve `sales[index].queue`.
pub(crate) fn resolve(
    cx: &Reading,
    index: usize,
    q: &FileQueue,
) -> Result<QueueSettings, ConfigError> {
    let at = |key: &str| format!("sales[{index}].queue.{key}");
    if q.admit_per_second == 0 || q.admit_per_second > MAX_ADMIT_PER_SECOND {
        return Err(cx.err(
            &at("admit_per_second"),
            format!("admit_per_second must be from 1 to {MAX_ADMIT_PER_SECOND}"),
        ));
    }
    let pass_ttl = q.pass_ttl.map_or(DEFAULT_PASS_TTL, |d| d.0);
    if pass_ttl < Duration::from_secs(1) {
        return Err(cx.err(&at("pass_ttl"), "pass_ttl must be at least 1s"));
    }
    let stock_multiple = q.stock_multiple.unwrap_or(DEFAULT_STOCK_MULTIPLE);
    if stock_multiple == 0 || stock_multiple > 1000 {
        return Err(cx.err(
            &at("stock_multiple"),
            "stock_multiple must be from 1 to 1000",
        ));
    }
    let prequeue = q.prequeue.map_or(DEFAULT_PREQUEUE, |d| d.0);
    if prequeue > Duration::from_secs(7 * 24 * 3600) {
        return Err(cx.err(&at("prequeue"), "prequeue must be at most 7 days"));
    }
    Ok(QueueSettings {
        mode: q.mode,
        prequeue,
        admit_per_second: q.admit_per_second,
        pass_ttl,
        stock_multiple,
    })
}
