//! What the order backend stores and answers with: orders, their status, a sale's summary.

use serde::Serialize;

/// Where an order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The edge forwarded the winner (`POST /orders`).
    Forward,
    /// The ledger consumer found a reservation the forward never delivered.
    Ledger,
    /// `flashgate-orders reconcile --fix` made the order of a dead-lettered reservation.
    Reconcile,
}

impl Source {
    /// The stored and labelled name.
    pub fn name(self) -> &'static str {
        match self {
            Source::Forward => "forward",
            Source::Ledger => "ledger",
            Source::Reconcile => "reconcile",
        }
    }
}

/// An order's state. Moves only pending → paid or pending → cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for payment until `expires_ms`.
    Pending,
    /// Paid: the unit is sold.
    Paid,
    /// Unpaid in time: the unit went back on sale.
    Cancelled,
}

impl Status {
    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "paid" => Some(Status::Paid),
            "cancelled" => Some(Status::Cancelled),
            _ => None,
        }
    }
}

/// One order. Its id is the edge's reservation id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    /// The reservation id.
    pub id: String,
    /// The buyer.
    pub uid: String,
    /// The product.
    pub product: u64,
    /// Current state.
    pub status: Status,
    /// Who created it.
    pub source: String,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Payment deadline, ms since the epoch.
    pub expires_ms: i64,
    /// Paid or cancelled at, ms since the epoch.
    pub settled_ms: Option<i64>,
}

/// `GET /sales/{product}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SaleSummary {
    /// The product.
    pub product: u64,
    /// Units for sale.
    pub stock: i64,
    /// Units held by pending or paid orders.
    pub sold: i64,
    /// Orders paid.
    pub paid: i64,
    /// Orders cancelled.
    pub cancelled: i64,
    /// Orders waiting for payment.
    pub pending: i64,
}

/// What one pass over one sale found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Units Redis would sell that do not exist, before the corrections (see the module doc).
    pub drift: i64,
    /// Lost orders whose units were taken back off sale.
    pub restored: u64,
    /// Lost orders restored with no unit left on sale to take back.
    pub short: u64,
    /// Units of cancelled orders returned.
    pub released: u64,
}
