//! A TCP proxy a test can cut: it forwards 127.0.0.1:port to an upstream until [`TcpProxy::cut`]
//! closes every connection through it and refuses new ones, and [`TcpProxy::restore`] lets them
//! through again. Used to take the machine's PostgreSQL away from a process without touching the
//! server itself, and ([`TcpProxy::redirect`]) to move every client of a Redis master to its
//! promoted replica, as a failover's virtual address would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

struct State {
    cut: AtomicBool,
    upstream: Mutex<SocketAddr>,
    links: Mutex<Vec<AbortHandle>>,
}

/// A running proxy.
pub struct TcpProxy {
    pub port: u16,
    state: Arc<State>,
    accept: AbortHandle,
}

impl TcpProxy {
    /// Forward a fresh port on 127.0.0.1 to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            cut: AtomicBool::new(false),
            upstream: Mutex::new(upstream),
            links: Mutex::default(),
        });
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if shared.cut.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let upstream = *shared.upstream.lock().unwrap();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut links = shared.links.lock().unwrap();
                links.retain(|l| !l.is_finished());
                links.push(link.abort_handle());
            }
        })
        .abort_handle();
        TcpProxy {
            port,
            state,
            accept,
        }
    }

    /// Close every connection through the proxy and refuse new ones.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for link in self.state.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Close every connection through the proxy and send new ones to `upstream`.
    pub fn redirect(&self, upstream: SocketAddr) {
        *self.state.upstream.lock().unwrap() = upstream;
        for link in self.state.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Let connections through again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
