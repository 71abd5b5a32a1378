//! What one edge knows of one sale's queue, learned from its ticks ([`QueueView::learn`]), and
//! the answer to a poll computed from it alone ([`QueueView::status`]): no store call. Shared by
//! every request of the sale; a reload keeps it while the sale's queue settings stay
//! (`queue::Queues`).
//!
//! A place's rank in the queue: in `fifo`, a pre-queue join number is its rank; in `shuffle`
//! the draw gives it (`draw::places`, computed once when the pre-queue is sealed); a later join
//! `n` ranks after all `sealed` pre-queue joiners. Before the start a shuffled place has no rank
//! yet: its position is then the number of other pre-queue joiners so far.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::draw;
use super::ticket::{Kind, Place, Signer};
use crate::config::{QueueMode, QueueSettings, Sale};
use crate::ground::Secret;
use crate::queue::store::{Pace, QueueState};

/// Where a visitor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// In line.
    Waiting,
    /// Let through: may buy until `pass_expires_ms`.
    Admitted,
    /// No unit left.
    SoldOut,
    /// The sale is over, or this visitor's pass expired unused.
    Closed,
}

impl State {
    /// The name in the JSON answer.
    pub fn name(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Admitted => "admitted",
            State::SoldOut => "sold_out",
            State::Closed => "closed",
        }
    }
}

/// A poll's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollAnswer {
    /// Where the visitor stands.
    pub state: State,
    /// Visitors ahead not yet let through (0 once admitted).
    pub position: u64,
    /// Estimated seconds to admission.
    pub eta_s: u64,
    /// When admitted: until when the pass is good (ms since the epoch).
    pub pass_expires_ms: Option<u64>,
    /// When admitted: when the frontier passed this place (as this edge saw it).
    pub admitted_ms: Option<u64>,
    /// The place's rank in the queue, once known.
    pub rank: Option<u64>,
    /// Admitted once and the pass ran out unused.
    pub expired: bool,
}

#[derive(Default)]
struct Known {
    state: Option<QueueState>,
    /// (edge clock ms, frontier) each time the frontier moved, oldest first.
    history: Vec<(u64, u64)>,
    /// Shuffle: the place of every pre-queue join number.
    places: Option<Arc<Vec<u32>>>,
}

/// One sale's queue as this edge knows it.
pub struct QueueView {
    /// The product.
    pub product: u64,
    /// The queue's settings.
    pub settings: QueueSettings,
    /// Start of the sale (ms).
    pub starts_ms: u64,
    /// End of the sale (ms).
    pub ends_ms: u64,
    /// Joining opens here (ms).
    pub opens_ms: u64,
    /// Signs and checks this sale's tickets and passes.
    pub signer: Signer,
    /// The edge secret it was made with (a reload that changes it makes a new view).
    edge: Secret,
    seed: [u8; 32],
    /// SHA-256 of the draw's seed, hex (published from the pre-queue's opening).
    pub commitment: String,
    known: RwLock<Known>,
    /// Places whose wait this edge observed already (the wait histogram counts each once).
    observed: Mutex<HashSet<Place>>,
    /// The largest number of abandoned passes seen (the counter grows by the difference).
    abandoned_seen: Mutex<u64>,
    /// The frontier last counted in the admitted counter.
    admitted_seen: Mutex<u64>,
}

impl QueueView {
    /// The view of `sale`'s queue (None without a `queue:`).
    pub fn of(sale: &Sale, edge: &Secret) -> Option<Self> {
        let settings = sale.queue?;
        let starts_ms = sale.starts_at.unix_millis();
        let seed = draw::seed(edge, sale.product, starts_ms);
        Some(QueueView {
            product: sale.product,
            settings,
            starts_ms,
            ends_ms: sale.ends_at.unix_millis(),
            opens_ms: starts_ms.saturating_sub(settings.prequeue.as_millis() as u64),
            signer: Signer::new(edge, sale.product, starts_ms),
            edge: edge.clone(),
            seed,
            commitment: draw::commitment(&seed),
            known: RwLock::default(),
            observed: Mutex::default(),
            abandoned_seen: Mutex::new(0),
            admitted_seen: Mutex::new(0),
        })
    }

    /// Whether this view was made with the edge secret `edge`.
    pub fn signs_with(&self, edge: &Secret) -> bool {
        self.edge.bytes() == edge.bytes()
    }

    /// The pace the ticks advance this queue at.
    pub fn pace(&self) -> Pace {
        Pace {
            starts_at_ms: self.starts_ms,
            admit_per_second: self.settings.admit_per_second,
            stock_multiple: self.settings.stock_multiple,
            pass_ttl_ms: self.settings.pass_ttl.as_millis() as u64,
        }
    }

    /// The draw's seed, revealed only from the start.
    pub fn seed_if_revealed(&self, now_ms: u64) -> Option<[u8; 32]> {
        (now_ms >= self.starts_ms).then_some(self.seed)
    }

    /// The pre-queue's final joiner count, once this edge learned it.
    pub fn sealed(&self) -> Option<u64> {
        self.known.read().state.and_then(|s| s.sealed)
    }

    /// Take in what a tick read at `now_ms` (this edge's clock).
    pub fn learn(&self, state: QueueState, now_ms: u64) {
        let needs_draw = {
            let k = self.known.read();
            self.settings.mode == QueueMode::Shuffle && k.places.is_none() && state.sealed.is_some()
        };
        // The draw is computed outside the lock: a few ms for a million joiners.
        let places = needs_draw.then_some(state.sealed).flatten().map(|n| {
            Arc::new(draw::places(
                self.seed,
                u32::try_from(n).unwrap_or(u32::MAX),
            ))
        });
        let mut k = self.known.write();
        if k.places.is_none() {
            k.places = places;
        }
        let moved = k.history.last().is_none_or(|&(_, f)| state.admitted > f);
        if moved {
            k.history.push((now_ms, state.admitted));
        }
        k.state = Some(state);
    }

    /// The queue as last learned.
    pub fn state(&self) -> Option<QueueState> {
        self.known.read().state
    }

    fn rank(&self, k: &Known, place: Place) -> Option<u64> {
        let s = k.state?;
        match place.kind {
            Kind::Pre => match self.settings.mode {
                QueueMode::Fifo => Some(place.number),
                QueueMode::Shuffle => {
                    let places = k.places.as_ref()?;
                    let i = usize::try_from(place.number - 1).ok()?;
                    places.get(i).map(|&p| u64::from(p))
                }
            },
            Kind::Post => s.sealed.map(|sealed| sealed + place.number),
        }
    }

    /// Where the holder of `place` stands at `now_ms`.
    pub fn status(&self, place: Place, now_ms: u64) -> PollAnswer {
        let k = self.known.read();
        let rate = self.settings.admit_per_second.max(1);
        let mut status = PollAnswer {
            state: State::Waiting,
            position: 0,
            eta_s: 0,
            pass_expires_ms: None,
            admitted_ms: None,
            rank: None,
            expired: false,
        };
        if now_ms >= self.ends_ms {
            status.state = State::Closed;
            return status;
        }
        let to_start = self.starts_ms.saturating_sub(now_ms).div_ceil(1000);
        let Some(s) = k.state else {
            // No tick yet: in line, place unknown.
            status.position = place.number.saturating_sub(1);
            status.eta_s = to_start + status.position / rate;
            return status;
        };
        let rank = self.rank(&k, place);
        status.rank = rank;
        if let Some(rank) = rank.filter(|&r| r <= s.admitted) {
            let i = k.history.partition_point(|&(_, f)| f < rank);
            let at = k.history.get(i).map_or(now_ms, |&(t, _)| t);
            let expires = at + self.settings.pass_ttl.as_millis() as u64;
            status.admitted_ms = Some(at);
            if s.remaining == Some(0) {
                status.state = State::SoldOut;
            } else if now_ms >= expires {
                status.state = State::Closed;
                status.expired = true;
            } else {
                status.state = State::Admitted;
                status.pass_expires_ms = Some(expires);
            }
            return status;
        }
        if s.remaining == Some(0) {
            status.state = State::SoldOut;
            return status;
        }
        status.position = match rank {
            Some(r) => r.saturating_sub(1).saturating_sub(s.admitted),
            // Before the start: fifo places are known; shuffled ones not yet.
            None => match (place.kind, self.settings.mode) {
                (Kind::Pre, QueueMode::Shuffle) => s.pre.saturating_sub(1),
                (Kind::Pre, QueueMode::Fifo) => place.number - 1,
                (Kind::Post, _) => s.pre + place.number - 1,
            }
            .saturating_sub(s.admitted),
        };
        status.eta_s = to_start + (status.position + 1).div_ceil(rate);
        status
    }

    /// Record that the holder of `place` was seen admitted; true the first time on this edge.
    pub fn first_seen_admitted(&self, place: Place) -> bool {
        self.observed.lock().insert(place)
    }

    /// How far the frontier moved since the last call: `state`'s frontier less the largest
    /// one counted before. Every edge counts the sale's admissions whoever's tick made them,
    /// and a tick whose answer was lost (a timeout after Redis ran it) loses nothing.
    pub fn admitted_growth(&self, admitted: u64) -> u64 {
        let mut seen = self.admitted_seen.lock();
        let growth = admitted.saturating_sub(*seen);
        *seen = (*seen).max(admitted);
        growth
    }

    /// Passes that expired unused, as far as this edge can tell at `now_ms`: the places let
    /// through more than `pass_ttl` ago, less every buyer (each buyer held a pass). Returns the
    /// growth since the last call.
    pub fn abandoned_growth(&self, now_ms: u64) -> u64 {
        let k = self.known.read();
        let Some(s) = k.state else { return 0 };
        let ttl = self.settings.pass_ttl.as_millis() as u64;
        let cutoff = now_ms.saturating_sub(ttl);
        let i = k.history.partition_point(|&(t, _)| t <= cutoff);
        let expired = if i == 0 { 0 } else { k.history[i - 1].1 };
        let abandoned = expired.saturating_sub(s.buyers);
        let mut seen = self.abandoned_seen.lock();
        let growth = abandoned.saturating_sub(*seen);
        *seen = (*seen).max(abandoned);
        growth
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Captcha, Timestamp};
    use std::time::{Duration, UNIX_EPOCH};

    fn view(mode: QueueMode) -> QueueView {
        let sale = Sale {
            product: 42,
            stock: 10,
            starts_at: Timestamp(UNIX_EPOCH + Duration::from_secs(1000)),
            ends_at: Timestamp(UNIX_EPOCH + Duration::from_secs(2000)),
            captcha: Captcha::None,
            showcase: Default::default(),
            queue: Some(QueueSettings {
                mode,
                prequeue: Duration::from_secs(100),
                admit_per_second: 2,
                pass_ttl: Duration::from_secs(10),
                stock_multiple: 2,
            }),
        };
        QueueView::of(&sale, &Secret::new(vec![1u8; 32])).unwrap()
    }

    fn state(sealed: Option<u64>, admitted: u64, remaining: u64) -> QueueState {
        QueueState {
            now_ms: 0,
            pre: 5,
            post: 2,
            sealed,
            admitted,
            admitted_now: 0,
            remaining: Some(remaining),
            buyers: 0,
        }
    }

    const fn pre(number: u64) -> Place {
        Place {
            kind: Kind::Pre,
            number,
        }
    }

    #[test]
    fn fifo_places_wait_then_pass_then_expire() {
        let v = view(QueueMode::Fifo);
        assert_eq!(v.opens_ms, 900_000);
        v.learn(state(None, 0, 10), 950_000);
        let s = v.status(pre(3), 950_000);
        assert_eq!((s.state, s.position), (State::Waiting, 2));
        assert_eq!(s.eta_s, 50 + 2, "50 s to the start, then 3 places at 2/s");
        v.learn(state(Some(5), 3, 10), 1_001_000);
        let s = v.status(pre(3), 1_002_000);
        assert_eq!(s.state, State::Admitted);
        assert_eq!(
            s.pass_expires_ms,
            Some(1_011_000),
            "pass_ttl after the frontier passed it"
        );
        let s = v.status(pre(5), 1_002_000);
        assert_eq!((s.state, s.position), (State::Waiting, 1));
        // A later join ranks after the sealed pre-queue.
        let late = Place {
            kind: Kind::Post,
            number: 2,
        };
        let s = v.status(late, 1_002_000);
        assert_eq!((s.rank, s.position), (Some(7), 3));
        // The pass runs out unused.
        let s = v.status(pre(3), 1_011_000);
        assert_eq!((s.state, s.expired), (State::Closed, true));
        // Sold out reaches everyone; the end closes everything.
        v.learn(state(Some(5), 4, 0), 1_003_000);
        assert_eq!(v.status(pre(5), 1_003_000).state, State::SoldOut);
        assert_eq!(v.status(pre(5), 2_000_000).state, State::Closed);
    }

    #[test]
    fn shuffled_places_come_from_the_draw_at_the_start() {
        let v = view(QueueMode::Shuffle);
        v.learn(state(None, 0, 10), 950_000);
        assert_eq!(
            v.status(pre(1), 950_000).rank,
            None,
            "no place before the draw"
        );
        assert_eq!(v.seed_if_revealed(950_000), None);
        v.learn(state(Some(5), 0, 10), 1_000_100);
        let seed = v.seed_if_revealed(1_000_100).unwrap();
        assert_eq!(draw::commitment(&seed), v.commitment);
        let places = draw::places(seed, 5);
        for n in 1..=5 {
            let s = v.status(pre(n), 1_000_100);
            assert_eq!(s.rank, Some(u64::from(places[n as usize - 1])));
            assert_eq!(s.position, s.rank.unwrap() - 1);
        }
    }

    #[test]
    fn abandoned_passes_are_counted_once_expired() {
        let v = view(QueueMode::Fifo);
        v.learn(state(Some(5), 4, 10), 1_001_000);
        assert_eq!(v.abandoned_growth(1_005_000), 0, "passes still live");
        let mut s = state(Some(5), 4, 9);
        s.buyers = 1;
        v.learn(s, 1_012_000);
        assert_eq!(v.abandoned_growth(1_012_000), 3, "4 let through, 1 bought");
        assert_eq!(v.abandoned_growth(1_013_000), 0, "counted once");
    }
}
