//! The ledger consumer: makes the orders the edge's forward never delivered. Every reservation
//! `reserve.lua` makes is appended to its sale's ledger stream; if the edge dies between the
//! reservation and the forward, the origin was down, or the forward's outcome is unknown, only
//! the ledger knows the winner.
//!
//! One Redis Streams consumer group over every sale's ledger, shared by all backend instances,
//! each sale read on its own ([`Ledgers`]). Sales are found in the registry
//! `flashgate stock load` writes (`SALES_REGISTRY`), never by scanning the keyspace, so a sale
//! loaded after the backend started is picked up within [`DISCOVER_EVERY`]. Each entry is placed
//! as an order (idempotent: an order the forward made is found and left alone; a released
//! reservation makes none) and acknowledged after the database commit.
//!
//! What can go wrong, and what happens:
//!
//! - **The database or Redis fails** (an outage, a lock, a failover): the entry stays pending
//!   and is tried again after 1 s, 2 s, 4 s … at most every 30 s, for `ledger.retry_for`
//!   (default 1 h). A failure stops that sale's round — the next entry would wait on the same
//!   outage — but not the other sales'. While any entry is failing,
//!   `flashgate_orders_ledger_unplaced` and `flashgate_orders_ledger_oldest_unplaced_seconds`
//!   say so (alert `FlashgateOrdersUnplaced`). An entry that still has no order after
//!   `retry_for` goes to the sale's dead-letter stream with its unit still held for its buyer,
//!   and `flashgate_orders_dead_letters_total` counts it: `flashgate-orders reconcile --dead-letters`
//!   makes its order (or returns its unit if the sale refuses it). Nothing is dropped, and no
//!   count of attempts that a short outage could use up decides anything.
//! - **An entry without a reservation** (not written by `reserve.lua`): dead-lettered at once;
//!   it holds no unit.
//! - **The group or the whole ledger disappears** (`NOGROUP`: data loss, a failover to a
//!   replica that never saw the group, a stray `DEL`): the group is created again at the
//!   stream's start, and that sale's entries are read again (placing is idempotent).
//! - **A backend instance dies** with entries pending: another instance takes them over after
//!   `ledger.claim_idle` (XAUTOCLAIM); the same instance, restarted, takes its own back at once
//!   (its consumer name is stable: host and listen port).
//!
//! The registry also carries each sale's configured stock: the database's `sales.stock`
//! follows a later `stock load` (a restock) within the same 2 s.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::service::{OrderError, Orders};
use crate::ground::logging::Throttle;
use crate::orders::model::Source;
use crate::stock::redis::ledger::{Entry, Ledgers};
use crate::stock::{SaleKeys, StoreError};

/// How often the registry is read (new sales, changed stock).
pub const DISCOVER_EVERY: Duration = Duration::from_secs(2);
/// How often this consumer's own pending entries are looked at for retries.
const RETRY_TICK: Duration = Duration::from_secs(1);
/// The pause after a round that found nothing to do.
const IDLE_PAUSE: Duration = Duration::from_millis(500);
/// Entries read per command.
const BATCH: usize = 100;
/// Pages of XAUTOCLAIM per sale per claim round.
const CLAIM_PAGES: usize = 10;
/// The first pause after a failure, doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause between two tries of one entry.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The time in a stream entry id (`{ms}-{n}`).
fn entry_ms(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

/// Ledger consumer settings.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// This consumer's name in the group: stable across restarts of one instance.
    pub consumer: String,
    /// How old an entry must be before the consumer places it: longer than the edge's forward
    /// can take (`origin.connect_timeout` + `origin.timeout`, and a retry), so the forward's own
    /// answer settles the unit first.
    pub grace: Duration,
    /// Idle time after which another consumer's pending entry is taken over.
    pub claim_idle: Duration,
    /// How long an entry that cannot be placed is tried before it is dead-lettered.
    pub retry_for: Duration,
}

/// An entry that failed, and when to try it again.
#[derive(Debug, Clone, Copy)]
struct Failing {
    since: Instant,
    attempts: u32,
    next: Instant,
}

/// The pause after the `attempts`-th failure in a row: 1 s, 2 s, 4 s … at most [`MAX_BACKOFF`].
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// How handling one entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Placed (or found settled) and acknowledged, or dead-lettered.
    Done,
    /// Not yet due for another try.
    Later,
    /// It failed: the sale's round stops here.
    Failed,
}

/// One sale the consumer reads.
struct Watched {
    keys: SaleKeys,
    /// When an entry of it was last handled (or when it was found).
    active: Instant,
    /// When it was last read.
    read: Option<Instant>,
    /// Since when its rounds fail as a whole (Redis failing for it), if they do.
    failing: Option<Instant>,
}

impl Watched {
    /// Whether to read it in this round: a sale quiet for [`QUIET_AFTER`] is read every
    /// [`QUIET_EVERY`], so sales long over cost next to nothing.
    fn due(&self, now: Instant) -> bool {
        now.duration_since(self.active) < QUIET_AFTER
            || self
                .read
                .is_none_or(|at| now.duration_since(at) >= QUIET_EVERY)
    }
}

/// A sale with nothing to do for this long is read only every [`QUIET_EVERY`].
const QUIET_AFTER: Duration = Duration::from_secs(60);
const QUIET_EVERY: Duration = Duration::from_secs(10);

struct Consumer {
    orders: Arc<Orders>,
    ledgers: Ledgers,
    settings: LedgerSettings,
    sales: Vec<Watched>,
    failing: HashMap<(u64, String), Failing>,
    /// Redis or the database failing is seen every round: one line per 10 s says so.
    quiet: Throttle,
}

/// How often a failure seen every round is logged.
const QUIET: Duration = Duration::from_secs(10);

/// Run the consumer until the process ends. Every error is logged and retried.
pub async fn run(orders: Arc<Orders>, ledgers: Ledgers, settings: LedgerSettings) {
    let mut consumer = Consumer {
        orders,
        ledgers,
        settings,
        sales: Vec::new(),
        failing: HashMap::new(),
        quiet: Throttle::new(QUIET),
    };
    let long_ago = Instant::now().checked_sub(Duration::from_secs(3600));
    let mut discovered = long_ago;
    let mut retried = long_ago;
    let mut claimed = long_ago;
    let claim_every = consumer.settings.claim_idle.min(Duration::from_secs(10));
    loop {
        if discovered.is_none_or(|at| at.elapsed() >= DISCOVER_EVERY) {
            consumer.discover().await;
            discovered = Some(Instant::now());
        }
        let retry = retried.is_none_or(|at| at.elapsed() >= RETRY_TICK);
        let claim = claimed.is_none_or(|at| at.elapsed() >= claim_every);
        let mut busy = false;
        for i in 0..consumer.sales.len() {
            let now = Instant::now();
            if !consumer.sales[i].due(now) {
                continue;
            }
            consumer.sales[i].read = Some(now);
            let keys = consumer.sales[i].keys.clone();
            match consumer.round(&keys, retry, claim).await {
                Ok(handled) => {
                    let sale = &mut consumer.sales[i];
                    sale.failing = None;
                    if handled > 0 {
                        sale.active = Instant::now();
                        busy = true;
                    }
                }
                Err(e) => {
                    consumer.sales[i].failing.get_or_insert(now);
                    if e.is_no_group() {
                        consumer.regroup(&keys).await;
                    } else {
                        consumer.warn(format_args!("sale {}: {e}; retrying", keys.product));
                    }
                }
            }
        }
        if retry {
            retried = Some(Instant::now());
        }
        if claim {
            claimed = Some(Instant::now());
        }
        consumer.publish();
        if !busy {
            tokio::time::sleep(IDLE_PAUSE).await;
        }
    }
}

impl Consumer {
    /// Read the registry: consume every sale in it, and let the database's stock follow each
    /// sale's configured total. A sale that fails here (a key of the wrong type, its Cluster
    /// node down) is tried again next time; the others go on.
    async fn discover(&mut self) {
        let products = match self.orders.stock.registered().await {
            Ok(products) => products,
            Err(e) => {
                self.warn(format_args!("reading the sales registry failed: {e}"));
                return;
            }
        };
        for product in products {
            if let Err(e) = self.discover_one(product).await {
                self.warn(format_args!("sale {product}: {e}"));
            }
        }
    }

    async fn discover_one(&mut self, product: u64) -> Result<(), OrderError> {
        if !self.sales.iter().any(|s| s.keys.product == product) {
            let keys = SaleKeys::of(product);
            self.ledgers.create_group(&keys).await?;
            tracing::info!(product, ledger = %keys.ledger, "consuming sale ledger");
            self.sales.push(Watched {
                keys,
                active: Instant::now(),
                read: None,
                failing: None,
            });
        }
        if let Some(stock) = self.orders.stock.configured_stock(product).await? {
            self.orders.follow_stock(product, stock).await?;
        }
        Ok(())
    }

    /// Log a failure that may repeat every round, at most once per [`QUIET`].
    fn warn(&mut self, what: std::fmt::Arguments<'_>) {
        if let Some(held) = self.quiet.admit() {
            tracing::warn!(
                "ledger consumer: {what} ({held} similar failures since the last report)"
            );
        }
    }

    /// The sale's group is gone: create it again at the start of the ledger.
    async fn regroup(&mut self, sale: &SaleKeys) {
        self.orders.metrics.ledger_regrouped.inc();
        match self.ledgers.create_group(sale).await {
            Ok(_) => tracing::warn!(
                product = sale.product,
                "the sale's ledger lost its consumer group (Redis lost data, or the key was removed); \
                 created it again and reading the ledger from its start"
            ),
            Err(e) => tracing::warn!(
                product = sale.product,
                "the sale's ledger lost its consumer group and creating it failed: {e}"
            ),
        }
    }

    /// One round over one sale: take over dead consumers' entries, retry this consumer's own
    /// due entries, read new ones. The number of entries handled.
    async fn round(
        &mut self,
        sale: &SaleKeys,
        retry: bool,
        claim: bool,
    ) -> Result<usize, StoreError> {
        let mut handled = 0;
        if claim {
            let mut start = "0-0".to_string();
            for _ in 0..CLAIM_PAGES {
                let (entries, next) = self
                    .ledgers
                    .claim(
                        sale,
                        &self.settings.consumer,
                        self.settings.claim_idle,
                        &start,
                        BATCH,
                    )
                    .await?;
                match self.handle_all(sale, entries).await? {
                    (n, true) => handled += n,
                    (n, false) => return Ok(handled + n),
                }
                let Some(next) = next else { break };
                start = next;
            }
        }
        if retry {
            let mut after = "0".to_string();
            let mut pending = HashSet::new();
            loop {
                let entries = self
                    .ledgers
                    .read_pending(sale, &self.settings.consumer, &after, BATCH)
                    .await?;
                let Some(last) = entries.last().map(|e| e.id.clone()) else {
                    break;
                };
                pending.extend(entries.iter().map(|e| e.id.clone()));
                match self.handle_all(sale, entries).await? {
                    (n, true) => handled += n,
                    (n, false) => return Ok(handled + n),
                }
                after = last;
            }
            // Entries this consumer no longer holds (another instance took them over) are no
            // longer its failures.
            self.failing
                .retain(|(product, id), _| *product != sale.product || pending.contains(id));
        }
        let entries = self
            .ledgers
            .read_new(sale, &self.settings.consumer, BATCH)
            .await?;
        Ok(handled + self.handle_all(sale, entries).await?.0)
    }

    /// Handle `entries` in order until one fails: (entries placed or dead-lettered, whether
    /// none failed).
    async fn handle_all(
        &mut self,
        sale: &SaleKeys,
        entries: Vec<Entry>,
    ) -> Result<(usize, bool), StoreError> {
        let mut done = 0;
        for entry in entries {
            match self.handle(sale, &entry).await? {
                Handled::Done => done += 1,
                Handled::Later => {}
                Handled::Failed => return Ok((done, false)),
            }
        }
        Ok((done, true))
    }

    /// Place one entry's order; acknowledge it when done, back off when it fails.
    async fn handle(&mut self, sale: &SaleKeys, entry: &Entry) -> Result<Handled, StoreError> {
        let key = (sale.product, entry.id.clone());
        let now = Instant::now();
        if self.failing.get(&key).is_some_and(|f| f.next > now) {
            return Ok(Handled::Later);
        }
        if entry_ms(&entry.id)
            .is_some_and(|at| crate::ground::clock::now_ms() < at + self.grace_ms())
        {
            // The edge's own forward settles first: an entry younger than the grace is left
            // until then (it stays pending; the retry pass comes back to it).
            return Ok(Handled::Later);
        }
        let Some(reservation) = &entry.reservation else {
            self.dead_letter(sale, entry, "malformed entry: no uid or product")
                .await?;
            return Ok(Handled::Done);
        };
        match self.orders.place(reservation, Source::Ledger).await {
            Ok(_) => {
                self.ledgers.ack(sale, &entry.id).await?;
                if let Some(f) = self.failing.remove(&key) {
                    tracing::info!(
                        reservation = %reservation.id, attempts = f.attempts,
                        "ledger entry placed after {:.0?} of failures", f.since.elapsed()
                    );
                }
                Ok(Handled::Done)
            }
            Err(e) => {
                let failing = self.failing.entry(key.clone()).or_insert(Failing {
                    since: now,
                    attempts: 0,
                    next: now,
                });
                failing.attempts += 1;
                failing.next = now + backoff(failing.attempts);
                let Failing {
                    since, attempts, ..
                } = *failing;
                if since.elapsed() >= self.settings.retry_for {
                    let why = format!(
                        "no order after {attempts} tries in {:.0?} (ledger.retry_for): {e}; \
                         the unit stays held for its buyer until `flashgate-orders reconcile --dead-letters`",
                        since.elapsed()
                    );
                    self.dead_letter(sale, entry, &why).await?;
                    self.failing.remove(&key);
                    return Ok(Handled::Failed);
                }
                // The first failure and then one in ten: an outage must not flood the log.
                if attempts == 1 || attempts % 10 == 0 {
                    tracing::warn!(
                        reservation = %reservation.id, attempts,
                        "ledger entry has no order yet, trying again in {:?}: {e}",
                        backoff(attempts)
                    );
                }
                Ok(Handled::Failed)
            }
        }
    }

    fn grace_ms(&self) -> u64 {
        u64::try_from(self.settings.grace.as_millis()).unwrap_or(u64::MAX)
    }

    async fn dead_letter(
        &self,
        sale: &SaleKeys,
        entry: &Entry,
        why: &str,
    ) -> Result<(), StoreError> {
        self.ledgers.dead_letter(sale, entry, why).await?;
        self.orders.metrics.dead_letters.inc();
        tracing::error!(entry = %entry.id, dead = %sale.dead, "ledger entry moved to the dead-letter stream: {why}");
        Ok(())
    }

    /// Export how many entries are failing and for how long the oldest has been.
    fn publish(&self) {
        let metrics = &self.orders.metrics;
        metrics.ledger_unplaced.set(self.failing.len() as i64);
        let oldest = self
            .failing
            .values()
            .map(|f| f.since)
            .chain(self.sales.iter().filter_map(|s| s.failing))
            .map(|since| since.elapsed().as_secs_f64())
            .fold(0.0, f64::max);
        metrics.ledger_oldest_unplaced.set(oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let pauses: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(0), FIRST_BACKOFF);
    }
}
