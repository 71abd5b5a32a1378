//! The embedded stock store: stock in this process, for a sale run on one machine. Each sale has
//! its own small lock, held for a few hash-map operations and never across an `.await`, so sales
//! never wait on each other and one sale behaves exactly like the Redis script: one reservation
//! at a time, checks before the decrement.
//!
//! With `store.path` the store is durable: every change is appended to a [`Journal`] in that
//! directory, in the order the changes happen (the record is queued while the sale's lock is
//! held), and a reservation is answered only once its record is written — so a SIGKILL and a
//! restart never sell a unit twice, and buyers are remembered. At start the journal is replayed
//! and rewritten as a snapshot of what it holds (it stays as small as the sale). Without
//! `store.path` nothing survives a restart, which `flashgate run` states loudly.
//!
//! Reservation ids are `{product}-{epoch}-{n}`: the epoch is taken anew at each start (the
//! clock in ms, and above every epoch the journal has seen), so an id is never given twice, not
//! even across restarts or after records lost with the machine (see the journal's fsync
//! policies).
//!
//! Reservations held at start that the origin was never known to hold (neither kept nor
//! released: the previous process died with their forward in flight) are
//! [`StockStore::unsettled`]; the edge settles them by asking the origin.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::journal::{Appended, Journal, Record};
use super::{
    Attempt, Holding, Reservation, Reserve, SaleKeys, SaleStock, SettledBy, StockStore, StoreError,
};
use crate::config::Fsync;
use crate::ground::clock::now_ms;

/// The unit one user holds.
#[derive(Debug, Clone)]
struct Holder {
    id: Box<str>,
    at_ms: u64,
    /// The origin is known to hold an order for it.
    kept: bool,
}

impl Holder {
    /// What its user holds: kept by the origin, or not yet.
    fn holding(&self) -> Holding {
        if self.kept {
            Holding::Won(self.id.to_string())
        } else {
            Holding::Pending(self.id.to_string())
        }
    }
}

struct SaleState {
    /// Stock the sale was created with; `remaining + buyers + discarded` always equals it.
    configured: u64,
    remaining: u64,
    /// Units taken out of the sale for good (`StockStore::discard`).
    discarded: u64,
    /// uid → the unit the user holds.
    buyers: HashMap<Box<str>, Holder>,
    /// Reservations made since the journal was last compacted (all of them without one).
    reservations: u64,
}

impl SaleState {
    fn new(stock: u64) -> Self {
        SaleState {
            configured: stock,
            remaining: stock,
            discarded: 0,
            buyers: HashMap::new(),
            reservations: 0,
        }
    }
}

/// Stock held in memory, journaled under `store.path` when one is given.
pub struct MemoryStore {
    sales: HashMap<u64, Mutex<SaleState>>,
    epoch: u64,
    next: AtomicU64,
    journal: Option<Journal>,
    unsettled: Vec<Reservation>,
}

impl MemoryStore {
    /// A store holding `(product, stock)` sales in memory only.
    pub fn new(sales: impl IntoIterator<Item = (u64, u64)>) -> Self {
        MemoryStore {
            sales: sales
                .into_iter()
                .map(|(product, stock)| (product, Mutex::new(SaleState::new(stock))))
                .collect(),
            epoch: now_ms(),
            next: AtomicU64::new(1),
            journal: None,
            unsettled: Vec::new(),
        }
    }

    /// A durable store journaled in `dir`: the sales the journal holds, with their buyers, plus
    /// the `(product, stock)` sales it does not hold yet. A sale the journal holds keeps its
    /// journaled stock even if the configuration now says otherwise (logged).
    #[cfg(any(test, feature = "test-util"))]
    pub fn open(
        sales: impl IntoIterator<Item = (u64, u64)>,
        dir: &Path,
        fsync: Fsync,
    ) -> Result<Self, StoreError> {
        Self::open_waiting(sales, dir, fsync, crate::stock::journal::LOCK_WAIT)
    }

    /// [`MemoryStore::open`], waiting up to `lock_wait` for a previous process to let the
    /// journal go (an upgrade's old process drains first).
    pub fn open_waiting(
        sales: impl IntoIterator<Item = (u64, u64)>,
        dir: &Path,
        fsync: Fsync,
        lock_wait: std::time::Duration,
    ) -> Result<Self, StoreError> {
        // Lock before reading: a previous process (an upgrade's old one) may still be appending,
        // and what it appends must be in the snapshot this start writes.
        let lock = Journal::lock_with_wait(dir, lock_wait)?;
        let replayed = Replayed::fold(lock.replay()?)?;
        let mut states = replayed.sales;
        for (product, stock) in sales {
            match states.entry(product) {
                Entry::Occupied(kept) if kept.get().configured != stock => {
                    tracing::warn!(
                        product,
                        configured = stock,
                        journaled = kept.get().configured,
                        "the journal holds this sale with another stock; keeping the journal's (remove store.path to start the sale over)"
                    );
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(new) => {
                    new.insert(SaleState::new(stock));
                }
            }
        }
        let epoch = now_ms().max(replayed.last_epoch + 1);
        let mut snapshot = vec![Record::Start { epoch }];
        let mut unsettled = Vec::new();
        for (product, state) in &states {
            snapshot.push(Record::Sale {
                product: *product,
                stock: state.configured,
                discarded: state.discarded,
            });
            for (uid, holder) in &state.buyers {
                let id = holder.id.to_string();
                snapshot.push(Record::Reserve {
                    product: *product,
                    id: id.clone(),
                    uid: uid.to_string(),
                    at_ms: holder.at_ms,
                });
                if holder.kept {
                    snapshot.push(Record::Keep {
                        product: *product,
                        id,
                    });
                } else {
                    unsettled.push(Reservation {
                        id,
                        product: *product,
                        uid: uid.to_string(),
                    });
                }
            }
        }
        let journal = lock.create(fsync, &snapshot)?;
        Ok(MemoryStore {
            sales: states
                .into_iter()
                .map(|(product, state)| (product, Mutex::new(state)))
                .collect(),
            epoch,
            next: AtomicU64::new(1),
            journal: Some(journal),
            unsettled,
        })
    }

    /// The journal's file, when the store is durable.
    #[cfg(any(test, feature = "test-util"))]
    pub fn journal_path(&self) -> Option<&Path> {
        self.journal.as_ref().map(Journal::path)
    }

    /// Refuse a change the journal could not record: a broken journal stops the sale (503)
    /// instead of taking units it cannot remember.
    fn journal_failure(&self) -> Result<(), StoreError> {
        match self.journal.as_ref().and_then(Journal::failure) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Queue `record` in the journal (call with the sale's lock held, so the journal's order is
    /// the order of the changes).
    fn record(&self, record: impl FnOnce() -> Record) -> Option<Appended> {
        self.journal.as_ref().map(|j| j.append(&record()))
    }
}

/// Wait for a queued journal record, if any.
async fn written(appended: Option<Appended>) -> Result<(), StoreError> {
    match appended {
        Some(appended) => Ok(appended.await?),
        None => Ok(()),
    }
}

/// What becomes of a unit its buyer no longer holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TakeBack {
    /// Back on sale.
    Release,
    /// Out of the sale for good (an order's unit never is).
    Discard,
}

impl MemoryStore {
    /// Take the unit of `reservation` from its buyer, if the buyer still holds it: back on sale
    /// or out of the sale, journaled. False when there was nothing to take.
    async fn take_back(
        &self,
        sale: &SaleKeys,
        reservation: &Reservation,
        how: TakeBack,
    ) -> Result<bool, StoreError> {
        let Some(state) = self.sales.get(&sale.product) else {
            return Ok(false);
        };
        self.journal_failure()?;
        let appended = {
            let mut state = state.lock();
            match state.buyers.get(reservation.uid.as_str()) {
                Some(held)
                    if *held.id == *reservation.id && !(how == TakeBack::Discard && held.kept) =>
                {
                    state.buyers.remove(reservation.uid.as_str());
                    let (product, id) = (sale.product, reservation.id.clone());
                    match how {
                        TakeBack::Release => {
                            state.remaining += 1;
                            self.record(|| Record::Release { product, id })
                        }
                        TakeBack::Discard => {
                            state.discarded += 1;
                            self.record(|| Record::Discard { product, id })
                        }
                    }
                }
                _ => return Ok(false),
            }
        };
        written(appended).await?;
        Ok(true)
    }
}

/// What a journal holds, folded into sale states.
struct Replayed {
    sales: HashMap<u64, SaleState>,
    last_epoch: u64,
}

impl Replayed {
    fn fold(records: Vec<Record>) -> Result<Replayed, StoreError> {
        let mut sales: HashMap<u64, SaleState> = HashMap::new();
        // reservation id → its buyer, for the records that name only the id.
        let mut owner: HashMap<String, (u64, String)> = HashMap::new();
        let mut last_epoch = 0;
        let inconsistent = StoreError::Inconsistent;
        for record in records {
            match record {
                Record::Start { epoch } => last_epoch = last_epoch.max(epoch),
                Record::Sale {
                    product,
                    stock,
                    discarded,
                } => {
                    sales.entry(product).or_insert_with(|| {
                        let mut sale = SaleState::new(stock);
                        sale.discarded = discarded.min(stock);
                        sale.remaining = stock - sale.discarded;
                        sale
                    });
                }
                Record::Reserve {
                    product,
                    id,
                    uid,
                    at_ms,
                } => {
                    let sale = sales.get_mut(&product).ok_or_else(|| {
                        inconsistent(format!("reservation {id} of a sale it never created"))
                    })?;
                    if sale.remaining == 0 || sale.buyers.contains_key(uid.as_str()) {
                        return Err(inconsistent(format!(
                            "reservation {id} beyond the stock or for a user holding one"
                        )));
                    }
                    sale.remaining -= 1;
                    sale.reservations += 1;
                    let holder = Holder {
                        id: id.as_str().into(),
                        at_ms,
                        kept: false,
                    };
                    sale.buyers.insert(uid.as_str().into(), holder);
                    owner.insert(id, (product, uid));
                }
                Record::Release { product, id } => {
                    if let Some((p, uid)) = owner.remove(&id) {
                        if let Some(sale) = sales.get_mut(&p).filter(|_| p == product) {
                            sale.buyers.remove(uid.as_str());
                            sale.remaining += 1;
                        }
                    }
                }
                Record::Discard { product, id } => {
                    if let Some((p, uid)) = owner.remove(&id) {
                        if let Some(sale) = sales.get_mut(&p).filter(|_| p == product) {
                            sale.buyers.remove(uid.as_str());
                            sale.discarded += 1;
                        }
                    }
                }
                Record::Keep { product, id } => {
                    if let Some((_, uid)) = owner.get(&id) {
                        if let Some(holder) = sales
                            .get_mut(&product)
                            .and_then(|s| s.buyers.get_mut(uid.as_str()))
                        {
                            holder.kept = true;
                        }
                    }
                }
            }
        }
        Ok(Replayed { sales, last_epoch })
    }
}

#[async_trait]
impl StockStore for MemoryStore {
    /// In-process: a reserve is answered or it did not happen, so `_attempt` needs no record
    /// (a journal write that fails gives the unit back before the error is answered).
    async fn reserve(
        &self,
        sale: &SaleKeys,
        uid: &str,
        _attempt: &Attempt,
    ) -> Result<Reserve, StoreError> {
        let Some(state) = self.sales.get(&sale.product) else {
            return Ok(Reserve::UnknownSale);
        };
        self.journal_failure()?;
        let (reservation, remaining, appended) = {
            let mut state = state.lock();
            if let Some(held) = state.buyers.get(uid) {
                return Ok(Reserve::Duplicate(held.holding()));
            }
            if state.remaining == 0 {
                return Ok(Reserve::SoldOut);
            }
            state.remaining -= 1;
            state.reservations += 1;
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let id = format!("{}-{}-{n}", sale.product, self.epoch);
            let at_ms = now_ms();
            let holder = Holder {
                id: id.as_str().into(),
                at_ms,
                kept: false,
            };
            state.buyers.insert(uid.into(), holder);
            let appended = self.record(|| Record::Reserve {
                product: sale.product,
                id: id.clone(),
                uid: uid.to_string(),
                at_ms,
            });
            let reservation = Reservation {
                id,
                product: sale.product,
                uid: uid.to_string(),
            };
            (reservation, state.remaining, appended)
        };
        // Not answered before it is journaled: a unit sold is a unit the next start knows.
        if let Err(e) = written(appended).await {
            // Nobody was told: give the unit back here. If the line did reach the file (a
            // failed fsync), the next start finds it unsettled and asks the origin, which
            // holds no order for it.
            let mut state = state.lock();
            if state
                .buyers
                .get(uid)
                .is_some_and(|held| *held.id == *reservation.id)
            {
                state.buyers.remove(uid);
                state.remaining += 1;
            }
            return Err(e);
        }
        Ok(Reserve::Won {
            reservation,
            remaining,
        })
    }

    async fn release(
        &self,
        sale: &SaleKeys,
        reservation: &Reservation,
    ) -> Result<bool, StoreError> {
        // Only the reservation the user still holds gives a unit back; a second release, or a
        // stale one after the user bought again, finds nothing to return.
        self.take_back(sale, reservation, TakeBack::Release).await
    }

    async fn discard(
        &self,
        sale: &SaleKeys,
        reservation: &Reservation,
    ) -> Result<bool, StoreError> {
        self.take_back(sale, reservation, TakeBack::Discard).await
    }

    async fn holding(&self, sale: &SaleKeys, uid: &str) -> Result<Holding, StoreError> {
        let Some(state) = self.sales.get(&sale.product) else {
            return Ok(Holding::Nothing);
        };
        let state = state.lock();
        Ok(state
            .buyers
            .get(uid)
            .map_or(Holding::Nothing, Holder::holding))
    }

    async fn keep(&self, sale: &SaleKeys, reservation: &Reservation) -> Result<(), StoreError> {
        let Some(state) = self.sales.get(&sale.product) else {
            return Ok(());
        };
        let appended = {
            let mut state = state.lock();
            match state.buyers.get_mut(reservation.uid.as_str()) {
                Some(held) if *held.id == *reservation.id && !held.kept => {
                    held.kept = true;
                    self.record(|| Record::Keep {
                        product: sale.product,
                        id: reservation.id.clone(),
                    })
                }
                _ => None,
            }
        };
        written(appended).await
    }

    async fn stock(&self, sale: &SaleKeys) -> Result<Option<SaleStock>, StoreError> {
        Ok(self.sales.get(&sale.product).map(|s| {
            let s = s.lock();
            SaleStock {
                remaining: s.remaining,
                buyers: s.buyers.len() as u64,
                ledger: s.reservations,
            }
        }))
    }

    fn settled_by(&self) -> SettledBy {
        SettledBy::Edge
    }

    fn unsettled(&self) -> Vec<Reservation> {
        self.unsettled.clone()
    }

    async fn ready(&self) -> bool {
        self.journal_failure().is_ok()
    }

    fn kind(&self) -> &'static str {
        if self.journal.is_some() {
            "memory (journaled)"
        } else {
            "memory"
        }
    }
}

#[cfg(test)]
mod tests;
