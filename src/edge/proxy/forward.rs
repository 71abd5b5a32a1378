//! Where a winner's forward stands, as one value that moves one way: no forward, a unit
//! reserved and on its way to the origin, then settled. The unit is settled in exactly one
//! place, [`Forward::settle`], whichever phase learns how the forward ended first (the origin's
//! answer, a failure, or the end of the request); every later call finds nothing to settle.

use std::time::Instant;

use crate::checkout::contract::{settlement, Settlement};
use crate::checkout::{Checkout, Forwarded};
use crate::ground::metrics::Metrics;
use crate::stock::Reservation;

/// A forward's state.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Forward {
    /// Nothing is forwarded: the edge answers by itself.
    #[default]
    None,
    /// A unit is reserved for the buyer and the request goes to the origin.
    Reserved {
        /// The unit.
        reservation: Reservation,
        /// Whether any attempt reached the origin (connected: a fresh connection, or a reused
        /// keep-alive one where the request may have been delivered). Never reset by a retry.
        reached: bool,
        /// When the upstream request was last written, for the origin's latency.
        sent_at: Option<Instant>,
    },
    /// The forward is over and its unit settled.
    Settled {
        /// The product.
        product: u64,
        /// The origin may hold the order and nobody knows yet: the buyer is told `202 pending`.
        unknown: bool,
    },
}

impl Forward {
    /// A forward of `reservation`, not sent yet.
    pub fn of(reservation: Reservation) -> Self {
        Forward::Reserved {
            reservation,
            reached: false,
            sent_at: None,
        }
    }

    /// The reserved unit, while the forward is under way.
    pub fn reservation(&self) -> Option<&Reservation> {
        match self {
            Forward::Reserved { reservation, .. } => Some(reservation),
            _ => None,
        }
    }

    /// An attempt connected to the origin.
    pub fn reached(&mut self) {
        if let Forward::Reserved { reached, .. } = self {
            *reached = true;
        }
    }

    /// The upstream request is being written now.
    pub fn sending(&mut self) {
        if let Forward::Reserved { sent_at, .. } = self {
            *sent_at = Some(Instant::now());
        }
    }

    /// How a forward under way ended when it failed without an answer: whether any attempt
    /// reached the origin decides.
    fn failed(reached: bool) -> Forwarded {
        if reached {
            Forwarded::Failed
        } else {
            Forwarded::Unreached
        }
    }

    /// Settle the unit by how the forward ended: the origin's `status` when it answered, else a
    /// failure (of an attempt that reached it or not). Does nothing unless a forward is under
    /// way, so the phases may each call it; the first decides. Returns how it ended, when it
    /// settled something now.
    pub async fn settle(
        &mut self,
        status: Option<u16>,
        checkout: &Checkout,
        metrics: &Metrics,
    ) -> Option<Forwarded> {
        if !matches!(self, Forward::Reserved { .. }) {
            return None;
        }
        let Forward::Reserved {
            reservation,
            reached,
            sent_at,
        } = std::mem::take(self)
        else {
            return None;
        };
        let forwarded = match status {
            Some(status) => {
                if let Some(at) = sent_at {
                    metrics.upstream_seconds.observe(at.elapsed().as_secs_f64());
                }
                Forwarded::Answered(status)
            }
            None => Self::failed(reached),
        };
        let unknown = settlement(forwarded) == Settlement::Ask;
        *self = Forward::Settled {
            product: reservation.product,
            unknown,
        };
        checkout.settle(reservation, forwarded).await;
        Some(forwarded)
    }

    /// The product whose buyer is told `202 pending`: a settled forward of unknown outcome.
    pub fn pending(&self) -> Option<u64> {
        match self {
            Forward::Settled {
                product,
                unknown: true,
            } => Some(*product),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_moves_one_way_and_is_pending_only_when_settled_unknown() {
        let reservation = Reservation {
            id: "7-1-1".into(),
            product: 7,
            uid: "a".into(),
        };
        let mut f = Forward::of(reservation.clone());
        assert_eq!(f.reservation(), Some(&reservation));
        assert_eq!(f.pending(), None);
        f.reached();
        assert!(matches!(f, Forward::Reserved { reached: true, .. }));
        // Settled states are left as they are by any later phase.
        let settled = Forward::Settled {
            product: 7,
            unknown: true,
        };
        let mut later = Forward::Settled {
            product: 7,
            unknown: true,
        };
        assert!(!matches!(later, Forward::Reserved { .. }));
        assert_eq!(later.reservation(), None);
        later.reached();
        later.sending();
        assert_eq!(later, settled);
        assert_eq!(later.pending(), Some(7));
    }
}
