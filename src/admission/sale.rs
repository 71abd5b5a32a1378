//! One sale as the edge sees it: its window, its secret buy-path token, and the local sold-out
//! hint. The hint lets every reject after sell-out skip the store: when the store answers
//! sold out, the edge trusts that for `sold_out_hint` (default 1 s) and then asks again, so
//! units that come back (an unpaid order released) sell again within about a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::{Captcha, Sale};
use crate::ground::signing::{constant_time_eq, sale_path_token};
use crate::ground::Secret;

use crate::ground::Outcome;

/// A configured sale with its precomputed token and hint.
pub struct SaleGate {
    /// The product on sale.
    pub product: u64,
    /// The sale as configured.
    pub sale: Sale,
    starts_ms: u64,
    ends_ms: u64,
    token: Box<str>,
    hint_ms: u64,
    /// Shared with the gate of the same product it was carried over from on a reload.
    sold_out_until_ms: Arc<AtomicU64>,
    /// The waiting room's pass check, for a sale with a `queue:`.
    pub queue: Option<crate::queue::pass::PassCheck>,
}

impl SaleGate {
    /// Prepare `sale`, deriving its buy-path token from the edge secret.
    pub fn new(sale: &Sale, edge: &Secret, hint: std::time::Duration) -> Self {
        Self::carrying(sale, edge, hint, None)
    }

    /// [`SaleGate::new`] for a reload: the sold-out hint of `previous` (the same product's
    /// gate) carries over, shared, so a sold-out sale stays answered locally.
    pub fn carrying(
        sale: &Sale,
        edge: &Secret,
        hint: std::time::Duration,
        previous: Option<&SaleGate>,
    ) -> Self {
        let starts_ms = sale.starts_at.unix_millis();
        SaleGate {
            product: sale.product,
            sale: sale.clone(),
            starts_ms,
            ends_ms: sale.ends_at.unix_millis(),
            token: sale_path_token(edge, sale.product, starts_ms).into(),
            hint_ms: hint.as_millis() as u64,
            sold_out_until_ms: previous
                .filter(|p| p.product == sale.product)
                .map_or_else(Default::default, |p| Arc::clone(&p.sold_out_until_ms)),
            queue: crate::queue::pass::PassCheck::of(sale, edge),
        }
    }

    /// Open at `now_ms`? Otherwise not started or ended.
    pub fn window(&self, now_ms: u64) -> Result<(), Outcome> {
        if now_ms < self.starts_ms {
            Err(Outcome::NotStarted)
        } else if now_ms >= self.ends_ms {
            Err(Outcome::Ended)
        } else {
            Ok(())
        }
    }

    /// Start of the sale, ms since the epoch.
    pub fn starts_ms(&self) -> u64 {
        self.starts_ms
    }

    /// End of the sale, ms since the epoch.
    pub fn ends_ms(&self) -> u64 {
        self.ends_ms
    }

    /// Whether `token` is this sale's buy-path token (constant time).
    pub fn token_matches(&self, token: &str) -> bool {
        constant_time_eq(self.token.as_bytes(), token.as_bytes())
    }

    /// The buy path, to be revealed only once the sale is open.
    pub fn buy_path(&self) -> String {
        format!("/buy/{}/{}", self.product, self.token)
    }

    /// The captcha this sale asks for.
    pub fn captcha(&self) -> Captcha {
        self.sale.captcha
    }

    /// Whether a recent store answer said sold out.
    pub fn sold_out_hint(&self, now_ms: u64) -> bool {
        now_ms < self.sold_out_until_ms.load(Ordering::Relaxed)
    }

    /// Forget a sold-out answer: a unit came back.
    pub fn clear_sold_out(&self) {
        self.sold_out_until_ms.store(0, Ordering::Relaxed);
    }

    /// Remember a sold-out answer from the store.
    pub fn mark_sold_out(&self, now_ms: u64) {
        self.sold_out_until_ms
            .store(now_ms + self.hint_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Timestamp;
    use std::time::{Duration, UNIX_EPOCH};

    fn gate() -> SaleGate {
        let sale = Sale {
            product: 42,
            stock: 1,
            starts_at: Timestamp(UNIX_EPOCH + Duration::from_secs(100)),
            ends_at: Timestamp(UNIX_EPOCH + Duration::from_secs(200)),
            captcha: Captcha::None,
            showcase: Default::default(),
            queue: None,
        };
        SaleGate::new(&sale, &Secret::new(vec![7u8; 32]), Duration::from_secs(1))
    }

    #[test]
    fn window_edges() {
        let g = gate();
        assert_eq!(g.window(99_999), Err(Outcome::NotStarted));
        assert_eq!(g.window(100_000), Ok(()));
        assert_eq!(g.window(199_999), Ok(()));
        assert_eq!(g.window(200_000), Err(Outcome::Ended));
    }

    #[test]
    fn a_reloaded_gate_keeps_the_hint() {
        let before = gate();
        before.mark_sold_out(150_000);
        let mut sale = before.sale.clone();
        sale.ends_at = Timestamp(UNIX_EPOCH + Duration::from_secs(300));
        let after = SaleGate::carrying(
            &sale,
            &Secret::new(vec![7u8; 32]),
            Duration::from_secs(1),
            Some(&before),
        );
        assert!(after.sold_out_hint(150_500));
        after.clear_sold_out();
        assert!(!before.sold_out_hint(150_500), "one hint, shared");
    }

    #[test]
    fn token_and_hint() {
        let g = gate();
        let path = g.buy_path();
        let token = path.rsplit('/').next().unwrap();
        assert!(g.token_matches(token));
        assert!(!g.token_matches("0000"));
        assert!(!g.sold_out_hint(150_000));
        g.mark_sold_out(150_000);
        assert!(g.sold_out_hint(150_999));
        assert!(!g.sold_out_hint(151_000), "the hint lapses");
    }
}
