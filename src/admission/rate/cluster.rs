//! The counts of a `scope: cluster` rule: this edge's requests per key in the current window,
//! plus what the other edges had counted by the last sync.
//!
//! Like Kong's `sync_rate` and APISIX's `sync_interval`, no request waits for Redis: each is
//! counted here, at once, and every `sync_interval` a background task pushes what this edge
//! counted since the last sync (`INCRBY` per key, one pipeline) and learns each pushed key's
//! total over all edges. A key's count is `this edge's own + the others' as of the last sync`.
//!
//! **Slack.** Between two syncs each edge sees only its own new requests, so a client spread
//! over `n` edges can get up to `n - 1` extra sync intervals' worth of its own requests past
//! the limit (at most `(n - 1) × limit` in the worst case: all of them in the same interval);
//! a key learns the others' count only when it makes a request on this edge in a synced
//! interval. `tests/cluster_limits.rs` measures it. Windows are wall-clock windows
//! (`now / per`), the same on every edge whose clock is right (NTP); a key's window starts
//! from zero.
//!
//! Memory: one entry per key seen in the current window (about 100 bytes), forgotten at the
//! first sync of the next window — unlike the local rules' fixed-size sketch.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Duration;

pub use crate::stock::redis::limits::Push;

/// Independent locks, so that requests of different keys rarely wait for each other.
const SHARDS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The window (`now / per`) these counts are of.
    window: u64,
    /// This edge's requests already sent to Redis.
    pushed: u64,
    /// This edge's requests not sent yet.
    pending: u64,
    /// The other edges' requests, as of the last sync.
    others: u64,
}

impl Entry {
    fn new(window: u64) -> Self {
        Entry {
            window,
            pushed: 0,
            pending: 0,
            others: 0,
        }
    }
}

/// The entries of the keys one lock covers.
type Shard = Mutex<HashMap<Box<str>, Entry>>;

/// One rule's counts on this edge.
pub struct ClusterCounts {
    per_ms: u64,
    hasher: std::collections::hash_map::RandomState,
    shards: Box<[Shard]>,
}

impl ClusterCounts {
    /// Counts over windows of `per`.
    pub fn new(per: Duration) -> Self {
        ClusterCounts {
            per_ms: (per.as_millis() as u64).max(1),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The window length in milliseconds.
    pub fn per_ms(&self) -> u64 {
        self.per_ms
    }

    fn shard(&self, key: &str) -> &Shard {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        &self.shards[i]
    }

    /// Count one request of `key` at `now_ms`: the key's count over all edges (as far as this
    /// edge knows) and the milliseconds until its window ends.
    pub fn observe(&self, key: &str, now_ms: u64) -> (u64, u64) {
        let window = now_ms / self.per_ms;
        let reset_ms = (window + 1) * self.per_ms - now_ms;
        // A poisoned lock only means another request panicked while holding it; the counts
        // are plain numbers and stay usable.
        let mut map = self
            .shard(key)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = match map.get_mut(key) {
            Some(e) => e,
            None => map.entry(key.into()).or_insert(Entry::new(window)),
        };
        if entry.window != window {
            *entry = Entry::new(window);
        }
        entry.pending += 1;
        (entry.pushed + entry.pending + entry.others, reset_ms)
    }

    /// Take what this edge counted since the last sync (it is now counted as sent), and forget
    /// keys of windows that are over.
    pub fn drain(&self, now_ms: u64) -> Vec<Push> {
        let window = now_ms / self.per_ms;
        let mut pushes = Vec::new();
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|key, e| {
                if e.window < window {
                    return false;
                }
                if e.pending > 0 {
                    pushes.push(Push {
                        key: key.clone(),
                        window: e.window,
                        delta: e.pending,
                    });
                    e.pushed += e.pending;
                    e.pending = 0;
                }
                true
            });
        }
        pushes
    }

    /// Learn each pushed key's total over all edges, as Redis answered a sync.
    pub fn learn(&self, totals: impl IntoIterator<Item = (Push, u64)>) {
        for (push, total) in totals {
            self.update(&push, |e| e.others = total.saturating_sub(e.pushed));
        }
    }

    /// Put back what a failed sync took, to be sent with the next one (if Redis did apply part
    /// of it, the other edges over-count those keys a little: the safe side for a limit).
    pub fn restore(&self, pushes: impl IntoIterator<Item = Push>) {
        for push in pushes {
            self.update(&push, |e| {
                let back = push.delta.min(e.pushed);
                e.pushed -= back;
                e.pending += back;
            });
        }
    }

    /// Change the entry `push` was taken from, if it still counts the same window.
    fn update(&self, push: &Push, change: impl FnOnce(&mut Entry)) {
        let mut map = self
            .shard(&push.key)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(&push.key) {
            if e.window == push.window {
                change(e);
            }
        }
    }

    /// Keys counted in the current window (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_counts_then_the_others_after_a_sync() {
        let a = ClusterCounts::new(Duration::from_secs(10));
        let now = 1_000_000;
        assert_eq!(a.observe("u1", now).0, 1);
        assert_eq!(a.observe("u1", now).0, 2);
        let pushes = a.drain(now);
        assert_eq!(
            pushes,
            [Push {
                key: "u1".into(),
                window: 100,
                delta: 2
            }]
        );
        // Redis says 7 in all: 5 from the other edges.
        a.learn(pushes.into_iter().map(|p| (p, 7)));
        assert_eq!(a.observe("u1", now + 1).0, 8);
        // Nothing new for u1 was pushed twice.
        let again = a.drain(now + 2);
        assert_eq!(again[0].delta, 1);
    }

    #[test]
    fn a_new_window_starts_from_zero_and_old_keys_are_forgotten() {
        let a = ClusterCounts::new(Duration::from_secs(1));
        a.observe("u1", 1_500);
        a.observe("u2", 1_600);
        let (count, reset) = a.observe("u1", 2_100);
        assert_eq!((count, reset), (1, 900));
        a.drain(2_200);
        assert_eq!(a.keys(), 1, "u2's window is over");
    }

    #[test]
    fn a_failed_sync_sends_its_counts_with_the_next() {
        let a = ClusterCounts::new(Duration::from_secs(10));
        a.observe("u1", 1_000);
        a.observe("u1", 1_000);
        let failed = a.drain(1_100);
        a.restore(failed);
        a.observe("u1", 1_200);
        assert_eq!(a.drain(1_300)[0].delta, 3);
        assert_eq!(a.observe("u1", 1_400).0, 4, "its own count never changed");
    }

    #[test]
    fn an_answer_for_an_old_window_is_ignored() {
        let a = ClusterCounts::new(Duration::from_secs(1));
        a.observe("u1", 1_500);
        let pushes = a.drain(1_600);
        a.observe("u1", 2_100);
        a.learn(pushes.into_iter().map(|p| (p, 50)));
        assert_eq!(a.observe("u1", 2_200).0, 2);
    }
}
