//! The TLS ClientHello's deadline on the public listener. Pingora gives a TLS handshake 60 s,
//! and a connection that never sends its ClientHello holds a socket and a task that long. Run
//! before the handshake (Pingora's pre-TLS callback), [`HelloDeadline`] waits for the first TLS
//! record — the ClientHello — to arrive whole, peeking without consuming it, within
//! `http.header_timeout` from the accept; otherwise the connection is dropped and counted in
//! `flashgate_slow_clients_total{reason="client_hello"}`. What comes after (the handshake, the
//! HTTP/1.1 head or the HTTP/2 preface) is bounded by the same deadline in `slow`.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::prelude::*;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetTimingDigest, Peek};

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
}

#[async_trait]
impl PreTlsProcess for HelloDeadline {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let limit = self.gateway.live().config.http.header_timeout;
        let accepted = stream
            .get_timing_digest()
            .first()
            .and_then(|d| d.as_ref())
            .map_or_else(SystemTime::now, |d| d.established_ts);
        let left = limit.saturating_sub(accepted.elapsed().unwrap_or_default());
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
            Ok(Ok(())) => Ok(()),
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
