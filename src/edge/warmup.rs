//! Before the public listener accepts, the store is connected and prepared (a Redis store
//! connects and loads its scripts): the first buys, and an upgrade's crowd waiting in the
//! accept queue, pay for neither. A background service whose readiness the public service
//! waits for (Pingora's service dependencies); a store that is not there after
//! [`WARM_UP_FOR`] is left to the breaker and `/readyz`, and the listener opens anyway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;

use super::Gateway;

/// How long the listener waits for the store at most.
const WARM_UP_FOR: Duration = Duration::from_secs(5);
/// Between attempts.
const RETRY: Duration = Duration::from_millis(100);

/// Warms the store up, then lets the public listener start.
pub struct Warmup {
    gateway: Arc<Gateway>,
}

impl Warmup {
    /// Warm up `gateway`'s store.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Warmup { gateway }
    }
}

#[async_trait]
impl BackgroundService for Warmup {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let store = self.gateway.live().checkout.store().clone();
        let deadline = Instant::now() + WARM_UP_FOR;
        loop {
            match store.warm_up().await {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    tracing::warn!(
                        "the store is not ready after {WARM_UP_FOR:?} ({e}); opening the listener \
                         anyway: buys answer 503 store_unavailable until it is"
                    );
                    break;
                }
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        }
        ready.notify_ready();
        // A Redis connection made here is driven by this service's runtime: keep it running.
        let _ = shutdown.changed().await;
    }
}
