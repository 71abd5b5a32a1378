//! Tickets and passes: what a visitor of a waiting room carries, signed with the edge secret
//! (`signing::queue_ticket_mac`, `signing::queue_pass_mac`) so any edge checks one without a
//! store call.
//!
//! - A ticket, `{epoch}.{kind}{number}.{joined_ms}.{mac}`, is a place: `p17` the 17th to join
//!   during the pre-queue, `a3` the 3rd after the start. The MAC binds it to the user, the
//!   product, the sale's start and the queue's `epoch` (the embedded store's queue lives in the
//!   process: a restart begins a new epoch, and older tickets no longer verify).
//! - A pass, `{kind}{number}.{expires_ms}.{mac}`, says the holder of that place was let
//!   through and may buy until `expires_ms`. The buy route of a queued sale requires one
//!   ([`super::pass`]).
//!
//! Reading never panics and never allocates more than the text: anything malformed is `None`.

use crate::ground::signing::{
    constant_time_eq, parse_signed_decimal, queue_pass_mac, queue_ticket_mac, QUEUE_MAC_BYTES,
};
use crate::ground::Secret;

/// When a visitor joined: during the pre-queue, or after the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Joined before `starts_at`: drawn (shuffle) or first in line (fifo).
    Pre,
    /// Joined after the start: behind every pre-queue joiner, in arrival order.
    Post,
}

impl Kind {
    /// `p` or `a`, as written in tickets, passes and the store.
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Pre => "p",
            Kind::Post => "a",
        }
    }
}

/// A place in a sale's queue: kind and join number (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Place {
    /// Pre-queue or later.
    pub kind: Kind,
    /// The join number among joiners of its kind, from 1.
    pub number: u64,
}

impl Place {
    /// Read `p17` / `a3`.
    pub fn parse(text: &str) -> Option<Place> {
        let kind = match text.as_bytes().first()? {
            b'p' => Kind::Pre,
            b'a' => Kind::Post,
            _ => return None,
        };
        let number = parse_signed_decimal(text.get(1..)?)?;
        (number > 0).then_some(Place { kind, number })
    }

    /// `p17` / `a3`.
    pub fn text(self) -> String {
        format!("{}{}", self.kind.tag(), self.number)
    }
}

/// A verified ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The queue it was given by.
    pub epoch: u64,
    /// The place.
    pub place: Place,
    /// When the store recorded the join (its clock), ms since the epoch.
    pub joined_ms: u64,
}

/// A verified pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// The place let through.
    pub place: Place,
    /// Until when it may buy.
    pub expires_ms: u64,
}

/// Signs and checks the tickets and passes of one sale.
#[derive(Clone)]
pub struct Signer {
    edge: Secret,
    product: u64,
    starts_at_ms: u64,
}

fn mac_matches(expected: &[u8; QUEUE_MAC_BYTES], given: &str) -> bool {
    let mut raw = [0u8; QUEUE_MAC_BYTES];
    hex::decode_to_slice(given, &mut raw).is_ok() && constant_time_eq(expected, &raw)
}

impl Signer {
    /// The MAC a ticket for `uid`'s `ticket` carries.
    fn ticket_mac(&self, uid: &str, ticket: &Ticket) -> [u8; QUEUE_MAC_BYTES] {
        let Ticket {
            epoch,
            place,
            joined_ms,
        } = *ticket;
        queue_ticket_mac(
            &self.edge,
            uid,
            self.product,
            epoch,
            place.kind.tag(),
            place.number,
            joined_ms,
            self.starts_at_ms,
        )
    }

    /// The MAC a pass for `uid`'s `place`, good until `expires_ms`, carries.
    fn pass_mac(&self, uid: &str, place: Place, expires_ms: u64) -> [u8; QUEUE_MAC_BYTES] {
        queue_pass_mac(
            &self.edge,
            uid,
            self.product,
            place.kind.tag(),
            place.number,
            self.starts_at_ms,
            expires_ms,
        )
    }

    /// The signer of `product`'s sale starting at `starts_at_ms`.
    pub fn new(edge: &Secret, product: u64, starts_at_ms: u64) -> Self {
        Signer {
            edge: edge.clone(),
            product,
            starts_at_ms,
        }
    }

    /// The ticket of `uid`'s place.
    pub fn ticket(&self, uid: &str, ticket: &Ticket) -> String {
        let mac = self.ticket_mac(uid, ticket);
        let Ticket {
            epoch,
            place,
            joined_ms,
        } = *ticket;
        format!("{epoch}.{}.{joined_ms}.{}", place.text(), hex::encode(mac))
    }

    /// The ticket `text` if it is `uid`'s, for this sale, untampered.
    pub fn verify_ticket(&self, uid: &str, text: &str) -> Option<Ticket> {
        let mut parts = text.split('.');
        let epoch = parse_signed_decimal(parts.next()?)?;
        let place = Place::parse(parts.next()?)?;
        let joined_ms = parse_signed_decimal(parts.next()?)?;
        let mac = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let ticket = Ticket {
            epoch,
            place,
            joined_ms,
        };
        mac_matches(&self.ticket_mac(uid, &ticket), mac).then_some(ticket)
    }

    /// The pass of `uid`'s `place`, good until `expires_ms`.
    pub fn pass(&self, uid: &str, place: Place, expires_ms: u64) -> String {
        let mac = self.pass_mac(uid, place, expires_ms);
        format!("{}.{expires_ms}.{}", place.text(), hex::encode(mac))
    }

    /// The pass `text` if it is `uid`'s, for this sale, untampered and unexpired at `now_ms`.
    pub fn verify_pass(&self, uid: &str, text: &str, now_ms: u64) -> Option<Pass> {
        let mut parts = text.split('.');
        let place = Place::parse(parts.next()?)?;
        let expires_ms = parse_signed_decimal(parts.next()?)?;
        let mac = parts.next()?;
        if parts.next().is_some() || expires_ms <= now_ms {
            return None;
        }
        mac_matches(&self.pass_mac(uid, place, expires_ms), mac)
            .then_some(Pass { place, expires_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(product: u64) -> Signer {
        Signer::new(&Secret::new(vec![3u8; 32]), product, 1_000_000)
    }

    fn ticket() -> Ticket {
        Ticket {
            epoch: 7,
            place: Place {
                kind: Kind::Pre,
                number: 17,
            },
            joined_ms: 999_000,
        }
    }

    #[test]
    fn a_ticket_verifies_only_for_its_user_and_sale() {
        let s = signer(42);
        let text = s.ticket("alice", &ticket());
        assert_eq!(s.verify_ticket("alice", &text), Some(ticket()));
        assert_eq!(s.verify_ticket("bob", &text), None, "another user's");
        assert_eq!(
            signer(43).verify_ticket("alice", &text),
            None,
            "another product's"
        );
        let other_start = Signer::new(&Secret::new(vec![3u8; 32]), 42, 2_000_000);
        assert_eq!(other_start.verify_ticket("alice", &text), None);
        let other_key = Signer::new(&Secret::new(vec![4u8; 32]), 42, 1_000_000);
        assert_eq!(other_key.verify_ticket("alice", &text), None, "forged");
        // Every change of a field breaks it.
        for forged in [
            text.replacen("7.", "8.", 1),
            text.replacen("p17", "p1", 1),
            text.replacen("p17", "a17", 1),
            text.replacen("999000", "999001", 1),
            format!("{text}.x"),
            text[..text.len() - 1].to_string(),
            String::new(),
            "...".into(),
            "7.p0.1.00".into(),
            "7.p+17.999000.00".into(),
        ] {
            assert_eq!(s.verify_ticket("alice", &forged), None, "{forged}");
        }
    }

    #[test]
    fn a_pass_verifies_only_unexpired_for_its_user_and_sale() {
        let s = signer(42);
        let place = ticket().place;
        let text = s.pass("alice", place, 5_000);
        assert_eq!(
            s.verify_pass("alice", &text, 4_999),
            Some(Pass {
                place,
                expires_ms: 5_000
            })
        );
        assert_eq!(s.verify_pass("alice", &text, 5_000), None, "expired");
        assert_eq!(s.verify_pass("bob", &text, 1), None, "another user's");
        assert_eq!(
            signer(43).verify_pass("alice", &text, 1),
            None,
            "another product's"
        );
        let later = text.replacen("5000", "9000", 1);
        assert_eq!(s.verify_pass("alice", &later, 1), None, "expiry moved");
        // A ticket is no pass, and a pass no ticket.
        let t = s.ticket("alice", &ticket());
        assert_eq!(s.verify_pass("alice", &t, 1), None);
        assert_eq!(s.verify_ticket("alice", &text), None);
    }
}
