//! The checkout: the one owner of a buy's whole life, between the edge (which only moves bytes)
//! and admission and stock (which know nothing of HTTP). A unit's fate is decided here and
//! nowhere else.
//!
//! ```text
//! edge: facts from the headers ──► Checkout::buy(facts)
//!     product known? (catalog Bloom filter, then the one Offer lookup)
//!     admission (window, path token, login, blocklist, limits, captcha, queue pass,
//!     sold-out hint)
//!     claim the captcha (captcha sales only) ─► reserve(sale, uid)
//!     ──► Decision::Forward(reservation) | Decision::Answer(reject)
//! edge: forward the winner, signed ──► Checkout::settle(reservation, how the forward ended)
//!     keep │ return │ defer (ledger consumer on Redis; ask the origin on the embedded store)
//! ```
//!
//! - [`offer`]: one [`Offer`] per product on sale holds everything a request for it needs.
//! - [`contract`]: the origin contract — which forward outcomes keep, return or defer a unit.
//! - [`settle`]: applying it, and the embedded store's settlement by asking the origin.
//!
//! Every branch is tested without a socket (`tests.rs`): a fake origin lookup answers the
//! settlement questions.

internal!(mod contract);
internal!(mod offer);
internal!(mod settle);

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admission::blocklist::Blocklist;
use crate::admission::captcha::{CaptchaCheck, Challenge};
use crate::admission::catalog::{CatalogError, ProductFilter};
use crate::admission::login::Login;
use crate::admission::rate::RateLimiter;
use crate::admission::{Admission, Admitted, BuyRequest, Reject};
use crate::config::{Config, ConfigError};
use crate::ground::logging::SharedThrottle;
use crate::ground::metrics::Metrics;
use crate::ground::Outcome;
use crate::stock::single_use::SingleUse;
use crate::stock::{Attempt, Holding, Reservation, Reserve, StockStore, StoreError};

pub use contract::Forwarded;
pub use offer::Offer;
pub use settle::{LookupError, OriginLookup};

/// What the checkout decided about a buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A unit is reserved: forward the buyer to the origin, then [`Checkout::settle`].
    Forward(Reservation),
    /// Answer at the edge.
    Answer(Reject),
    /// A unit is held but its write was not acknowledged by the store's replicas in time: not
    /// forwarded; the buyer is told `202 pending` and learns the outcome from the status URL.
    Pending(Reservation),
    /// The reserve was sent and never answered: it may have taken a unit, now or later. Not
    /// forwarded; the buyer is told `202 pending` with this attempt's status URL, which settles
    /// it in the store ([`Checkout::holding`]).
    Unanswered(Attempt),
    /// The user already holds a unit of this sale: `409 duplicate` with what they hold
    /// ([`Holding::Pending`] or [`Holding::Won`]) and the status URL.
    Held(Holding),
}

impl From<Outcome> for Decision {
    fn from(outcome: Outcome) -> Self {
        Decision::Answer(outcome.into())
    }
}

/// A decided buy and, once the login checked out, whose it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bought {
    /// What to do.
    pub decision: Decision,
    /// The logged-in user, if the request got as far as the login check.
    pub uid: Option<String>,
}

impl Bought {
    fn anonymous(decision: Decision) -> Self {
        Bought {
            decision,
            uid: None,
        }
    }
}

/// How often a failing store is reported: every request during an outage sees it.
const STORE_FAILURE_REPORT: Duration = Duration::from_secs(5);

/// Why the checkout could not be assembled from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The blocklist file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The catalog filter could not be built.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Sales, checks and stock: everything a buy needs.
pub struct Checkout {
    products: ProductFilter,
    sales: HashMap<u64, Offer>,
    admission: Admission,
    store: Arc<dyn StockStore>,
    single_use: Arc<dyn SingleUse>,
    metrics: Arc<Metrics>,
    settle_after: Duration,
    /// Shared by every checkout a reload makes, like the stores and the metrics.
    pending: Arc<settle::Pending>,
    store_failures: Arc<SharedThrottle>,
}

/// What a reload's checkout shares with the one it replaces.
struct Shared {
    store: Arc<dyn StockStore>,
    single_use: Arc<dyn SingleUse>,
    metrics: Arc<Metrics>,
    pending: Arc<settle::Pending>,
    store_failures: Arc<SharedThrottle>,
}

impl Checkout {
    /// Assemble the checkout of `config` over `store` and `single_use`. Reservations the store
    /// holds unsettled from a previous run are queued to be asked about.
    pub fn build(
        config: &Config,
        store: Arc<dyn StockStore>,
        single_use: Arc<dyn SingleUse>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BuildError> {
        let shared = Shared {
            store,
            single_use,
            metrics,
            pending: Arc::default(),
            store_failures: Arc::new(SharedThrottle::new(STORE_FAILURE_REPORT)),
        };
        let checkout = Self::assemble(config, shared, None)?;
        for reservation in checkout.store.unsettled() {
            if !checkout.sales.contains_key(&reservation.product) {
                tracing::warn!(
                    reservation = %reservation.id, product = reservation.product,
                    "left unsettled by the previous run, for a sale no longer configured: it stays held in the journal"
                );
                continue;
            }
            tracing::warn!(
                reservation = %reservation.id,
                "left unsettled by the previous run; asking the origin once settle_after has passed"
            );
            checkout.defer(reservation, 0);
        }
        Ok(checkout)
    }

    /// The checkout of a reloaded `config`, to replace this one: the same store, single-use
    /// store, metrics and settlement queue; each sale that stays keeps its sold-out hint (and
    /// its proof-of-work difficulty if those settings stay); each limit rule of the same
    /// name, key, window and size keeps its counts. Everything else is built from `config`
    /// anew: catalog, blocklist (the file is read again), allowlist, login, captcha checks.
    pub fn rebuild(&self, config: &Config) -> Result<Self, BuildError> {
        let shared = Shared {
            store: Arc::clone(&self.store),
            single_use: Arc::clone(&self.single_use),
            metrics: Arc::clone(&self.metrics),
            pending: Arc::clone(&self.pending),
            store_failures: Arc::clone(&self.store_failures),
        };
        Self::assemble(config, shared, Some(self))
    }

    fn assemble(
        config: &Config,
        shared: Shared,
        previous: Option<&Checkout>,
    ) -> Result<Self, BuildError> {
        let blocklist = match &config.blocklist_file {
            Some(path) => Blocklist::load(path)?,
            None => Blocklist::default(),
        };
        let metrics = &shared.metrics;
        let rates = RateLimiter::carrying(
            &config.limits,
            &config.allowlist_uids,
            |name| metrics.limit_counters(name),
            previous.map(|p| p.admission.rates()),
        );
        let sales = config
            .sales
            .iter()
            .map(|s| {
                let sale = Offer::carrying(
                    s,
                    &config.secrets.edge,
                    config.sold_out_hint,
                    &config.captcha,
                    previous.and_then(|p| p.sales.get(&s.product)),
                );
                (s.product, sale)
            })
            .collect();
        let admission = Admission::new(
            Login::new(&config.secrets.login),
            blocklist,
            rates,
            CaptchaCheck::new(&config.captcha, &config.secrets.edge),
        );
        Ok(Checkout {
            products: ProductFilter::build(&config.catalog)?,
            sales,
            admission,
            store: shared.store,
            single_use: shared.single_use,
            metrics: shared.metrics,
            settle_after: config.origin.settle_after,
            pending: shared.pending,
            store_failures: shared.store_failures,
        })
    }

    /// The sale of `product`, if the product is in the catalog and on sale here.
    pub fn sale(&self, product: u64) -> Option<&Offer> {
        if !self.products.may_contain(product) {
            return None;
        }
        self.sales.get(&product)
    }

    /// Every sale.
    pub fn sales(&self) -> impl Iterator<Item = &Offer> {
        self.sales.values()
    }

    /// The checks that do not belong to one sale.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The catalog filter.
    pub fn products(&self) -> &ProductFilter {
        &self.products
    }

    /// Where stock lives.
    pub fn store(&self) -> &Arc<dyn StockStore> {
        &self.store
    }

    /// What `uid` holds of `sale`: whether a buy that ended `pending` won. Asked about an
    /// `attempt` whose reserve was never answered, the store settles that attempt first: if
    /// the user holds nothing, it is fenced and will never take a unit
    /// ([`StockStore::fence`]). Failures are reported like a reserve's (throttled) and passed
    /// on.
    pub async fn holding(
        &self,
        sale: &Offer,
        uid: &str,
        attempt: Option<&Attempt>,
    ) -> Result<Holding, StoreError> {
        let held = match attempt {
            Some(attempt) => self.store.fence(&sale.keys, uid, attempt).await,
            None => self.store.holding(&sale.keys, uid).await,
        };
        if let Err(e) = &held {
            if let Some(more) = self.store_failures.admit() {
                tracing::error!(product = sale.keys.product, "buy status: the store failed ({more} more failures since the last report): {e}");
            }
        }
        held
    }

    /// Decide a buy: answer it at the edge, or reserve a unit and forward it.
    pub async fn buy(&self, request: &BuyRequest<'_>) -> Decision {
        self.decide(request).await.decision
    }

    /// [`Checkout::buy`], also saying whose buy it was once the login checked out (for the
    /// access log; the UID is the one the login check made, not a copy).
    pub async fn decide(&self, request: &BuyRequest<'_>) -> Bought {
        let Some(sale) = self.sale(request.product) else {
            return Bought::anonymous(Outcome::UnknownProduct.into());
        };
        let uid = match self.admission.identify(&sale.gate, request) {
            Ok(uid) => uid,
            Err(reject) => return Bought::anonymous(Decision::Answer(reject)),
        };
        match self
            .admission
            .admit(&sale.gate, &sale.captcha, request, uid)
        {
            Ok(admitted) => {
                let decision = self.take(sale, request, &admitted).await;
                Bought {
                    decision,
                    uid: Some(admitted.uid),
                }
            }
            Err((reject, uid)) => Bought {
                decision: Decision::Answer(reject),
                uid: Some(uid),
            },
        }
    }

    /// The store's part of an admitted buy: claim its captcha, reserve a unit.
    async fn take(&self, sale: &Offer, request: &BuyRequest<'_>, admitted: &Admitted) -> Decision {
        if let Some(pass) = &admitted.pass {
            // The captcha's single use: a store call, made only once every local check passed.
            let started = Instant::now();
            let claimed = self
                .single_use
                .claim(&sale.keys, &pass.key, pass.expires_ms, request.now_ms)
                .await;
            self.metrics
                .store_captcha
                .observe(started.elapsed().as_secs_f64());
            match claimed {
                Ok(true) => {}
                Ok(false) => return Outcome::CaptchaRequired.into(),
                Err(e) => {
                    if let Some(held) = self.store_failures.admit() {
                        tracing::warn!(
                            "captcha claim failed: {e} ({held} more store failures since the last report)"
                        );
                    }
                    return Outcome::StoreUnavailable.into();
                }
            }
        }
        let attempt = match Attempt::new() {
            Ok(attempt) => attempt,
            Err(e) => {
                tracing::error!("reserve not sent: {e}");
                return Outcome::StoreUnavailable.into();
            }
        };
        let started = Instant::now();
        let reserved = self
            .store
            .reserve(&sale.keys, &admitted.uid, &attempt)
            .await;
        self.metrics
            .store_reserve
            .observe(started.elapsed().as_secs_f64());
        match reserved {
            Ok(Reserve::Won { reservation, .. }) => Decision::Forward(reservation),
            Ok(Reserve::Unacknowledged { reservation }) => {
                self.metrics.unacknowledged.inc();
                if let Some(held) = self.store_failures.admit() {
                    tracing::warn!(
                        reservation = %reservation.id,
                        "replicas did not acknowledge the reservation in time: not forwarded, left to the ledger ({held} more store failures since the last report)"
                    );
                }
                Decision::Pending(reservation)
            }
            Ok(Reserve::SoldOut) => {
                sale.gate.mark_sold_out(request.now_ms);
                Outcome::SoldOut.into()
            }
            Ok(Reserve::Duplicate(holding)) => Decision::Held(holding),
            Ok(Reserve::UnknownSale) => Outcome::UnknownProduct.into(),
            // Only a copy of an attempt already given up on can meet its fence; nothing taken.
            Ok(Reserve::Fenced) => Outcome::StoreUnavailable.into(),
            Err(e) if e.unanswered() => {
                self.metrics.unanswered.inc();
                if let Some(held) = self.store_failures.admit() {
                    tracing::warn!(
                        %attempt,
                        "reserve sent and never answered: {e}; the buyer is told pending ({held} more store failures since the last report)"
                    );
                }
                Decision::Unanswered(attempt)
            }
            Err(e) => {
                if let Some(held) = self.store_failures.admit() {
                    tracing::warn!(
                        "reserve failed: {e} ({held} more store failures since the last report)"
                    );
                }
                Outcome::StoreUnavailable.into()
            }
        }
    }

    /// A proof-of-work challenge for the holder of `login_token` on `product`'s sale.
    pub fn challenge(
        &self,
        product: Option<u64>,
        login_token: Option<&str>,
        now_ms: u64,
    ) -> Result<(Challenge, u64), Outcome> {
        let sale = product
            .and_then(|p| self.sale(p))
            .ok_or(Outcome::UnknownProduct)?;
        // Not before the opening: a challenge solved ahead at the calm difficulty would skip the
        // rise the opening's crowd brings.
        sale.gate.window(now_ms)?;
        let uid = login_token
            .and_then(|t| self.admission.login().verify(t))
            .ok_or(Outcome::LoginRequired)?;
        let issued = self
            .admission
            .captcha()
            .issue(&sale.captcha, &uid, sale.product(), now_ms)
            .ok_or(Outcome::NotFound)?;
        Ok((issued, sale.product()))
    }
}

#[cfg(test)]
mod tests;
