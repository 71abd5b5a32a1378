//! `flashgate-orders reconcile`: compare each sale in Redis (units left, buyers) with the order
//! database, report every difference, and with `--fix` rewrite Redis from the database — the
//! source of truth after a Redis failover lost writes. Run `--fix` while the sale is paused:
//! a reservation made but not yet turned into an order is not in the database, and `--fix`
//! drops it.

use std::collections::BTreeSet;
use std::fmt;

use super::db::Db;
use super::service::OrderError;
use crate::stock::redis::sales::RedisSales;

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
}

impl SaleReport {
    /// Whether Redis agrees with the database.
    pub fn consistent(&self) -> bool {
        self.redis_remaining == Some(self.expected_remaining)
            && self.only_in_redis.is_empty()
            && self.only_in_db.is_empty()
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
        Ok(())
    }
}

/// Compare every sale the database knows.
pub async fn compare(db: &Db, redis: &RedisSales) -> Result<Vec<SaleReport>, OrderError> {
    let mut reports = Vec::new();
    for product in db.products().await? {
        let summary = db
            .sale(product)
            .await?
            .ok_or(OrderError::UnknownSale(product))?;
        let holders: BTreeSet<(String, String)> = db.holders(product).await?.into_iter().collect();
        let buyers: BTreeSet<(String, String)> = redis.buyers(product).await?.into_iter().collect();
        let expected = u64::try_from(summary.stock)
            .unwrap_or(0)
            .saturating_sub(holders.len() as u64);
        reports.push(SaleReport {
            product,
            expected_remaining: expected,
            redis_remaining: redis.stock(product).await?.map(|s| s.remaining),
            only_in_redis: buyers.difference(&holders).cloned().collect(),
            only_in_db: holders.difference(&buyers).cloned().collect(),
        });
    }
    Ok(reports)
}

/// Rewrite Redis from the database for every inconsistent sale in `reports`.
pub async fn fix(db: &Db, redis: &RedisSales, reports: &[SaleReport]) -> Result<usize, OrderError> {
    let mut fixed = 0;
    for report in reports.iter().filter(|r| !r.consistent()) {
        let holders = db.holders(report.product).await?;
        redis
            .rewrite(report.product, report.expected_remaining, &holders)
            .await?;
        fixed += 1;
    }
    Ok(fixed)
}
