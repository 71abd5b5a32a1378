//! A buy whose outcome the edge could not know, and the route that tells the buyer later.
//!
//! When a forward reached the origin and ended without a definite answer (a `5xx`, a dropped
//! connection, a timeout), the origin may hold the order: the unit stays held until it is
//! settled (`checkout::contract`), and the buyer gets `202 {"outcome":"pending"}` with the URL
//! of `GET /api/buy/status?product=ID` — never a `503` that reads "try again" for a buy that
//! may have won, nor a `409 duplicate` on the retry.
//!
//! The status route answers the logged-in user, from the store (one or two reads):
//!
//! | `outcome` | meaning |
//! |---|---|
//! | `won` (with `reservation`) | an order holds the unit |
//! | `pending` (with `poll_after_s`) | the unit is held and not settled yet: ask again |
//! | `not_won` | no unit is held: the forward ended without an order and the unit went back on sale (or the user never had one) |
//!
//! It takes the address checks of a buy (blocklist, per-address limits) and the login, like a
//! queue join; it never counts against the per-user buy limit, which a buyer polling every two
//! seconds would spend.

use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::Session;
use serde_json::json;

use super::{Ctx, Edge};
use crate::admission::Outcome;
use crate::edge::{challenge, respond};
use crate::metrics::Route;
use crate::stock::Holding;

/// Seconds between two polls of a pending buy.
pub const POLL_AFTER_S: u64 = 2;

const JSON_NO_STORE: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("cache-control", "no-store"),
];

/// The status URL of `product`'s buys.
pub fn status_url(product: u64) -> String {
    format!("/api/buy/status?product={product}")
}

impl Edge {
    /// Answer `202 pending` to a buy of `product` whose forward ended without a definite
    /// answer.
    pub(super) async fn answer_pending(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        product: u64,
    ) -> Result<()> {
        ctx.outcome = Outcome::Pending;
        let url = status_url(product);
        let body = json!({
            "outcome": Outcome::Pending.name(),
            "status": url,
            "poll_after_s": POLL_AFTER_S,
        })
        .to_string();
        let poll = POLL_AFTER_S.to_string();
        respond::write(
            session,
            Outcome::Pending.status(),
            &JSON_NO_STORE,
            &[("location", &url), ("retry-after", &poll)],
            Bytes::from(body),
        )
        .await
    }

    /// `GET /api/buy/status?product=ID`.
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
        let Some(uid) = self.visitor(session, ctx, &live, true).await? else {
            return Ok(true);
        };
        let holding = live.checkout.holding(sale, &uid).await;
        ctx.uid = Some(uid);
        let body = match holding {
            Ok(Holding::Won(reservation)) => json!({
                "outcome": "won",
                "product": sale.keys.product,
                "reservation": reservation,
            }),
            Ok(Holding::Pending(reservation)) => json!({
                "outcome": "pending",
                "product": sale.keys.product,
                "reservation": reservation,
                "poll_after_s": POLL_AFTER_S,
            }),
            Ok(Holding::Nothing) => json!({
                "outcome": "not_won",
                "product": sale.keys.product,
            }),
            Err(_) => return self.answer(session, ctx, Outcome::StoreUnavailable).await,
        };
        ctx.outcome = Outcome::Served;
        respond::write(
            session,
            200,
            &JSON_NO_STORE,
            &[],
            Bytes::from(body.to_string()),
        )
        .await?;
        Ok(true)
    }
}
