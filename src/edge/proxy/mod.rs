//! The `ProxyHttp` phases of the public listener. They move bytes; the checkout decides.
//!
//! `request_filter` answers everything the edge can answer by itself — the page, the button
//! script, a challenge — and hands a buy's facts (product, path token, login token, client IP,
//! captcha) to `Checkout::buy`, which answers it or reserves a unit. Only a reserved winner goes
//! on to the origin: `upstream_request_filter` rewrites it into `POST origin.path` with the
//! signed `X-Flashgate-*` headers (client-sent ones removed). How the forward ended — the
//! origin's status, or a failure after or before any attempt reached it — goes back to
//! `Checkout::settle`, which keeps, returns, discards or defers the unit by the origin
//! contract. The origin's `2xx` and `4xx` answers go to the buyer as they are. A forward that
//! reached the origin and ended any other way (a `5xx`, a `3xx`, a dropped connection, a
//! timeout) may have made the order: the buyer gets the edge's own `202 pending` with the
//! status URL (`status`), never the origin's internals; one that reached nobody gets
//! `503 origin_unavailable` with `Retry-After`, its unit back on sale.
//!
//! Each request takes the configuration in place ([`Live`]) when it arrives and is served by it
//! to its end, a reload meanwhile notwithstanding. `facts` resolves the client's address and
//! writes the access-log line; `pages` serves the page, its files, the button script and the
//! challenges; `body` reads a buy's body whole before it is forwarded; `status` answers
//! `202 pending` and the status route; `queue` and `sale_info` the waiting room and `/api/sale`.
//!
//! "Reached" is sticky across retries: once any attempt connected (a fresh connection or a
//! reused keep-alive one, where the request may have been delivered), a later attempt that
//! cannot connect does not make the forward unreached. A failure on a reused keep-alive
//! connection is retried on a fresh one (the forward is idempotent by reservation id).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use http::header::{AUTHORIZATION, COOKIE};
use http::Method;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

mod body;
mod facts;
mod forward;
mod origin;
mod pages;
mod queue;
mod sale_info;
mod shop;
mod status;

use super::routes::{classify, Endpoint};
use super::{guard, respond, Gateway, Live};
use crate::admission::{login, BuyRequest, Reject};
use crate::checkout::Decision;
use crate::ground::clock::now_ms;
use crate::ground::metrics::Route;
use crate::ground::signing::origin_signature;
use crate::ground::Outcome;
use forward::Forward;
use shop::ShopRequest;

/// Per-request state.
pub struct Ctx {
    /// The configuration this request is served by, from its arrival to its end (a reload
    /// meanwhile serves the next requests).
    live: Arc<Live>,
    route: Route,
    outcome: Outcome,
    /// A winner's forward, from its reservation to its settlement.
    forward: Forward,
    /// The client, once resolved (buys; for the access log, any request).
    client_ip: Option<IpAddr>,
    /// When the request arrived, for the access log's latency.
    started: Instant,
    /// Whose buy it was, once the login checked out (access log).
    uid: Option<String>,
    /// A winner's reservation id, kept for the access log (only when it logs buys).
    reservation_id: Option<String>,
    /// A shop route's request, on its way to its pool.
    shop: Option<ShopRequest>,
    /// The servers of an origin pool a forward tried, in order (`origin.upstream`).
    origin_tried: Vec<usize>,
    /// The shop route a request matched (its answers are counted under it, the edge's
    /// refusals too).
    shop_route: Option<usize>,
}

impl Ctx {
    /// The key a hashing origin pool picks a server by: the reservation id.
    fn origin_key(&self) -> &[u8] {
        self.forward.reservation().map_or(&[], |r| r.id.as_bytes())
    }
}

/// The error of a phase that finds no reserved unit where only reserved winners may be: no
/// request reaches the origin without one.
fn unreserved() -> Box<Error> {
    Error::explain(ErrorType::InternalError, "forward without a reservation")
}

/// The login token a request carries (`Authorization: Bearer`, or the session cookie).
fn login_token(session: &Session) -> Option<&str> {
    let headers = &session.req_header().headers;
    login::token_from(
        headers.get(AUTHORIZATION).map(|v| v.as_bytes()),
        headers.get_all(COOKIE).iter().map(|v| v.as_bytes()),
    )
}

/// The public listener's proxy logic.
pub struct Edge {
    gw: Arc<Gateway>,
}

impl Edge {
    /// Serve `gateway`.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Edge { gw: gateway }
    }

    /// Who a visitor of the waiting room or the status route is: the buy's address checks
    /// (the per-address limits with `limit`), the login, the UID blocklist. None once a
    /// refusal has been answered.
    async fn visitor(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        live: &Live,
        limit: bool,
    ) -> Result<Option<String>> {
        let client = Self::client_ip(session, live);
        ctx.client_ip = Some(client);
        let identified =
            live.checkout
                .admission()
                .identify_visitor(client, login_token(session), limit);
        match identified {
            Ok(uid) => Ok(Some(uid)),
            Err(reject) => self.refuse(session, ctx, reject).await.map(|_| None),
        }
    }

    /// Answer a refusal: a rate limit's `429` with its headers, any other with its outcome.
    async fn refuse(&self, session: &mut Session, ctx: &mut Ctx, reject: Reject) -> Result<bool> {
        match reject.rate {
            Some(limited) => {
                ctx.outcome = Outcome::RateLimited;
                respond::rate_limited(session, limited, &ctx.live.rate_headers).await?;
                Ok(true)
            }
            None => self.answer(session, ctx, reject.outcome).await,
        }
    }

    async fn answer(&self, session: &mut Session, ctx: &mut Ctx, outcome: Outcome) -> Result<bool> {
        ctx.outcome = outcome;
        let extra: &[(&str, &str)] = match outcome {
            Outcome::StoreUnavailable | Outcome::OriginUnavailable | Outcome::NoHealthyUpstream => {
                &[("retry-after", "1")]
            }
            _ => &[],
        };
        respond::outcome(session, outcome, extra).await?;
        Ok(true)
    }

    /// The buy path: the checkout decides. Ok(false) means "forward to origin".
    async fn buy(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        product: Option<u64>,
        token: &str,
    ) -> Result<bool> {
        ctx.route = Route::Buy;
        let Some(product) = product else {
            return self.answer(session, ctx, Outcome::UnknownProduct).await;
        };
        let now = now_ms();
        let live = Arc::clone(&ctx.live);
        let client = Self::client_ip(session, &live);
        ctx.client_ip = Some(client);
        let headers = &session.req_header().headers;
        let request = BuyRequest {
            product,
            token,
            login_token: login_token(session),
            client_ip: client,
            now_ms: now,
            captcha: headers
                .get("x-captcha")
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok()),
            queue_pass: headers
                .get("x-queue-pass")
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok()),
        };
        let bought = live.checkout.decide(&request).await;
        ctx.uid = bought.uid;
        match bought.decision {
            Decision::Forward(reservation) => {
                if self.logs(Route::Buy) {
                    ctx.reservation_id = Some(reservation.id.clone());
                }
                ctx.forward = Forward::of(reservation);
                ctx.outcome = Outcome::Won;
                Ok(false)
            }
            Decision::Answer(reject) => self.refuse(session, ctx, reject).await,
            Decision::Pending(reservation) => {
                if self.logs(Route::Buy) {
                    ctx.reservation_id = Some(reservation.id);
                }
                self.answer_pending(session, ctx, product, None).await?;
                Ok(true)
            }
            Decision::Unanswered(attempt) => {
                self.answer_pending(session, ctx, product, Some(&attempt))
                    .await?;
                Ok(true)
            }
            Decision::Held(holding) => self.answer_held(session, ctx, product, &holding).await,
        }
    }
}

/// Remove every header of `upstream` whose (lowercase) name `spoofed` picks: what a client
/// wrote where only the edge may speak.
fn remove_headers(upstream: &mut RequestHeader, spoofed: impl Fn(&str) -> bool) {
    let names: Vec<_> = upstream
        .headers
        .keys()
        .filter(|k| spoofed(k.as_str()))
        .cloned()
        .collect();
    for name in names {
        upstream.remove_header(&name);
    }
}

fn header_err(e: impl std::fmt::Display) -> Box<Error> {
    Error::explain(
        ErrorType::InternalError,
        format!("building upstream request: {e}"),
    )
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            live: self.gw.live(),
            route: Route::Other,
            outcome: Outcome::NotFound,
            forward: Forward::None,
            client_ip: None,
            started: Instant::now(),
            uid: None,
            reservation_id: None,
            shop: None,
            shop_route: None,
            origin_tried: Vec::new(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // Borrow the path from an owned copy of the URI: the session is needed mutably below.
        let uri = session.req_header().uri.clone();
        let method = session.req_header().method.clone();
        let endpoint = classify(&method, uri.path());
        let mut http = ctx.live.config.http;
        // A path no sale route takes may be a shop route's, whose body limit is its own. It is
        // matched as the shop's servers will read it; a path they could read otherwise is
        // refused.
        let shop_path = match endpoint {
            Endpoint::NotFound if !ctx.live.config.routes.is_empty() => {
                match super::shop::route_path(uri.path()) {
                    Some(path) => Some(path),
                    None => {
                        ctx.route = Route::Shop;
                        session.set_keepalive(None);
                        return self.answer(session, ctx, Outcome::BadRequest).await;
                    }
                }
            }
            _ => None,
        };
        let shop = shop_path.and_then(|path| {
            let host = super::shop::request_host(session.req_header());
            super::shop::find(&ctx.live.config.routes, &method, &host, &path).map(|i| (i, host))
        });
        if let Some((i, _)) = &shop {
            ctx.shop_route = Some(*i);
            if let Some(route) = ctx.live.config.routes.get(*i) {
                http.max_body_bytes = route.max_body_bytes;
            }
        }
        // For the next request on this connection: how long it may idle, and that pipelined
        // requests are answered in order (RFC 9112 §9.3.2) rather than dropped.
        session.set_keepalive(Some(http.keepalive_secs));
        session.set_pipelining_enabled(true);
        let buy = matches!(endpoint, Endpoint::Buy { .. });
        let has_body = !session.is_body_empty();
        let length = guard::content_length(session.req_header());
        let mut refusal = guard::refuse(
            session.req_header(),
            &http,
            buy,
            has_body && length.is_none(),
        );
        if refusal.is_none() && buy && has_body {
            refusal = body::read_whole(session, length.unwrap_or(0), &http)
                .await
                .err();
        }
        if let Some(refusal) = refusal {
            if buy {
                ctx.route = Route::Buy;
            } else if shop.is_some() {
                ctx.route = Route::Shop;
            }
            // What follows the head (an unread body, a smuggled request) is never read.
            session.set_keepalive(None);
            return self.answer(session, ctx, refusal).await;
        }
        match endpoint {
            Endpoint::Index => self.serve_static(session, ctx, "index.html").await,
            Endpoint::Static(rest) => self.serve_static(session, ctx, rest).await,
            Endpoint::Button(product) => self.serve_button(session, ctx, product).await,
            Endpoint::Challenge => self.serve_challenge(session, ctx, uri.query()).await,
            Endpoint::SaleInfo => self.serve_sale_info(session, ctx, uri.query()).await,
            Endpoint::Queue(join) => self.serve_queue(session, ctx, uri.query(), join).await,
            Endpoint::QueueDraw => self.serve_draw(session, ctx, uri.query()).await,
            Endpoint::BuyStatus => self.serve_buy_status(session, ctx, uri.query()).await,
            Endpoint::Buy { product, token } => self.buy(session, ctx, product, token).await,
            Endpoint::WrongMethod(allow) => {
                ctx.outcome = Outcome::MethodNotAllowed;
                respond::outcome(session, Outcome::MethodNotAllowed, &[("allow", allow)]).await?;
                Ok(true)
            }
            Endpoint::NotFound => match shop {
                Some((index, host)) => self.serve_shop(session, ctx, index, host).await,
                None => self.answer(session, ctx, Outcome::NotFound).await,
            },
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        Self::shop_body(session, ctx, body)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        if ctx.shop.is_some() {
            return Self::shop_peer(ctx);
        }
        // Called again for every retry; the forward keeps what earlier attempts reached.
        if ctx.forward.reservation().is_none() {
            return Err(unreserved());
        }
        if let Some(pool) = ctx.live.config.origin.upstream {
            return origin::peer(ctx, pool);
        }
        Ok(Box::new(ctx.live.origin.clone()))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let live = Arc::clone(&ctx.live);
        if let Some(shop) = &ctx.shop {
            let Some(route) = live.config.routes.get(shop.route) else {
                return Err(unreserved());
            };
            return self.shop_request(upstream, ctx, shop, route);
        }
        let Some(reservation) = ctx.forward.reservation() else {
            return Err(unreserved());
        };
        let origin = &live.config.origin;
        upstream.set_method(Method::POST);
        upstream.set_uri(origin.path.parse::<http::Uri>().map_err(header_err)?);
        remove_headers(upstream, |name| name.starts_with("x-flashgate-"));
        let timestamp = now_ms();
        let signature = origin_signature(
            &live.config.secrets.edge,
            &reservation.uid,
            reservation.product,
            &reservation.id,
            timestamp,
        );
        upstream.insert_header("host", origin.host.as_str())?;
        upstream.insert_header(
            "x-flashgate-uid",
            crate::ground::uid::to_header(&reservation.uid).as_ref(),
        )?;
        upstream.insert_header("x-flashgate-product", reservation.product.to_string())?;
        upstream.insert_header("x-flashgate-reservation", reservation.id.as_str())?;
        upstream.insert_header("x-flashgate-timestamp", timestamp.to_string())?;
        upstream.insert_header("x-flashgate-signature", signature)?;
        let client = ctx.client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        upstream.insert_header("x-real-ip", client.to_string())?;
        ctx.forward.sending();
        Ok(())
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if ctx.shop.is_some() {
            Self::shop_connected(ctx);
            return Ok(());
        }
        origin::connected(ctx);
        ctx.forward.reached();
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        if ctx.shop.is_some() {
            return Self::shop_connect_failed(ctx, e);
        }
        origin::connect_failed(ctx, e)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        if ctx.shop.is_some() {
            // The shop's answer passes through as it is (a 101 switches protocols).
            if status >= 200 || status == 101 {
                Self::shop_answered(ctx, status);
            }
            return Ok(());
        }
        if status < 200 {
            return Ok(()); // informational: the answer is still to come
        }
        origin::answered(ctx, status);
        // The origin has spoken: settle before the buyer sees the answer, so a returned unit
        // is back on sale by then.
        let live = Arc::clone(&ctx.live);
        ctx.forward
            .settle(Some(status), &live.checkout, &self.gw.metrics)
            .await;
        let ask = ctx.forward.pending().is_some();
        if ask {
            // An answer that says neither "order made" (2xx) nor "no order" (4xx) — a 5xx, a
            // redirect — never reaches the public, nor do an origin's error page or internals:
            // ending the proxy here makes `fail_to_proxy` answer the edge's own `202 pending`
            // (the unit was settled above, as unknown).
            return Err(Error::explain(
                ErrorType::HTTPStatus(status),
                "the origin answered neither 2xx nor 4xx",
            ));
        }
        Ok(())
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if ctx.shop.is_some() {
            return Self::shop_failed_while_proxying(session, ctx, e, client_reused);
        }
        // The forwarded POST is idempotent by reservation id, so a stale keepalive connection
        // may be retried on a fresh one, as long as the body can be replayed.
        if session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        if ctx.shop.is_some() {
            return FailToProxy {
                error_code: self.shop_failed(session, ctx, e).await,
                can_reuse_downstream: false,
            };
        }
        if ctx.route != Route::Buy {
            let code = match e.etype() {
                ErrorType::HTTPStatus(code) => *code,
                _ => 500,
            };
            let _ = session.respond_error(code).await;
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
        let live = Arc::clone(&ctx.live);
        let reservation = ctx.forward.reservation().map(|r| r.id.clone());
        if let Some(forwarded) = ctx
            .forward
            .settle(None, &live.checkout, &self.gw.metrics)
            .await
        {
            // Every winner sees an origin outage: one line per period, with a count.
            if let Some(held) = self.gw.forward_failures.admit() {
                tracing::error!(
                    reservation = reservation.as_deref().unwrap_or(""), error = %e, ?forwarded,
                    "forward failed ({held} more failed forwards since the last report)"
                );
            }
        }
        let was_forwarded = ctx.outcome == Outcome::Won;
        if !was_forwarded || session.response_written().is_some() {
            // Either no forward failed (an edge answer could not be written: the client went
            // away), or the origin's answer is already on its way and its body failed. Nothing
            // more can be written; the outcome stays as it was, and the connection closes.
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        // Pingora does not reuse a connection after a failed proxy; turning keepalive off makes
        // it say `Connection: close`, so no client sends its next request into a closing socket.
        session.set_keepalive(None);
        let (written, status) = match ctx.forward.pending() {
            // The origin was reached: it may hold the order. The buyer learns which later.
            Some(product) => (self.answer_pending(session, ctx, product, None).await, 202),
            None => {
                ctx.outcome = Outcome::OriginUnavailable;
                let out = Outcome::OriginUnavailable;
                (
                    respond::outcome(session, out, &[("retry-after", "1")]).await,
                    503,
                )
            }
        };
        FailToProxy {
            error_code: if written.is_ok() { status } else { 0 },
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        // Every forward is settled by now; one that ended some other way (the client went away
        // mid-proxy) settles by what it reached.
        let live = Arc::clone(&ctx.live);
        ctx.forward
            .settle(None, &live.checkout, &self.gw.metrics)
            .await;
        self.gw.metrics.request(ctx.route, ctx.outcome);
        if let Some(route) = ctx.shop_route {
            // A request that ended with no answer written is in flashgate_requests_total only.
            if let Some(answer) = session.response_written() {
                let status = answer.status.as_u16();
                ctx.live.shop.answered(route, status, ctx.started.elapsed());
            }
        }
        self.access_log(session, ctx);
    }
}
