//! The shop's routes through the proxy phases: a request no sale route takes is matched
//! against `routes:`; its route's policy runs at the edge (the address blocklist, the login,
//! the UID blocklist, the named limits) and it goes to a server of the route's pool, with the
//! client's `X-Flashgate-*` headers removed, `X-Forwarded-*` set and, with a verified login,
//! the UID signed. A connect that fails is retried on another server only for a safe method
//! (`GET`, `HEAD`, `OPTIONS`, `TRACE`) within the route's `retries`, and a failure on a reused
//! keep-alive connection likewise; any other request is sent at most once. What the edge
//! answers itself: `503 no_healthy_upstream` (no server up), `502 bad_gateway` (refused or
//! broken), `504 gateway_timeout` (no answer within `read_timeout`), `413 body_too_large`.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::{login_token, remove_headers, Ctx, Edge};
use crate::admission::Reject;
use crate::config::{LoginPolicy, Route as ShopRoute, Selection};
use crate::edge::respond;
use crate::edge::upstream::Pool;
use crate::ground::clock::now_ms;
use crate::ground::metrics::Route;
use crate::ground::signing::route_signature;
use crate::ground::Outcome;

/// The marker of "no server of the pool is up", from `upstream_peer` to `fail_to_proxy`.
const NO_HEALTHY: &str = "no healthy upstream server";

/// A shop request on its way to its pool.
pub struct ShopRequest {
    /// Its route, by index of `Config::routes`.
    pub route: usize,
    upstream: usize,
    /// The verified login's UID, when the route reads the login.
    uid: Option<String>,
    /// The pool's hashing key for this request.
    key: Vec<u8>,
    /// Servers tried, in order; the last is the one in use.
    tried: Vec<usize>,
    /// Retries left.
    retries: u8,
    /// Whether the method may be sent twice.
    safe: bool,
    /// Body bytes seen so far, and the route's limit.
    body: u64,
    max_body: u64,
    /// The host the client asked for.
    host: String,
    /// Whether the last attempt's failure is already counted as its server's error.
    connect_failed: bool,
}

impl ShopRequest {
    fn current(&self) -> Option<usize> {
        self.tried.last().copied()
    }
}

impl Edge {
    /// A request for shop route `index`: refused at the edge, or `Ok(false)` to proxy it.
    pub(super) async fn serve_shop(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        index: usize,
        host: String,
    ) -> Result<bool> {
        ctx.route = Route::Shop;
        let live = Arc::clone(&ctx.live);
        let Some(route) = live.config.routes.get(index) else {
            return self.answer(session, ctx, Outcome::NotFound).await;
        };
        if session.req_header().method == http::Method::TRACE {
            // A server that echoes TRACE would hand the client the edge's signed headers.
            ctx.outcome = Outcome::MethodNotAllowed;
            let allow = [("allow", "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE")];
            respond::outcome(session, Outcome::MethodNotAllowed, &allow).await?;
            return Ok(true);
        }
        let client = Self::client_ip(session, &live);
        ctx.client_ip = Some(client);
        let admission = live.checkout.admission();
        if route.blocklist && admission.blocklist().blocks_ip(client) {
            return self.answer(session, ctx, Outcome::Blacklisted).await;
        }
        let uid = match route.login {
            LoginPolicy::None => None,
            LoginPolicy::Optional | LoginPolicy::Required => {
                login_token(session).and_then(|t| admission.login().verify(t))
            }
        };
        if route.login == LoginPolicy::Required && uid.is_none() {
            return self.answer(session, ctx, Outcome::LoginRequired).await;
        }
        if let Some(uid) = &uid {
            ctx.uid = Some(uid.clone());
            if route.blocklist && admission.blocklist().blocks_uid(uid) {
                return self.answer(session, ctx, Outcome::Blacklisted).await;
            }
        }
        if let Err(limited) = admission
            .rates()
            .check_route(client, uid.as_deref(), &route.limits)
        {
            let reject = Reject {
                outcome: Outcome::RateLimited,
                rate: Some(limited),
            };
            return self.refuse(session, ctx, reject).await;
        }
        let Some(pool) = live.pools.get(route.upstream) else {
            return self.answer(session, ctx, Outcome::NoHealthyUpstream).await;
        };
        let key = hash_key(pool, session.req_header(), client, uid.as_deref());
        ctx.shop = Some(ShopRequest {
            route: index,
            upstream: route.upstream,
            uid,
            key,
            tried: Vec::new(),
            retries: route.retries,
            safe: is_safe(&session.req_header().method),
            body: 0,
            max_body: route.max_body_bytes,
            host,
            connect_failed: false,
        });
        ctx.outcome = Outcome::Proxied;
        Ok(false)
    }

    /// The peer of a shop request: a server of its pool that is up and not tried yet.
    pub(super) fn shop_peer(ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let live = Arc::clone(&ctx.live);
        let Some(shop) = ctx.shop.as_mut() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "not a shop request",
            ));
        };
        let pool = live
            .pools
            .get(shop.upstream)
            .ok_or_else(|| Error::explain(ErrorType::Custom(NO_HEALTHY), "no such upstream"))?;
        let server = pool.pick(&shop.key, &shop.tried).ok_or_else(|| {
            if shop.tried.is_empty() {
                Error::explain(ErrorType::Custom(NO_HEALTHY), pool.name.clone())
            } else {
                // A retry found no other server up: the answer is the failure it retried.
                Error::explain(ErrorType::ConnectError, "no other server to try")
            }
        })?;
        shop.tried.push(server);
        // A retry replays the body through the filter again.
        shop.body = 0;
        let peer = pool
            .peer(server)
            .ok_or_else(|| Error::explain(ErrorType::Custom(NO_HEALTHY), pool.name.clone()))?;
        Ok(Box::new(peer.clone()))
    }

    /// The request as the shop's server gets it.
    pub(super) fn shop_request(
        &self,
        upstream: &mut RequestHeader,
        ctx: &Ctx,
        shop: &ShopRequest,
        route: &ShopRoute,
    ) -> Result<()> {
        // What only the edge may say: its own headers, and where the request came from.
        remove_headers(upstream, |k| {
            k.starts_with("x-flashgate-")
                || k.starts_with("x-forwarded-")
                || k == "x-real-ip"
                || k == "forwarded"
        });
        if route.forwarded {
            // The edge is the first hop it trusts: the address it resolved, never a chain a
            // client wrote.
            let client = ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
            upstream.insert_header("x-forwarded-for", client.as_str())?;
            upstream.insert_header("x-real-ip", client.as_str())?;
            let proto = if ctx.live.config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            upstream.insert_header("x-forwarded-proto", proto)?;
            if !shop.host.is_empty() {
                upstream.insert_header("x-forwarded-host", shop.host.as_str())?;
            }
        }
        if let Some(host) = &route.upstream_host {
            upstream.insert_header("host", host.as_str())?;
        }
        if let Some(uid) = &shop.uid {
            let timestamp = now_ms();
            let signature = route_signature(&ctx.live.config.secrets.edge, uid, timestamp);
            upstream.insert_header(
                "x-flashgate-uid",
                crate::ground::uid::to_header(uid).as_ref(),
            )?;
            upstream.insert_header("x-flashgate-timestamp", timestamp.to_string())?;
            upstream.insert_header("x-flashgate-signature", signature)?;
        }
        Ok(())
    }

    /// A connect to the server in use failed: count it toward its ejection; try another only
    /// for a safe method with retries left.
    pub(super) fn shop_connect_failed(ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
        let live = Arc::clone(&ctx.live);
        let Some(shop) = ctx.shop.as_mut() else {
            return e;
        };
        if let (Some(pool), Some(server)) = (live.pools.get(shop.upstream), shop.current()) {
            pool.connect_failed(server);
            pool.answered(server, None);
        }
        shop.connect_failed = true;
        let retry = shop.safe && shop.retries > 0;
        if retry {
            shop.retries -= 1;
        }
        e.set_retry(retry);
        e
    }

    /// A failure once connected: a safe method may go again (on a fresh connection) when the
    /// connection was a reused one, within its retries; nothing else is sent twice.
    pub(super) fn shop_failed_while_proxying(
        session: &Session,
        ctx: &mut Ctx,
        mut e: Box<Error>,
        reused: bool,
    ) -> Box<Error> {
        if matches!(e.etype(), ErrorType::HTTPStatus(413)) {
            // The client's body ran over the route's limit: not the server's failure.
            e.set_retry(false);
            return e;
        }
        if let Some((pool, server)) = Self::shop_server(ctx) {
            pool.answered(server, None);
        }
        let Some(shop) = ctx.shop.as_mut() else {
            return e;
        };
        // Counted here, not again when the edge answers.
        shop.connect_failed = true;
        let replayable = !session.as_ref().retry_buffer_truncated();
        if shop.safe
            && replayable
            && reused
            && shop.retries > 0
            && session.response_written().is_none()
        {
            shop.retries -= 1;
            // The same server may be picked again: its connection went stale, it did not fail.
            shop.tried.pop();
            e.set_retry(true);
        } else {
            e.set_retry(false);
        }
        e
    }

    /// Count a request body's bytes against the route's limit (not the bytes of an upgraded
    /// connection, a WebSocket's).
    pub(super) fn shop_body(session: &Session, ctx: &mut Ctx, body: &Option<Bytes>) -> Result<()> {
        let Some(shop) = ctx.shop.as_mut() else {
            return Ok(());
        };
        if session.was_upgraded() {
            return Ok(());
        }
        shop.body += body.as_ref().map_or(0, |b| b.len() as u64);
        if shop.body > shop.max_body {
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "request body over the route's max_body_bytes",
            ));
        }
        Ok(())
    }

    /// The connection to the server in use is up.
    pub(super) fn shop_connected(ctx: &mut Ctx) {
        if let Some((pool, server)) = Self::shop_server(ctx) {
            pool.connected(server);
        }
        if let Some(shop) = ctx.shop.as_mut() {
            shop.connect_failed = false;
        }
    }

    /// The server in use answered `status`.
    pub(super) fn shop_answered(ctx: &Ctx, status: u16) {
        if let Some((pool, server)) = Self::shop_server(ctx) {
            pool.answered(server, Some(status));
        }
    }

    fn shop_server(ctx: &Ctx) -> Option<(&Pool, usize)> {
        let shop = ctx.shop.as_ref()?;
        Some((ctx.live.pools.get(shop.upstream)?, shop.current()?))
    }

    /// The edge's own answer to a shop request that failed: what went wrong, never how.
    pub(super) async fn shop_failed(&self, session: &mut Session, ctx: &mut Ctx, e: &Error) -> u16 {
        if session.response_written().is_some() || e.esource() == &ErrorSource::Downstream {
            // The server's answer is on its way and broke, or the client did: nothing more can
            // be written.
            if let Some((pool, server)) = Self::shop_server(ctx) {
                if session.response_written().is_some() {
                    pool.answered(server, None);
                }
            }
            return 0;
        }
        let outcome = match e.etype() {
            ErrorType::Custom(marker) if *marker == NO_HEALTHY => Outcome::NoHealthyUpstream,
            ErrorType::HTTPStatus(413) => Outcome::BodyTooLarge,
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => Outcome::GatewayTimeout,
            _ => Outcome::BadGateway,
        };
        let counted = ctx.shop.as_ref().is_none_or(|s| s.connect_failed);
        if matches!(outcome, Outcome::GatewayTimeout | Outcome::BadGateway) && !counted {
            if let Some((pool, server)) = Self::shop_server(ctx) {
                pool.answered(server, None);
            }
        }
        ctx.outcome = outcome;
        session.set_keepalive(None);
        let extra: &[(&str, &str)] = match outcome {
            Outcome::NoHealthyUpstream | Outcome::BadGateway => &[("retry-after", "1")],
            _ => &[],
        };
        match respond::outcome(session, outcome, extra).await {
            Ok(()) => crate::edge::answer::status(outcome),
            Err(_) => 0,
        }
    }
}

/// Whether `method` may be sent twice: it changes nothing on the server.
fn is_safe(method: &http::Method) -> bool {
    [http::Method::GET, http::Method::HEAD, http::Method::OPTIONS].contains(method)
}

/// The key a hashing pool picks a server by: the client's address, the UID (the address
/// without a login) or a header's value (empty when absent).
fn hash_key(pool: &Pool, req: &RequestHeader, client: IpAddr, uid: Option<&str>) -> Vec<u8> {
    match pool.selection() {
        Selection::RoundRobin => Vec::new(),
        Selection::ClientIp => client.to_string().into_bytes(),
        Selection::Uid => uid.map_or_else(
            || client.to_string().into_bytes(),
            |u| u.as_bytes().to_vec(),
        ),
        Selection::Header(name) => req
            .headers
            .get(name.as_str())
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default(),
    }
}
