//! Settling a unit once its forward is over, by the origin contract ([`super::contract`]).
//!
//! [`Checkout::settle`] applies the contract: keep, return, or — when nobody knows — defer. On
//! Redis a deferred unit is the ledger consumer's; on the embedded store it joins the
//! [`Pending`] queue, due `origin.settle_after` later, when the forward's signature can no
//! longer be accepted by the origin. [`Checkout::settle_due`] then asks the origin through an
//! [`OriginLookup`] and keeps or returns each unit by the answer; a question with no definite
//! answer is asked again with a growing pause (2 s, 4 s, 8 s, 16 s, then every 30 s), and the
//! unit stays held meanwhile: the origin may hold its order. Reservations a previous run left unsettled (the
//! store's journal knows them) are queued at start the same way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::contract::{settlement, Forwarded, Settlement};
use super::Checkout;
use crate::ground::clock::now_ms;
use crate::stock::{Reservation, SettledBy};

/// Longest pause between two questions about one reservation.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Why the origin gave no definite answer to the settlement question.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// It answered, but not one of the two answers that settle a reservation
    /// (`contract::settlement_answer`).
    #[error("origin answered {0} without a settling outcome (200 \"found\" or 404 \"not_found\")")]
    Status(u16),
    /// It could not be asked: connection refused, reset, timed out.
    #[error("origin could not be asked: {0}")]
    Unreachable(String),
}

/// Asks the origin whether it holds an order for a reservation (`GET {origin.path}/{id}`).
#[async_trait]
pub trait OriginLookup: Send + Sync {
    /// True: the origin holds the order. False: it holds none and will make none. Answers are
    /// read with [`super::contract::settlement_answer`].
    async fn holds(&self, reservation: &Reservation) -> Result<bool, LookupError>;
}

struct Waiting {
    reservation: Reservation,
    attempts: u32,
}

#[derive(Default)]
struct Queue {
    /// (due ms, sequence) → reservation; the sequence keeps equal due times apart.
    entries: BTreeMap<(u64, u64), Waiting>,
    seq: u64,
}

/// Reservations waiting to be asked about, by due time.
#[derive(Default)]
pub struct Pending {
    queue: Mutex<Queue>,
    changed: Notify,
}

impl Pending {
    fn push(&self, due_ms: u64, waiting: Waiting) -> usize {
        let mut queue = self.queue.lock();
        queue.seq += 1;
        let key = (due_ms, queue.seq);
        queue.entries.insert(key, waiting);
        let len = queue.entries.len();
        drop(queue);
        self.changed.notify_one();
        len
    }

    fn take_due(&self, now_ms: u64) -> Vec<Waiting> {
        let mut queue = self.queue.lock();
        let later = queue.entries.split_off(&(now_ms + 1, 0));
        std::mem::replace(&mut queue.entries, later)
            .into_values()
            .collect()
    }

    /// When the next reservation is due, ms since the epoch.
    fn next_due(&self) -> Option<u64> {
        self.queue.lock().entries.keys().next().map(|(due, _)| *due)
    }

    /// Reservations waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().entries.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Woken when a reservation joins the queue.
    pub fn changed(&self) -> &Notify {
        &self.changed
    }
}

impl Checkout {
    /// Settle `reservation` by how its forward ended (see [`super::contract`]).
    pub async fn settle(&self, reservation: Reservation, forwarded: Forwarded) {
        match settlement(forwarded) {
            Settlement::Keep => self.keep(&reservation).await,
            Settlement::Return => {
                self.give_back(&reservation, "the origin holds no order")
                    .await
            }
            Settlement::Discard => self.discard(&reservation).await,
            Settlement::Ask => {
                self.metrics.settled.deferred.inc();
                match self.store.settled_by() {
                    SettledBy::Ledger => tracing::warn!(
                        reservation = %reservation.id, ?forwarded,
                        "origin outcome unknown; the unit stays reserved for the order backend's ledger consumer"
                    ),
                    SettledBy::Edge => {
                        tracing::warn!(
                            reservation = %reservation.id, ?forwarded,
                            after = ?self.settle_after,
                            "origin outcome unknown; the unit stays reserved until the origin says whether it holds the order"
                        );
                        self.defer(reservation, 0);
                    }
                }
            }
        }
    }

    /// Queue `reservation` to be asked about once `settle_after` has passed.
    pub(super) fn defer(&self, reservation: Reservation, attempts: u32) {
        let wait = if attempts == 0 {
            self.settle_after
        } else {
            Duration::from_secs(1u64 << attempts.min(5)).min(MAX_RETRY)
        };
        let due = now_ms() + wait.as_millis() as u64;
        let len = self.pending.push(
            due,
            Waiting {
                reservation,
                attempts,
            },
        );
        self.metrics.unsettled.set(len as i64);
    }

    /// Ask the origin about every reservation that is due, and keep or return each unit by
    /// the answer. Returns how long until the next one is due (at most a second, so a caller
    /// looping on it also notices the clock).
    pub async fn settle_due(&self, lookup: &dyn OriginLookup) -> Duration {
        for waiting in self.pending.take_due(now_ms()) {
            let r = &waiting.reservation;
            match lookup.holds(r).await {
                Ok(true) => self.keep(r).await,
                Ok(false) => self.give_back(r, "the origin says it holds no order").await,
                Err(e) => {
                    self.metrics.settled.retried.inc();
                    tracing::warn!(reservation = %r.id, "settlement question failed, asking again later: {e}");
                    self.defer(waiting.reservation, waiting.attempts + 1);
                }
            }
        }
        self.metrics.unsettled.set(self.pending.len() as i64);
        let next = self
            .pending
            .next_due()
            .map(|due| Duration::from_millis(due.saturating_sub(now_ms())));
        next.unwrap_or(Duration::MAX).min(Duration::from_secs(1))
    }

    /// The queue of reservations waiting to be asked about.
    pub fn pending(&self) -> &Pending {
        &self.pending
    }

    async fn keep(&self, reservation: &Reservation) {
        let Some(sale) = self.sales.get(&reservation.product) else {
            return;
        };
        self.metrics.settled.kept.inc();
        if let Err(e) = self.store.keep(&sale.keys, reservation).await {
            // Not fatal: the reservation stays held and is asked about again after a restart.
            tracing::error!(reservation = %reservation.id, "recording a kept unit failed: {e}");
        }
    }

    /// The origin's stock is spent: the unit leaves the sale (it is not put back on sale, where
    /// the next buyer would only be refused in turn), and every edge request of the sale is
    /// answered `sold_out` for the sold-out hint's time without asking the store.
    async fn discard(&self, reservation: &Reservation) {
        let Some(sale) = self.sales.get(&reservation.product) else {
            return;
        };
        sale.gate.mark_sold_out(now_ms());
        match self.store.discard(&sale.keys, reservation).await {
            Ok(discarded) => {
                if discarded {
                    self.metrics.settled.discarded.inc();
                }
                tracing::warn!(
                    reservation = %reservation.id, discarded,
                    "the origin is sold out (410): the unit leaves the sale, not back on sale"
                );
            }
            Err(e) => tracing::error!(
                reservation = %reservation.id,
                "the origin is sold out (410), but discarding the unit failed: {e}; it stays held"
            ),
        }
    }

    async fn give_back(&self, reservation: &Reservation, why: &'static str) {
        let Some(sale) = self.sales.get(&reservation.product) else {
            return;
        };
        let started = Instant::now();
        let released = self.store.release(&sale.keys, reservation).await;
        self.metrics
            .store_release
            .observe(started.elapsed().as_secs_f64());
        match released {
            Ok(returned) => {
                // A sold-out hint would hide the returned unit for up to a second.
                if returned {
                    self.metrics.settled.returned.inc();
                    sale.gate.clear_sold_out();
                }
                tracing::info!(reservation = %reservation.id, returned, "{why}: unit returned");
            }
            Err(e) => tracing::error!(
                reservation = %reservation.id,
                "{why}, but returning the unit failed: {e}"
            ),
        }
    }
}
