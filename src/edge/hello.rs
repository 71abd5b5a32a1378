//! The TLS handshake's deadline on the public listener. Pingora gives a TLS handshake 60 s: a
//! connection that never sends its ClientHello, or sends it and never finishes the handshake,
//! holds a socket and a task that long. Both are bounded by `http.header_timeout` from the
//! accept, before Pingora's handshake (its pre-TLS callback):
//!
//! - [`HelloDeadline`] waits for the first TLS record — the ClientHello — to arrive whole,
//!   peeking without consuming it; if it does not in time, the connection is dropped and
//!   counted in `flashgate_slow_clients_total{reason="client_hello"}`.
//! - It then starts a watchdog for the rest of the handshake, registered in [`Handshakes`] by
//!   the socket's kernel cookie (`SO_COOKIE`, unique per socket while the host runs). A
//!   handshake that completes reaches the server app (`slow::Guarded`), which stands the
//!   watchdog down. One still under way at the deadline has its socket shut down, which ends
//!   the handshake's read, and is counted as `reason="tls_handshake"`. The socket is found again
//!   by its descriptor, checked against the cookie first: a descriptor closed and reused by
//!   another connection in the meantime is left alone.
//!
//! What comes after the handshake (the HTTP/1.1 head or the HTTP/2 preface) is bounded by the
//! same deadline in `slow`.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::socket::{shutdown, Shutdown};
use pingora::listeners::PreTlsProcess;
use pingora::prelude::*;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Peek, SocketDigest};
use tokio::sync::oneshot;

use super::slow::since_accept;
use super::Gateway;

/// A TLS record's header: type, version, length.
const RECORD_HEADER: usize = 5;
/// The handshake record type.
const HANDSHAKE: u8 = 0x16;
/// The largest TLS plaintext record (RFC 8446 §5.1), plus room for a record's expansion.
const MAX_RECORD: usize = (1 << 14) + 256;

/// Drops a connection whose ClientHello has not arrived within `http.header_timeout` of its
/// accept.
pub struct HelloDeadline {
    gateway: Arc<Gateway>,
}

impl HelloDeadline {
    /// The deadline of `gateway`'s live configuration.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        HelloDeadline { gateway }
    }

    /// Shut the socket `fd` down if its handshake has not completed within `left`.
    fn watch_handshake(&self, fd: RawFd, left: Duration) {
        // Not on Linux (no cookie): Pingora's own 60 s bound the handshake.
        let Some(cookie) = cookie_of(fd) else {
            return;
        };
        let (completed, wait) = oneshot::channel();
        self.gateway.handshakes.lock().insert(cookie, completed);
        let gateway = self.gateway.clone();
        tokio::spawn(async move {
            // Completed (or the watch replaced): nothing to do.
            if tokio::time::timeout(left, wait).await.is_ok() {
                return;
            }
            // Completed just now, or already gone from the registry.
            if gateway.handshakes.lock().remove(&cookie).is_none() {
                return;
            }
            // The connection may have ended (a failed handshake) and its descriptor gone to
            // another: only the socket with this cookie is shut down.
            if cookie_of(fd) == Some(cookie) && shutdown(fd, Shutdown::Both).is_ok() {
                gateway.metrics.slow_clients.tls_handshake.inc();
            }
        });
    }
}

/// The kernel's cookie of the socket `fd` (none off Linux, or for a closed descriptor).
fn cookie_of(fd: RawFd) -> Option<u64> {
    SocketDigest::from_raw_fd(fd)
        .socket_cookie()
        .ok()
        .filter(|&cookie| cookie != 0)
}

/// The TLS handshakes under way on the public listener, each one's watchdog by its socket's
/// cookie.
#[derive(Default)]
pub struct Handshakes {
    under_way: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl Handshakes {
    /// The handshake of the connection `digest` describes has completed: its watchdog stands
    /// down. (Nothing happens for a connection without TLS.)
    pub fn completed(&self, digest: Option<&SocketDigest>) {
        let Some(cookie) = digest.and_then(|d| d.socket_cookie().ok()) else {
            return;
        };
        if let Some(watchdog) = self.lock().remove(&cookie) {
            // The watchdog may have fired a moment ago: then nobody listens.
            let _ = watchdog.send(());
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        // The map stays whole whatever a holder did: take it even if one panicked.
        self.under_way
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl PreTlsProcess for HelloDeadline {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let limit = self.gateway.live().config.http.header_timeout;
        let left = limit.saturating_sub(since_accept(&*stream));
        let peek = async {
            let mut header = [0u8; RECORD_HEADER];
            stream.try_peek(&mut header).await?;
            if header[0] != HANDSHAKE {
                // Not TLS: the handshake refuses it at once.
                return Ok(());
            }
            let length = usize::from(u16::from_be_bytes([header[3], header[4]])).min(MAX_RECORD);
            let mut record = vec![0u8; RECORD_HEADER + length];
            stream.try_peek(&mut record).await.map(drop)
        };
        match tokio::time::timeout(left, peek).await {
            Ok(Ok(())) => {
                let left = limit.saturating_sub(since_accept(&*stream));
                self.watch_handshake(stream.as_raw_fd(), left);
                Ok(())
            }
            Ok(Err(e)) => {
                Error::e_because(ErrorType::ConnectionClosed, "before the TLS ClientHello", e)
            }
            Err(_) => {
                self.gateway.metrics.slow_clients.client_hello.inc();
                Error::e_explain(
                    ErrorType::ReadTimedout,
                    "no TLS ClientHello within http.header_timeout",
                )
            }
        }
    }
}
