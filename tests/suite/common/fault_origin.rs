//! An origin that fails on cue, for the fault tests of the origin contract. It speaks plain
//! HTTP/1.1 with keep-alive over real sockets and does, forward by forward, what the test
//! scripted: take the order and answer, refuse it, take it and die (close every connection and
//! stop listening, as a crashed process does), or take it and never answer. It also answers the
//! edge's settlement question `GET {path}/{reservation}`: 200 if it holds that order, else 404.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the origin does with one forwarded buy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Record the order and answer with this status (a 5xx here is "made it, then failed").
    Order(u16),
    /// Make no order and answer with this status.
    Refuse(u16),
    /// Record the order, then die before answering: every connection closed, nothing listens.
    Die,
    /// Record the order and never answer.
    Hang,
    /// Record the order, answer 201 with a body cut short, and close the connection.
    Truncate,
    /// Make no order and answer with this status after this many milliseconds (a slow refusal).
    SlowRefuse(u16, u64),
}

/// An order the origin holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub uid: String,
    pub product: String,
}

#[derive(Default)]
struct State {
    /// reservation id → order.
    orders: BTreeMap<String, Held>,
    /// What to do with the next forwards; `Order(201)` once empty.
    script: VecDeque<Act>,
    /// Every buy received, by reservation id, in order (retries included).
    received: Vec<String>,
    /// Every settlement question, by reservation id.
    lookups: Vec<String>,
    /// Reservation ids that came back naming another user than their first order.
    conflicts: Vec<String>,
    /// Answer the settlement question like a server without that route: a bare 404.
    no_lookup: bool,
}

impl State {
    fn record(&mut self, id: &str, order: Held) {
        match self.orders.get(id) {
            Some(held) if *held != order => self.conflicts.push(id.to_string()),
            Some(_) => {}
            None => {
                self.orders.insert(id.to_string(), order);
            }
        }
    }
}

/// The scripted origin.
pub struct FaultOrigin {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    alive: Arc<watch::Sender<bool>>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl FaultOrigin {
    /// Listen on a free port.
    pub async fn start() -> Arc<FaultOrigin> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = Arc::new(FaultOrigin {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            alive: Arc::new(watch::channel(true).0),
            accept: Mutex::new(None),
        });
        origin.serve(listener);
        origin
    }

    /// Script the next forwards.
    pub fn then(&self, acts: &[Act]) {
        self.state
            .lock()
            .unwrap()
            .script
            .extend(acts.iter().copied());
    }

    /// Orders held, by reservation id.
    pub fn orders(&self) -> BTreeMap<String, Held> {
        self.state.lock().unwrap().orders.clone()
    }

    /// Buys received (retries included), by reservation id.
    pub fn received(&self) -> Vec<String> {
        self.state.lock().unwrap().received.clone()
    }

    /// Have no settlement route: every question gets a bare 404 with no outcome.
    pub fn without_lookup(&self) {
        self.state.lock().unwrap().no_lookup = true;
    }

    /// Reservation ids the edge sent again for another user or product.
    pub fn conflicts(&self) -> Vec<String> {
        self.state.lock().unwrap().conflicts.clone()
    }

    /// Settlement questions received, by reservation id.
    pub fn lookups(&self) -> Vec<String> {
        self.state.lock().unwrap().lookups.clone()
    }

    /// Whether it is listening.
    pub fn is_alive(&self) -> bool {
        *self.alive.borrow()
    }

    /// Listen again on the same address, with the orders it held (a restart).
    pub async fn revive(self: &Arc<Self>) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.alive.send_replace(true);
        self.serve(listener);
    }

    /// Die now: close every connection and stop listening.
    pub fn kill(&self) {
        self.alive.send_replace(false);
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) {
        let me = self.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move { me.connection(stream).await });
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    async fn connection(self: Arc<Self>, mut stream: TcpStream) {
        let mut alive = self.alive.subscribe();
        let mut buf = Vec::new();
        loop {
            let request = tokio::select! {
                r = read_request(&mut stream, &mut buf) => r,
                _ = alive.wait_for(|up| !*up) => return,
            };
            let Some((method, path, headers)) = request else {
                return;
            };
            let (status, body) = match self.decide(&method, &path, &headers) {
                Reply::Answer(status, body) => (status, body),
                Reply::Later(ms, status, body) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    (status, body)
                }
                Reply::Die => {
                    self.kill();
                    return;
                }
                Reply::Truncate => {
                    let cut = "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                               content-length: 100\r\n\r\n{\"outcome\"";
                    let _ = stream.write_all(cut.as_bytes()).await;
                    return;
                }
                Reply::Hang => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(120)) => {}
                        _ = alive.wait_for(|up| !*up) => {}
                    }
                    return;
                }
            };
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn decide(&self, method: &str, path: &str, headers: &[(String, String)]) -> Reply {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut state = self.state.lock().unwrap();
        if method == "GET" {
            let id = path.rsplit('/').next().unwrap_or("").to_string();
            state.lookups.push(id.clone());
            if state.no_lookup {
                return Reply::Answer(404, "Not Found".into());
            }
            return if state.orders.contains_key(&id) {
                Reply::Answer(
                    200,
                    format!(r#"{{"outcome":"found","order":{{"id":"{id}"}}}}"#),
                )
            } else {
                Reply::Answer(404, r#"{"outcome":"not_found"}"#.into())
            };
        }
        let id = header("x-flashgate-reservation");
        state.received.push(id.clone());
        let act = state.script.pop_front().unwrap_or(Act::Order(201));
        let order = Held {
            uid: header("x-flashgate-uid"),
            product: header("x-flashgate-product"),
        };
        match act {
            Act::Order(status) => {
                state.record(&id, order);
                Reply::Answer(status, format!(r#"{{"outcome":"won","order":"{id}"}}"#))
            }
            Act::Refuse(status) => Reply::Answer(status, r#"{"outcome":"refused"}"#.into()),
            Act::SlowRefuse(status, ms) => {
                Reply::Later(ms, status, r#"{"outcome":"refused"}"#.into())
            }
            Act::Die => {
                state.record(&id, order);
                Reply::Die
            }
            Act::Hang => {
                state.record(&id, order);
                Reply::Hang
            }
            Act::Truncate => {
                state.record(&id, order);
                Reply::Truncate
            }
        }
    }
}

enum Reply {
    Answer(u16, String),
    Later(u64, u16, String),
    Die,
    Hang,
    Truncate,
}

type Request = (String, String, Vec<(String, String)>);

/// Read one request (head and body) from `stream`; None when the peer closed.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..head_end + length);
    Some((method, path, headers))
}
