//! The waiting room of a sale with a `queue:` (issue 13): visitors join before or after the
//! start, wait for their turn, and are let through at `admit_per_second`, never more than the
//! stock can serve; a buy of a queued sale needs the pass the queue gave
//! (`admission::queue_pass`). Nothing here knows HTTP or a store's commands:
//!
//! - [`ticket`]: the signed tickets (a place) and passes (let through, until when).
//! - [`draw`]: the shuffle's verifiable draw, from a seed whose hash is published first.
//! - [`view`]: one edge's knowledge of one sale's queue and the answer to a poll from it.
//! - [`Queues`]: the views of every queued sale, kept across reloads.
//!
//! The shared state (join counters, UID → place, the admission frontier) lives in the store
//! (`stock::queue`); the edge's routes are in `edge::proxy::queue`, its ticks in
//! `edge::queue_sync`.

pub mod draw;
internal!(mod pass);
internal!(mod store);
internal!(mod tick);
internal!(mod ticket);
internal!(mod view);

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::Sale;
use crate::ground::Secret;
use crate::queue::store::QueueStore;
pub use view::{PollAnswer, QueueView, State};

/// Every queued sale's view, and the store their queues live in.
pub struct Queues {
    /// Where the queues live.
    pub store: Arc<dyn QueueStore>,
    views: RwLock<HashMap<u64, Arc<QueueView>>>,
}

impl Queues {
    /// Views over `store`.
    pub fn new(store: Arc<dyn QueueStore>) -> Self {
        Queues {
            store,
            views: RwLock::default(),
        }
    }

    /// The view of `sale`'s queue: the one already made if the sale's queue settings, start,
    /// end and the edge secret are unchanged (a reload keeps what the edge learned), else a new
    /// one. None if the sale has no queue.
    pub fn view(&self, sale: &Sale, edge: &Secret) -> Option<Arc<QueueView>> {
        let settings = sale.queue?;
        let same = |v: &QueueView| {
            v.settings == settings
                && v.starts_ms == sale.starts_at.unix_millis()
                && v.ends_ms == sale.ends_at.unix_millis()
                && v.signs_with(edge)
        };
        if let Some(v) = self.views.read().get(&sale.product).filter(|v| same(v)) {
            return Some(Arc::clone(v));
        }
        let mut views = self.views.write();
        if let Some(v) = views.get(&sale.product).filter(|v| same(v)) {
            return Some(Arc::clone(v));
        }
        let view = Arc::new(QueueView::of(sale, edge)?);
        views.insert(sale.product, Arc::clone(&view));
        Some(view)
    }
}
