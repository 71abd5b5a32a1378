//! The order backend's metrics, in one registry: orders by source and result, payments,
//! cancellations, refused requests, the ledger consumer's health (entries without an order
//! yet, lost groups recreated, dead letters), and the live reconcile's drift and corrections.
//! Label values are fixed names (and sale ids).

use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
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
    drift: IntGaugeVec,
    corrections: IntCounterVec,
    reconcile_runs: IntCounterVec,
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
        let drift = IntGaugeVec::new(
            Opts::new(
                "flashgate_orders_stock_drift",
                "Units Redis would sell that the database has no stock for (negative: units \
                 missing from the sale), per sale, as the live reconcile last measured before \
                 correcting; 0 when Redis and the database agree.",
            ),
            &["sale"],
        )?;
        let corrections = IntCounterVec::new(
            Opts::new(
                "flashgate_orders_reconcile_corrections_total",
                "Corrections the live reconcile made to Redis: restored (an order Redis lost, \
                 its unit taken back off sale), short (restored with no unit left on sale to \
                 take back), released (a cancelled order's unit returned).",
            ),
            &["kind"],
        )?;
        let reconcile_runs = IntCounterVec::new(
            Opts::new(
                "flashgate_orders_reconcile_runs_total",
                "Live reconcile passes over a sale, by result (ok, failed).",
            ),
            &["result"],
        )?;
        for kind in ["restored", "short", "released"] {
            corrections.with_label_values(&[kind]);
        }
        for result in ["ok", "failed"] {
            reconcile_runs.with_label_values(&[result]);
        }
        registry.register(Box::new(drift.clone()))?;
        registry.register(Box::new(corrections.clone()))?;
        registry.register(Box::new(reconcile_runs.clone()))?;
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
            drift,
            corrections,
            reconcile_runs,
        })
    }

    /// Count one live reconcile pass over `product`'s sale.
    pub fn reconciled(&self, product: u64, pass: &super::model::Reconciled) {
        self.reconcile_runs.with_label_values(&["ok"]).inc();
        self.drift
            .with_label_values(&[&product.to_string()])
            .set(pass.drift);
        for (kind, n) in [
            ("restored", pass.restored),
            ("short", pass.short),
            ("released", pass.released),
        ] {
            self.corrections.with_label_values(&[kind]).inc_by(n);
        }
    }

    /// Count one failed live reconcile pass.
    pub fn reconcile_failed(&self) {
        self.reconcile_runs.with_label_values(&["failed"]).inc();
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
