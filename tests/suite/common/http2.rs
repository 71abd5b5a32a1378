//! HTTP/2 over TLS for the hostile tests of the public listener: a well-behaved client (the `h2`
//! crate, the one Pingora serves with) for requests that are well framed but break a rule, and
//! a raw frame writer for what no client library sends — rapid resets, CONTINUATION floods,
//! HPACK bombs, SETTINGS and PING floods. Both over `tokio-rustls`, trusting the test's
//! self-signed certificate, ALPN `h2`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The client preface every HTTP/2 connection starts with.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

/// Flags.
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;

/// A TLS connector trusting exactly `cert` (PEM: the test's self-signed certificate, pinned),
/// offering `alpn`.
pub fn connector(cert: &Path, alpn: &[&[u8]]) -> TlsConnector {
    TlsConnector::from(client_config(cert, alpn))
}

/// The first flight of a TLS handshake offering `h2`: the ClientHello, as it goes on the wire.
pub fn client_hello(cert: &Path) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("a name");
    let mut client =
        rustls::ClientConnection::new(client_config(cert, &[b"h2"]), name).expect("a client");
    let mut hello = Vec::new();
    client.write_tls(&mut hello).expect("the ClientHello");
    hello
}

/// The client configuration of [`connector`].
fn client_config(cert: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let pinned = CertificateDer::pem_file_iter(cert)
        .expect("the test certificate")
        .next()
        .expect("a certificate")
        .expect("PEM")
        .into_owned();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { pinned, provider }))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Trusts one certificate, byte for byte, and checks the handshake's signatures with it.
#[derive(Debug)]
struct Pinned {
    pinned: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the test certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS connection to `addr` offering `h2`.
pub async fn tls(addr: SocketAddr, cert: &Path) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("a name");
    let stream = connector(cert, &[b"h2"])
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "the edge chose HTTP/2"
    );
    stream
}

/// An HTTP/2 client on a fresh connection.
pub async fn client(addr: SocketAddr, cert: &Path) -> h2::client::SendRequest<Bytes> {
    let (send, connection) = h2::client::Builder::new()
        .max_header_list_size(1 << 20)
        .handshake(tls(addr, cert).await)
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// What a request sent with [`send`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A response with this status and body.
    Status(u16, String),
    /// The stream or connection ended in an error (a reset, a GOAWAY, a closed socket).
    Error(String),
}

impl Reply {
    /// The status, if one came.
    pub fn status(&self) -> Option<u16> {
        match self {
            Reply::Status(s, _) => Some(*s),
            Reply::Error(_) => None,
        }
    }
}

/// Send `request` with `body` in `chunks` (each a DATA frame; the last ends the stream) and
/// read the answer, at most 10 s.
pub async fn send(
    client: &mut h2::client::SendRequest<Bytes>,
    request: http::Request<()>,
    chunks: &[&[u8]],
) -> Reply {
    let exchange = async {
        let mut ready = client.clone().ready().await.map_err(|e| e.to_string())?;
        let (response, mut stream) = ready
            .send_request(request, chunks.is_empty())
            .map_err(|e| e.to_string())?;
        for (i, chunk) in chunks.iter().enumerate() {
            stream
                .send_data(Bytes::copy_from_slice(chunk), i + 1 == chunks.len())
                .map_err(|e| e.to_string())?;
        }
        let response = response.await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        Ok::<_, String>(Reply::Status(
            status,
            String::from_utf8_lossy(&text).into_owned(),
        ))
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => Reply::Error(e),
        Err(_) => Reply::Error("no answer in 10 s".into()),
    }
}

/// A raw HTTP/2 connection: frames written by hand.
pub struct Raw {
    pub stream: TlsStream<TcpStream>,
}

/// One frame read back.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A GOAWAY's error code.
    pub fn goaway_code(&self) -> Option<u32> {
        (self.kind == GOAWAY && self.payload.len() >= 8).then(|| {
            u32::from_be_bytes([
                self.payload[4],
                self.payload[5],
                self.payload[6],
                self.payload[7],
            ])
        })
    }
}

/// How a raw connection ended, as far as the reader saw.
#[derive(Debug)]
pub struct Seen {
    pub frames: Vec<Frame>,
    /// The edge closed the connection (rather than the wait running out).
    pub closed: bool,
    pub took: Duration,
}

impl Seen {
    /// Whether a GOAWAY came.
    pub fn goaway(&self) -> Option<u32> {
        self.frames.iter().find_map(Frame::goaway_code)
    }

    /// The streams the edge reset.
    pub fn resets(&self) -> usize {
        self.frames.iter().filter(|f| f.kind == RST_STREAM).count()
    }
}

impl Raw {
    /// A TLS connection that has sent the preface and an empty SETTINGS frame.
    pub async fn open(addr: SocketAddr, cert: &Path) -> Raw {
        let mut raw = Raw {
            stream: tls(addr, cert).await,
        };
        raw.write(PREFACE).await;
        raw.frame(SETTINGS, 0, 0, &[]).await;
        raw
    }

    /// Write bytes; a write error is ignored (the edge may have closed: the reader says so).
    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Write one frame.
    pub async fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        self.write(&encode_frame(kind, flags, stream, payload))
            .await;
    }

    /// Read frames until the edge closes the connection or `wait` passes.
    pub async fn read_for(&mut self, wait: Duration) -> Seen {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = Vec::new();
        let mut closed = false;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
        Seen {
            frames: decode_frames(&buf),
            closed,
            took: started.elapsed(),
        }
    }
}

/// One frame's bytes.
pub fn encode_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The frames in `bytes` (a partial last frame is dropped).
pub fn decode_frames(bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 9 {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        if bytes.len() < at + 9 + len {
            break;
        }
        frames.push(Frame {
            kind: bytes[at + 3],
            flags: bytes[at + 4],
            stream: u32::from_be_bytes([
                bytes[at + 5],
                bytes[at + 6],
                bytes[at + 7],
                bytes[at + 8],
            ]) & 0x7fff_ffff,
            payload: bytes[at + 9..at + 9 + len].to_vec(),
        });
        at += 9 + len;
    }
    frames
}

/// An HPACK integer with an `n`-bit prefix, the prefix's other bits `flags`.
pub fn hpack_int(flags: u8, n: u32, value: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// An HPACK string literal, not Huffman-coded.
fn hpack_str(s: &[u8], out: &mut Vec<u8>) {
    hpack_int(0, 7, s.len(), out);
    out.extend_from_slice(s);
}

/// A header field as an HPACK literal without indexing, its name a literal too.
pub fn literal(name: &str, value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    hpack_str(name.as_bytes(), out);
    hpack_str(value, out);
}

/// A header field as an HPACK literal *with* incremental indexing (it enters the dynamic table).
pub fn literal_indexed(name: &str, value: &[u8], out: &mut Vec<u8>) {
    out.push(0x40);
    hpack_str(name.as_bytes(), out);
    hpack_str(value, out);
}

/// A header field by its index in the static or dynamic table.
pub fn indexed(index: usize, out: &mut Vec<u8>) {
    hpack_int(0x80, 7, index, out);
}

/// The header block of a request: `method` to `path` on `authority`, `headers` after.
pub fn request_block(method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    literal(":method", method.as_bytes(), &mut out);
    literal(":scheme", b"https", &mut out);
    literal(":authority", b"localhost", &mut out);
    literal(":path", path.as_bytes(), &mut out);
    for (name, value) in headers {
        literal(name, value.as_bytes(), &mut out);
    }
    out
}
