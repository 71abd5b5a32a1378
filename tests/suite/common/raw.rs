//! Raw HTTP/1.1 over a socket, for what no well-behaved client library sends: smuggling
//! attempts, broken framing, pipelining, slow and half-open clients.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What came back on one connection.
pub struct Exchange {
    /// Every byte the edge sent.
    pub bytes: Vec<u8>,
    /// Whether the edge closed the connection (rather than the wait running out).
    pub closed: bool,
    /// When the last byte (or the close) arrived, from the send.
    pub took: Duration,
}

impl Exchange {
    /// The status of each response, in order.
    pub fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|rest| rest.get(..3)?.parse().ok())
            .collect()
    }

    /// The whole answer as text (for messages).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Send `request` on a new connection to `base` (`http://host:port`), then read until the edge
/// closes or `wait` passes.
pub async fn exchange(base: &str, request: &[u8], wait: Duration) -> Exchange {
    let mut stream = connect(base).await;
    // A refused request may be answered, and the socket closed, before all of it is written.
    let _ = stream.write_all(request).await;
    read_until_closed(&mut stream, wait).await
}

/// A new connection to `base`.
pub async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect to the edge")
}

/// Read from `stream` until it closes or `wait` passes.
pub async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Exchange {
    let started = Instant::now();
    let deadline = started + wait;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut took = Duration::ZERO;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Exchange {
                    bytes,
                    closed: true,
                    took: started.elapsed(),
                }
            }
            Ok(Ok(n)) => {
                bytes.extend_from_slice(&buf[..n]);
                took = started.elapsed();
            }
            Err(_) => {
                return Exchange {
                    bytes,
                    closed: false,
                    took,
                }
            }
        }
    }
}
