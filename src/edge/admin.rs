//! The admin listener: `/metrics` (Prometheus text format), `/healthz` (the process answers),
//! `/readyz` (the stock store can take reservations), and `POST /admin/reload` (reload the
//! configuration file, with `Authorization: Bearer <admin_token>`). Keep it on a private
//! address.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::Gateway;
use crate::ground::clock::now_ms;
use crate::ground::signing::constant_time_eq;

/// The admin HTTP app.
pub struct Admin {
    gateway: Arc<Gateway>,
}

impl Admin {
    /// Serve `gateway`'s metrics and health.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Admin { gateway }
    }
}

fn text(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn json(status: u16, body: &serde_json::Value) -> Response<Vec<u8>> {
    text(status, "application/json", body.to_string().into_bytes())
}

impl Admin {
    /// `POST /admin/reload`: 200 with what changed; 422 with the file's error (file:line:col)
    /// while the running configuration stays; 401 without the admin token, 403 when none is
    /// configured.
    async fn reload(&self, session: &ServerSession) -> Response<Vec<u8>> {
        let request = session.req_header();
        if request.method != http::Method::POST {
            let mut answer = json(405, &serde_json::json!({"outcome": "method_not_allowed"}));
            answer
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return answer;
        }
        let authorized = {
            let live = self.gateway.live();
            let Some(token) = &live.config.admin_token else {
                return json(
                    403,
                    &serde_json::json!({
                        "outcome": "forbidden",
                        "error": "admin_token is not set: set it to reload over HTTP, or send SIGHUP",
                    }),
                );
            };
            request
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
                .is_some_and(|given| constant_time_eq(given, token.bytes()))
        };
        if !authorized {
            let mut answer = json(401, &serde_json::json!({"outcome": "unauthorized"}));
            answer.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return answer;
        }
        match self.gateway.reload().await {
            Ok(done) => json(
                200,
                &serde_json::json!({
                    "outcome": "reloaded",
                    "changed": done.changed,
                    "restart_needed": done.restart_needed,
                    "warnings": done.warnings,
                }),
            ),
            Err(e) => json(
                422,
                &serde_json::json!({"outcome": "refused", "error": e.to_string()}),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" => {
                // The difficulty gauge is read when scraped; the buy path never touches it.
                let gw = &self.gateway;
                let live = gw.live();
                let now = now_ms();
                live.pools.export_health(&gw.metrics.shop);
                for sale in live.checkout.sales() {
                    if let Some(bits) = sale.captcha.difficulty(now) {
                        gw.metrics.set_difficulty(sale.product(), bits);
                    }
                }
                // Units left are read from the store at scrape time: one call per sale per
                // scrape, always current, and concurrent winners finishing out of order cannot
                // leave a stale value behind. While the store is down the last value stays.
                for sale in live.checkout.sales() {
                    match live.checkout.store().remaining(&sale.keys).await {
                        Ok(Some(left)) => gw.metrics.set_remaining(sale.product(), left),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(product = sale.product(), "stock for metrics: {e}")
                        }
                    }
                }
                text(200, "text/plain; version=0.0.4", gw.metrics.render())
            }
            "/healthz" => text(200, "application/json", br#"{"status":"ok"}"#.to_vec()),
            "/admin/reload" => self.reload(session).await,
            "/readyz" => {
                if self.gateway.live().checkout.store().ready().await {
                    text(200, "application/json", br#"{"status":"ready"}"#.to_vec())
                } else {
                    text(
                        503,
                        "application/json",
                        br#"{"status":"store_unavailable"}"#.to_vec(),
                    )
                }
            }
            _ => text(
                404,
                "application/json",
                br#"{"outcome":"not_found"}"#.to_vec(),
            ),
        }
    }
}
