//! The pass-through floor of the load benchmark (`benches/load`): the least a Pingora proxy
//! does to pass a request to one upstream server over its keep-alive pool — no routing, no
//! check, no header rewritten. What flashgate's `routes:` cost above this is their own.
//!
//! ```sh
//! cargo build --release --example pass_floor
//! target/release/examples/pass_floor 127.0.0.1:8091 127.0.0.1:8092 1   # listen, upstream, threads
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

/// Passes every request to `upstream`.
struct PassFloor {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for PassFloor {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8091".to_string());
    let upstream: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8092".to_string())
        .parse()
        .expect("upstream: an address such as 127.0.0.1:8092");
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
    let mut proxy =
        pingora::proxy::http_proxy_service(&server.configuration, PassFloor { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever()
}
