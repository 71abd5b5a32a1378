//! Making and settling orders, shared by the HTTP API, the ledger consumer and the sweeper.
//!
//! Placing an order for a reservation: an existing order with that id is returned as it is;
//! otherwise the sale row is made sure of (created from the stock `flashgate stock load`
//! recorded), the reservation is claimed in Redis (`confirm.lua` — a released reservation makes
//! no order; a claimed one only this backend can settle, so nothing that could fail for want of
//! a sale comes after it), and the order is inserted under the database's safeguards. If a safeguard trips (the sale is sold
//! out in the database, or the user already holds an active order) the request is refused: the
//! database, not Redis, has the last word. A duplicate's unit is returned to Redis; a unit the
//! database has no stock for is discarded — taken out of the sale, since back on sale it would
//! only be refused again — and the live reconcile (`live`) is woken to correct the sale.
//!
//! Settling: an order unpaid by its deadline is cancelled (a guarded update, so a concurrent
//! payment and cancellation cannot both win) and its unit returned through `release.lua`; the
//! return is recorded, and retried until it is, so it happens exactly once.

use std::sync::Arc;
use std::time::Duration;

use super::db::{Db, DbError, Insert, Payment, Refusal, StockChange};
use super::metrics::OrderMetrics;
use super::model::{Order, Source};
use crate::ground::Secret;
use crate::stock::redis::sales::RedisSales;
use crate::stock::{Reservation, StoreError};

/// How long placing one order may take before it counts as failed.
pub const PLACE_TIMEOUT: Duration = Duration::from_secs(10);

/// Orders settled per sweep, at most.
const SWEEP_BATCH: i64 = 500;

/// Why an order operation failed (answered 503, or retried by the ledger consumer).
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// It took longer than this; the database may be hung.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Neither the database nor Redis knows this sale.
    #[error("no sale for product {0}: was `flashgate stock load` run?")]
    UnknownSale(u64),
    /// An order with this reservation id belongs to another user or product: the id was given
    /// twice. Nothing is made or answered from it; `reconcile` shows the reservation.
    #[error("reservation id {id} is already the order of {holder}: the id was given twice")]
    IdCollision {
        /// The id.
        id: String,
        /// The user whose order holds it.
        holder: String,
    },
    /// The sale was loaded with fewer units than the database has orders for.
    #[error("product {product} was loaded with {stock} units, but {sold} orders hold one")]
    Restock {
        /// The product.
        product: u64,
        /// The stock loaded.
        stock: u64,
        /// Units held by orders in the database.
        sold: i64,
    },
}

/// What placing an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// A new order.
    Created(Order),
    /// The order existed already (a retry, or the other path was first).
    Existing(Order),
    /// A safeguard refused it: a duplicate's unit went back on sale; a unit the database has no
    /// stock for was discarded (taken out of the sale, not back on sale).
    Refused(Refusal),
    /// The reservation no longer holds a unit; no order.
    Released,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Orders cancelled.
    pub cancelled: usize,
    /// Units returned to Redis.
    pub returned: usize,
}

/// The order backend's state.
pub struct Orders {
    /// The database.
    pub db: Db,
    /// Redis, for confirming and returning units.
    pub stock: Arc<RedisSales>,
    /// How long a buyer has to pay.
    pub payment_timeout: Duration,
    /// The edge's signing key.
    pub edge_secret: Secret,
    /// Every metric.
    pub metrics: OrderMetrics,
    /// Failures answered 503 repeat per request during an outage: logged at most every 5 s.
    pub failures: parking_lot::Mutex<crate::ground::logging::Throttle>,
    /// Wakes the live reconcile (`live_reconcile::run`) before its time: the database just refused an
    /// order for want of stock, so Redis may hold units that do not exist.
    pub reconcile_wanted: tokio::sync::Notify,
}

/// `existing`, the order stored under `r`'s id, if it is `r`'s: a reservation id names one
/// user's unit of one product, and an order under the same id for anyone else is a collision
/// (a reservation counter that went back), never that user's order.
fn same_reservation(existing: Order, r: &Reservation) -> Result<Order, OrderError> {
    if existing.uid == r.uid && existing.product == r.product {
        Ok(existing)
    } else {
        Err(OrderError::IdCollision {
            id: r.id.clone(),
            holder: existing.uid,
        })
    }
}

/// Now, in ms since the epoch, as the database stores times.
pub fn now_ms() -> i64 {
    i64::try_from(crate::ground::clock::now_ms()).unwrap_or(i64::MAX)
}

impl Orders {
    /// Place the order of reservation `r`, once.
    pub async fn place(&self, r: &Reservation, source: Source) -> Result<Placed, OrderError> {
        // Bounded: a hung database (packets stopped, sockets open) must fail a try, not hold
        // the request or the ledger consumer for ever.
        let placed = tokio::time::timeout(PLACE_TIMEOUT, self.place_inner(r, source))
            .await
            .unwrap_or(Err(OrderError::Timeout(PLACE_TIMEOUT)));
        let result = match &placed {
            Ok(Placed::Created(_)) => "created",
            Ok(Placed::Existing(_)) => "existing",
            Ok(Placed::Refused(Refusal::SoldOut)) => "refused_sold_out",
            Ok(Placed::Refused(Refusal::Duplicate)) => "refused_duplicate",
            Ok(Placed::Released) => "released",
            Err(_) => "error",
        };
        self.metrics.order(source.name(), result);
        placed
    }

    async fn place_inner(&self, r: &Reservation, source: Source) -> Result<Placed, OrderError> {
        if let Some(existing) = self.db.order(&r.id).await? {
            return same_reservation(existing, r).map(Placed::Existing);
        }
        // Everything that can fail for want of a sale comes before the claim: a claimed
        // reservation is one only this backend can settle, so it must become an order.
        if !self.db.has_sale(r.product).await? {
            let stock = self
                .stock
                .configured_stock(r.product)
                .await?
                .ok_or(OrderError::UnknownSale(r.product))?;
            self.db.ensure_sale(r.product, stock).await?;
        }
        if !self.stock.confirm(r).await? {
            return Ok(Placed::Released);
        }
        let mut inserted = self.insert(r, source).await?;
        if inserted == Insert::Refused(Refusal::SoldOut) && self.restocked(r.product).await? {
            // Redis sold a unit of a restock the database had not followed yet.
            inserted = self.insert(r, source).await?;
        }
        match inserted {
            Insert::Created(order) => Ok(Placed::Created(order)),
            Insert::Existing(order) => same_reservation(order, r).map(Placed::Existing),
            Insert::Refused(Refusal::SoldOut) => {
                // The database's stock is spent: this unit exists only in Redis (a failover
                // lost writes, or Redis was loaded with more). Back on sale it would only be
                // refused again, round after round; it leaves the sale, and the live
                // reconcile corrects the rest of the sale now.
                tracing::warn!(reservation = %r.id, "the database has no unit left for this reservation: discarding it, and reconciling the sale");
                self.stock.discard_order(r).await?;
                self.reconcile_wanted.notify_one();
                Ok(Placed::Refused(Refusal::SoldOut))
            }
            Insert::Refused(why) => {
                tracing::warn!(reservation = %r.id, ?why, "database safeguard refused an order; returning the unit");
                self.stock.release_order(r).await?;
                Ok(Placed::Refused(why))
            }
        }
    }

    async fn insert(&self, r: &Reservation, source: Source) -> Result<Insert, OrderError> {
        let now = now_ms();
        let deadline = now + self.payment_timeout.as_millis() as i64;
        Ok(self.db.insert_order(r, source, now, deadline).await?)
    }

    /// Whether the database's stock of `product` just followed a larger configured total.
    async fn restocked(&self, product: u64) -> Result<bool, OrderError> {
        let Some(stock) = self.stock.configured_stock(product).await? else {
            return Ok(false);
        };
        Ok(matches!(
            self.db.set_stock(product, stock).await?,
            StockChange::Changed { from } if u64::try_from(from).is_ok_and(|from| from < stock)
        ))
    }

    /// Let the database's stock of `product` follow the sale's configured total (a restock
    /// with `flashgate stock load --force`). Nothing to do before the sale's first order.
    pub async fn follow_stock(&self, product: u64, stock: u64) -> Result<(), OrderError> {
        match self.db.set_stock(product, stock).await? {
            StockChange::Changed { from } => {
                tracing::info!(product, from, to = stock, "the sale was restocked")
            }
            StockChange::Same | StockChange::NoSale => {}
            StockChange::BelowSold { sold } => {
                return Err(OrderError::Restock {
                    product,
                    stock,
                    sold,
                })
            }
        }
        Ok(())
    }

    /// Pay order `id`.
    pub async fn pay(&self, id: &str) -> Result<Payment, OrderError> {
        let payment = self.db.pay(id, now_ms()).await?;
        if matches!(payment, Payment::Paid(_)) {
            self.metrics.paid.inc();
        }
        Ok(payment)
    }

    /// Cancel orders past their deadline and return their units.
    pub async fn sweep(&self) -> Result<Sweep, OrderError> {
        let now = now_ms();
        let mut sweep = Sweep::default();
        for order in self.db.expired(now, SWEEP_BATCH).await? {
            if self.db.cancel(&order.id, order.product, now).await? {
                self.metrics.cancelled.inc();
                sweep.cancelled += 1;
            }
        }
        for order in self.db.units_to_return(SWEEP_BATCH).await? {
            let reservation = Reservation {
                id: order.id.clone(),
                product: order.product,
                uid: order.uid.clone(),
            };
            // False means Redis holds nothing for it (returned before, or lost in a failover
            // that `reconcile` repairs): either way there is nothing left to return.
            if self.stock.release_order(&reservation).await? {
                self.metrics.units_returned.inc();
                sweep.returned += 1;
            }
            self.db.mark_unit_returned(&order.id).await?;
        }
        self.db.forget_signatures(now).await?;
        Ok(sweep)
    }
}
