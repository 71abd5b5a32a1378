//! HTTPS and HTTP/2 on the public listener, through the real `flashgate` binary with
//! certificates the test makes (`openssl req`): the sale page, the button script, a challenge,
//! buys and the edge's refusals over HTTP/2 and HTTP/1.1 (`curl`); a bounded storm of buys over
//! HTTP/2 (`h2load`) that sells exactly the stock; a reload that renews the certificate for new
//! handshakes (`openssl s_client`) and refuses a bad one; and a certificate or key that cannot
//! serve refused at start and by `flashgate check`, naming the file.
//!
//! Needs `openssl`, `curl` (with HTTP/2) and `h2load` (Debian's nghttp2-client); `.ci/run`
//! installs them. The clients are in `common/https.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::https::*;
use crate::common::*;
use flashgate::admission::captcha::pow;
use serde_json::Value;

const ADMIN_TOKEN: &str = "tls-admin-token-0123456789abcdef-0123456789";

/// The configuration of an HTTPS edge; `tls` is the `tls:` value.
struct Files {
    listen: u16,
    admin: u16,
    origin: std::net::SocketAddr,
    starts: String,
    ends: String,
}

impl Files {
    fn new(origin: std::net::SocketAddr) -> Files {
        Files {
            listen: free_port(),
            admin: free_port(),
            origin,
            starts: at(-60),
            ends: at(3600),
        }
    }

    fn yaml(&self, dir: &Path, stock: u64, per_uid: u64, tls: &str) -> String {
        let blocklist = dir.join("blocklist.txt");
        std::fs::write(&blocklist, "uid:13\n").unwrap();
        format!(
            "listen: 127.0.0.1:{listen}\n\
             admin_listen: 127.0.0.1:{admin}\n\
             threads: 2\n\
             admin_token: {ADMIN_TOKEN}\n\
             secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
             origin: {{ url: 'http://{origin}', path: /orders, connect_timeout: 500ms }}\n\
             store: {{ kind: memory }}\n\
             static_dir: {static_dir}\n\
             catalog: {{ products: [1-100] }}\n\
             sales:\n\
             \x20 - {{ product: 42, stock: {stock}, starts_at: '{starts}', ends_at: '{ends}' }}\n\
             \x20 - {{ product: 43, stock: 5, starts_at: '{starts}', ends_at: '{ends}', captcha: pow }}\n\
             limits:\n\
             \x20 - {{ name: per-uid, key: uid, requests: {per_uid}, per: 60s, expected_keys: 10000 }}\n\
             blocklist: {{ file: {blocklist} }}\n\
             captcha: {{ difficulty: 4, max_difficulty: 4 }}\n\
             {tls}\n",
            listen = self.listen,
            admin = self.admin,
            origin = self.origin,
            static_dir = static_dir().display(),
            starts = self.starts,
            ends = self.ends,
            blocklist = blocklist.display(),
        )
    }

    async fn start(&self, stock: u64, per_uid: u64, tls: &str, dir: tempfile::TempDir) -> Edge {
        let yaml = self.yaml(dir.path(), stock, per_uid, tls);
        Edge::start_https(&yaml, dir, "127.0.0.1", self.listen, self.admin).await
    }
}

fn tls_value(cert: &Path, key: &Path) -> String {
    format!(
        "tls: {{ cert: {}, key: {} }}",
        cert.display(),
        key.display()
    )
}

/// Start an HTTPS edge with a fresh certificate `a` in its directory: `stock` units of
/// product 42, `per_uid` buys a minute for each user.
async fn https_edge(origin: &Origin, stock: u64, per_uid: u64) -> (Files, Edge) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "flashgate-test-a");
    let files = Files::new(origin.addr);
    let edge = files
        .start(stock, per_uid, &tls_value(&cert, &key), dir)
        .await;
    (files, edge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sale_over_http2_and_http1_on_tls() {
    let origin = Origin::start().await;
    let (_files, edge) = https_edge(&origin, 3, 5).await;

    // The sale page, over HTTP/2 by ALPN and over HTTP/1.1.
    let page = get_h2(&format!("{}/", edge.base), &[]).await;
    assert_eq!((page.status, page.version.as_str()), (200, "2"), "{page:?}");
    // The page names its script by its content-hashed name (`/static/app.<hash>.js`).
    assert!(page.body.contains("/static/app."), "{}", page.body);
    let page1 = curl(args(&["--http1.1", &format!("{}/", edge.base)])).await;
    assert_eq!((page1.status, page1.version.as_str()), (200, "1.1"));
    assert_eq!(page1.body, page.body);

    // A static file, and its 304 by ETag, over HTTP/2.
    let app = get_h2(&format!("{}/static/app.js", edge.base), &[]).await;
    assert_eq!((app.status, app.version.as_str()), (200, "2"));
    let etag = app.header("etag").expect("an etag");
    let again = get_h2(
        &format!("{}/static/app.js", edge.base),
        &["-H", &format!("if-none-match: {etag}")],
    )
    .await;
    assert_eq!((again.status, again.version.as_str()), (304, "2"));

    // Nothing the page loads names plain http:// — no mixed content on an HTTPS page, so the
    // proof of work keeps `crypto.subtle` (a secure context).
    let worker = get_h2(&format!("{}/static/pow-worker.js", edge.base), &[]).await;
    let button = get_h2(&format!("{}/sale/43/button.js", edge.base), &[]).await;
    for (name, body) in [
        ("index.html", &page.body),
        ("app.js", &app.body),
        ("pow-worker.js", &worker.body),
        ("button.js", &button.body),
    ] {
        assert!(
            !body.contains("http://"),
            "{name} names a plain http:// URL"
        );
    }

    // A buy over HTTP/2 wins and reaches the origin; one over HTTP/1.1 too.
    let url = buy_url(&edge, 42).await;
    let won = buy("--http2", &url, "alice", &[]).await;
    assert_eq!(
        (won.status, won.version.as_str(), won.outcome().as_str()),
        (200, "2", "won"),
        "{won:?}"
    );
    let won1 = buy("--http1.1", &url, "bob", &["-d", "{}"]).await;
    assert_eq!(
        (won1.status, won1.version.as_str(), won1.outcome().as_str()),
        (200, "1.1", "won")
    );
    let forwards = origin.forwards();
    assert_eq!(forwards.len(), 2, "{forwards:?}");
    assert_eq!(forwards[0].header("x-flashgate-uid"), "alice");
    assert_eq!(forwards[0].path, "/orders");
    assert_eq!(forwards[0].method, "POST");
    // The HTTP/2 request's authority (the edge) is not what the origin is told it is.
    assert_eq!(forwards[0].header("host"), origin.addr.to_string());
    assert_eq!(forwards[1].header("x-flashgate-uid"), "bob");

    // The edge's own refusals over HTTP/2: each status with its outcome.
    let refusals = [
        (buy("--http2", &url, "alice", &[]).await, 409, "duplicate"),
        (buy("--http2", &url, "13", &[]).await, 403, "blacklisted"),
        (
            buy(
                "--http2",
                &format!("{}/buy/42/not-the-path", edge.base),
                "carol",
                &[],
            )
            .await,
            403,
            "bad_sale_path",
        ),
        (
            curl(args(&["--http2", "-X", "POST", &url])).await,
            401,
            "login_required",
        ),
    ];
    for (answer, status, outcome) in &refusals {
        assert_eq!(
            (answer.status, answer.version.as_str(), answer.outcome()),
            (*status, "2", outcome.to_string()),
            "{answer:?}"
        );
    }

    // A proof-of-work sale: the challenge over HTTP/2, solved, and the buy with it.
    let challenge = get_h2(
        &format!("{}/api/challenge?product=43", edge.base),
        &["-H", &format!("authorization: Bearer {}", token("dave"))],
    )
    .await;
    assert_eq!((challenge.status, challenge.version.as_str()), (200, "2"));
    let body: Value = serde_json::from_str(&challenge.body).unwrap();
    let text = body["challenge"].as_str().unwrap();
    let bits = body["difficulty"].as_u64().unwrap() as u8;
    let nonce = pow::solve(text, bits, 1 << 24).unwrap();
    let pow_url = buy_url(&edge, 43).await;
    let won = buy(
        "--http2",
        &pow_url,
        "dave",
        &["-H", &format!("x-captcha: {text}.{nonce}")],
    )
    .await;
    assert_eq!(
        (won.status, won.outcome().as_str()),
        (200, "won"),
        "{won:?}"
    );
    assert_eq!(
        buy("--http2", &pow_url, "erin", &[]).await.outcome(),
        "captcha_required"
    );

    // 429 over HTTP/2 with its headers: a per-uid limit of 5 a minute, spent by frank.
    let mut limited = None;
    for _ in 0..6 {
        let a = buy("--http2", &url, "frank", &[]).await;
        if a.status == 429 {
            limited = Some(a);
            break;
        }
    }
    let limited = limited.expect("frank is rate limited by his 6th buy");
    assert_eq!(
        (limited.version.as_str(), limited.outcome().as_str()),
        ("2", "rate_limited")
    );
    assert!(limited.header("retry-after").is_some(), "{limited:?}");
    assert!(limited.header("ratelimit").is_some(), "{limited:?}");

    // The stock is gone (alice, bob, frank): 410 over HTTP/2.
    let gone = buy("--http2", &url, "grace", &[]).await;
    assert_eq!(
        (gone.status, gone.version.as_str(), gone.outcome().as_str()),
        (410, "2", "sold_out")
    );

    // The admin listener stays plain HTTP.
    let health = reqwest::get(format!("{}/healthz", edge.admin))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_storm_sells_exactly_the_stock() {
    const STOCK: u64 = 10;
    const USERS: usize = 20;
    const EACH: u64 = 100; // buys per user: 2,000 in all
    let origin = Origin::start().await;
    let (_files, edge) = https_edge(&origin, STOCK, 1_000).await;
    let url = buy_url(&edge, 42).await;
    let body = edge.dir.path().join("body.json");
    std::fs::write(&body, "{}").unwrap();

    // One h2load a user (a login token is one header): each one connection with 10 streams in
    // flight, all twenty at once — 20 connections, 200 buys in flight, 2,000 in all, bounded
    // by count and by `timeout`.
    let started = Instant::now();
    let runs = tokio::task::spawn_blocking(move || {
        let children: Vec<_> = (0..USERS)
            .map(|i| {
                Command::new("timeout")
                    .args([
                        "60",
                        "h2load",
                        "-n",
                        &EACH.to_string(),
                        "-c",
                        "1",
                        "-m",
                        "10",
                    ])
                    .arg("-d")
                    .arg(&body)
                    .args([
                        "-H",
                        &format!("authorization: Bearer {}", token(&format!("u{i}"))),
                    ])
                    .arg(&url)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("h2load (Debian package nghttp2-client)")
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let took = started.elapsed();

    let mut total = H2load::default();
    for out in &runs {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "h2load: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = parse_h2load(&text);
        assert!(run.h2, "h2load did not negotiate h2: {text}");
        assert_eq!(run.done, EACH, "{text}");
        assert_eq!((run.errored, run.timeout), (0, 0), "{text}");
        assert!(run.status[0] <= 1, "a user won twice: {text}");
        total.done += run.done;
        for (sum, n) in total.status.iter_mut().zip(run.status) {
            *sum += n;
        }
    }
    eprintln!(
        "h2load: {} buys over HTTP/2 in {took:?}; 2xx {} 3xx {} 4xx {} 5xx {}",
        total.done, total.status[0], total.status[1], total.status[2], total.status[3]
    );
    // Every answer a proper one: the stock's worth of wins, every other buy a 4xx refusal.
    assert_eq!(total.done, USERS as u64 * EACH);
    assert_eq!(total.status, [STOCK, 0, USERS as u64 * EACH - STOCK, 0]);

    // Exactly the stock sold: the origin took one order a winner, none twice.
    let forwards = origin.forwards();
    let buyers: std::collections::HashSet<String> = forwards
        .iter()
        .map(|f| f.header("x-flashgate-uid"))
        .collect();
    assert_eq!(
        (forwards.len(), buyers.len()),
        (STOCK as usize, STOCK as usize)
    );
    let won = r#"flashgate_requests_total{outcome="won",route="buy"}"#;
    let page = metrics_when(&edge, won, STOCK as f64).await;
    assert_eq!(sample(&page, won), Some(STOCK as f64));
    assert_eq!(
        sample(&page, r#"flashgate_stock_remaining{sale="42"}"#),
        Some(0.0)
    );
    // Every buy counted, and each refusal one a sale that sold out gives: duplicate, sold_out.
    let buys: Vec<(&str, f64)> = page
        .lines()
        .filter(|l| l.starts_with("flashgate_requests_total{") && l.contains(r#"route="buy""#))
        .filter_map(|l| {
            let outcome = l.split(r#"outcome=""#).nth(1)?.split('"').next()?;
            Some((outcome, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(
        buys.iter().map(|(_, n)| n).sum::<f64>(),
        (USERS as u64 * EACH) as f64,
        "{buys:?}"
    );
    assert!(
        buys.iter()
            .all(|(o, n)| *n == 0.0 || ["won", "duplicate", "sold_out"].contains(o)),
        "{buys:?}"
    );
}

/// `POST /admin/reload`: the status and the JSON answer.
async fn reload(edge: &Edge) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/admin/reload", edge.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// Put certificate `from` (and its key) where the configuration points, as a renewal does.
fn install(from: &(PathBuf, PathBuf), to: &(PathBuf, PathBuf)) {
    std::fs::copy(&from.0, &to.0).unwrap();
    std::fs::copy(&from.1, &to.1).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_renews_the_certificate_for_new_handshakes() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a", "flashgate-test-a");
    let b = make_cert(dir.path(), "b", "flashgate-test-b");
    let live = (dir.path().join("live.pem"), dir.path().join("live.key"));
    install(&a, &live);
    let files = Files::new(origin.addr);
    let edge = files.start(5, 5, &tls_value(&live.0, &live.1), dir).await;
    let (der_a, der_b) = (der_of(&a.0), der_of(&b.0));
    assert_ne!(der_a, der_b);
    assert_eq!(
        served(files.listen).await,
        (der_a.clone(), "h2".to_string())
    );

    // A renewed certificate written over the files; a reload presents it to new handshakes.
    install(&b, &live);
    let (status, done) = reload(&edge).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["changed"], serde_json::json!(["tls"]), "{done}");
    assert_eq!(
        served(files.listen).await,
        (der_b.clone(), "h2".to_string())
    );
    let page = get_h2(&format!("{}/", edge.base), &[]).await;
    assert_eq!((page.status, page.version.as_str()), (200, "2"));

    // Half a renewal (the old key with the new certificate) is refused, naming the key file
    // and where the file names it; the running certificate keeps serving.
    std::fs::write(&live.0, std::fs::read(&a.0).unwrap()).unwrap();
    let (status, refused) = reload(&edge).await;
    assert_eq!(status, 422, "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{}", live.1.display())) && error.contains("does not match"),
        "{error}"
    );
    assert!(
        error.contains("flashgate.yaml:") && error.contains("tls.key"),
        "{error}"
    );
    assert_eq!(served(files.listen).await.0, der_b);

    // A certificate file that holds no certificate: refused, naming it.
    std::fs::write(&live.0, "not a certificate\n").unwrap();
    let (status, refused) = reload(&edge).await;
    assert_eq!(status, 422, "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{}", live.0.display())) && error.contains("no certificate"),
        "{error}"
    );
    assert_eq!(served(files.listen).await.0, der_b);

    // SIGHUP reloads too: certificate a again.
    install(&a, &live);
    let hup = Command::new("kill")
        .args(["-HUP", &edge.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while served(files.listen).await.0 != der_a {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not renew the certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // TLS off needs a restart: the reload applies the rest and keeps HTTPS.
    let yaml = files.yaml(edge.dir.path(), 5, 5, "");
    std::fs::write(edge.dir.path().join("flashgate.yaml"), yaml).unwrap();
    let (status, done) = reload(&edge).await;
    assert_eq!(status, 200, "{done}");
    let needed = done["restart_needed"].to_string();
    assert!(needed.contains("tls changed (on -> off)"), "{done}");
    assert_eq!(served(files.listen).await.0, der_a);
    let page = get_h2(&format!("{}/", edge.base), &[]).await;
    assert_eq!((page.status, page.version.as_str()), (200, "2"));
}

/// `flashgate check` of `yaml` (written to `dir/flashgate.yaml`): success, and stdout + stderr.
fn check(dir: &Path, yaml: &str) -> (bool, String) {
    let config = dir.join("flashgate.yaml");
    std::fs::write(&config, yaml).unwrap();
    let out = flashgate(&["check", "--config", &config.to_string_lossy()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_or_key_that_cannot_serve_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a", "flashgate-test-a");
    let b = make_cert(dir.path(), "b", "flashgate-test-b");
    let files = Files::new("127.0.0.1:9".parse().unwrap());
    let config = dir.path().join("flashgate.yaml");
    let yaml = |cert: &Path, key: &Path| files.yaml(dir.path(), 5, 5, &tls_value(cert, key));
    // The tls: line, for the file:line: of each error.
    let line = yaml(&a.0, &a.1)
        .lines()
        .position(|l| l.starts_with("tls:"))
        .unwrap()
        + 1;
    let at = format!("{}:{line}:", config.display());

    let (ok, text) = check(dir.path(), &yaml(&a.0, &a.1));
    assert!(ok, "{text}");
    assert!(
        text.contains("HTTPS, HTTP/2 and HTTP/1.1") && text.contains("CN=flashgate-test-a"),
        "{text}"
    );

    let missing = dir.path().join("missing.pem");
    let cases = [
        (
            yaml(&missing, &a.1),
            "tls.cert",
            missing.clone(),
            "cannot read",
        ),
        (yaml(&a.0, &b.1), "tls.key", b.1.clone(), "does not match"),
        (yaml(&a.1, &a.1), "tls.cert", a.1.clone(), "no certificate"),
        (yaml(&a.0, &a.0), "tls.key", a.0.clone(), "no private key"),
    ];
    for (text_of, key, file, says) in &cases {
        let (ok, text) = check(dir.path(), text_of);
        assert!(!ok, "{text}");
        assert!(text.contains(&at), "{at} in {text}");
        assert!(text.contains(key), "{key} in {text}");
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(text.contains(says), "{says} in {text}");
    }

    // `flashgate run` refuses to start with a key of another certificate, saying why.
    std::fs::write(&config, yaml(&a.0, &b.1)).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("20")
            .arg(env!("CARGO_BIN_EXE_flashgate"))
            .args(["run", "--config"])
            .arg(&config)
            .env("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET)
            .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&at) && stderr.contains("does not match"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_outage_is_503_over_http2() {
    // An origin address nothing listens on: the forward cannot connect, the unit is returned.
    let down = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "flashgate-test-a");
    let files = Files::new(down);
    let edge = files.start(1, 5, &tls_value(&cert, &key), dir).await;
    let url = buy_url(&edge, 42).await;
    for uid in ["alice", "bob"] {
        let answer = buy("--http2", &url, uid, &[]).await;
        assert_eq!(
            (
                answer.status,
                answer.version.as_str(),
                answer.outcome().as_str()
            ),
            (503, "2", "origin_unavailable"),
            "{answer:?}"
        );
        assert_eq!(answer.header("retry-after").as_deref(), Some("1"));
    }
    // bob's 503 (not 410) shows alice's unit came back: a forward that never reached the
    // origin returns it. The listener serves on.
    let page = get_h2(&format!("{}/", edge.base), &[]).await;
    assert_eq!((page.status, page.version.as_str()), (200, "2"));
}

/// Over HTTP/2 a browser sends each cookie in a `Cookie` header of its own: the session cookie
/// is found in any of them (it once was read from the first only, and such a buyer was
/// `login_required`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_cookie_is_found_among_http2_cookie_headers() {
    let origin = Origin::start().await;
    let (_files, edge) = https_edge(&origin, 3, 5).await;
    let url = buy_url(&edge, 42).await;
    let session = format!("cookie: fg_session={}", token("carol"));
    let won = curl(args(&[
        "--http2",
        "-X",
        "POST",
        "-H",
        "cookie: theme=dark",
        "-H",
        &session,
        &url,
    ]))
    .await;
    assert_eq!(
        (won.status, won.version.as_str(), won.outcome().as_str()),
        (200, "2", "won"),
        "{won:?}"
    );
    assert_eq!(origin.forwards()[0].header("x-flashgate-uid"), "carol");
}
