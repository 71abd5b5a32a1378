//! The origin contract: what the edge does with a reserved unit once its forward is over. It is
//! the promise between the edge and every origin, written down in docs/origin-contract.md and followed by
//! `flashgate-orders`:
//!
//! | what the forward came to | the origin's meaning | the unit |
//! |---|---|---|
//! | no attempt reached the origin (every connect failed) | no order | returned now |
//! | a `2xx` answer | order made | kept (the origin owns it: its payment timeout returns it) |
//! | a `410` answer | no order: the origin's stock is spent, this unit does not exist there | discarded now (not back on sale), the sale's sold-out hint set |
//! | another `4xx` answer | no order, and none will be made from this request | returned now |
//! | a `5xx` (or other) answer, or an attempt that connected and then failed or timed out | unknown | settled later; the buyer is told `202 pending` |
//!
//! Once any attempt of a forward reached the origin the edge never frees that unit by itself:
//! the origin may hold its order. An unknown outcome is settled by whoever can know
//! (`stock::SettledBy`): on Redis the order backend's ledger consumer makes the order or its
//! payment timeout returns the unit; on the embedded store the edge waits until the forward's
//! signature can no longer be accepted (`origin.settle_after`) and then asks the origin
//! `GET {origin.path}/{reservation}` ([`settlement_answer`]): `200 {"outcome":"found"}` keeps
//! the unit, `404 {"outcome":"not_found"}` returns it — a promise that the origin holds no order
//! for it and never will make one — and anything else (a bare 404 from a route that does not
//! exist, a 503 while the forward may still be in progress) is asked again later.

/// How a forward ended, as far as the edge saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// No attempt reached the origin: every connection attempt failed.
    Unreached,
    /// The origin answered with this status.
    Answered(u16),
    /// An attempt reached the origin and then failed: closed, reset or timed out.
    Failed,
}

/// What becomes of the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The origin holds an order: the unit stays sold.
    Keep,
    /// The origin holds no order: the unit goes back on sale now.
    Return,
    /// The origin holds no order and has no unit for it (its stock is spent): the unit leaves
    /// the sale for good, and the sale is taken as sold out.
    Discard,
    /// Nobody knows yet: leave the unit held until the origin can tell.
    Ask,
}

/// What an answer to the settlement question says, from its status and the `outcome` of its
/// JSON body: `Some(true)` the origin holds the order, `Some(false)` it holds none and never
/// will, `None` no definite answer (ask again). Both the status and the outcome must agree, so
/// a catch-all page or a missing route is never taken for an answer.
pub fn settlement_answer(status: u16, outcome: Option<&str>) -> Option<bool> {
    match (status, outcome) {
        (200, Some("found")) => Some(true),
        (404, Some("not_found")) => Some(false),
        _ => None,
    }
}

/// The contract itself.
pub fn settlement(forwarded: Forwarded) -> Settlement {
    match forwarded {
        Forwarded::Unreached => Settlement::Return,
        Forwarded::Answered(200..=299) => Settlement::Keep,
        Forwarded::Answered(410) => Settlement::Discard,
        Forwarded::Answered(400..=499) => Settlement::Return,
        Forwarded::Answered(_) | Forwarded::Failed => Settlement::Ask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_answer_settles() {
        assert_eq!(settlement_answer(200, Some("found")), Some(true));
        assert_eq!(settlement_answer(404, Some("not_found")), Some(false));
        for (status, outcome) in [
            (404, None),              // a route the origin does not have
            (200, None),              // a catch-all page
            (200, Some("not_found")), // status and body disagree
            (404, Some("found")),
            (503, Some("not_found")),
            (409, Some("in_progress")),
            (401, None),
        ] {
            assert_eq!(
                settlement_answer(status, outcome),
                None,
                "{status} {outcome:?}"
            );
        }
    }

    #[test]
    fn every_row_of_the_contract() {
        use Forwarded::*;
        use Settlement::*;
        let rows = [
            (Unreached, Return),
            (Answered(200), Keep),
            (Answered(201), Keep),
            (Answered(299), Keep),
            (Answered(400), Return),
            (Answered(401), Return),
            (Answered(409), Return),
            (Answered(410), Discard),
            (Answered(429), Return),
            (Answered(499), Return),
            (Answered(500), Ask),
            (Answered(502), Ask),
            (Answered(503), Ask),
            (Answered(302), Ask),
            (Failed, Ask),
        ];
        for (forwarded, expected) in rows {
            assert_eq!(settlement(forwarded), expected, "{forwarded:?}");
        }
    }
}
