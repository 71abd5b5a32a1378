//! SIGHUP reloads the configuration (`Gateway::reload`). Pingora answers SIGQUIT (upgrade),
//! SIGTERM (graceful stop) and SIGINT (fast stop); left alone, SIGHUP's default action would
//! end the process, so `systemctl reload` — which sends it — would stop a sale. The gateway
//! takes SIGHUP over first thing, and handles it in a background service.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use super::Gateway;

/// Make SIGHUP harmless from now on, before any service runs: the handler installed here
/// outlives the short runtime it was installed from (signal handlers are process-wide), so a
/// SIGHUP that arrives while the services start is caught instead of ending the process.
pub fn take_over() -> std::io::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?
        .block_on(async { signal(SignalKind::hangup()).map(drop) })
}

/// Reloads the configuration on each SIGHUP.
pub struct Hangup {
    gateway: Arc<Gateway>,
}

impl Hangup {
    /// Reload `gateway` on SIGHUP.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Hangup { gateway }
    }
}

#[async_trait]
impl BackgroundService for Hangup {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading the configuration");
                    // The outcome is logged by the reload itself.
                    let _ = self.gateway.reload().await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
