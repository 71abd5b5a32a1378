//! The waiting room's check on the buy route: a buy of a sale with a `queue:` must carry the
//! pass the queue gave its user when it let them through (`X-Queue-Pass`), for this product,
//! unexpired. A missing, forged, expired or another user's pass is `queue_required`. Checking
//! one is an HMAC over a few fields: no store call (`queue::ticket`).

use super::ticket::Signer;
use crate::config::Sale;
use crate::ground::{Outcome, Secret};

/// The pass check of one queued sale.
pub struct PassCheck {
    signer: Signer,
}

impl PassCheck {
    /// The check of `sale`, if it has a queue.
    pub fn of(sale: &Sale, edge: &Secret) -> Option<Self> {
        sale.queue.map(|_| PassCheck {
            signer: Signer::new(edge, sale.product, sale.starts_at.unix_millis()),
        })
    }

    /// Whether `uid` may buy with `pass` at `now_ms`.
    pub fn check(&self, uid: &str, pass: Option<&str>, now_ms: u64) -> Result<(), Outcome> {
        pass.and_then(|p| self.signer.verify_pass(uid, p, now_ms))
            .map(|_| ())
            .ok_or(Outcome::QueueRequired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Captcha, QueueMode, QueueSettings, Timestamp};
    use crate::queue::ticket::{Kind, Place};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn only_a_live_pass_of_this_user_and_sale_admits() {
        let edge = Secret::new(vec![5u8; 32]);
        let mut sale = Sale {
            product: 42,
            stock: 1,
            starts_at: Timestamp(UNIX_EPOCH + Duration::from_secs(100)),
            ends_at: Timestamp(UNIX_EPOCH + Duration::from_secs(200)),
            captcha: Captcha::None,
            showcase: Default::default(),
            queue: None,
        };
        assert!(PassCheck::of(&sale, &edge).is_none(), "no queue, no check");
        sale.queue = Some(QueueSettings {
            mode: QueueMode::Fifo,
            prequeue: Duration::from_secs(60),
            admit_per_second: 10,
            pass_ttl: Duration::from_secs(60),
            stock_multiple: 2,
        });
        let check = PassCheck::of(&sale, &edge).unwrap();
        let place = Place {
            kind: Kind::Pre,
            number: 1,
        };
        let pass = Signer::new(&edge, 42, 100_000).pass("alice", place, 150_000);
        assert_eq!(check.check("alice", Some(&pass), 120_000), Ok(()));
        assert_eq!(
            check.check("alice", None, 120_000),
            Err(Outcome::QueueRequired)
        );
        assert_eq!(
            check.check("bob", Some(&pass), 120_000),
            Err(Outcome::QueueRequired)
        );
        assert_eq!(
            check.check("alice", Some(&pass), 150_000),
            Err(Outcome::QueueRequired)
        );
        let other = Signer::new(&edge, 43, 100_000).pass("alice", place, 150_000);
        assert_eq!(
            check.check("alice", Some(&other), 120_000),
            Err(Outcome::QueueRequired)
        );
        assert_eq!(
            check.check("alice", Some("p1.1.zz"), 1),
            Err(Outcome::QueueRequired)
        );
    }
}
