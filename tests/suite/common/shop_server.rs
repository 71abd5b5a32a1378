//! A stand-in shop server for the front-door tests: HTTP/1.1 on a free port, every request
//! recorded (method, path, headers), `GET /healthz` answering `200` (or `503` once told it is
//! sick), `/slow` answering after three seconds, `/ws` with `Upgrade:` switching protocols and
//! echoing every byte after, anything else `200` with `server=<id>`. [`ShopServer::kill`] stops it whole: the
//! listener and every open connection, as a process dying would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The value of header `name`, if sent.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

#[derive(Default)]
struct State {
    seen: Mutex<Vec<Seen>>,
    sick: AtomicBool,
}

/// A running stand-in shop server.
pub struct ShopServer {
    pub addr: SocketAddr,
    pub id: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl ShopServer {
    /// Start server `id` on a free port of 127.0.0.1.
    pub async fn start(id: &str) -> ShopServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(id, listener)
    }

    /// Start server `id` on `addr` (again, after a kill).
    pub async fn start_on(id: &str, addr: SocketAddr) -> ShopServer {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Self::serve(id, listener)
    }

    fn serve(id: &str, listener: tokio::net::TcpListener) -> ShopServer {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let (shared, name) = (state.clone(), id.to_string());
        let task = tokio::spawn(async move {
            // Dropped with this task: every connection goes with the listener.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, name) = (shared.clone(), name.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, state.clone(), name.clone())
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        ShopServer {
            addr,
            id: id.to_string(),
            state,
            task,
        }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Requests seen other than health checks.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path != "/healthz")
            .collect()
    }

    /// Health checks answer `503` (true) or `200`.
    pub fn set_sick(&self, sick: bool) {
        self.state.sick.store(sick, Ordering::SeqCst);
    }

    /// Stop the server: its listener and every connection close.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for ShopServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = Result<Response<Full<Bytes>>, Infallible>;

async fn handle(req: Request<Incoming>, state: Arc<State>, id: String) -> Answer {
    let seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    let path = seen.path.clone();
    let upgrade = seen.header("upgrade").is_some();
    state.seen.lock().unwrap().push(seen);
    if path == "/ws" && upgrade {
        let mut req = req;
        let upgraded = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgraded.await {
                let mut io = hyper_util::rt::TokioIo::new(upgraded);
                let (mut r, mut w) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let status = match path.as_str() {
        "/healthz" if state.sick.load(Ordering::SeqCst) => 503,
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            200
        }
        _ => 200,
    };
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .header("x-server", id.as_str())
        .body(Full::new(Bytes::from(format!("server={id} body={body}"))))
        .unwrap())
}
