//! The demo's stand-in for the order backend, used when `flashgate-orders` is not installed
//! next to `flashgate`: an HTTP server on 127.0.0.1 that takes every `POST /orders`, checks the
//! edge's `X-Flashgate-Signature`, counts the orders and answers like an order backend would —
//! idempotent by reservation id, and answering the origin contract's settlement question
//! `GET /orders/{reservation}` (200 held, 404 not).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use flashgate::ground::signing::verify_origin_signature;
use flashgate::ground::Secret;

/// What the stand-in origin has received.
#[derive(Default)]
pub struct Orders {
    /// Orders received.
    pub total: AtomicU64,
    /// Of those, how many carried a valid edge signature.
    pub signed: AtomicU64,
    /// Reservation ids of the orders taken, for the edge's settlement question.
    taken: parking_lot::Mutex<std::collections::HashSet<String>>,
}

/// Serve on a free port of 127.0.0.1 until the runtime stops; returns the address.
pub async fn start(edge: Secret) -> anyhow::Result<(SocketAddr, Arc<Orders>)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the stand-in origin")?;
    let addr = listener.local_addr()?;
    let orders = Arc::new(Orders::default());
    let (counted, edge) = (orders.clone(), Arc::new(edge));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (orders, edge) = (counted.clone(), edge.clone());
            let service = service_fn(move |req| {
                let (orders, edge) = (orders.clone(), edge.clone());
                async move { Ok::<_, Infallible>(answer(&req, &orders, &edge)) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, orders))
}

fn answer(req: &Request<Incoming>, orders: &Orders, edge: &Secret) -> Response<Full<Bytes>> {
    // The origin contract's settlement question: does it hold the order of this reservation?
    if let Some(id) = req.uri().path().strip_prefix("/orders/") {
        if req.method() == http::Method::GET {
            let held = orders.taken.lock().contains(id);
            return if held {
                respond(
                    StatusCode::OK,
                    format!(r#"{{"outcome":"found","order":{{"id":"{id}"}}}}"#),
                )
            } else {
                respond(
                    StatusCode::NOT_FOUND,
                    r#"{"outcome":"not_found"}"#.to_string(),
                )
            };
        }
    }
    if req.method() != http::Method::POST || req.uri().path() != "/orders" {
        return respond(
            StatusCode::NOT_FOUND,
            r#"{"outcome":"not_found"}"#.to_string(),
        );
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let reservation = header("x-flashgate-reservation");
    let uid = flashgate::ground::uid::from_header(header("x-flashgate-uid")).unwrap_or_default();
    let signed = verify_origin_signature(
        edge,
        &uid,
        header("x-flashgate-product").parse().unwrap_or(0),
        reservation,
        header("x-flashgate-timestamp").parse().unwrap_or(0),
        header("x-flashgate-signature"),
    );
    // Idempotent by reservation id, as the contract asks: a retry is the same order.
    if orders.taken.lock().insert(reservation.to_string()) {
        orders.total.fetch_add(1, Ordering::Relaxed);
        if signed {
            orders.signed.fetch_add(1, Ordering::Relaxed);
        }
    }
    let body = serde_json::json!({ "outcome": "won", "order": reservation }).to_string();
    respond(StatusCode::OK, body)
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
