//! Slow clients on the public listener. Pingora bounds each read of a request head (60 s for a
//! connection's first request, `http.keepalive_timeout` after), not the head as a whole: a
//! client sending a byte a minute holds its connection for ever. [`Guarded`] wraps the proxy
//! app and gives each connection's stream a [`HeadDeadline`]: the whole head of a request
//! must arrive within `http.header_timeout`, counted from the accept for the first request and
//! from its first byte for later ones, or the read fails and Pingora closes the connection.
//!
//! Connections closed by this deadline are counted in
//! `flashgate_slow_clients_total{reason="header_timeout"}`. (A kept-alive connection that goes
//! silent, or whose next head arrived whole with the previous request and then stopped, is
//! closed by Pingora's keep-alive timeout, quietly: not counted.)
//!
//! The stream knows where a head ends by the blank line (`\r\n\r\n`) that ends every HTTP/1
//! head; a response written means the next bytes start the next head. An HTTP/2 connection
//! (negotiated by ALPN) must send its client preface within the same deadline; after it, its
//! frames are the h2 layer's, and a connection with no stream open closes at
//! `http.keepalive_timeout` (Pingora's HTTP/2 idle timeout, set in `edge::run`). Over TLS the
//! deadline counts from the accept, not from the end of the handshake: the handshake's time is
//! the head's time (`hello` bounds the handshake itself).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::Gateway;
use crate::ground::metrics::SlowCounters;

/// A server app whose connections' heads are bounded in time.
pub struct Guarded<A> {
    inner: Arc<A>,
    gateway: Arc<Gateway>,
}

impl<A> Guarded<A> {
    /// Guard `inner`'s connections with the limits of `gateway`'s live configuration.
    pub fn new(inner: A, gateway: Arc<Gateway>) -> Self {
        Guarded {
            inner: Arc::new(inner),
            gateway,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Over TLS: the handshake completed in time, its watchdog stands down (`hello`).
        self.gateway
            .handshakes
            .completed(stream.get_socket_digest().as_deref());
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let timeout = self.gateway.live().config.http.header_timeout;
        let first = timeout.saturating_sub(since_accept(&*stream));
        let counters = self.gateway.metrics.slow_clients.clone();
        let guarded: Stream = Box::new(HeadDeadline::new(stream, timeout, first, h2, counters));
        self.inner.process_new(guarded, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// How long ago `stream`'s connection was accepted (zero if it does not say): before the TLS
/// handshake (`hello`) and after it.
pub fn since_accept<S: GetTimingDigest + ?Sized>(stream: &S) -> Duration {
    stream
        .get_timing_digest()
        .first()
        .and_then(|d| d.as_ref())
        .and_then(|d| {
            std::time::SystemTime::now()
                .duration_since(d.established_ts)
                .ok()
        })
        .unwrap_or_default()
}

/// The client preface an HTTP/2 connection opens with (RFC 9113 §3.4).
const H2_PREFACE_LEN: usize = 24;

/// Where the stream is in the request it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a head: how many of its bytes arrived, and the last three (a blank line can
    /// straddle two reads).
    Head { seen: usize, tail: [u8; 3] },
    /// The head is complete: a body, or the edge's answer.
    AfterHead,
    /// HTTP/2: reading the client preface, this much of it arrived.
    Preface { seen: usize },
    /// HTTP/2 after its preface: no deadline of ours any more.
    Free,
}

const NEW_HEAD: Phase = Phase::Head {
    seen: 0,
    tail: [0; 3],
};

/// A stream whose request heads must each arrive within a deadline.
pub struct HeadDeadline {
    inner: Stream,
    timeout: Duration,
    phase: Phase,
    /// Running while a head is being read.
    deadline: Option<Pin<Box<Sleep>>>,
    counters: SlowCounters,
}

impl HeadDeadline {
    /// Guard `inner`: its first head (HTTP/2: its client preface) must be in within `first`
    /// from now, each later one within `timeout` from its first byte.
    pub fn new(
        inner: Stream,
        timeout: Duration,
        first: Duration,
        h2: bool,
        counters: SlowCounters,
    ) -> Self {
        HeadDeadline {
            inner,
            timeout,
            phase: if h2 {
                Phase::Preface { seen: 0 }
            } else {
                NEW_HEAD
            },
            deadline: Some(Box::pin(tokio::time::sleep(first))),
            counters,
        }
    }

    /// Follow the head through `bytes`, just read.
    fn saw(&mut self, bytes: &[u8]) {
        if let Phase::Preface { seen } = self.phase {
            let seen = seen.saturating_add(bytes.len());
            if seen >= H2_PREFACE_LEN {
                self.phase = Phase::Free;
                self.deadline = None;
            } else {
                self.phase = Phase::Preface { seen };
            }
            return;
        }
        let Phase::Head { seen, tail } = self.phase else {
            return;
        };
        if bytes.is_empty() {
            return;
        }
        if ends_head(&tail, bytes) {
            self.phase = Phase::AfterHead;
            self.deadline = None;
            return;
        }
        if seen == 0 && self.deadline.is_none() {
            // A later request's head started and did not arrive whole in one read: from now
            // on it has header_timeout. (A head that arrives in one read, the usual case, never
            // sets a timer.)
            self.deadline = Some(Box::pin(tokio::time::sleep(self.timeout)));
        }
        let mut next = tail;
        for &b in &bytes[bytes.len().saturating_sub(3)..] {
            next = [next[1], next[2], b];
        }
        self.phase = Phase::Head {
            seen: seen.saturating_add(bytes.len()),
            tail: next,
        };
    }
}

/// Whether the blank line that ends a head is in `tail` (the last bytes before) + `bytes`.
fn ends_head(tail: &[u8; 3], bytes: &[u8]) -> bool {
    const END: &[u8] = b"\r\n\r\n";
    if bytes.windows(4).any(|w| w == END) {
        return true;
    }
    // Across the boundary: the end of `tail` and the start of `bytes`.
    (1..=3).any(|from_tail| {
        let need = 4 - from_tail;
        bytes.len() >= need
            && tail[3 - from_tail..] == END[..from_tail]
            && bytes[..need] == END[from_tail..]
    })
}

impl std::fmt::Debug for HeadDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadDeadline")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

impl AsyncRead for HeadDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                self.deadline = None;
                self.counters.header_timeout.inc();
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request head did not arrive within http.header_timeout",
                )));
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.saw(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // An answer is going out: what is read next starts the next request's head.
        if self.phase == Phase::AfterHead && !buf.is_empty() {
            self.phase = NEW_HEAD;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.phase == Phase::AfterHead && bufs.iter().any(|b| !b.is_empty()) {
            self.phase = NEW_HEAD;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blank_line_is_found_within_and_across_reads() {
        assert!(ends_head(&[0; 3], b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!ends_head(&[0; 3], b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(ends_head(b"a\r\n", b"\r\n"));
        assert!(ends_head(b"\r\n\r", b"\n"));
        assert!(ends_head(b"x\r\n", b"\r\nbody"));
        assert!(!ends_head(b"\r\n\r", b"x\n"));
        assert!(!ends_head(b"abc", b"\r\n"));
    }
}
