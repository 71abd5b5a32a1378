//! The storm's HTTP side: one hyper client (HTTP/1.1, keep-alive, a pool as large as the
//! number of connections) and one call that sends a request and reads the whole answer, bounded
//! by a timeout.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Longest wait for one answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A keep-alive HTTP/1.1 client.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// One answer: status and body.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

impl Http {
    /// A client keeping up to `connections` idle connections to the target.
    pub fn new(connections: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections)
            .build(connector);
        Http { client }
    }

    /// Send `method uri` with `headers` and an empty body; read the whole answer.
    pub async fn send(
        &self,
        method: Method,
        uri: Uri,
        headers: &[(&'static str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut req = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Empty::new()).context("building a request")?;
        let call = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer { status, body })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, call)
            .await
            .context("no answer within 10 s")?
    }
}
