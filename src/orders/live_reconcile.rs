//! The live reconcile: Redis kept in step with the order database while the sale runs, never
//! paused. A failover to a replica that had not seen the last writes loses reservations from
//! Redis whose orders the database holds: their units are back on sale there (phantom units,
//! which only the database's safeguards stop), and their buyers could buy again. Every
//! `reconcile.every` (and at once for a sale whose order the database just refused for want of
//! stock), each registered sale is compared and corrected:
//!
//! - an **active order whose buyer Redis does not list** is restored (`lua/restore.lua`): the
//!   buyer holds its unit again and one unit leaves the sale — or, when none is left on sale
//!   (the phantom was sold again, to a reservation the database refuses and discards), the
//!   restore is counted `short`;
//! - a **buyer whose reservation is an order the database cancelled** (a restore that raced
//!   the payment timeout) has its unit returned (`lua/release.lua` as the order backend);
//! - a buyer with **no order at all** is in flight and never touched.
//!
//! Redis is read before the database. The payment timeout cancels in the database before it
//! returns the unit in Redis, so a unit that is missing from Redis at the first read and still
//! an active order at the second was lost, not returned; and every reservation is in Redis
//! before its order is in the database. So no correction takes a unit that was really given
//! back, or drops one in flight.
//!
//! `flashgate_orders_stock_drift{sale}` is measured before each pass corrects: units left in
//! Redis plus buyers in Redis plus active orders Redis lost, minus the database's stock — the
//! units Redis would sell that do not exist. It is 0 on a consistent sale.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::model::{Reconciled, Status};
use super::service::{OrderError, Orders};
use crate::ground::logging::Throttle;
use crate::stock::redis::sales::Restore;
use crate::stock::Reservation;

/// Compare `product`'s sale in Redis with the database and correct Redis (see the module doc).
/// None when either has no such sale.
pub async fn pass(orders: &Orders, product: u64) -> Result<Option<Reconciled>, OrderError> {
    // Redis first, then the database: see the module doc.
    let Some((remaining, buyers)) = orders.stock.snapshot(product).await? else {
        return Ok(None);
    };
    let Some(sale) = orders.db.sale(product).await? else {
        return Ok(None);
    };
    let holders = orders.db.holders(product).await?;
    let by_uid: HashMap<&str, &str> = buyers
        .iter()
        .map(|(uid, id)| (uid.as_str(), id.as_str()))
        .collect();
    let lost: Vec<&(String, String)> = holders
        .iter()
        .filter(|(uid, id)| by_uid.get(uid.as_str()) != Some(&id.as_str()))
        .collect();
    let forgotten = lost
        .iter()
        .filter(|(uid, _)| !by_uid.contains_key(uid.as_str()))
        .count();
    let mut done = Reconciled {
        drift: i64::try_from(remaining + buyers.len() as u64 + forgotten as u64)
            .unwrap_or(i64::MAX)
            - sale.stock,
        ..Reconciled::default()
    };
    for (uid, id) in lost {
        let r = Reservation {
            id: id.clone(),
            product,
            uid: uid.clone(),
        };
        match orders.stock.restore(&r).await? {
            Restore::Restored => done.restored += 1,
            Restore::Short => done.short += 1,
            Restore::Held | Restore::Other => {}
        }
    }
    let active: HashSet<&str> = holders.iter().map(|(_, id)| id.as_str()).collect();
    for (uid, id) in buyers
        .iter()
        .filter(|(_, id)| !active.contains(id.as_str()))
    {
        let Some(order) = orders.db.order(id).await? else {
            continue; // in flight
        };
        if order.status == Status::Cancelled && order.uid == *uid {
            let r = Reservation {
                id: id.clone(),
                product,
                uid: uid.clone(),
            };
            if orders.stock.release_order(&r).await? {
                done.released += 1;
            }
        }
    }
    Ok(Some(done))
}

/// One pass over every registered sale, each counted in the metrics; a sale that fails does
/// not stop the others. Returns the first failure.
pub async fn pass_all(orders: &Orders) -> Result<(), OrderError> {
    let mut first_error = None;
    for product in orders.stock.registered().await? {
        match pass(orders, product).await {
            Ok(Some(done)) => {
                orders.metrics.reconciled(product, &done);
                if done.restored + done.short + done.released > 0 {
                    tracing::warn!(
                        product,
                        drift = done.drift,
                        restored = done.restored,
                        short = done.short,
                        released = done.released,
                        "live reconcile corrected Redis from the order database"
                    );
                }
            }
            Ok(None) => {}
            Err(e) => {
                orders.metrics.reconcile_failed();
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Run passes every `every`, and at once when [`Orders::reconcile_soon`] is called, until the
/// process ends.
pub async fn run(orders: Arc<Orders>, every: Duration) {
    let mut quiet = Throttle::new(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = orders.reconcile_wanted.notified() => {}
        }
        if let Err(e) = pass_all(&orders).await {
            if let Some(held) = quiet.admit() {
                tracing::warn!("live reconcile failed: {e} ({held} more since the last report)");
            }
        }
    }
}
