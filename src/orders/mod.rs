//! `flashgate-orders`: the order backend flashgate ships, and the reference for shops writing
//! their own origin.
//!
//! - `api`: the HTTP API — only edge-signed order requests are accepted (`verify`), replays are
//!   refused, orders are idempotent by reservation id.
//! - `db`: SQLite or PostgreSQL, with the last safeguards of the sale (one active order per
//!   user and product; never more sold than stock).
//! - `service`: placing, paying and expiring orders; returning the units of cancelled ones.
//! - `ledger`: the Redis Streams consumer that makes the orders the forward never delivered.
//! - `reconcile`: compare Redis with the database and repair Redis from it.
//! - `settings`, `metrics`, `model`: the rest.

internal!(mod api);
internal!(mod db);
internal!(mod ledger);
internal!(mod live_reconcile);
internal!(mod metrics);
internal!(mod model);
pub mod reconcile;
internal!(mod service);
pub mod settings;
internal!(mod verify);

use std::sync::Arc;
use std::time::Duration;

use crate::ground::logging::Throttle;
use crate::stock::redis::ledger::Ledgers;
use crate::stock::redis::sales::RedisSales;
use db::Db;
use ledger::LedgerSettings;
use metrics::OrderMetrics;
use service::Orders;
use settings::Settings;

/// Redis calls of the backend may wait longer than a buyer's reserve.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The listener could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Open the database and Redis for `settings`.
pub async fn open(settings: &Settings) -> Result<Orders, StartError> {
    Ok(Orders {
        db: Db::connect(&settings.database).await?,
        stock: Arc::new(RedisSales::new(settings.redis.clone(), REDIS_TIMEOUT)),
        payment_timeout: settings.payment_timeout,
        edge_secret: settings.edge_secret.clone(),
        metrics: OrderMetrics::new()?,
        failures: parking_lot::Mutex::new(Throttle::new(Duration::from_secs(5))),
        reconcile_wanted: tokio::sync::Notify::new(),
    })
}

/// Serve until the process ends: the API, the ledger consumer and the payment sweeper.
pub async fn serve(settings: Settings) -> Result<(), StartError> {
    let orders = Arc::new(open(&settings).await?);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
    let consumer = LedgerSettings {
        consumer: settings.consumer.clone(),
        grace: settings.grace,
        claim_idle: settings.claim_idle,
        retry_for: settings.retry_for,
    };
    let ledgers = Ledgers::new(settings.redis.clone(), REDIS_TIMEOUT);
    tokio::spawn(ledger::run(orders.clone(), ledgers, consumer));
    tokio::spawn(live_reconcile::run(
        orders.clone(),
        settings.reconcile_every,
    ));
    let sweep_orders = orders.clone();
    let every =
        (settings.payment_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    tokio::spawn(async move {
        let mut quiet = Throttle::new(Duration::from_secs(10));
        loop {
            tokio::time::sleep(every).await;
            match sweep_orders.sweep().await {
                Ok(s) if s.cancelled + s.returned > 0 => {
                    tracing::info!(
                        cancelled = s.cancelled,
                        returned = s.returned,
                        "payment timeout sweep"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(held) = quiet.admit() {
                        tracing::warn!(
                            "payment timeout sweep failed: {e} ({held} more since the last report)"
                        )
                    }
                }
            }
        }
    });
    tracing::info!(listen = %settings.listen, database = %settings.database, redis = %settings.redis, "flashgate-orders running");
    axum::serve(listener, api::router(orders))
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })
}
