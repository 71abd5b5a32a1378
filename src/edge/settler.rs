//! The background task that settles forwards of unknown outcome on the embedded store: it asks
//! the origin `GET {origin.path}/{reservation}` for every reservation the checkout has queued
//! (`checkout::settle`) once it is due, and sleeps until the next one. Only `200` with
//! `{"outcome":"found"}` or `404` with `{"outcome":"not_found"}` settles
//! (`checkout::contract::settlement_answer`); the answer's body is read up to 64 KiB. The
//! question is signed
//! (`signing::lookup_signature`), carries the reservation, and is bounded by `origin.timeout`.
//! On Redis nothing is ever queued (the ledger consumer settles), and the task only sleeps.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::Gateway;
use crate::checkout::contract::settlement_answer;
use crate::checkout::{LookupError, OriginLookup};
use crate::ground::clock::now_ms;
use crate::ground::signing::lookup_signature;
use crate::stock::Reservation;

/// Bytes escaped in the reservation id's path segment: all but RFC 3986's unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The largest answer read from the origin: an order's JSON, not a page.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The one field of the answer the settlement reads.
#[derive(serde::Deserialize)]
struct Outcome {
    outcome: String,
}

/// The settlement task of one gateway.
pub struct Settler {
    gateway: Arc<Gateway>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Settler {
    /// Settle `gateway`'s queued reservations.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(gateway.live().config.origin.connect_timeout));
        Settler {
            gateway,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

#[async_trait]
impl OriginLookup for Settler {
    async fn holds(&self, reservation: &Reservation) -> Result<bool, LookupError> {
        let live = self.gateway.live();
        // An origin pool: its servers that are up, in turn, until one gives an answer (any of
        // them can: they share one database).
        let addrs = match live.config.origin.upstream {
            Some(i) => live.pools.get(i).map(|p| p.addrs_up()).unwrap_or_default(),
            None => vec![live.config.origin.addr],
        };
        let mut last = LookupError::Unreachable("no origin server is up".to_string());
        for addr in addrs {
            match self.ask(&live, addr, reservation).await {
                Err(LookupError::Unreachable(e)) => last = LookupError::Unreachable(e),
                answer => return answer,
            }
        }
        Err(last)
    }
}

impl Settler {
    /// Ask the origin server at `addr` whether it holds `reservation`'s order.
    async fn ask(
        &self,
        live: &crate::edge::Live,
        addr: std::net::SocketAddr,
        reservation: &Reservation,
    ) -> Result<bool, LookupError> {
        let origin = &live.config.origin;
        let id = utf8_percent_encode(&reservation.id, SEGMENT);
        let uri = format!("http://{addr}{}/{id}", origin.path.trim_end_matches('/'));
        let timestamp = now_ms();
        let request = http::Request::get(uri)
            .header(http::header::HOST, origin.host.as_str())
            .header("x-flashgate-reservation", reservation.id.as_str())
            .header("x-flashgate-timestamp", timestamp)
            .header(
                "x-flashgate-signature",
                lookup_signature(&live.config.secrets.edge, &reservation.id, timestamp),
            )
            .body(Empty::new())
            .map_err(|e| LookupError::Unreachable(e.to_string()))?;
        let answer = tokio::time::timeout(origin.timeout, self.client.request(request))
            .await
            .map_err(|_| LookupError::Unreachable(format!("no answer in {:?}", origin.timeout)))?
            .map_err(|e| LookupError::Unreachable(e.to_string()))?;
        let status = answer.status().as_u16();
        let body = Limited::new(answer.into_body(), MAX_ANSWER_BYTES);
        let body = tokio::time::timeout(origin.timeout, body.collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| b.to_bytes());
        let outcome = body
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Outcome>(b).ok());
        settlement_answer(status, outcome.as_ref().map(|o| o.outcome.as_str()))
            .ok_or(LookupError::Status(status))
    }
}

#[async_trait]
impl BackgroundService for Settler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            // The checkout in place now: a reload shares the settlement queue with the next.
            let live = self.gateway.live();
            let checkout = &live.checkout;
            let wait = checkout.settle_due(self).await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = checkout.pending().changed().notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
