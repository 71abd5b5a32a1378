//! The order backend's metrics, in one registry: orders by source and result, payments,
//! cancellations, refused requests, and the ledger consumer's health (entries without an order
//! yet, lost groups recreated, dead letters). Label values are fixed names.

use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Every metric of `flashgate-orders`.
pub struct OrderMetrics {
    registry: Registry,
    orders: IntCounterVec,
    unauthorized: IntCounterVec,
    /// Orders paid.
    pub paid: IntCounter,
    /// Orders cancelled by the payment timeout.
    pub cancelled: IntCounter,
    /// Units returned to Redis for cancelled orders.
    pub units_returned: IntCounter,
    /// Ledger entries moved to a dead-letter stream.
    pub dead_letters: IntCounter,
    /// Ledger consumer groups found lost and created again.
    pub ledger_regrouped: IntCounter,
    /// Ledger entries that failed to become orders and are being tried again.
    pub ledger_unplaced: IntGauge,
    /// Seconds the oldest of those has been failing.
    pub ledger_oldest_unplaced: Gauge,
}

impl OrderMetrics {
    /// Register every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let orders = IntCounterVec::new(
            Opts::new(
                "flashgate_orders_total",
                "Order attempts by source (forward, ledger) and result.",
            ),
            &["source", "result"],
        )?;
        let unauthorized = IntCounterVec::new(
            Opts::new(
                "flashgate_orders_unauthorized_total",
                "Order requests refused with 401, by reason.",
            ),
            &["reason"],
        )?;
        let counter = |name: &str, help: &str| IntCounter::new(name, help);
        let paid = counter("flashgate_orders_paid_total", "Orders paid.")?;
        let cancelled = counter(
            "flashgate_orders_cancelled_total",
            "Orders cancelled unpaid after the payment timeout.",
        )?;
        let units_returned = counter(
            "flashgate_orders_units_returned_total",
            "Units of cancelled orders returned to the sale.",
        )?;
        let dead_letters = counter(
            "flashgate_orders_dead_letters_total",
            "Ledger entries moved to the dead-letter stream (no order after ledger.retry_for, \
             or malformed); their units are held for reconcile --fix.",
        )?;
        let ledger_regrouped = counter(
            "flashgate_orders_ledger_groups_recreated_total",
            "Sale ledgers whose consumer group was lost and created again.",
        )?;
        let ledger_unplaced = IntGauge::new(
            "flashgate_orders_ledger_unplaced",
            "Ledger entries that failed to become orders and are being tried again.",
        )?;
        let ledger_oldest_unplaced = Gauge::new(
            "flashgate_orders_ledger_oldest_unplaced_seconds",
            "How long the oldest failing ledger entry has been without an order.",
        )?;
        registry.register(Box::new(orders.clone()))?;
        registry.register(Box::new(unauthorized.clone()))?;
        for c in [
            &paid,
            &cancelled,
            &units_returned,
            &dead_letters,
            &ledger_regrouped,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(ledger_unplaced.clone()))?;
        registry.register(Box::new(ledger_oldest_unplaced.clone()))?;
        Ok(OrderMetrics {
            registry,
            orders,
            unauthorized,
            paid,
            cancelled,
            units_returned,
            dead_letters,
            ledger_regrouped,
            ledger_unplaced,
            ledger_oldest_unplaced,
        })
    }

    /// Count one order attempt.
    pub fn order(&self, source: &str, result: &str) {
        self.orders.with_label_values(&[source, result]).inc();
    }

    /// Count one refused request.
    pub fn unauthorized(&self, reason: &str) {
        self.unauthorized.with_label_values(&[reason]).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("encoding metrics failed: {e}");
        }
        out
    }
}
