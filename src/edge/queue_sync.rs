//! The background task that paces every waiting room: every [`TICK`] it ticks each queued
//! sale of the configuration in place (`queue::tick`). A failed tick is logged at most every
//! 10 s; the view keeps what it knew.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::Gateway;
use crate::ground::logging::Throttle;

use crate::queue::tick::TICK;

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
                let ticked = queues
                    .tick(
                        &sale.gate.sale,
                        &sale.keys,
                        &live.config.secrets.edge,
                        metrics,
                    )
                    .await;
                if let Err(e) = ticked {
                    if let Some(held) = failures.admit() {
                        tracing::warn!(
                            product = sale.keys.product,
                            "queue tick failed: {e}; polls are answered from what this edge \
                             last knew ({held} more failures since the last report)"
                        );
                    }
                }
            }
        }
    }
}
