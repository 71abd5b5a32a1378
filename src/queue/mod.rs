//! The waiting room of a sale with a `queue:`, whole: visitors join before or after the start,
//! wait for their turn, and are let through at `admit_per_second`, never more than the stock
//! can serve; a buy of a queued sale needs the pass the queue gave. Nothing here knows HTTP.
//!
//! - [`ticket`]: the signed tickets (a place) and passes (let through, until when).
//! - [`pass`]: the buy route's check of a pass (`queue_required`), run by admission.
//! - [`draw`]: the shuffle's verifiable draw, from a seed whose hash is published first.
//! - [`view`]: one edge's knowledge of one sale's queue and the answer to a poll from it.
//! - [`store`]: the shared state — join counters, UID → place, the admission frontier — in
//!   memory (the embedded store) or in Redis (`lua/queue_join.lua`, `lua/queue_tick.lua`).
//! - [`tick`]: one tick of one sale's queue: the store's, the view's and the metrics'.
//! - [`Queues`]: the views of every queued sale and their store, kept across reloads.
//!
//! What belongs to other layers and serves the waiting room: its settings are read with the
//! rest of the file (`config::QueueSettings`, from `config/queue.rs`); its HTTP routes
//! (`/api/queue`, `/api/queue/draw`) are the edge's, `edge::proxy::queue`, and so is the
//! background task that calls [`tick`] every [`tick::TICK`] (`edge::queue_sync`); the storm
//! that rehearses it is the binary's (`src/cli/storm/queue.rs`).

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
