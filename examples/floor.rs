//! The floor of the load benchmark (`benches/load`): the least a Pingora proxy can do for a
//! request. Its `request_filter` answers every request at once with the fixed answer most of a
//! sale's storm gets — `410 {"outcome":"sold_out"}`, the same headers flashgate sends — and
//! never reaches an upstream. No routing, no check, no state: what flashgate costs above this
//! is the price of its checks.
//!
//! ```sh
//! cargo build --release --example floor
//! target/release/examples/floor 127.0.0.1:8090 1     # listen address, worker threads
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

const BODY: &[u8] = br#"{"outcome":"sold_out"}"#;

/// Answers every request with the fixed 410.
struct Floor;

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut Self::CTX) -> Result<bool> {
        let mut resp = ResponseHeader::build(410, Some(3))?;
        resp.insert_header("content-length", BODY.len())?;
        resp.insert_header("content-type", "application/json")?;
        resp.insert_header("cache-control", "no-store")?;
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(Bytes::from_static(BODY)), true)
            .await?;
        // The response is written: Pingora goes no further.
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Err(Error::explain(
            ErrorType::InternalError,
            "the floor never forwards",
        ))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8090".to_string());
    let threads = args
        .next()
        .map(|t| t.parse().expect("threads: a number"))
        .unwrap_or(1);
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Floor);
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever()
}
