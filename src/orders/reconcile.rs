//! `flashgate-orders reconcile`: compare each sale in Redis (units left, buyers) with the order
//! database, and list the reservations the ledger consumer gave up on (its dead-letter
//! stream); report every difference. `--dead-letters` makes the orders of those reservations
//! (their units are still held for their buyers) — safe during a live sale. `--fix` does that,
//! then rewrites Redis from the database, the source of truth after a Redis failover lost
//! writes; run it with the sale paused and the order backends stopped: a reservation not yet
//! turned into an order is not in the database, and the rewrite drops it.

use std::collections::BTreeSet;
use std::fmt;

use super::db::Db;
use super::model::Source;
use super::service::{OrderError, Orders, Placed};
use crate::stock::redis::ledger::{Entry, Ledgers};
use crate::stock::redis::sales::RedisSales;
use crate::stock::SaleKeys;

/// One sale's comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleReport {
    /// The product.
    pub product: u64,
    /// Units left according to the database (stock minus orders holding a unit).
    pub expected_remaining: u64,
    /// Units left in Redis (None: the sale is missing there).
    pub redis_remaining: Option<u64>,
    /// Reservations Redis holds that no active order has (in flight, or lost orders).
    pub only_in_redis: Vec<(String, String)>,
    /// Active orders whose reservation Redis does not hold (Redis lost them).
    pub only_in_db: Vec<(String, String)>,
    /// Ledger entries the consumer gave up on: their reservations have no order yet.
    pub dead: Vec<Entry>,
    /// The database's (uid, reservation) of every order holding a unit, as compared: a
    /// rewrite writes exactly this snapshot.
    pub holders: Vec<(String, String)>,
}

impl SaleReport {
    /// Whether Redis agrees with the database.
    pub fn consistent(&self) -> bool {
        self.redis_remaining == Some(self.expected_remaining)
            && self.only_in_redis.is_empty()
            && self.only_in_db.is_empty()
            && self.dead.is_empty()
    }
}

impl fmt::Display for SaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redis = self
            .redis_remaining
            .map(|r| r.to_string())
            .unwrap_or_else(|| "missing".into());
        write!(
            f,
            "product {}: remaining redis={redis} database={}",
            self.product, self.expected_remaining
        )?;
        if self.consistent() {
            return write!(f, " - consistent");
        }
        for (uid, id) in &self.only_in_redis {
            write!(f, "\n  buyer {uid} ({id}) in Redis has no active order")?;
        }
        for (uid, id) in &self.only_in_db {
            write!(f, "\n  order {id} of {uid} is not held in Redis")?;
        }
        for entry in &self.dead {
            match &entry.reservation {
                Some(r) => write!(
                    f,
                    "\n  reservation {} of {} was dead-lettered without an order (ledger entry {})",
                    r.id, r.uid, entry.id
                )?,
                None => write!(
                    f,
                    "\n  malformed ledger entry {} was dead-lettered",
                    entry.id
                )?,
            }
        }
        Ok(())
    }
}

/// Compare every sale the database or the sales registry knows.
pub async fn compare(
    db: &Db,
    redis: &RedisSales,
    ledgers: &Ledgers,
) -> Result<Vec<SaleReport>, OrderError> {
    let mut products: BTreeSet<u64> = db.products().await?.into_iter().collect();
    products.extend(redis.registered().await?);
    let mut reports = Vec::new();
    for product in products {
        let stock = match db.sale(product).await? {
            Some(summary) => u64::try_from(summary.stock).unwrap_or(0),
            None => match redis.configured_stock(product).await? {
                Some(stock) => stock,
                None => continue,
            },
        };
        let snapshot = db.holders(product).await?;
        let holders: BTreeSet<(String, String)> = snapshot.iter().cloned().collect();
        let buyers: BTreeSet<(String, String)> = redis.buyers(product).await?.into_iter().collect();
        reports.push(SaleReport {
            product,
            expected_remaining: stock.saturating_sub(holders.len() as u64),
            redis_remaining: redis.stock(product).await?.map(|s| s.remaining),
            only_in_redis: buyers.difference(&holders).cloned().collect(),
            only_in_db: holders.difference(&buyers).cloned().collect(),
            dead: ledgers.dead(&SaleKeys::of(product)).await?,
            holders: snapshot,
        });
    }
    Ok(reports)
}

/// What [`place_dead_letters`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fixed {
    /// Dead-lettered reservations that now have their order.
    pub placed: usize,
    /// Dead-lettered reservations settled otherwise (released before, or refused by a
    /// safeguard, their unit returned), and malformed entries removed.
    pub settled: usize,
}

/// Make the orders of the dead-lettered reservations in `reports` (or return their units if
/// the sale refuses them), and take them off the dead-letter streams. Safe during a live sale:
/// it does what the ledger consumer would have done.
pub async fn place_dead_letters(
    orders: &Orders,
    ledgers: &Ledgers,
    reports: &[SaleReport],
) -> Result<Fixed, OrderError> {
    let mut fixed = Fixed::default();
    for report in reports {
        let sale = SaleKeys::of(report.product);
        for entry in &report.dead {
            if let Some(r) = &entry.reservation {
                match orders.place(r, Source::Reconcile).await? {
                    Placed::Created(_) | Placed::Existing(_) => fixed.placed += 1,
                    Placed::Refused(_) | Placed::Released => fixed.settled += 1,
                }
            } else {
                fixed.settled += 1;
            }
            ledgers.forget_dead(&sale, &entry.id).await?;
        }
    }
    Ok(fixed)
}

/// Rewrite Redis from the database for every sale of `reports` that differs, each from the one
/// snapshot of its orders it was compared with. Not for a live sale: a reservation not yet an
/// order is dropped, and an order paid or cancelled after the snapshot is not seen — pause the
/// sale and stop the order backends first.
pub async fn rewrite(redis: &RedisSales, reports: &[SaleReport]) -> Result<usize, OrderError> {
    let mut rewritten = 0;
    for report in reports.iter().filter(|r| !r.consistent()) {
        redis
            .rewrite(report.product, report.expected_remaining, &report.holders)
            .await?;
        rewritten += 1;
    }
    Ok(rewritten)
}
