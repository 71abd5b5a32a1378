//! A buy whose outcome the edge could not know, and the route that tells the buyer later.
//!
//! Two kinds of buy end without a definite answer, and each gets `202 {"outcome":"pending"}`
//! with a status URL — never a `503` that reads "try again" for a buy that may have won:
//!
//! - a forward that reached the origin and ended without a definite answer (a `5xx`, a dropped
//!   connection, a timeout): the origin may hold the order; the unit stays held until it is
//!   settled (`checkout::contract`). URL: `GET /api/buy/status?product=ID`.
//! - a reserve sent to the store and never answered (`stock::StoreError::Unanswered`): it may
//!   have taken a unit, now or when its bytes arrive. URL:
//!   `GET /api/buy/status?product=ID&attempt=HEX`, naming the attempt.
//!
//! The status route answers the logged-in user, from the store (one or two reads; with an
//! `attempt`, one script that fences the attempt if the user holds nothing, so the answer is
//! the store's, the same on every edge, and stays true however late the reserve arrives):
//!
//! | `outcome` | meaning |
//! |---|---|
//! | `won` (with `reservation`) | an order holds the unit |
//! | `pending` (with `poll_after_s`) | the unit is held and not settled yet, or the store cannot say now: ask again |
//! | `not_won` | no unit is held, and the attempt asked about never will take one: the user may buy again |
//!
//! A buyer who holds a unit and buys again is told `409 {"outcome":"duplicate"}` with what
//! they hold (`holding`: `won` or `pending`, the `reservation`) and the status URL.
//!
//! It takes the address checks of a buy (blocklist, per-address limits) and the login, like a
//! queue join; it never counts against the per-user buy limit, which a buyer polling every two
//! seconds would spend.

use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::Session;
use serde_json::json;

use super::{Ctx, Edge};
use crate::edge::{answer, challenge, respond};
use crate::ground::metrics::Route;
use crate::ground::Outcome;
use crate::stock::{Attempt, Holding};

/// Seconds between two polls of a pending buy.
pub const POLL_AFTER_S: u64 = 2;

const JSON_NO_STORE: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("cache-control", "no-store"),
];

/// The status URL of `product`'s buys, naming `attempt` when it was a reserve never answered.
pub fn status_url(product: u64, attempt: Option<&Attempt>) -> String {
    match attempt {
        Some(attempt) => format!("/api/buy/status?product={product}&attempt={attempt}"),
        None => format!("/api/buy/status?product={product}"),
    }
}

/// The `attempt` parameter of a query string, if it names an attempt. `Err` when it is there
/// and names none.
fn attempt_param(query: Option<&str>) -> Result<Option<Attempt>, ()> {
    let Some(value) = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("attempt="))
    else {
        return Ok(None);
    };
    Attempt::parse(value).map(Some).ok_or(())
}

/// The `holding` field's value for what a user holds.
fn held(holding: &Holding) -> Option<(&'static str, &str)> {
    match holding {
        Holding::Won(reservation) => Some(("won", reservation)),
        Holding::Pending(reservation) => Some(("pending", reservation)),
        Holding::Nothing => None,
    }
}

impl Edge {
    /// Answer `202 pending` to a buy of `product` that ended without a definite answer: a
    /// forward (`attempt` None) or a reserve never answered (its attempt).
    pub(super) async fn answer_pending(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        product: u64,
        attempt: Option<&Attempt>,
    ) -> Result<()> {
        ctx.outcome = Outcome::Pending;
        let url = status_url(product, attempt);
        let body = json!({
            "outcome": Outcome::Pending.name(),
            "status": url,
            "poll_after_s": POLL_AFTER_S,
        })
        .to_string();
        let poll = POLL_AFTER_S.to_string();
        respond::write(
            session,
            answer::status(Outcome::Pending),
            &JSON_NO_STORE,
            &[("location", &url), ("retry-after", &poll)],
            Bytes::from(body),
        )
        .await
    }

    /// Answer `409 duplicate` to a buyer who holds a unit of `product`: what they hold, and
    /// where to follow it.
    pub(super) async fn answer_held(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        product: u64,
        holding: &Holding,
    ) -> Result<bool> {
        let Some((state, reservation)) = held(holding) else {
            return self.answer(session, ctx, Outcome::Duplicate).await;
        };
        ctx.outcome = Outcome::Duplicate;
        let mut body = json!({
            "outcome": Outcome::Duplicate.name(),
            "holding": state,
            "product": product,
            "reservation": reservation,
            "status": status_url(product, None),
        });
        if state == "pending" {
            body["poll_after_s"] = POLL_AFTER_S.into();
        }
        respond::write(
            session,
            answer::status(Outcome::Duplicate),
            &JSON_NO_STORE,
            &[],
            Bytes::from(body.to_string()),
        )
        .await?;
        Ok(true)
    }

    /// `GET /api/buy/status?product=ID[&attempt=HEX]`.
    pub(super) async fn serve_buy_status(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        query: Option<&str>,
    ) -> Result<bool> {
        ctx.route = Route::BuyStatus;
        let live = std::sync::Arc::clone(&ctx.live);
        let Some(sale) = challenge::product_param(query).and_then(|p| live.checkout.sale(p)) else {
            return self.answer(session, ctx, Outcome::UnknownProduct).await;
        };
        let Ok(attempt) = attempt_param(query) else {
            return self.answer(session, ctx, Outcome::NotFound).await;
        };
        let Some(uid) = self.visitor(session, ctx, &live, true).await? else {
            return Ok(true);
        };
        let holding = live.checkout.holding(sale, &uid, attempt.as_ref()).await;
        ctx.uid = Some(uid);
        let product = sale.keys.product;
        let pending = |reservation: Option<&str>| {
            let mut body = json!({
                "outcome": "pending",
                "product": product,
                "poll_after_s": POLL_AFTER_S,
            });
            if let Some(reservation) = reservation {
                body["reservation"] = reservation.into();
            }
            body
        };
        let (body, retry) = match &holding {
            Ok(Holding::Won(reservation)) => (
                json!({
                    "outcome": "won",
                    "product": product,
                    "reservation": reservation,
                }),
                false,
            ),
            Ok(Holding::Pending(reservation)) => (pending(Some(reservation)), false),
            Ok(Holding::Nothing) => (json!({ "outcome": "not_won", "product": product }), false),
            // The store cannot say now: neither won nor not won is known.
            Err(_) => (pending(None), true),
        };
        ctx.outcome = Outcome::Served;
        let poll = POLL_AFTER_S.to_string();
        let extra: &[(&str, &str)] = if retry {
            &[("retry-after", &poll)]
        } else {
            &[]
        };
        respond::write(
            session,
            200,
            &JSON_NO_STORE,
            extra,
            Bytes::from(body.to_string()),
        )
        .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_parameter_names_an_attempt_or_is_refused() {
        let id = "0a".repeat(16);
        let query = format!("product=4&attempt={id}");
        assert_eq!(attempt_param(Some(&query)), Ok(Attempt::parse(&id)));
        assert_eq!(attempt_param(Some("product=4")), Ok(None));
        assert_eq!(attempt_param(None), Ok(None));
        assert_eq!(attempt_param(Some("product=4&attempt=zz")), Err(()));
        assert_eq!(
            status_url(4, Attempt::parse(&id).as_ref()),
            format!("/api/buy/status?{query}")
        );
    }
}
