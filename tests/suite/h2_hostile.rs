//! The public listener's limits over TLS and HTTP/2, against the real binary (issue 22): the
//! rules HTTP/1.1 obeys — header count and size, body length, `header_timeout` from the
//! accept, the idle timeout — hold on HTTP/2 too, and hostile frames (rapid reset,
//! CONTINUATION flood, HPACK bomb, SETTINGS and PING floods, smuggling headers) get nothing to
//! the origin and leave the edge selling. Requests that are well framed but break a rule are
//! sent with the `h2` crate; framing attacks are written frame by frame (`crate::common::http2`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::http2::{self, Raw, Reply};
use crate::common::https::make_cert;
use crate::common::*;

const PRODUCT: u64 = 42;

struct Stand {
    edge: Edge,
    origin: Origin,
    addr: SocketAddr,
    cert: PathBuf,
}

/// An HTTPS edge with `http` limits (a YAML flow mapping body) and `h2` settings.
async fn stand(http: &str, h2: &str) -> Stand {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "edge", "flashgate-h2-test");
    let (listen, admin) = (free_port(), free_port());
    let h2 = if h2.is_empty() {
        String::new()
    } else {
        format!(", h2: {{ {h2} }}")
    };
    let yaml = format!(
        "listen: 127.0.0.1:{listen}\n\
         admin_listen: 127.0.0.1:{admin}\n\
         threads: 2\n\
         secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
         origin: {{ url: 'http://{origin}', path: /orders, connect_timeout: 500ms }}\n\
         store: {{ kind: memory }}\n\
         static_dir: {static_dir}\n\
         catalog: {{ products: [1-100] }}\n\
         sales:\n\
         \x20 - {{ product: {PRODUCT}, stock: 100, starts_at: '{starts}', ends_at: '{ends}' }}\n\
         limits:\n\
         \x20 - {{ name: per-uid, key: uid, requests: 1000, per: 1s }}\n\
         http: {{ {http}{h2} }}\n\
         tls: {{ cert: {cert}, key: {key} }}\n",
        origin = origin.addr,
        static_dir = static_dir().display(),
        starts = at(-60),
        ends = at(3600),
        cert = cert.display(),
        key = key.display(),
    );
    let edge = Edge::start_https(&yaml, dir, "127.0.0.1", listen, admin).await;
    let addr = format!("127.0.0.1:{listen}").parse().unwrap();
    Stand {
        edge,
        origin,
        addr,
        cert,
    }
}

impl Stand {
    /// The buy path, read from `button.js` over HTTP/2.
    async fn buy_path(&self) -> String {
        let mut c = http2::client(self.addr, &self.cert).await;
        let req = http::Request::get(format!("https://localhost/sale/{PRODUCT}/button.js"))
            .body(())
            .unwrap();
        let Reply::Status(200, script) = http2::send(&mut c, req, &[]).await else {
            panic!("button.js");
        };
        let state: serde_json::Value =
            serde_json::from_str(flashgate::edge::button::state_of(&script).unwrap()).unwrap();
        state["buy_path"].as_str().unwrap().to_string()
    }

    /// A buy over a fresh HTTP/2 connection, with `headers` and `body` in `chunks`.
    async fn buy(&self, uid: &str, headers: &[(&str, String)], chunks: &[&[u8]]) -> Reply {
        let mut c = http2::client(self.addr, &self.cert).await;
        let mut req = http::Request::post(format!("https://localhost{}", self.buy_path().await))
            .header("authorization", format!("Bearer {}", token(uid)));
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        http2::send(&mut c, req.body(()).unwrap(), chunks).await
    }

    /// The edge still sells: a plain buy by a new user wins, and reaches the origin.
    async fn still_sells(&self, uid: &str) {
        let before = self.origin.forwards().len();
        let reply = self.buy(uid, &[], &[]).await;
        assert_eq!(reply.status(), Some(200), "{uid}: {reply:?}");
        assert_eq!(self.origin.forwards().len(), before + 1);
    }
}

/// Well-framed HTTP/2 requests that break a rule HTTP/1.1 enforces get the same refusal, and
/// none reaches the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_obey_the_http1_limits() {
    let s = stand("max_body_bytes: 1024", "").await;
    // 400 small header fields, 6 KB in all: HTTP/1.1 refuses more than 256.
    let many: Vec<(&str, String)> = (0..400)
        .map(|i| (["x-a", "x-b", "x-c", "x-d"][i % 4], format!("{i}")))
        .collect();
    let reply = s.buy("many-headers", &many, &[]).await;
    assert_eq!(
        reply,
        Reply::Status(431, r#"{"outcome":"headers_too_large"}"#.into())
    );
    let seen = || s.origin.forwards().len();
    assert_eq!(seen(), 0, "400 headers reached the origin");
    // A body shorter than its Content-Length, and one longer.
    for (uid, length, body) in [
        ("short", "10", &b"12345"[..]),
        ("long", "5", &b"1234567890"[..]),
    ] {
        let reply = s
            .buy(uid, &[("content-length", length.to_string())], &[body])
            .await;
        assert_ne!(reply.status(), Some(200), "{uid}: {reply:?}");
        assert_eq!(
            seen(),
            0,
            "{uid}: a body of the wrong length reached the origin"
        );
    }
    // A body without a length: 411, as HTTP/1.1 answers a chunked one.
    let big = vec![b'x'; 20_000];
    let reply = s
        .buy("no-length", &[], &[&big[..8_000], &big[8_000..]])
        .await;
    assert_eq!(
        reply,
        Reply::Status(411, r#"{"outcome":"length_required"}"#.into())
    );
    assert_eq!(seen(), 0, "a body without a length reached the origin");
    // A declared length over max_body_bytes: 413.
    let reply = s
        .buy(
            "too-big",
            &[("content-length", "5000".into())],
            &[&big[..5000]],
        )
        .await;
    assert_eq!(reply.status(), Some(413), "{reply:?}");
    // Header bytes over max_header_bytes: 431.
    let fat = vec![("x-fat", "f".repeat(20_000))];
    let reply = s.buy("fat", &fat, &[]).await;
    assert_ne!(reply.status(), Some(200), "{reply:?}");
    assert!(
        s.origin.forwards().is_empty(),
        "the origin saw {:?}",
        s.origin
            .forwards()
            .iter()
            .map(|f| f.header("x-flashgate-uid"))
            .collect::<Vec<_>>()
    );
    // A body of the length it declares, within the limit, goes through whole.
    let reply = s
        .buy(
            "exact",
            &[("content-length", "10".into())],
            &[b"12345", b"67890"],
        )
        .await;
    assert_eq!(reply.status(), Some(200), "{reply:?}");
    s.still_sells("after").await;
}

/// A connection that never says anything — no ClientHello, a ClientHello and no more of the
/// handshake, or no HTTP/2 preface after it — is closed at `header_timeout` from the accept;
/// one that goes idle after its requests at `keepalive_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed() {
    let s = stand("header_timeout: 2s, keepalive_timeout: 3s", "").await;
    // The bounds leave room for a loaded machine and stay far below what the timers replace:
    // Pingora's 60 s handshake timeout, and no idle timeout at all.
    let closed_within = |what: &str, seen: &http2::Seen, limit: Duration| {
        assert!(seen.closed, "{what}: still open after {:?}", seen.took);
        assert!(seen.took <= limit, "{what}: closed after {:?}", seen.took);
    };
    // No ClientHello.
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (closed, took) = read_until_closed(&mut tcp, Duration::from_secs(20)).await;
    assert!(closed, "no ClientHello: still open after {took:?}");
    assert!(
        took <= Duration::from_secs(10),
        "no ClientHello: closed after {took:?}"
    );
    // A ClientHello, then nothing: the handshake never completes.
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &http2::client_hello(&s.cert))
        .await
        .unwrap();
    let (closed, took) = read_until_closed(&mut tcp, Duration::from_secs(20)).await;
    assert!(closed, "stalled handshake: still open after {took:?}");
    assert!(
        took <= Duration::from_secs(10),
        "stalled handshake: closed after {took:?}"
    );
    // A TLS handshake, then no preface.
    let mut raw = Raw {
        stream: http2::tls(s.addr, &s.cert).await,
    };
    let seen = raw.read_for(Duration::from_secs(20)).await;
    closed_within("no preface", &seen, Duration::from_secs(10));
    // A request, then nothing: the connection idles out.
    let mut raw = Raw::open(s.addr, &s.cert).await;
    let block = http2::request_block("GET", "/static/app.css", &[]);
    raw.frame(
        http2::HEADERS,
        http2::END_HEADERS | http2::END_STREAM,
        1,
        &block,
    )
    .await;
    let seen = raw.read_for(Duration::from_secs(20)).await;
    assert!(
        seen.frames
            .iter()
            .any(|f| f.kind == http2::HEADERS && f.stream == 1),
        "answered first: {:?}",
        seen.frames
    );
    closed_within("idle", &seen, Duration::from_secs(12));
    s.still_sells("after-silence").await;
    // One of each was cut; the handshakes that completed were left alone, though the idle
    // connection outlived header_timeout.
    for reason in ["client_hello", "tls_handshake"] {
        let series = format!(r#"flashgate_slow_clients_total{{reason="{reason}"}}"#);
        let page = metrics_when(&s.edge, &series, 1.0).await;
        assert_eq!(sample(&page, &series), Some(1.0), "{series}");
    }
}

/// Reads (and drops) what `tcp` receives until the edge closes it or `wait` passes: whether
/// it closed, and when.
async fn read_until_closed(tcp: &mut tokio::net::TcpStream, wait: Duration) -> (bool, Duration) {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(wait, async {
        while matches!(tcp.read(&mut buf).await, Ok(1..)) {}
    })
    .await
    .is_ok();
    (closed, started.elapsed())
}

/// Framing attacks: each ends with the connection closed (or the stream refused), nothing at
/// the origin, and the edge selling on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_reach_nothing_and_the_edge_stays_up() {
    let s = stand("", "").await;
    let path = s.buy_path().await;
    let bearer = format!("Bearer {}", token("attacker"));
    let buy = |extra: &[(&str, &str)]| {
        let mut headers = vec![("authorization", bearer.as_str())];
        headers.extend_from_slice(extra);
        http2::request_block("POST", &path, &headers)
    };

    // Rapid reset: a thousand buys, each cancelled at once.
    let mut raw = Raw::open(s.addr, &s.cert).await;
    let block = buy(&[]);
    let mut burst = Vec::new();
    for i in 0..1000u32 {
        let id = 2 * i + 1;
        burst.extend(http2::encode_frame(
            http2::HEADERS,
            http2::END_HEADERS | http2::END_STREAM,
            id,
            &block,
        ));
        burst.extend(http2::encode_frame(
            http2::RST_STREAM,
            0,
            id,
            &8u32.to_be_bytes(),
        ));
    }
    raw.write(&burst).await;
    let seen = raw.read_for(Duration::from_secs(10)).await;
    assert!(
        seen.closed || seen.goaway().is_some(),
        "rapid reset: {seen:?}"
    );
    assert!(
        s.origin.forwards().len() <= 1,
        "{}",
        s.origin.forwards().len()
    );

    // CONTINUATION flood: a header block that never ends.
    let mut raw = Raw::open(s.addr, &s.cert).await;
    raw.frame(http2::HEADERS, 0, 1, &buy(&[])).await;
    let mut junk = Vec::new();
    http2::literal("x-junk", &vec![b'j'; 1000], &mut junk);
    let frame = http2::encode_frame(http2::CONTINUATION, 0, 1, &junk);
    let flood: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 5000)
        .collect();
    raw.write(&flood).await;
    let seen = raw.read_for(Duration::from_secs(10)).await;
    assert!(
        seen.closed || seen.goaway().is_some(),
        "CONTINUATION flood: {seen:?}"
    );

    // HPACK bomb: one 4 KiB value in the dynamic table, referenced a thousand times.
    let mut raw = Raw::open(s.addr, &s.cert).await;
    let mut block = buy(&[]);
    http2::literal_indexed("x-bomb", &vec![b'b'; 4000], &mut block);
    for _ in 0..1000 {
        http2::indexed(62, &mut block);
    }
    raw.frame(
        http2::HEADERS,
        http2::END_HEADERS | http2::END_STREAM,
        1,
        &block,
    )
    .await;
    let seen = raw.read_for(Duration::from_secs(5)).await;
    assert!(
        seen.closed
            || seen.goaway().is_some()
            || seen.resets() > 0
            || seen.frames.iter().any(|f| f.kind == http2::HEADERS),
        "HPACK bomb: {seen:?}"
    );

    // SETTINGS and PING floods.
    for (kind, payload) in [(http2::SETTINGS, Vec::new()), (http2::PING, vec![0u8; 8])] {
        let mut raw = Raw::open(s.addr, &s.cert).await;
        let frame = http2::encode_frame(kind, 0, 0, &payload);
        let flood: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 20_000)
            .collect();
        raw.write(&flood).await;
        let _ = raw.read_for(Duration::from_secs(3)).await;
    }

    // Smuggling headers: connection-specific fields, a Transfer-Encoding, a Content-Length
    // beside it, an upper-case name, a value with CR LF.
    let smuggling: [&[(&str, &str)]; 5] = [
        &[("connection", "keep-alive")],
        &[("transfer-encoding", "chunked")],
        &[("content-length", "0"), ("transfer-encoding", "chunked")],
        &[("X-Upper", "1")],
        &[("x-split", "a\r\nx-flashgate-uid: mallory")],
    ];
    for headers in smuggling {
        let mut raw = Raw::open(s.addr, &s.cert).await;
        raw.frame(
            http2::HEADERS,
            http2::END_HEADERS | http2::END_STREAM,
            1,
            &buy(headers),
        )
        .await;
        let _ = raw.read_for(Duration::from_secs(2)).await;
    }
    // A body whose DATA disagrees with its Content-Length, written by hand.
    let mut raw = Raw::open(s.addr, &s.cert).await;
    raw.frame(
        http2::HEADERS,
        http2::END_HEADERS,
        1,
        &buy(&[("content-length", "100")]),
    )
    .await;
    raw.frame(http2::DATA, http2::END_STREAM, 1, b"short").await;
    let _ = raw.read_for(Duration::from_secs(2)).await;

    let forwards = s.origin.forwards();
    assert!(
        forwards.len() <= 1,
        "the origin saw {} forwards of hostile frames",
        forwards.len()
    );
    for f in &forwards {
        assert_eq!(f.header("x-flashgate-uid"), "attacker");
    }
    let ready = reqwest::get(format!("{}/readyz", s.edge.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    s.still_sells("after-frames").await;
}
