//! The admin listener: `/metrics` (Prometheus text format), `/healthz` (the process answers),
//! `/readyz` (the stock store can take reservations). Keep it on a private address.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::Gateway;
use crate::clock::now_ms;

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

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" => {
                // The difficulty gauge is read when scraped; the buy path never touches it.
                let gw = &self.gateway;
                let now = now_ms();
                for sale in gw.checkout.sales() {
                    if let Some(bits) = sale.captcha.difficulty(now) {
                        gw.metrics.set_difficulty(sale.product(), bits);
                    }
                }
                // Units left are read from the store at scrape time: one call per sale per
                // scrape, always current, and concurrent winners finishing out of order cannot
                // leave a stale value behind. While the store is down the last value stays.
                for sale in gw.checkout.sales() {
                    match gw.checkout.store().remaining(&sale.keys).await {
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
            "/readyz" => {
                if self.gateway.checkout.store().ready().await {
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
