//! The edge's own answers that need no store and no login: the sale page and its files (with
//! their ETags and encodings), the button script, and a proof-of-work challenge.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, COOKIE, IF_NONE_MATCH};
use pingora::prelude::*;
use pingora::proxy::Session;

use super::{Ctx, Edge};
use crate::admission::login;
use crate::edge::{button, challenge, respond, static_files};
use crate::ground::clock::now_ms;
use crate::ground::metrics::Route;
use crate::ground::Outcome;

impl Edge {
    pub(super) async fn serve_static(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rest: &str,
    ) -> Result<bool> {
        ctx.route = Route::Static;
        let live = Arc::clone(&ctx.live);
        let Some(file) = live.static_files.lookup(rest) else {
            return self.answer(session, ctx, Outcome::NotFound).await;
        };
        let request = &session.req_header().headers;
        let inm = request.get(IF_NONE_MATCH).map(|v| v.as_bytes());
        let chosen = file.choose(request.get(ACCEPT_ENCODING).map(|v| v.as_bytes()));
        let not_modified = static_files::not_modified(inm, chosen.etag);
        // etag, cache-control, then what a 200 adds: the type, the coding, the Vary.
        let mut headers = [("", ""); 5];
        let mut n = 0;
        let mut put = |name: &'static str, value| {
            headers[n] = (name, value);
            n += 1;
        };
        put("etag", chosen.etag);
        put("cache-control", file.cache_control);
        if file.compressible {
            put("vary", "accept-encoding");
        }
        if !not_modified {
            put("content-type", file.content_type.as_str());
            if let Some(coding) = chosen.encoding {
                put("content-encoding", coding);
            }
        }
        if not_modified {
            ctx.outcome = Outcome::NotModified;
            respond::write(session, 304, &headers[..n], &[], Bytes::new()).await?;
        } else {
            ctx.outcome = Outcome::Served;
            let body = chosen.body.clone();
            respond::write(session, 200, &headers[..n], &[], body).await?;
        }
        Ok(true)
    }

    pub(super) async fn serve_button(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        product: u64,
    ) -> Result<bool> {
        ctx.route = Route::Button;
        let live = Arc::clone(&ctx.live);
        let Some(sale) = live.checkout.sale(product) else {
            return self.answer(session, ctx, Outcome::UnknownProduct).await;
        };
        let script = button::render(&sale.gate, now_ms());
        ctx.outcome = Outcome::Served;
        let headers = [
            ("content-type", "application/javascript; charset=utf-8"),
            ("cache-control", "public, max-age=1"),
        ];
        respond::write(session, 200, &headers, &[], Bytes::from(script)).await?;
        Ok(true)
    }

    /// `GET /api/challenge?product=ID` (see `challenge`).
    pub(super) async fn serve_challenge(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        query: Option<&str>,
    ) -> Result<bool> {
        ctx.route = Route::Challenge;
        let headers = &session.req_header().headers;
        let login_token = login::token_from(
            headers.get(AUTHORIZATION).map(|v| v.as_bytes()),
            headers.get_all(COOKIE).iter().map(|v| v.as_bytes()),
        );
        let issued =
            ctx.live
                .checkout
                .challenge(challenge::product_param(query), login_token, now_ms());
        let (issued, product) = match issued {
            Ok(issued) => issued,
            Err(outcome) => return self.answer(session, ctx, outcome).await,
        };
        ctx.outcome = Outcome::Served;
        let headers = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        let body = challenge::body(&issued, product);
        respond::write(session, 200, &headers, &[], Bytes::from(body)).await?;
        Ok(true)
    }
}
