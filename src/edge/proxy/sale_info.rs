//! `GET /api/sale?product=ID`: the prepared description of a sale (`edge::sale_info`), with its
//! ETag and `304`. Counted under the button script's route, the other half of what the page
//! asks about a sale.

use std::sync::Arc;

use bytes::Bytes;
use http::header::IF_NONE_MATCH;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::{Ctx, Edge};
use crate::edge::{challenge, respond, sale_info, static_files};
use crate::ground::metrics::Route;
use crate::ground::Outcome;

impl Edge {
    /// `GET /api/sale?product=ID` (see `sale_info`); counted with the button script, the other
    /// half of what the page asks about a sale.
    pub(super) async fn serve_sale_info(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        query: Option<&str>,
    ) -> Result<bool> {
        ctx.route = Route::Button;
        let live = Arc::clone(&ctx.live);
        let described = challenge::product_param(query).and_then(|p| live.sale_info.get(p));
        let Some(described) = described else {
            return self.answer(session, ctx, Outcome::UnknownProduct).await;
        };
        let inm = session.req_header().headers.get(IF_NONE_MATCH);
        let headers = [
            ("etag", described.etag.as_str()),
            ("cache-control", sale_info::CACHE_CONTROL),
            ("content-type", "application/json"),
        ];
        if static_files::not_modified(inm.map(|v| v.as_bytes()), &described.etag) {
            ctx.outcome = Outcome::NotModified;
            respond::write(session, 304, &headers[..2], &[], Bytes::new()).await?;
        } else {
            ctx.outcome = Outcome::Served;
            respond::write(session, 200, &headers, &[], described.body.clone()).await?;
        }
        Ok(true)
    }
}
