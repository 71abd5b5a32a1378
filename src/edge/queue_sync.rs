//! The background task that paces every waiting room: every [`TICK`] it runs the store's tick
//! (`stock::queue::QueueStore::tick`) for each queued sale from its pre-queue's opening until
//! `pass_ttl` after its end, hands what it read to the sale's view (`queue::view`), from which
//! this edge answers polls, and updates the queue metrics. Each edge runs it; the store's clock
//! paces admissions, so more edges do not admit faster. A failed tick is logged at most every
//! 10 s; the view keeps what it knew.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::Gateway;
use crate::clock::now_ms;
use crate::logging::Throttle;

/// How often each queued sale is ticked.
pub const TICK: Duration = Duration::from_millis(200);

/// Ticks the queues of whatever configuration is in place.
pub struct QueueSync {
    gateway: Arc<Gateway>,
}

impl QueueSync {
    /// Tick `gateway`'s queues.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        QueueSync { gateway }
    }
}

#[async_trait]
impl BackgroundService for QueueSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut failures = Throttle::new(Duration::from_secs(10));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let queues = &self.gateway.queues;
        let metrics = &self.gateway.metrics.queue;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let live = self.gateway.live();
            for sale in live.checkout.sales() {
                let Some(view) = queues.view(&sale.gate.sale, &live.config.secrets.edge) else {
                    continue;
                };
                let now = now_ms();
                let ttl = view.settings.pass_ttl.as_millis() as u64;
                if now < view.opens_ms || now > view.ends_ms.saturating_add(ttl) {
                    continue;
                }
                match queues.store.tick(&sale.keys, &view.pace()).await {
                    Ok(state) => {
                        let now = now_ms();
                        view.learn(state, now);
                        let label = view.product.to_string();
                        let waiting = if state.remaining == Some(0) {
                            0
                        } else {
                            (state.sealed.unwrap_or(state.pre) + state.post)
                                .saturating_sub(state.admitted)
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
                    }
                    Err(e) => {
                        if let Some(held) = failures.admit() {
                            tracing::warn!(
                                product = view.product,
                                "queue tick failed: {e}; polls are answered from what this edge \
                                 last knew ({held} more failures since the last report)"
                            );
                        }
                    }
                }
            }
        }
    }
}
