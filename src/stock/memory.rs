//! The embedded stock store: stock in this process, for a sale run on one machine. Each sale has
//! its own small lock, held for a few hash-map operations and never across an `.await`, so sales
//! never wait on each other and one sale behaves exactly like the Redis script: one reservation
//! at a time, checks before the decrement. Nothing survives a restart; run several edges or need
//! durability and use the Redis store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Reservation, Reserve, SaleStock, StockStore, StoreError};

/// One entry of a sale's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Reservation id.
    pub reservation: String,
    /// Buyer.
    pub uid: String,
    /// Product.
    pub product: u64,
    /// When, ms since the epoch.
    pub at_ms: u64,
}

struct SaleState {
    remaining: u64,
    /// uid → reservation id the user holds.
    buyers: HashMap<Box<str>, Box<str>>,
    ledger: Vec<LedgerEntry>,
}

/// Stock held in memory.
pub struct MemoryStore {
    sales: HashMap<u64, Mutex<SaleState>>,
    next_id: AtomicU64,
}

impl MemoryStore {
    /// A store holding `(product, stock)` sales.
    pub fn new(sales: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let sales = sales
            .into_iter()
            .map(|(product, stock)| {
                let state = SaleState {
                    remaining: stock,
                    buyers: HashMap::new(),
                    ledger: Vec::new(),
                };
                (product, Mutex::new(state))
            })
            .collect();
        MemoryStore {
            sales,
            next_id: AtomicU64::new(1),
        }
    }

    /// The ledger of `product`'s sale, oldest first.
    pub fn ledger(&self, product: u64) -> Vec<LedgerEntry> {
        self.sales
            .get(&product)
            .map(|s| s.lock().ledger.clone())
            .unwrap_or_default()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[async_trait]
impl StockStore for MemoryStore {
    async fn reserve(&self, product: u64, uid: &str) -> Result<Reserve, StoreError> {
        let Some(sale) = self.sales.get(&product) else {
            return Ok(Reserve::UnknownSale);
        };
        let mut state = sale.lock();
        if state.buyers.contains_key(uid) {
            return Ok(Reserve::Duplicate);
        }
        if state.remaining == 0 {
            return Ok(Reserve::SoldOut);
        }
        state.remaining -= 1;
        let id = format!("{product}-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        state.buyers.insert(uid.into(), id.as_str().into());
        state.ledger.push(LedgerEntry {
            reservation: id.clone(),
            uid: uid.to_string(),
            product,
            at_ms: now_ms(),
        });
        Ok(Reserve::Won {
            remaining: state.remaining,
            reservation: Reservation {
                id,
                product,
                uid: uid.to_string(),
            },
        })
    }

    async fn release(&self, reservation: &Reservation) -> Result<bool, StoreError> {
        let Some(sale) = self.sales.get(&reservation.product) else {
            return Ok(false);
        };
        let mut state = sale.lock();
        // Only the reservation the user still holds gives a unit back; a second release, or a
        // stale one after the user bought again, finds nothing to return.
        match state.buyers.get(reservation.uid.as_str()) {
            Some(held) if **held == *reservation.id => {
                state.buyers.remove(reservation.uid.as_str());
                state.remaining += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn stock(&self, product: u64) -> Result<Option<SaleStock>, StoreError> {
        Ok(self.sales.get(&product).map(|s| {
            let s = s.lock();
            SaleStock {
                remaining: s.remaining,
                buyers: s.buyers.len() as u64,
                ledger: s.ledger.len() as u64,
            }
        }))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn store(stock: u64) -> Arc<dyn StockStore> {
        Arc::new(MemoryStore::new([(super::super::suite::PRODUCT, stock)]))
    }

    #[tokio::test]
    async fn passes_the_behaviour_suite() {
        super::super::suite::run_all(store).await;
    }

    #[tokio::test]
    async fn ledger_records_every_win() {
        let s = MemoryStore::new([(7, 3)]);
        for uid in ["a", "b", "c", "d"] {
            let _ = s.reserve(7, uid).await.unwrap();
        }
        let ledger = s.ledger(7);
        assert_eq!(ledger.len(), 3);
        assert_eq!(
            ledger.iter().map(|e| e.uid.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
