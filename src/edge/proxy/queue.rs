//! The waiting room's routes (the contract is in docs/waiting-room.md, "The contract"):
//!
//! - `POST /api/queue?product=ID`: join (login and the buy route's address checks), or find
//!   the place this user holds — one store call;
//! - `GET /api/queue?product=ID` with `X-Queue-Ticket`: where the ticket's holder stands,
//!   answered from this edge's view of the queue — no store call;
//! - `GET /api/queue/draw?product=ID`: the shuffle's commitment, and from the start its seed.
//!
//! The answer is computed by `queue::view`; this file only reads headers and writes JSON.

use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::Session;
use serde_json::json;

use super::{Ctx, Edge};
use crate::edge::{challenge, respond};
use crate::ground::clock::now_ms;
use crate::ground::metrics::Route;
use crate::ground::Outcome;
use crate::queue::ticket::Ticket;
use crate::queue::{PollAnswer, QueueView, State};

const JSON_NO_STORE: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("cache-control", "no-store"),
];

/// When the visitor should ask again, in seconds.
fn poll_after_s(status: &PollAnswer, now_ms: u64) -> u64 {
    match status.state {
        State::Waiting => (status.eta_s / 4).clamp(1, 30),
        State::Admitted => status
            .pass_expires_ms
            .map_or(1, |e| e.saturating_sub(now_ms) / 1000)
            .max(1),
        // A unit may come back (an unpaid order released).
        State::SoldOut => 5,
        State::Closed => 60,
    }
}

/// The JSON answer for `ticket`'s holder.
fn body(view: &QueueView, uid: &str, ticket: &Ticket, status: &PollAnswer, now_ms: u64) -> String {
    let mut v = json!({
        "state": status.state.name(),
        "position": status.position,
        "eta_s": status.eta_s,
        "ticket": view.signer.ticket(uid, ticket),
        "poll_after_s": poll_after_s(status, now_ms),
        "prequeue": ticket.place.kind == crate::queue::ticket::Kind::Pre,
        "join_number": ticket.place.number,
    });
    if let Some(rank) = status.rank {
        v["place"] = json!(rank);
    }
    if status.expired {
        v["expired"] = json!(true);
    }
    if let (State::Admitted, Some(expires)) = (status.state, status.pass_expires_ms) {
        v["pass"] = json!(view.signer.pass(uid, ticket.place, expires));
        v["pass_expires_s"] = json!(expires.saturating_sub(now_ms).div_ceil(1000));
    }
    v.to_string()
}

impl Edge {
    /// `POST` (join) or `GET` (poll) `/api/queue?product=ID`.
    pub(super) async fn serve_queue(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        query: Option<&str>,
        join: bool,
    ) -> Result<bool> {
        ctx.route = Route::Queue;
        let live = std::sync::Arc::clone(&ctx.live);
        let now = now_ms();
        let found = challenge::product_param(query)
            .and_then(|p| live.checkout.sale(p))
            .and_then(|sale| {
                let view = self
                    .gw
                    .queues
                    .view(&sale.gate.sale, &live.config.secrets.edge)?;
                Some((sale, view))
            });
        let Some((sale, view)) = found else {
            return self.answer(session, ctx, Outcome::UnknownProduct).await;
        };
        if now < view.opens_ms {
            return self.answer(session, ctx, Outcome::NotStarted).await;
        }
        let Some(uid) = self.visitor(session, ctx, &live, join).await? else {
            return Ok(true);
        };
        let headers = &session.req_header().headers;
        let epoch = self.gw.queues.store.epoch();
        let ticket = if join {
            let joined = self
                .gw
                .queues
                .store
                .join(&sale.keys, &uid, view.starts_ms)
                .await;
            match joined {
                Ok(j) => Ticket {
                    epoch,
                    place: j.place,
                    joined_ms: j.joined_ms,
                },
                Err(e) => {
                    tracing::warn!(product = view.product, "queue join failed: {e}");
                    ctx.uid = Some(uid);
                    return self.answer(session, ctx, Outcome::StoreUnavailable).await;
                }
            }
        } else {
            let given = headers
                .get("x-queue-ticket")
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .and_then(|t| view.signer.verify_ticket(&uid, t))
                .filter(|t| t.epoch == epoch);
            match given {
                Some(t) => t,
                None => {
                    ctx.uid = Some(uid);
                    return self.answer(session, ctx, Outcome::QueueRequired).await;
                }
            }
        };
        let status = view.status(ticket.place, now);
        if let (State::Admitted, Some(at)) = (status.state, status.admitted_ms) {
            if view.first_seen_admitted(ticket.place) {
                let waited = at.saturating_sub(ticket.joined_ms) as f64 / 1000.0;
                self.gw
                    .metrics
                    .queue
                    .wait
                    .with_label_values(&[&view.product.to_string()])
                    .observe(waited);
            }
        }
        let text = body(&view, &uid, &ticket, &status, now);
        ctx.uid = Some(uid);
        ctx.outcome = Outcome::Served;
        respond::write(session, 200, &JSON_NO_STORE, &[], Bytes::from(text)).await?;
        Ok(true)
    }

    /// `GET /api/queue/draw?product=ID`.
    pub(super) async fn serve_draw(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        query: Option<&str>,
    ) -> Result<bool> {
        ctx.route = Route::Queue;
        let live = std::sync::Arc::clone(&ctx.live);
        let now = now_ms();
        let view = challenge::product_param(query)
            .and_then(|p| live.checkout.sale(p))
            .and_then(|sale| {
                self.gw
                    .queues
                    .view(&sale.gate.sale, &live.config.secrets.edge)
            });
        let Some(view) = view else {
            return self.answer(session, ctx, Outcome::UnknownProduct).await;
        };
        if now < view.opens_ms {
            return self.answer(session, ctx, Outcome::NotStarted).await;
        }
        let seed = view.seed_if_revealed(now);
        let joiners = seed.and(view.sealed());
        let text = json!({
            "mode": view.settings.mode.name(),
            "seed_sha256": view.commitment,
            "seed": seed.map(hex::encode),
            "prequeue_joiners": joiners,
        })
        .to_string();
        ctx.outcome = Outcome::Served;
        respond::write(session, 200, &JSON_NO_STORE, &[], Bytes::from(text)).await?;
        Ok(true)
    }
}
