//! The demo's stand-in for the rest of the shop: an HTTP server on 127.0.0.1 answering every
//! `GET /shop/…` with a small product page, the upstream of the demo edge's one route
//! (`routes: [{ path: /shop/, upstream: shop }]`), so the demo shows a shop behind the edge as
//! well as its sale. It says which user the edge vouched for when the page is asked with a
//! login (`X-Flashgate-Uid`, signed by the edge).

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serve on a free port of 127.0.0.1 until the runtime stops; returns the address.
pub async fn start() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the stand-in shop")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|req| async move { Ok::<_, Infallible>(page(&req)) });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn page(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let (status, body) = match path.strip_prefix("/shop/") {
        Some(item) if req.method() == http::Method::GET || req.method() == http::Method::HEAD => {
            let item: String = item
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(40)
                .collect();
            let forwarded = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            (
                StatusCode::OK,
                format!(
                    "<!doctype html><title>Product {item}</title><h1>Product {item}</h1>\
                     <p>From the shop's server, through the edge (for {forwarded}).</p>\n"
                ),
            )
        }
        _ => (StatusCode::NOT_FOUND, "not here\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}
