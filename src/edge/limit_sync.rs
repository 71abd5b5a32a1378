//! The background task that syncs `scope: cluster` limits with Redis
//! (`admission::rate::cluster`): every rule at its `sync_interval`, one pipeline per rule. A
//! failed sync is counted (`flashgate_limit_syncs_total{result="failed"}`) and logged at most
//! every 10 s; meanwhile each edge counts alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::Gateway;
use crate::config::Store;
use crate::ground::clock::now_ms;
use crate::ground::logging::Throttle;
use crate::stock::redis::client::RedisClient;
use crate::stock::redis::limits::sync_counts;

/// How often the task looks for a rule that is due.
const TICK: Duration = Duration::from_millis(50);
/// A sync's pipeline may hold many keys: it gets longer than a buy's store call.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// Syncs the cluster limits of whatever configuration is in place.
pub struct LimitSync {
    gateway: Arc<Gateway>,
}

impl LimitSync {
    /// Sync `gateway`'s cluster limits.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        LimitSync { gateway }
    }
}

#[async_trait]
impl BackgroundService for LimitSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // The store cannot change on a reload, so the client made at start stays right.
        let target = match &self.gateway.live().config.store {
            Store::Redis {
                target, timeout, ..
            } => (target.clone(), *timeout),
            Store::Memory { .. } => return,
        };
        let client = RedisClient::new(target.0, target.1.max(SYNC_TIMEOUT));
        let metrics = self.gateway.metrics.clone();
        let mut last: HashMap<String, Instant> = HashMap::new();
        let mut failures = Throttle::new(Duration::from_secs(10));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let live = self.gateway.live();
            for rule in live.checkout.admission().rates().cluster_rules() {
                let due = last
                    .get(rule.name)
                    .is_none_or(|at| at.elapsed() >= rule.sync);
                if !due {
                    continue;
                }
                last.insert(rule.name.to_string(), Instant::now());
                let pushes = rule.counts.drain(now_ms());
                match sync_counts(&client, rule.name, rule.counts.per_ms(), pushes.clone()).await {
                    Ok(totals) => {
                        rule.counts.learn(totals);
                        metrics.limit_syncs.ok.inc();
                    }
                    Err(e) => {
                        rule.counts.restore(pushes);
                        metrics.limit_syncs.failed.inc();
                        if let Some(held) = failures.admit() {
                            tracing::warn!(
                                rule = rule.name,
                                "cluster limit sync failed: {e}; counting on this edge alone \
                                 until it works ({held} more failures since the last report)"
                            );
                        }
                    }
                }
            }
        }
    }
}
