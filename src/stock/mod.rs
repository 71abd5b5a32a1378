//! Stock: the one place a unit changes hands. [`StockStore::reserve`] is atomic per sale — it
//! checks that the sale exists, that the user holds no unit, and that a unit is left, and only
//! then takes the unit, records the buyer and appends the reservation to the sale's ledger.
//! Checks come before the decrement, never after, so stock never goes below zero even for an
//! instant. [`StockStore::release`] gives a unit back exactly once however often it is called.
//!
//! Implementations: [`memory::MemoryStore`] (embedded, one machine, durable with a
//! [`journal`] under `store.path`) and [`redis::RedisStore`] (Redis or Redis Cluster, shared by
//! many edges). Every implementation passes the one behaviour suite (`tests/common/suite.rs`).
//!
//! A forward whose outcome the edge cannot know (the origin was reached, then failed) is settled
//! differently per store, as [`StockStore::settled_by`] says: on Redis by the order backend's
//! ledger consumer, on the embedded store by the edge asking the origin (`checkout::settle`).
//!
//! [`keys::SaleKeys`] names a sale's state in a store; [`single_use::SingleUse`], a small trait
//! of its own, remembers which captchas were used.

internal!(mod attempt);
internal!(mod breaker);
internal!(mod journal);
internal!(mod keys);
internal!(mod memory);
pub mod redis;
internal!(mod single_use);

use std::time::Duration;

use async_trait::async_trait;

pub use attempt::Attempt;
pub use keys::SaleKeys;

/// One unit held for one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reservation {
    /// Unique id of the reservation: never given twice by a store, across sales and restarts.
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
    /// A unit is held for the user, but fewer replicas than `store.wait.replicas` acknowledged
    /// the write within `store.wait.timeout` (Redis `WAIT`): a failover now could lose it. It
    /// is not forwarded; it is in the sale's ledger like any reservation, so the order
    /// backend's ledger consumer makes its order if it survives, and the buyer learns which
    /// from the status URL (`202 pending`).
    Unacknowledged {
        /// The reservation.
        reservation: Reservation,
    },
    /// No unit left.
    SoldOut,
    /// The user already holds a unit of this sale: what they hold ([`Holding::Pending`] or
    /// [`Holding::Won`]).
    Duplicate(Holding),
    /// The store has no such sale.
    UnknownSale,
    /// This attempt takes nothing, ever: its status URL was asked first and fenced it
    /// ([`StockStore::fence`]), or it took a unit that has since gone back. Nothing was taken.
    Fenced,
}

/// The store could not answer; the caller must not assume anything about the stock.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer in time.
    #[error("stock store timed out after {0:?}")]
    Timeout(Duration),
    /// The call was sent and no answer came (a timeout, a connection broken after the write):
    /// it may have run in the store. A reserve that ends so may hold a unit
    /// ([`StockStore::fence`] settles it); every other failure says the call did not run.
    #[error("sent, and no answer came: {0}")]
    Unanswered(Box<StoreError>),
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis failed repeatedly; calls fail at once until the breaker lets one through.
    #[error("redis circuit open after repeated failures")]
    CircuitOpen,
    /// A script answered something it never answers.
    #[error("{script} answered {answer}")]
    Protocol {
        /// The script.
        script: &'static str,
        /// What it answered.
        answer: String,
    },
    /// The embedded store's journal reads well but describes an impossible sale (a unit beyond
    /// the stock, a second unit for one user, a reservation of a sale it never created).
    #[error("the journal describes an impossible sale: {0}; it was not written by this store")]
    Inconsistent(String),
    /// The embedded store's journal cannot record the change.
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
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

/// What one user holds of one sale, as the store knows it: the answer to "did I win?" for a
/// buyer whose forward ended without a definite answer (`202 pending`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// No unit: never reserved, or its forward ended without an order and the unit went back.
    Nothing,
    /// A unit is held and nobody knows yet whether an order holds it: its forward is in
    /// flight, or waits to be settled (the ledger consumer on Redis, the edge asking the
    /// origin on the embedded store).
    Pending(String),
    /// An order holds the unit: on Redis the order backend confirmed it, on the embedded store
    /// the origin answered `2xx` (or said it holds the order).
    Won(String),
}

/// Who settles a reservation whose forward reached the origin and then failed (see
/// `checkout::contract`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettledBy {
    /// The order backend's ledger consumer makes its order or its payment timeout returns it.
    Ledger,
    /// The edge asks the origin and keeps or returns the unit by the answer.
    Edge,
}

impl StoreError {
    /// Whether the failed call may have run in the store ([`StoreError::Unanswered`]).
    pub fn unanswered(&self) -> bool {
        matches!(self, StoreError::Unanswered(_))
    }

    /// The Redis error behind this one, if Redis failed (also when the call went unanswered).
    pub fn redis(&self) -> Option<&::redis::RedisError> {
        match self {
            StoreError::Redis(e) => Some(e),
            StoreError::Unanswered(cause) => cause.redis(),
            _ => None,
        }
    }
}

/// Where stock lives.
#[async_trait]
pub trait StockStore: Send + Sync + 'static {
    /// Take one unit of `sale` for `uid`, atomically, as `attempt`: an attempt that already took
    /// the unit the user holds answers [`Reserve::Won`] with it again, and a fenced one
    /// [`Reserve::Fenced`].
    async fn reserve(
        &self,
        sale: &SaleKeys,
        uid: &str,
        attempt: &Attempt,
    ) -> Result<Reserve, StoreError>;

    /// What `uid` holds of `sale`, asked about `attempt`, a reserve that was sent and never
    /// answered: if the user holds nothing, `attempt` is fenced first, so that its reserve
    /// takes nothing should it still arrive. The answer is the store's, the same on every edge.
    /// A store whose reserves cannot arrive late (the embedded one) answers [`Self::holding`].
    async fn fence(
        &self,
        sale: &SaleKeys,
        uid: &str,
        _attempt: &Attempt,
    ) -> Result<Holding, StoreError> {
        self.holding(sale, uid).await
    }

    /// Give the unit of `reservation` back. Returns whether a unit was returned: true the first
    /// time, false on every later call with the same reservation, and false when the store
    /// knows an order holds it (Redis: confirmed by the order backend).
    async fn release(&self, sale: &SaleKeys, reservation: &Reservation)
        -> Result<bool, StoreError>;

    /// Take the unit of `reservation` out of the sale for good, without putting it back on
    /// sale: the origin said it has no such unit (`410 sold_out`: its own stock is spent, so
    /// the store holds a unit that does not exist — after a failover that lost writes, or a
    /// stock set higher here than at the origin). The buyer no longer holds it. Returns true
    /// the first time, false when the reservation holds nothing (released, discarded, or
    /// superseded) or an order holds it (Redis: confirmed by the order backend).
    async fn discard(&self, sale: &SaleKeys, reservation: &Reservation)
        -> Result<bool, StoreError>;

    /// What `uid` holds of `sale` ([`Holding`]).
    async fn holding(&self, sale: &SaleKeys, uid: &str) -> Result<Holding, StoreError>;

    /// Record that the origin holds an order for `reservation`: nothing is left to settle.
    async fn keep(&self, sale: &SaleKeys, reservation: &Reservation) -> Result<(), StoreError>;

    /// The sale's state, or None if the store has no such sale.
    async fn stock(&self, sale: &SaleKeys) -> Result<Option<SaleStock>, StoreError>;

    /// Units left, or None if the store has no such sale.
    async fn remaining(&self, sale: &SaleKeys) -> Result<Option<u64>, StoreError> {
        Ok(self.stock(sale).await?.map(|s| s.remaining))
    }

    /// Who settles forwards whose outcome the edge cannot know.
    fn settled_by(&self) -> SettledBy;

    /// Reservations a previous run left unsettled: held, and neither kept nor released. The
    /// edge settles them as it settles an ambiguous forward.
    fn unsettled(&self) -> Vec<Reservation> {
        Vec::new()
    }

    /// A short name for logs and `check`.
    fn kind(&self) -> &'static str;

    /// Whether the store can take reservations now (for `/readyz`).
    async fn ready(&self) -> bool {
        true
    }

    /// Connect and prepare before the first buy, so that it pays for neither (called before
    /// the public listener accepts; an upgrade's new process must answer its first crowd at
    /// full speed).
    async fn warm_up(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
