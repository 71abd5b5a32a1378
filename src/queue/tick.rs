//! One tick of one sale's waiting room: the store's tick ([`QueueStore::tick`]) from its
//! pre-queue's opening until `pass_ttl` after its end, what it read handed to the sale's view
//! (from which this edge answers polls), and the queue metrics updated. The edge runs it for
//! every queued sale every [`TICK`]; the store's clock paces admissions, so more edges do not
//! admit faster. A failed tick leaves the view with what it knew.

use std::time::Duration;

use super::Queues;
use crate::config::Sale;
use crate::ground::clock::now_ms;
use crate::ground::metrics::QueueMetrics;
use crate::ground::Secret;
use crate::stock::{SaleKeys, StoreError};

/// How often each queued sale is ticked.
pub const TICK: Duration = Duration::from_millis(200);

impl Queues {
    /// Tick `sale`'s waiting room (stored under `keys`) if it is open now, and count what the
    /// tick read into `metrics`. Nothing happens for a sale without a queue or outside its
    /// time; a store failure is passed on.
    pub async fn tick(
        &self,
        sale: &Sale,
        keys: &SaleKeys,
        edge: &Secret,
        metrics: &QueueMetrics,
    ) -> Result<(), StoreError> {
        let Some(view) = self.view(sale, edge) else {
            return Ok(());
        };
        let now = now_ms();
        let ttl = view.settings.pass_ttl.as_millis() as u64;
        if now < view.opens_ms || now > view.ends_ms.saturating_add(ttl) {
            return Ok(());
        }
        let state = self.store.tick(keys, &view.pace()).await?;
        let now = now_ms();
        view.learn(state, now);
        let label = view.product.to_string();
        let waiting = if state.remaining == Some(0) {
            0
        } else {
            (state.sealed.unwrap_or(state.pre) + state.post).saturating_sub(state.admitted)
        };
        metrics
            .waiting
            .with_label_values(&[&label])
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        metrics
            .admitted
            .with_label_values(&[&label])
            .inc_by(view.admitted_growth(state.admitted));
        metrics
            .abandoned
            .with_label_values(&[&label])
            .inc_by(view.abandoned_growth(now));
        Ok(())
    }
}
