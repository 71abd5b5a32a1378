//! Stock: the one place a unit changes hands. [`StockStore::reserve`] is atomic per sale — it
//! checks that the sale exists, that the user holds no unit, and that a unit is left, and only
//! then takes the unit, records the buyer and appends the reservation to the sale's ledger.
//! Checks come before the decrement, never after, so stock never goes below zero even for an
//! instant. [`StockStore::release`] gives a unit back exactly once however often it is called.
//!
//! Implementations: [`memory::MemoryStore`] (embedded, one machine) and [`redis::RedisStore`]
//! (Redis or Redis Cluster, shared by many edges). Every implementation must pass [`suite`], the
//! one behaviour suite.
//!
//! [`single_use::SingleUse`], a small trait of its own, remembers which captchas were used; the
//! memory set and the Redis store implement it.

pub mod breaker;
pub mod journal;
pub mod memory;
pub mod redis;
pub mod single_use;
pub mod suite;

use async_trait::async_trait;

/// One unit held for one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reservation {
    /// Unique id of the reservation (unique per store, across sales).
    pub id: String,
    /// The product.
    pub product: u64,
    /// The buyer.
    pub uid: String,
}

/// The answer of [`StockStore::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserve {
    /// A unit is held for the user.
    Won {
        /// The reservation.
        reservation: Reservation,
        /// Units left after this one.
        remaining: u64,
    },
    /// No unit left.
    SoldOut,
    /// The user already holds a unit of this sale.
    Duplicate,
    /// The store has no such sale.
    UnknownSale,
}

/// The store could not answer; the caller must not assume anything about the stock.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer in time.
    #[error("stock store timed out")]
    Timeout,
    /// The store is unreachable or failing.
    #[error("stock store unavailable: {0}")]
    Unavailable(String),
}

/// A sale's state as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleStock {
    /// Units left.
    pub remaining: u64,
    /// Users holding a unit.
    pub buyers: u64,
    /// Reservations ever made (the ledger's length).
    pub ledger: u64,
}

/// Where stock lives.
#[async_trait]
pub trait StockStore: Send + Sync + 'static {
    /// Take one unit of `product`'s sale for `uid`, atomically.
    async fn reserve(&self, product: u64, uid: &str) -> Result<Reserve, StoreError>;

    /// Give the unit of `reservation` back. Returns whether a unit was returned: true the first
    /// time, false on every later call with the same reservation.
    async fn release(&self, reservation: &Reservation) -> Result<bool, StoreError>;

    /// The sale's state, or None if the store has no such sale.
    async fn stock(&self, product: u64) -> Result<Option<SaleStock>, StoreError>;

    /// Units left, or None if the store has no such sale.
    async fn remaining(&self, product: u64) -> Result<Option<u64>, StoreError> {
        Ok(self.stock(product).await?.map(|s| s.remaining))
    }

    /// A short name for logs and `check`.
    fn kind(&self) -> &'static str;

    /// Whether the store can take reservations now (for `/readyz`).
    async fn ready(&self) -> bool {
        true
    }
}
