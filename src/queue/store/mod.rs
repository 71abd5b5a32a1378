//! The waiting room's shared state: per sale, the join counters (one for the pre-queue, one
//! after the start), the map UID → place that makes a second join return the same place, and
//! the admission frontier ([`frontier`]). [`QueueStore::join`] and [`QueueStore::tick`] are the
//! only calls: a visitor costs one join; polls cost nothing (each edge answers them from what
//! its ticks learned, `queue::view`).
//!
//! - [`memory::MemoryQueue`]: in the process, for the embedded store. Not journaled: a restart
//!   begins a new queue (a new [`QueueStore::epoch`], so older tickets no longer verify and
//!   their holders join again). The stock itself is journaled as always.
//! - [`redis::RedisQueue`]: `lua/queue_join.lua` and `lua/queue_tick.lua` on the sale's hash tag
//!   (cluster-safe), deciding pre-queue or not and pacing admissions by Redis's clock
//!   (`TIME`), so the edges' clocks do not matter and several edges share one queue.

internal!(mod frontier);
internal!(mod memory);
internal!(mod redis);

use async_trait::async_trait;

use crate::queue::ticket::Place;
use crate::stock::{SaleKeys, StoreError};
pub use frontier::Pace;

/// A visitor's place, as the store recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// The place.
    pub place: Place,
    /// When the store recorded the first join (its clock).
    pub joined_ms: u64,
}

/// A sale's queue as one tick left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// The store's clock, ms since the epoch.
    pub now_ms: u64,
    /// Joins during the pre-queue so far.
    pub pre: u64,
    /// Joins after the start.
    pub post: u64,
    /// The pre-queue's final count, once sealed at the start.
    pub sealed: Option<u64>,
    /// The frontier: every place up to this one was let through.
    pub admitted: u64,
    /// Places this tick let through.
    pub admitted_now: u64,
    /// Units left (None: the store has no such sale).
    pub remaining: Option<u64>,
    /// Buyers so far.
    pub buyers: u64,
}

/// Where a sale's queue lives.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Join `uid` to `sale`'s queue starting at `starts_at_ms`, or find the place it holds.
    async fn join(
        &self,
        sale: &SaleKeys,
        uid: &str,
        starts_at_ms: u64,
    ) -> Result<Joined, StoreError>;

    /// Advance the frontier at `pace` and read the queue.
    async fn tick(&self, sale: &SaleKeys, pace: &Pace) -> Result<QueueState, StoreError>;

    /// Which queue this is: bound into tickets, so a ticket of a forgotten queue does not
    /// verify.
    fn epoch(&self) -> u64;
}
