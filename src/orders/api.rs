//! The order backend's HTTP API (axum):
//!
//! | route | answer |
//! |---|---|
//! | `POST /orders` | only edge-signed requests: 201 new order, 200 the same order again, 401 unsigned/forged/stale/replayed, 409 `duplicate` (the user holds an order) or `released`, 410 `sold_out` (the database has no unit left: the unit is discarded), 503 store or database down (with `Retry-After`, and no internals: the edge passes the answer to the buyer) |
//! | `POST /orders/{id}/pay` | 200 paid (idempotent), 409 cancelled or past its deadline, 404 |
//! | `GET /orders/{id}` | the order, or 404 |
//! | `GET /orders?user=UID` | the user's orders |
//! | `GET /sales/{product}` | stock, sold, paid, cancelled, pending |
//! | `GET /metrics`, `GET /healthz` | Prometheus text; 200 while database and Redis answer |
//!
//! Every answer is JSON with an `outcome` naming what happened.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::db::{Payment, Refusal};
use super::model::Source;
use super::service::{OrderError, Orders, Placed};
use super::verify::{verify, Unverified, FRESH_MS};
use crate::ground::clock::now_ms;

/// The router over `orders`.
pub fn router(orders: Arc<Orders>) -> Router {
    Router::new()
        .route("/orders", post(create).get(list))
        .route("/orders/{id}", get(show))
        .route("/orders/{id}/pay", post(pay))
        .route("/sales/{product}", get(sale))
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .with_state(orders)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn failed(orders: &Orders, e: OrderError) -> Response {
    match e {
        OrderError::UnknownSale(product) => answer(
            StatusCode::NOT_FOUND,
            json!({"outcome": "unknown_product", "product": product}),
        ),
        other => {
            // The cause is for the log, never for the buyer.
            if let Some(held) = orders.failures.lock().admit() {
                tracing::error!(
                    "order operation failed: {other} ({held} more failures since the last report)"
                );
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "1")],
                Json(json!({"outcome": "unavailable"})),
            )
                .into_response()
        }
    }
}

fn unauthorized(orders: &Orders, why: Unverified) -> Response {
    orders.metrics.unauthorized(&why.to_string());
    answer(
        StatusCode::UNAUTHORIZED,
        json!({"outcome": "unauthorized", "reason": why.to_string()}),
    )
}

async fn create(State(orders): State<Arc<Orders>>, headers: HeaderMap) -> Response {
    let now = now_ms();
    let signed = match verify(&orders.edge_secret, now, |name| {
        headers.get(name).and_then(|v| v.to_str().ok())
    }) {
        Ok(signed) => signed,
        Err(why) => return unauthorized(&orders, why),
    };
    match orders
        .db
        .first_use(&signed.signature, (signed.timestamp_ms + FRESH_MS) as i64)
        .await
    {
        Ok(true) => {}
        Ok(false) => return unauthorized(&orders, Unverified::Replayed),
        Err(e) => return failed(&orders, e.into()),
    }
    match orders.place(&signed.reservation, Source::Forward).await {
        Ok(Placed::Created(order)) => answer(
            StatusCode::CREATED,
            json!({"outcome": "won", "order": order}),
        ),
        Ok(Placed::Existing(order)) => {
            answer(StatusCode::OK, json!({"outcome": "won", "order": order}))
        }
        // 410, by the origin contract: no order, and no unit for it here — the edge discards
        // the unit rather than put it back on sale, and takes the sale as sold out.
        Ok(Placed::Refused(Refusal::SoldOut)) => {
            answer(StatusCode::GONE, json!({"outcome": "sold_out"}))
        }
        Ok(Placed::Refused(Refusal::Duplicate)) => {
            answer(StatusCode::CONFLICT, json!({"outcome": "duplicate"}))
        }
        Ok(Placed::Released) => answer(StatusCode::CONFLICT, json!({"outcome": "released"})),
        Err(e) => failed(&orders, e),
    }
}

async fn pay(State(orders): State<Arc<Orders>>, Path(id): Path<String>) -> Response {
    match orders.pay(&id).await {
        Ok(Payment::Paid(order)) => {
            answer(StatusCode::OK, json!({"outcome": "paid", "order": order}))
        }
        Ok(Payment::TooLate(order)) => answer(
            StatusCode::CONFLICT,
            json!({"outcome": "too_late", "order": order}),
        ),
        Ok(Payment::NotFound) => answer(StatusCode::NOT_FOUND, json!({"outcome": "not_found"})),
        Err(e) => failed(&orders, e),
    }
}

async fn show(State(orders): State<Arc<Orders>>, Path(id): Path<String>) -> Response {
    match orders.db.order(&id).await {
        Ok(Some(order)) => answer(StatusCode::OK, json!({"outcome": "found", "order": order})),
        Ok(None) => answer(StatusCode::NOT_FOUND, json!({"outcome": "not_found"})),
        Err(e) => failed(&orders, e.into()),
    }
}

async fn list(
    State(orders): State<Arc<Orders>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = query.get("user") else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"outcome": "bad_request", "error": "give ?user=UID"}),
        );
    };
    match orders.db.orders_of(user).await {
        Ok(list) => answer(StatusCode::OK, json!({"outcome": "found", "orders": list})),
        Err(e) => failed(&orders, e.into()),
    }
}

async fn sale(State(orders): State<Arc<Orders>>, Path(product): Path<u64>) -> Response {
    match orders.db.sale(product).await {
        Ok(Some(summary)) => answer(StatusCode::OK, json!(summary)),
        Ok(None) => answer(StatusCode::NOT_FOUND, json!({"outcome": "not_found"})),
        Err(e) => failed(&orders, e.into()),
    }
}

async fn metrics(State(orders): State<Arc<Orders>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        orders.metrics.render(),
    )
        .into_response()
}

async fn health(State(orders): State<Arc<Orders>>) -> Response {
    let db = orders.db.ping().await;
    let redis = orders.stock.ready().await;
    let status = if db && redis {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    answer(status, json!({"database": db, "redis": redis}))
}
