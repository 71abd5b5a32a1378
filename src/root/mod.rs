//! The composition root: the one place that turns a [`Config`] into a running gateway's parts.
//! It opens the stores the configuration's `store:` names — the embedded store (its journal
//! under `store.path`) with its in-process captcha and queue stores, or Redis for all three —
//! opens the access log, and assembles the [`Gateway`]; and it says, once, what is risky about
//! the configuration ([`warnings`]), for `check` to print and `run` to log.
//!
//! - [`open`]: the stores of a gateway that will serve.
//! - [`inspect`]: stores for `check`, which must neither wait for the journal's lock nor write
//!   it: the running gateway owns them.
//! - [`warnings`]: each risk, a pure function of the configuration.

internal!(mod warnings);

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Store};
use crate::edge::access_log::AccessLog;
use crate::edge::{Gateway, GatewayError, Stores};
use crate::ground::metrics::Metrics;
use crate::queue::store::memory::MemoryQueue;
use crate::queue::store::redis::RedisQueue;
use crate::stock::journal::LOCK_WAIT;
use crate::stock::memory::MemoryStore;
use crate::stock::redis::{RedisClient, RedisStore};
use crate::stock::single_use::MemorySingleUse;

pub use warnings::{Warning, WarningKind};

/// How long a queue's join or tick may take: it is no buy, and may wait longer than
/// `store.timeout` (as a limit sync does).
const QUEUE_TIMEOUT_FLOOR: Duration = Duration::from_secs(1);

/// How long to wait for the embedded store's journal lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// A start: the lock is free or soon is.
    Start,
    /// An upgrade: the old process holds the lock until it has handed over and drained.
    Upgrade,
}

/// The stores `config`'s `store:` names, opened: the embedded store's journal is replayed (and
/// its lock taken), Redis connects on first use.
pub fn open(config: &Config, opening: Opening) -> Result<Stores, GatewayError> {
    Ok(match &config.store {
        Store::Memory { path, fsync } => {
            let sales = config.sales.iter().map(|s| (s.product, s.stock));
            let stock = Arc::new(match path {
                Some(dir) => {
                    let wait = match opening {
                        Opening::Start => LOCK_WAIT,
                        Opening::Upgrade => crate::edge::upgrade::LOCK_WAIT,
                    };
                    MemoryStore::open_waiting(sales, dir, *fsync, wait)?
                }
                None => MemoryStore::new(sales),
            });
            Stores {
                queue: Arc::new(MemoryQueue::new(stock.clone())),
                single_use: Arc::new(MemorySingleUse::new(config.captcha.single_use_capacity)),
                stock,
            }
        }
        Store::Redis {
            target,
            timeout,
            wait,
        } => {
            let store = Arc::new(RedisStore::new(target.clone(), *timeout).waiting(*wait));
            let queue = RedisClient::new(target.clone(), (*timeout).max(QUEUE_TIMEOUT_FLOOR));
            Stores {
                stock: store.clone(),
                single_use: store,
                queue: Arc::new(RedisQueue::new(queue)),
            }
        }
    })
}

/// Stores for looking at `config` without touching the running gateway's: every sale in memory,
/// nothing journaled, nothing connected.
pub fn inspect(config: &Config) -> Stores {
    let stock = Arc::new(MemoryStore::new(
        config.sales.iter().map(|s| (s.product, s.stock)),
    ));
    Stores {
        queue: Arc::new(MemoryQueue::new(stock.clone())),
        single_use: Arc::new(MemorySingleUse::new(1)),
        stock,
    }
}

/// The gateway that will serve `config`: its stores opened, its access log open.
pub fn gateway(config: Config, opening: Opening) -> Result<Gateway, GatewayError> {
    let stores = open(&config, opening)?;
    let metrics = Arc::new(Metrics::new()?);
    let access_log = match &config.access_log {
        Some(settings) => Some(AccessLog::open(
            settings,
            metrics.access_log_dropped.clone(),
        )?),
        None => None,
    };
    Gateway::assemble(config, stores, access_log, metrics)
}

/// The gateway of `config` to look at (`check`), over [`inspect`]'s stores, writing no log.
pub fn inspected(config: Config) -> Result<Gateway, GatewayError> {
    let stores = inspect(&config);
    Gateway::assemble(config, stores, None, Arc::new(Metrics::new()?))
}

/// Every risk of `gateway`'s configuration now, on this machine.
pub fn risks(gateway: &Gateway) -> Vec<Warning> {
    let live = gateway.live();
    let (_, ips, nets) = live.checkout.admission().blocklist().counts();
    warnings::warnings(
        &live.config,
        ips + nets,
        std::time::SystemTime::now(),
        warnings::machine_memory(),
    )
}
