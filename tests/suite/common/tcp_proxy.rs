//! A TCP proxy a test can cut or hold: it forwards 127.0.0.1:port to an upstream until
//! [`TcpProxy::cut`] closes every connection through it and refuses new ones, and
//! [`TcpProxy::restore`] lets them through again. Used to take the machine's PostgreSQL away
//! from a process without touching the server itself, and ([`TcpProxy::redirect`]) to move every
//! client of a Redis master to its promoted replica, as a failover's virtual address would.
//!
//! [`TcpProxy::hold`] plays a partition that heals: every byte already read from either side is
//! kept and nothing is forwarded, in either direction, until [`TcpProxy::deliver`] sends what was
//! held and lets the rest through. [`TcpProxy::hold_from`] holds only the connections of one
//! process (found by the client socket's inode in `/proc`), so one edge can be cut off from a
//! Redis Cluster whose nodes every client reaches through these proxies.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Whom a hold applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    Nobody,
    Everyone,
    Process(u32),
}

struct Link {
    task: AbortHandle,
    /// The client's port on 127.0.0.1: who it is.
    client_port: u16,
    held: watch::Sender<bool>,
}

struct State {
    cut: AtomicBool,
    hold: Mutex<Hold>,
    upstream: Mutex<SocketAddr>,
    links: Mutex<Vec<Link>>,
    port: u16,
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
            hold: Mutex::new(Hold::Nobody),
            upstream: Mutex::new(upstream),
            links: Mutex::default(),
            port,
        });
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, peer)) = listener.accept().await {
                if shared.cut.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let upstream = *shared.upstream.lock().unwrap();
                let hold = *shared.hold.lock().unwrap();
                let held = match hold {
                    Hold::Nobody => false,
                    Hold::Everyone => true,
                    Hold::Process(pid) => socket_ports_of(pid, shared.port).contains(&peer.port()),
                };
                let (held_tx, held_rx) = watch::channel(held);
                let link = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_r, client_w) = client.into_split();
                    let (server_r, server_w) = server.into_split();
                    tokio::join!(
                        pump(client_r, server_w, held_rx.clone()),
                        pump(server_r, client_w, held_rx),
                    );
                });
                let mut links = shared.links.lock().unwrap();
                links.retain(|l| !l.task.is_finished());
                links.push(Link {
                    task: link.abort_handle(),
                    client_port: peer.port(),
                    held: held_tx,
                });
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
            link.task.abort();
        }
    }

    /// Close every connection through the proxy and send new ones to `upstream`.
    pub fn redirect(&self, upstream: SocketAddr) {
        *self.state.upstream.lock().unwrap() = upstream;
        for link in self.state.links.lock().unwrap().drain(..) {
            link.task.abort();
        }
    }

    /// Let connections through again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Forward nothing more, in either direction, on every connection (new ones too): what
    /// either side sends is held, not lost, until [`TcpProxy::deliver`].
    pub fn hold(&self) {
        self.set_hold(Hold::Everyone);
    }

    /// [`TcpProxy::hold`] for the connections whose client is process `pid` only.
    pub fn hold_from(&self, pid: u32) {
        self.set_hold(Hold::Process(pid));
    }

    /// Send everything held, and forward as before.
    pub fn deliver(&self) {
        self.set_hold(Hold::Nobody);
    }

    /// How many connections are held now.
    pub fn held(&self) -> usize {
        let links = self.state.links.lock().unwrap();
        links
            .iter()
            .filter(|l| !l.task.is_finished() && *l.held.borrow())
            .count()
    }

    fn set_hold(&self, hold: Hold) {
        *self.state.hold.lock().unwrap() = hold;
        let ports = match hold {
            Hold::Process(pid) => socket_ports_of(pid, self.port),
            _ => HashSet::new(),
        };
        for link in self.state.links.lock().unwrap().iter() {
            let held = match hold {
                Hold::Nobody => false,
                Hold::Everyone => true,
                Hold::Process(_) => ports.contains(&link.client_port),
            };
            link.held.send_replace(held);
        }
    }
}

/// Copy `from` to `to`, keeping what was read while `held` says so.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut held: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = held.wait_for(|h| !*h).await;
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        if held.wait_for(|h| !*h).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The local ports of process `pid`'s TCP sockets connected to 127.0.0.1:`remote_port`: the
/// socket inodes its file descriptors name, looked up in `/proc/net/tcp`.
fn socket_ports_of(pid: u32, remote_port: u16) -> HashSet<u16> {
    let mut inodes = HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{remote_port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (local, rem, inode) = (cols.get(1)?, cols.get(2)?, cols.get(9)?);
            if *rem != remote || !inodes.contains(*inode) {
                return None;
            }
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect()
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
