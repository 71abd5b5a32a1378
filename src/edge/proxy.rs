//! The `ProxyHttp` phases of the public listener.
//!
//! `request_filter` answers everything the edge can answer by itself — the page, the button
//! script, every reject — and, for a buy that passes admission, reserves a unit. Only then does
//! the request go on to the origin: `upstream_request_filter` rewrites it into
//! `POST origin.path` with the signed `X-Flashgate-*` headers (client-sent ones removed).
//!
//! If the origin cannot be reached (the connection never opened), the unit is released and the
//! client gets `503 origin_unavailable`. If the connection opened and then failed, the origin
//! may already hold the order, so the reservation is kept — releasing it could sell the unit
//! twice — and the client still gets 503; the order backend's ledger consumer and payment
//! timeout settle that unit. A failure on a reused keepalive connection is retried on a fresh
//! one (the forwarded request is idempotent by reservation id).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, IF_NONE_MATCH};
use http::Method;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use super::routes::{classify, Route as Path};
use super::{button, challenge, now_ms, respond, static_files, Gateway};
use crate::admission::{client_ip, login, BuyRequest, Outcome};
use crate::metrics::Route;
use crate::signing::origin_signature;
use crate::stock::{Reservation, Reserve};

/// Per-request state.
pub struct Ctx {
    route: Route,
    outcome: Outcome,
    reservation: Option<Reservation>,
    client_ip: IpAddr,
    connected: bool,
    forwarded_at: Option<Instant>,
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

    async fn answer(&self, session: &mut Session, ctx: &mut Ctx, outcome: Outcome) -> Result<bool> {
        ctx.outcome = outcome;
        let extra: &[(&str, &str)] = match outcome {
            Outcome::StoreUnavailable | Outcome::OriginUnavailable => &[("retry-after", "1")],
            _ => &[],
        };
        respond::outcome(session, outcome, extra).await?;
        Ok(true)
    }

    async fn serve_static(&self, session: &mut Session, ctx: &mut Ctx, rest: &str) -> Result<bool> {
        ctx.route = Route::Static;
        let Some(file) = self.gw.static_files.lookup(rest) else {
            return self.answer(session, ctx, Outcome::NotFound).await;
        };
        let inm = session
            .req_header()
            .headers
            .get(IF_NONE_MATCH)
            .map(|v| v.as_bytes());
        let headers = [
            ("content-type", file.content_type.as_str()),
            ("etag", file.etag.as_str()),
            ("cache-control", file.cache_control),
        ];
        if static_files::not_modified(inm, &file.etag) {
            ctx.outcome = Outcome::NotModified;
            respond::write(session, 304, &headers[1..], &[], Bytes::new()).await?;
        } else {
            ctx.outcome = Outcome::Served;
            respond::write(session, 200, &headers, &[], file.body.clone()).await?;
        }
        Ok(true)
    }

    async fn serve_button(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        product: u64,
    ) -> Result<bool> {
        ctx.route = Route::Button;
        let Some(gate) = self.gw.admission.sale(product) else {
            return self.answer(session, ctx, Outcome::UnknownProduct).await;
        };
        let script = button::render(gate, now_ms());
        ctx.outcome = Outcome::Served;
        let headers = [
            ("content-type", "application/javascript; charset=utf-8"),
            ("cache-control", "public, max-age=1"),
        ];
        respond::write(session, 200, &headers, &[], Bytes::from(script)).await?;
        Ok(true)
    }

    /// `GET /api/challenge?product=ID` (see `challenge`).
    async fn serve_challenge(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        query: Option<&str>,
    ) -> Result<bool> {
        ctx.route = Route::Challenge;
        let now = now_ms();
        let Some(sale) = challenge::product_param(query).and_then(|p| self.gw.admission.sale(p))
        else {
            return self.answer(session, ctx, Outcome::UnknownProduct).await;
        };
        if now >= sale.ends_ms() {
            return self.answer(session, ctx, Outcome::Ended).await;
        }
        let headers = &session.req_header().headers;
        let uid = login::token_from(
            headers.get(AUTHORIZATION).map(|v| v.as_bytes()),
            headers.get(COOKIE).map(|v| v.as_bytes()),
        )
        .and_then(|t| self.gw.admission.login().verify(t));
        let Some(uid) = uid else {
            return self.answer(session, ctx, Outcome::LoginRequired).await;
        };
        let Some(issued) = self.gw.admission.captcha().issue(&uid, sale.product, now) else {
            return self.answer(session, ctx, Outcome::NotFound).await;
        };
        ctx.outcome = Outcome::Served;
        let headers = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        let body = challenge::body(&issued, sale.product);
        respond::write(session, 200, &headers, &[], Bytes::from(body)).await?;
        Ok(true)
    }

    /// The buy path: admission, then one store call. Ok(false) means "forward to origin".
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
        let headers = &session.req_header().headers;
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        ctx.client_ip = client_ip::resolve(
            peer,
            headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes()),
            &self.gw.config.trusted_proxies,
        );
        let request = BuyRequest {
            product,
            token,
            login_token: login::token_from(
                headers.get(AUTHORIZATION).map(|v| v.as_bytes()),
                headers.get(COOKIE).map(|v| v.as_bytes()),
            ),
            client_ip: ctx.client_ip,
            now_ms: now,
            captcha: headers
                .get("x-captcha")
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok()),
        };
        let admitted = match self.gw.admission.check(&request) {
            Ok(admitted) => admitted,
            Err(reject) => {
                if let Some(limited) = reject.rate {
                    ctx.outcome = Outcome::RateLimited;
                    respond::rate_limited(session, limited).await?;
                    return Ok(true);
                }
                return self.answer(session, ctx, reject.outcome).await;
            }
        };
        if let Some(pass) = &admitted.pass {
            // The captcha's single use: a store call, made only once every local check passed.
            let started = Instant::now();
            let claimed = self
                .gw
                .single_use
                .claim(pass.product, &pass.key, pass.expires_ms, now)
                .await;
            self.gw
                .metrics
                .store_captcha
                .observe(started.elapsed().as_secs_f64());
            match claimed {
                Ok(true) => {}
                Ok(false) => return self.answer(session, ctx, Outcome::CaptchaRequired).await,
                Err(e) => {
                    tracing::warn!("captcha claim failed: {e}");
                    return self.answer(session, ctx, Outcome::StoreUnavailable).await;
                }
            }
        }
        let started = Instant::now();
        let reserved = self.gw.store.reserve(product, &admitted.uid).await;
        self.gw
            .metrics
            .store_reserve
            .observe(started.elapsed().as_secs_f64());
        let outcome = match reserved {
            Ok(Reserve::Won { reservation, .. }) => {
                ctx.reservation = Some(reservation);
                ctx.outcome = Outcome::Won;
                return Ok(false);
            }
            Ok(Reserve::SoldOut) => {
                admitted.sale.mark_sold_out(now);
                Outcome::SoldOut
            }
            Ok(Reserve::Duplicate) => Outcome::Duplicate,
            Ok(Reserve::UnknownSale) => Outcome::UnknownProduct,
            Err(e) => {
                tracing::warn!("reserve failed: {e}");
                Outcome::StoreUnavailable
            }
        };
        self.answer(session, ctx, outcome).await
    }

    async fn release(&self, reservation: &Reservation) {
        let started = Instant::now();
        let released = self.gw.store.release(reservation).await;
        self.gw
            .metrics
            .store_release
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = released {
            tracing::error!(
                reservation = %reservation.id,
                "releasing a reservation after an origin failure failed: {e}"
            );
        }
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
            route: Route::Other,
            outcome: Outcome::NotFound,
            reservation: None,
            client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            connected: false,
            forwarded_at: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // Borrow the path from an owned copy of the URI: the session is needed mutably below.
        let uri = session.req_header().uri.clone();
        let method = session.req_header().method.clone();
        match classify(&method, uri.path()) {
            Path::Index => self.serve_static(session, ctx, "index.html").await,
            Path::Static(rest) => self.serve_static(session, ctx, rest).await,
            Path::Button(product) => self.serve_button(session, ctx, product).await,
            Path::Challenge => self.serve_challenge(session, ctx, uri.query()).await,
            Path::Buy { product, token } => self.buy(session, ctx, product, token).await,
            Path::WrongMethod(allow) => {
                ctx.outcome = Outcome::MethodNotAllowed;
                respond::outcome(session, Outcome::MethodNotAllowed, &[("allow", allow)]).await?;
                Ok(true)
            }
            Path::NotFound => self.answer(session, ctx, Outcome::NotFound).await,
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // Called again for every retry: a retried attempt has not reached the origin yet.
        ctx.connected = false;
        if ctx.reservation.is_none() {
            // Only reserved winners are ever forwarded.
            return Err(Error::explain(
                ErrorType::InternalError,
                "forward without a reservation",
            ));
        }
        Ok(Box::new(self.gw.origin.clone()))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(reservation) = &ctx.reservation else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "forward without a reservation",
            ));
        };
        let origin = &self.gw.config.origin;
        upstream.set_method(Method::POST);
        upstream.set_uri(origin.path.parse::<http::Uri>().map_err(header_err)?);
        let spoofed: Vec<_> = upstream
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("x-flashgate-"))
            .cloned()
            .collect();
        for name in spoofed {
            upstream.remove_header(&name);
        }
        let timestamp = now_ms();
        let signature = origin_signature(
            &self.gw.config.secrets.edge,
            &reservation.uid,
            reservation.product,
            &reservation.id,
            timestamp,
        );
        upstream.insert_header("host", origin.host.as_str())?;
        upstream.insert_header("x-flashgate-uid", reservation.uid.as_str())?;
        upstream.insert_header("x-flashgate-product", reservation.product.to_string())?;
        upstream.insert_header("x-flashgate-reservation", reservation.id.as_str())?;
        upstream.insert_header("x-flashgate-timestamp", timestamp.to_string())?;
        upstream.insert_header("x-flashgate-signature", signature)?;
        upstream.insert_header("x-real-ip", ctx.client_ip.to_string())?;
        ctx.forwarded_at = Some(Instant::now());
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
        ctx.connected = true;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(at) = ctx.forwarded_at.take() {
            self.gw
                .metrics
                .upstream_seconds
                .observe(at.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
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
        if let Some(reservation) = ctx.reservation.take() {
            if ctx.connected {
                tracing::error!(
                    reservation = %reservation.id, error = %e,
                    "origin failed after the winner was sent; keeping the reservation for the order backend"
                );
            } else {
                tracing::error!(reservation = %reservation.id, error = %e, "origin unreachable; releasing");
                self.release(&reservation).await;
            }
        }
        ctx.outcome = Outcome::OriginUnavailable;
        // Pingora does not reuse a connection after a failed proxy; turning keepalive off makes
        // it say `Connection: close`, so no client sends its next request into a closing socket.
        session.set_keepalive(None);
        let written =
            respond::outcome(session, Outcome::OriginUnavailable, &[("retry-after", "1")]).await;
        FailToProxy {
            error_code: if written.is_ok() { 503 } else { 0 },
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, _session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        self.gw.metrics.request(ctx.route, ctx.outcome);
    }
}
