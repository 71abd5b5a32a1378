//! The front door: flashgate in front of the whole shop. Requests no sale route takes go by
//! `routes:` (host, path, methods) to `upstreams:` pools, with each route's policy at the edge
//! (login, blocklist, limits, body size), the client's `X-Flashgate-*` headers stripped and the
//! verified UID signed; a server that dies is left out with no `GET` failing; a `POST` is
//! never sent twice; a hung server is `504`, a pool with no server up `503`, a broken one
//! `502`; TLS to a server signed by a private CA, refused under the wrong CA; a reload swaps
//! the routes with no request failing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::shop_server::ShopServer;
use crate::common::*;
use flashgate::ground::signing::verify_route_signature;
use flashgate::ground::Secret;
use serde_json::Value;

fn sale() -> String {
    format!(
        "  - {{ product: 7, stock: 5, starts_at: '{}', ends_at: '{}' }}",
        at(-60),
        at(3600)
    )
}

/// An edge with the shop's `extra` YAML (upstreams, routes, limits beside the sale's).
async fn shop_edge(origin: SocketAddr, limits: &str, blocklist: &str, extra: &str) -> Edge {
    edge_with(
        Setup {
            store: "{ kind: memory }",
            origin,
            sales: &sale(),
            limits,
            trusted: "[]",
            blocklist,
        },
        extra,
    )
    .await
}

fn servers(list: &[&ShopServer]) -> String {
    list.iter()
        .map(|s| format!("'{}'", s.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn get(c: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut req = c.get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let server = resp
                .headers()
                .get("x-server")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (status, server, resp.text().await.unwrap_or_default())
        }
        Err(e) => (0, String::new(), e.to_string()),
    }
}

fn outcome(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["outcome"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_path_with_each_route_s_policy() {
    let origin = Origin::start().await;
    let (shop, account) = (
        ShopServer::start("shop").await,
        ShopServer::start("account").await,
    );
    let extra = format!(
        "upstreams:\n\
         \x20 shop: {{ servers: [{shop}] }}\n\
         \x20 account: {{ servers: [{account}] }}\n\
         routes:\n\
         \x20 - {{ name: account, host: shop.test, path: /account/, upstream: account, login: required }}\n\
         \x20 - {{ name: cart, path: /cart, methods: [GET, POST], upstream: shop, login: optional, max_body_bytes: 100, limits: [cart] }}\n\
         \x20 - {{ name: assets, host: '*.cdn.test', path: /, upstream: shop, blocklist: false, upstream_host: assets.internal }}\n\
         \x20 - {{ name: pages, path: /products/, upstream: shop, forwarded: false }}\n",
        shop = servers(&[&shop]),
        account = servers(&[&account]),
    );
    let limits = "  - { name: cart, key: ip, requests: 5, per: 1m, buys: false }";
    let edge = shop_edge(origin.addr, limits, "ip:127.0.0.1\n", &extra).await;
    let c = reqwest::Client::new();

    // The sale's own routes come first: the page is the edge's (and the blocklisted address
    // only matters where a route says so).
    let (status, server, _) = get(&c, &format!("{}/", edge.base), &[]).await;
    assert_eq!(
        (status, server.as_str()),
        (200, ""),
        "the sale page is the edge's"
    );

    // A product page goes to the shop, without X-Forwarded-* (forwarded: false), and with the
    // client's forged X-Flashgate-* removed.
    let (status, server, _) = get(
        &c,
        &format!("{}/products/42?x=1", edge.base),
        &[
            ("x-flashgate-uid", "admin"),
            ("x-flashgate-signature", "00"),
        ],
    )
    .await;
    // The blocklist applies by default: 127.0.0.1 is listed.
    assert_eq!(
        status, 403,
        "a blocklisted address on a route with the blocklist"
    );
    assert_eq!(server, "");
    // On the assets route (blocklist: false, any subdomain of cdn.test) it passes.
    let (status, server, _) = get(
        &c,
        &format!("{}/img/a.png", edge.base),
        &[
            ("host", "img.cdn.test"),
            ("x-flashgate-uid", "admin"),
            ("X-Flashgate-Other", "1"),
        ],
    )
    .await;
    assert_eq!((status, server.as_str()), (200, "shop"));
    let seen = shop.requests();
    let last = seen.last().expect("the shop saw the request");
    assert_eq!(last.path, "/img/a.png");
    assert_eq!(
        last.header("host").as_deref(),
        Some("assets.internal"),
        "upstream_host"
    );
    assert_eq!(
        last.header("x-forwarded-host").as_deref(),
        Some("img.cdn.test")
    );
    assert_eq!(last.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(last.header("x-forwarded-proto").as_deref(), Some("http"));
    assert!(
        last.headers
            .iter()
            .all(|(n, _)| !n.starts_with("x-flashgate-")),
        "no client X-Flashgate-* header reaches a server: {:?}",
        last.headers
    );
    // `cdn.test` itself is not a subdomain of it: no route, 404.
    let (status, server, body) = get(
        &c,
        &format!("{}/img/a.png", edge.base),
        &[("host", "cdn.test")],
    )
    .await;
    assert_eq!(
        (status, server.as_str(), outcome(&body).as_str()),
        (404, "", "not_found")
    );
    drop(edge);

    // The same shop without the address on the blocklist.
    let edge = shop_edge(origin.addr, limits, "", &extra).await;
    let (status, server, _) = get(&c, &format!("{}/products/42", edge.base), &[]).await;
    assert_eq!((status, server.as_str()), (200, "shop"));
    let last = shop.requests().pop().unwrap();
    assert_eq!(last.header("x-forwarded-for"), None, "forwarded: false");
    // A route is matched on the path as a server reads it: an escaped spelling reaches the
    // route its meaning does, and a path a server could read otherwise is refused.
    assert_eq!(raw_status(&edge.base, "/%70roducts/1").await, 200);
    assert_eq!(
        shop.requests().pop().unwrap().path,
        "/%70roducts/1",
        "sent as written"
    );
    for ambiguous in [
        "/products/../account/x",
        "/products/%2e%2e/account/x",
        "/products//x",
    ] {
        assert_eq!(raw_status(&edge.base, ambiguous).await, 400, "{ambiguous}");
    }
    // An absolute-form target with no Host is routed by the target's host: the account route,
    // whose login it lacks (Pingora would send the target's host upstream as the Host).
    let head = "GET http://shop.test/account/orders HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_eq!(
        raw_request(&edge.base, head).await,
        401,
        "no way around the login"
    );
    // TRACE would echo the edge's signed headers: the edge refuses it.
    let trace = "TRACE /products/1 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_request(&edge.base, trace).await, 405);
    // A path parameter some servers drop is no way onto another route either.
    assert_eq!(raw_status(&edge.base, "/products/..;/account/x").await, 400);

    // login: required — without a login 401, with one the UID goes signed.
    let account_url = format!("{}/account/orders", edge.base);
    let (status, _, body) = get(&c, &account_url, &[("host", "shop.test")]).await;
    assert_eq!((status, outcome(&body).as_str()), (401, "login_required"));
    let forged = token_with("not-the-login-secret-0123456789abcdef", "u1", 3600);
    let (status, _, _) = get(
        &c,
        &account_url,
        &[
            ("host", "shop.test"),
            ("authorization", &format!("Bearer {forged}")),
        ],
    )
    .await;
    assert_eq!(status, 401, "a forged login is no login");
    let login = format!("Bearer {}", token("u1"));
    let (status, server, _) = get(
        &c,
        &account_url,
        &[
            ("host", "shop.test"),
            ("authorization", &login),
            ("x-flashgate-uid", "u2"),
        ],
    )
    .await;
    assert_eq!((status, server.as_str()), (200, "account"));
    let seen = account.requests().pop().unwrap();
    assert_eq!(seen.header("x-flashgate-uid").as_deref(), Some("u1"));
    let timestamp: u64 = seen
        .header("x-flashgate-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    let signature = seen.header("x-flashgate-signature").unwrap();
    let edge_secret = Secret::new(EDGE_SECRET.as_bytes().to_vec());
    assert!(verify_route_signature(
        &edge_secret,
        "u1",
        timestamp,
        &signature
    ));
    assert!(!verify_route_signature(
        &edge_secret,
        "u2",
        timestamp,
        &signature
    ));
    // Another host: the account route does not match; nothing else takes /account/.
    let (status, _, _) = get(
        &c,
        &account_url,
        &[("host", "other.test"), ("authorization", &login)],
    )
    .await;
    assert_eq!(status, 404);

    // The cart: methods, the body limit, the route's limit (5 a minute per address).
    let cart = format!("{}/cart", edge.base);
    let put = c.put(&cart).send().await.unwrap();
    assert_eq!(
        put.status().as_u16(),
        404,
        "PUT is not one of the cart's methods"
    );
    let big = c.post(&cart).body(vec![b'x'; 101]).send().await.unwrap();
    assert_eq!(big.status().as_u16(), 413);
    assert_eq!(outcome(&big.text().await.unwrap()), "body_too_large");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = c.post(&cart).body("item=1").send().await.unwrap();
        statuses.push(r.status().as_u16());
    }
    // The 413 was refused before the route's policy: five pass, the sixth is over.
    assert_eq!(
        statuses,
        vec![200, 200, 200, 200, 200, 429],
        "the cart's limit"
    );
    let posts = shop
        .requests()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(
        posts, 5,
        "the shop saw each allowed POST once, never the refused ones"
    );

    // The buy path is untouched by the shop's limit (buys: false).
    let m = edge.metrics().await;
    assert_eq!(
        sample(
            &m,
            r#"flashgate_route_requests_total{class="2xx",route="cart"}"#
        ),
        Some(5.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"flashgate_requests_total{outcome="proxied",route="shop"}"#
        ),
        Some(8.0),
        "two product pages, the account page, five cart POSTs"
    );
    assert_eq!(
        sample(
            &m,
            r#"flashgate_requests_total{outcome="bad_request",route="shop"}"#
        ),
        Some(4.0),
        "the four ambiguous paths"
    );
    assert_eq!(
        sample(
            &m,
            r#"flashgate_route_requests_total{class="4xx",route="cart"}"#
        ),
        Some(2.0),
        "the edge's own 413 and 429 on the cart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_server_is_left_out_and_no_get_fails() {
    let origin = Origin::start().await;
    let a = ShopServer::start("a").await;
    let b = ShopServer::start("b").await;
    let c3 = ShopServer::start("c").await;
    let extra = format!(
        "upstreams:\n\
         \x20 shop:\n\
         \x20   servers: [{list}]\n\
         \x20   health: {{ path: /healthz, interval: 200ms, timeout: 200ms, fall: 2, rise: 2 }}\n\
         \x20   eject: {{ failures: 1, for: 2s }}\n\
         \x20   connect_timeout: 300ms\n\
         routes:\n\
         \x20 - {{ name: pages, upstream: shop, retries: 2 }}\n",
        list = servers(&[&a, &b, &c3]),
    );
    let edge = shop_edge(origin.addr, "  []", "", &extra).await;
    let client = reqwest::Client::new();
    // 8 clients, each GETs in a loop for 4 s (bounded); server b dies after 1 s.
    let started = Instant::now();
    let url = format!("{}/products/1", edge.base);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = BTreeMap::<(u16, String), usize>::new();
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(4) && n < 5_000 {
                let (status, server, _) = get(&c, &url, &[]).await;
                *statuses.entry((status, server)).or_default() += 1;
                n += 1;
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.kill();
    let killed_at = started.elapsed();
    let mut told = BTreeMap::<(u16, String), usize>::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *told.entry(k).or_default() += v;
        }
    }
    eprintln!("killed b at {killed_at:?}; told {told:?}");
    assert!(
        told.keys().all(|(status, _)| *status == 200),
        "every GET was answered 200 while a server died: {told:?}"
    );
    for id in ["a", "b", "c"] {
        assert!(told.keys().any(|(_, s)| s == id), "{id} served: {told:?}");
    }
    // b is down on the dashboard and was ejected; a and c are up.
    let m = metrics_when(
        &edge,
        &format!(
            r#"flashgate_upstream_healthy{{server="{}",upstream="shop"}}"#,
            b.addr
        ),
        0.0,
    )
    .await;
    for (s, up) in [(&a, 1.0), (&b, 0.0), (&c3, 1.0)] {
        let series = format!(
            r#"flashgate_upstream_healthy{{server="{}",upstream="shop"}}"#,
            s.addr
        );
        assert_eq!(sample(&m, &series), Some(up), "{series}\n{m}");
    }
    let errors = format!(
        r#"flashgate_upstream_requests_total{{class="error",server="{}",upstream="shop"}}"#,
        b.addr
    );
    assert!(sample(&m, &errors).unwrap_or(0.0) >= 1.0, "{m}");
    // Health checks ran: every server was asked /healthz.
    assert!(a.seen().iter().any(|s| s.path == "/healthz"));

    // b comes back: after `rise` passes it serves again.
    let b2 = ShopServer::start_on("b", b.addr).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    while b2.requests().is_empty() && Instant::now() < deadline {
        let _ = get(&client, &url, &[]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !b2.requests().is_empty(),
        "b serves again once its checks pass"
    );
}

/// A server that reads a request and closes the connection without an answer.
async fn breaker() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_never_sent_twice_and_the_edge_says_what_failed() {
    use std::sync::atomic::Ordering;
    let origin = Origin::start().await;
    let live = ShopServer::start("live").await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (broken, broken_seen) = breaker().await;
    let extra = format!(
        "upstreams:\n\
         \x20 mixed: {{ servers: ['{dead}', {live}], eject: {{ failures: 0 }}, connect_timeout: 300ms }}\n\
         \x20 ejects: {{ servers: ['{dead}', {live}], eject: {{ failures: 1, for: 1m }} }}\n\
         \x20 broken: {{ servers: ['{broken}'] }}\n\
         \x20 hung: {{ servers: [{live}], read_timeout: 500ms }}\n\
         \x20 nothing: {{ servers: ['{dead}'], health: {{ check: tcp, interval: 100ms, timeout: 100ms, fall: 1 }} }}\n\
         routes:\n\
         \x20 - {{ path: /mixed/, upstream: mixed, retries: 3 }}\n\
         \x20 - {{ path: /ejects/, upstream: ejects }}\n\
         \x20 - {{ path: /broken/, upstream: broken, retries: 3 }}\n\
         \x20 - {{ path: /slow, upstream: hung }}\n\
         \x20 - {{ path: /none/, upstream: nothing }}\n",
        live = servers(&[&live]),
    );
    let edge = shop_edge(origin.addr, "  []", "", &extra).await;
    let c = reqwest::Client::new();

    // Round robin over a dead and a live server: every GET is answered by the live one (a
    // refused connect is tried again elsewhere); a POST that met the dead one is 502, never
    // resent.
    let mut gets = BTreeMap::<u16, usize>::new();
    let mut posts = BTreeMap::<u16, usize>::new();
    for i in 0..20 {
        let (status, _, _) = get(&c, &format!("{}/mixed/{i}", edge.base), &[]).await;
        *gets.entry(status).or_default() += 1;
        let r = c
            .post(format!("{}/mixed/{i}", edge.base))
            .body("order")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 502 {
            assert_eq!(outcome(&r.text().await.unwrap()), "bad_gateway");
        }
        *posts.entry(status).or_default() += 1;
    }
    eprintln!("GETs told {gets:?}; POSTs told {posts:?}");
    assert_eq!(gets, BTreeMap::from([(200, 20)]), "every GET answered");
    assert!(
        posts.get(&502).copied().unwrap_or(0) > 0,
        "some POST met the dead server: {posts:?}"
    );
    let received = live
        .requests()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(
        received,
        posts.get(&200).copied().unwrap_or(0),
        "the live server got exactly the POSTs answered 200: none resent"
    );

    // With passive ejection, the dead server is left out after its first refused connect.
    let before = live.requests().len();
    for i in 0..6 {
        let (status, server, _) = get(&c, &format!("{}/ejects/{i}", edge.base), &[]).await;
        assert_eq!((status, server.as_str()), (200, "live"));
    }
    assert_eq!(live.requests().len() - before, 6);
    let m = edge.metrics().await;
    let dead_series = |name: &str| format!(r#"{name}{{server="{dead}",upstream="ejects"}}"#);
    assert_eq!(
        sample(&m, &dead_series("flashgate_upstream_ejections_total")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &dead_series("flashgate_upstream_healthy")),
        Some(0.0),
        "{m}"
    );

    // A server that takes the request and breaks the connection: 502, and the POST reached it
    // once (a fresh connection that broke is not retried: the request was sent).
    let r = c
        .post(format!("{}/broken/x", edge.base))
        .body("order")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 502);
    assert_eq!(outcome(&r.text().await.unwrap()), "bad_gateway");
    assert_eq!(
        broken_seen.load(Ordering::SeqCst),
        1,
        "the POST was sent once"
    );

    // A server that does not answer within read_timeout: 504, soon.
    let t = Instant::now();
    let (status, _, body) = get(&c, &format!("{}/slow", edge.base), &[]).await;
    assert_eq!((status, outcome(&body).as_str()), (504, "gateway_timeout"));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A pool whose only server is down: 503 with Retry-After, once the check saw it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = c.get(format!("{}/none/x", edge.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    let body = r.text().await.unwrap();
    assert_eq!(outcome(&body), "no_healthy_upstream", "{body}");
    assert!(!body.contains("127.0.0.1"), "no internal detail: {body}");
    let m = edge.metrics().await;
    for (o, n) in [
        ("bad_gateway", 1.0),
        ("gateway_timeout", 1.0),
        ("no_healthy_upstream", 1.0),
    ] {
        let series = format!(r#"flashgate_requests_total{{outcome="{o}",route="shop"}}"#);
        assert!(sample(&m, &series).unwrap_or(0.0) >= n, "{series}\n{m}");
    }
}

/// A private CA `name` and a server certificate it signed for `localhost` and 127.0.0.1:
/// the CA's certificate, the server's, and the server's key.
fn private_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let file = |suffix: &str| dir.join(format!("{name}-{suffix}"));
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (ca, ca_key) = (file("ca.pem"), file("ca.key"));
    let (csr, cert, key) = (file("server.csr"), file("server.pem"), file("server.key"));
    let ext = file("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let s = |p: &PathBuf| p.to_string_lossy().into_owned();
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    let (ca_s, ca_key_s) = (s(&ca), s(&ca_key));
    let subject = format!("/CN={name} test CA");
    args.extend([
        "-days", "30", "-subj", &subject, "-keyout", &ca_key_s, "-out", &ca_s,
    ]);
    openssl(&args);
    let (csr_s, cert_s, key_s, ext_s) = (s(&csr), s(&cert), s(&key), s(&ext));
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-subj", "/CN=localhost", "-keyout", &key_s, "-out", &csr_s]);
    openssl(&args);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr_s,
        "-CA",
        &ca_s,
        "-CAkey",
        &ca_key_s,
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        &ext_s,
        "-out",
        &cert_s,
    ]);
    (ca, cert, key)
}

/// `openssl s_server` serving `dir`'s files over TLS with `cert`.
fn tls_server(dir: &Path, cert: &Path, key: &Path) -> (std::process::Child, u16) {
    let port = free_port();
    let child = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(port.to_string())
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    (child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_server_of_a_private_ca_and_not_under_another() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path(), "shop");
    let (other, _, _) = private_ca(dir.path(), "other");
    std::fs::create_dir(dir.path().join("good")).unwrap();
    std::fs::write(dir.path().join("good/page.txt"), "over tls").unwrap();
    let (mut server, port) = tls_server(dir.path(), &cert, &key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let extra = format!(
        "upstreams:\n\
         \x20 good: {{ servers: ['127.0.0.1:{port}'], tls: {{ sni: localhost, ca: '{ca}' }} }}\n\
         \x20 wrong: {{ servers: ['127.0.0.1:{port}'], tls: {{ sni: localhost, ca: '{other}' }} }}\n\
         \x20 name: {{ servers: ['127.0.0.1:{port}'], tls: {{ sni: elsewhere.test, ca: '{ca}' }} }}\n\
         routes:\n\
         \x20 - {{ path: /good/, upstream: good, upstream_host: localhost }}\n\
         \x20 - {{ path: /wrong/, upstream: wrong }}\n\
         \x20 - {{ path: /name/, upstream: name }}\n",
        ca = ca.display(),
        other = other.display(),
    );
    let edge = shop_edge(origin.addr, "  []", "", &extra).await;
    let c = reqwest::Client::new();
    // s_server -WWW serves a path relative to its directory; the route passes the path on.
    let (status, _, body) = get(&c, &format!("{}/good/page.txt", edge.base), &[]).await;
    let (status2, _, body2) = get(&c, &format!("{}/wrong/x", edge.base), &[]).await;
    let (status3, _, body3) = get(&c, &format!("{}/name/x", edge.base), &[]).await;
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        (status, body.as_str()),
        (200, "over tls"),
        "verified under the private CA"
    );
    assert_eq!(
        (status2, outcome(&body2).as_str()),
        (502, "bad_gateway"),
        "another CA: refused"
    );
    assert_eq!(
        (status3, outcome(&body3).as_str()),
        (502, "bad_gateway"),
        "another name: refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_the_routes_keeps_the_health_and_fails_no_request() {
    let origin = Origin::start().await;
    let a = ShopServer::start("a").await;
    let pool = format!(
        "upstreams:\n\
         \x20 shop: {{ servers: [{}], health: {{ path: /healthz, interval: 200ms, timeout: 200ms, fall: 1, rise: 3 }} }}\n\
         routes:\n\
         \x20 - {{ name: p, path: /p/, upstream: shop }}\n",
        servers(&[&a])
    );
    let edge = shop_edge(origin.addr, "  []", "", &pool).await;
    let c = reqwest::Client::new();
    let (p, q) = (format!("{}/p/1", edge.base), format!("{}/q/1", edge.base));
    assert_eq!(get(&c, &p, &[]).await.0, 200);
    assert_eq!(get(&c, &q, &[]).await.0, 404, "no route for /q/ yet");

    // a fails its checks: no server up.
    a.set_sick(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&c, &p, &[]).await.0 != 503 {
        assert!(Instant::now() < deadline, "a never went down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A reload adds a route and leaves the pool as it was: a stays down (a new registry would
    // start it healthy), and the new route is there at once.
    let file = edge.dir.path().join("flashgate.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let with_q = text.replace(
        "  - { name: p, path: /p/, upstream: shop }\n",
        "  - { name: p, path: /p/, upstream: shop }\n  - { name: q, path: /q/, upstream: shop }\n",
    );
    assert_ne!(with_q, text);
    std::fs::write(&file, &with_q).unwrap();
    edge.reload().await;
    let (status, _, body) = get(&c, &q, &[]).await;
    assert_eq!(
        (status, outcome(&body).as_str()),
        (503, "no_healthy_upstream"),
        "health kept"
    );
    a.set_sick(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&c, &q, &[]).await.0 != 200 {
        assert!(Instant::now() < deadline, "a never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Reloads under a crowd of GETs (4 clients, bounded by time and count) fail none of them.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, p) = (c.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let mut told = BTreeMap::<u16, usize>::new();
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(60) && n < 20_000 {
                *told.entry(get(&c, &p, &[]).await.0).or_default() += 1;
                n += 1;
                if STOP.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
            }
            told
        }));
    }
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    for i in 0..5 {
        let next = if i % 2 == 0 { &text } else { &with_q };
        std::fs::write(&file, next).unwrap();
        edge.reload().await;
    }
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut told = BTreeMap::<u16, usize>::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *told.entry(k).or_default() += v;
        }
    }
    eprintln!("during 5 reloads: {told:?}");
    assert_eq!(
        told.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "{told:?}"
    );
    assert!(
        told[&200] > 20,
        "the crowd ran through the reloads: {told:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn winners_go_to_an_origin_pool_and_a_dead_server_loses_none() {
    let live = Origin::start().await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let yaml = format!(
        "listen: 127.0.0.1:{listen}\n\
         admin_listen: 127.0.0.1:{admin}\n\
         secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
         upstreams:\n\
         \x20 orders: {{ servers: ['{dead}', '{live}'], eject: {{ failures: 0 }} }}\n\
         origin: {{ upstream: orders, path: /orders, connect_timeout: 500ms }}\n\
         store: {{ kind: memory }}\n\
         static_dir: {static_dir}\n\
         catalog: {{ products: [1-1000] }}\n\
         sales:\n{sale}\n\
         limits: []\n",
        live = live.addr,
        static_dir = static_dir().display(),
        sale = sale(),
    );
    let edge = Edge::start(&yaml, dir, "127.0.0.1", listen, admin).await;
    let url = edge.buy_url(7).await;
    let c = reqwest::Client::new();
    let mut told = BTreeMap::<(u16, String), usize>::new();
    for i in 0..5 {
        *told
            .entry(buy_outcome(&c, &url, &format!("p{i}")).await)
            .or_default() += 1;
    }
    // Round robin sends every other forward to the dead server first: its refused connect
    // reached nothing, so the next server takes the forward.
    assert_eq!(
        told,
        BTreeMap::from([((200, "won".to_string()), 5)]),
        "{told:?}"
    );
    let forwards = live.forwards();
    let mut reservations: Vec<String> = forwards
        .iter()
        .map(|f| f.header("x-flashgate-reservation"))
        .collect();
    reservations.sort();
    reservations.dedup();
    assert_eq!(
        (forwards.len(), reservations.len()),
        (5, 5),
        "each forward reached the live server once"
    );
    let m = edge.metrics().await;
    let errors = format!(
        r#"flashgate_upstream_requests_total{{class="error",server="{dead}",upstream="orders"}}"#
    );
    assert!(sample(&m, &errors).unwrap_or(0.0) >= 2.0, "{m}");
}

/// Two `flashgate-orders` on one PostgreSQL and one Redis as the origin pool of an edge selling
/// to a crowd; one is SIGKILLed mid-sale. Forwards that could not connect go to the other; a
/// forward that reached the killed one and got no answer is pending and settled by the ledger.
/// The sale is judged as every fault test judges it: exactly the stock sold, exactly that many
/// orders, nobody twice, every winner with an order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_pool_of_two_order_backends_survives_one_killed_mid_sale() {
    use crate::common::crowd::{Crowd, Pace};
    use crate::common::judge::{self, SaleUnderTest};
    use crate::common::orders_server::{Database, OrdersServer};
    use crate::common::redis_server::RedisServer;
    use flashgate::config::Target;

    const STOCK: u64 = 150;
    let redis = RedisServer::start();
    let db = Database::postgres();
    let mut first = OrdersServer::start(&db, &redis.url(), "15m").await;
    let second = OrdersServer::start(&db, &redis.url(), "15m").await;
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let yaml = format!(
        "listen: 127.0.0.1:{listen}\n\
         admin_listen: 127.0.0.1:{admin}\n\
         threads: 2\n\
         secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
         upstreams:\n\
         \x20 orders:\n\
         \x20   servers: ['127.0.0.1:{a}', '127.0.0.1:{b}']\n\
         \x20   health: {{ path: /healthz, interval: 300ms, timeout: 1s, fall: 2 }}\n\
         origin: {{ upstream: orders, path: /orders, connect_timeout: 500ms }}\n\
         store: {{ kind: redis, url: '{redis}', timeout: 500ms }}\n\
         static_dir: {static_dir}\n\
         catalog: {{ products: [1-1000] }}\n\
         sales:\n  - {{ product: 7, stock: {STOCK}, starts_at: '{start}', ends_at: '{end}' }}\n\
         limits: []\n",
        a = first.port,
        b = second.port,
        redis = redis.url(),
        static_dir = static_dir().display(),
        start = at(-60),
        end = at(3600),
    );
    let config = dir.path().join("flashgate.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let out = flashgate(&["stock", "load", "--config", &config.to_string_lossy()]);
    assert!(
        out.status.success(),
        "stock load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edge = Edge::start(&yaml, dir, "127.0.0.1", listen, admin).await;
    let pace = Pace {
        users: 800,
        arrivals_per_s: 10.0,
        workers: 2,
        pause: Duration::from_millis(20),
        max_duration: Duration::from_secs(25),
        max_requests: 30_000,
    };
    let crowd = Crowd::start(&edge.buy_url(7).await, "o", pace);
    tokio::time::sleep(Duration::from_secs(4)).await;
    first.kill();
    let answers = crowd.finish().await;
    eprintln!("told {:?}", judge::histogram(&answers));
    for line in edge
        .log()
        .lines()
        .filter(|l| l.contains("forward failed"))
        .take(5)
    {
        eprintln!("edge: {line}");
    }
    // No client need see the kill: a forward that could not connect went to the other server.
    judge::answers(&answers, false);
    let target = Target::Single(redis.url());
    let sale = SaleUnderTest {
        target: &target,
        database_url: &db.url(),
        product: 7,
        stock: STOCK,
    };
    judge::sale(&sale, &answers, || {
        format!("{}\n{}", first.log(), second.log())
    })
    .await;
    let m = edge.metrics().await;
    for port in [first.port, second.port] {
        let series = format!(
            r#"flashgate_upstream_requests_total{{class="2xx",server="127.0.0.1:{port}",upstream="orders"}}"#
        );
        assert!(
            sample(&m, &series).unwrap_or(0.0) > 0.0,
            "both took forwards: {series}\n{m}"
        );
    }
    // The edge saw the kill (the sale was still selling then: the check found it down).
    let down = format!(
        r#"flashgate_upstream_healthy{{server="127.0.0.1:{}",upstream="orders"}}"#,
        first.port
    );
    assert_eq!(sample(&m, &down), Some(0.0), "{m}");
    let after_kill = answers
        .iter()
        .filter(|a| a.status == 201 && a.at > Duration::from_secs(5))
        .count();
    eprintln!("won after the kill: {after_kill}");
    assert!(after_kill > 0, "units were still selling after the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_passes_through_and_its_bytes_are_no_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = Origin::start().await;
    let shop = ShopServer::start("ws").await;
    let extra = format!(
        "upstreams:\n\
         \x20 live: {{ servers: [{}] }}\n\
         routes:\n\
         \x20 - {{ path: /ws, upstream: live, max_body_bytes: 16 }}\n",
        servers(&[&shop])
    );
    let edge = shop_edge(origin.addr, "  []", "", &extra).await;
    let mut stream = tokio::net::TcpStream::connect(edge.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(
            n,
            1,
            "the connection closed: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // More bytes than the route's body limit, both ways: an upgraded stream is not a body.
    let message = vec![b'w'; 4096];
    stream.write_all(&message).await.unwrap();
    let mut echoed = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut echoed))
        .await
        .expect("the echo")
        .unwrap();
    assert_eq!(echoed, message);
    let seen = shop.requests().pop().unwrap();
    assert_eq!(seen.header("upgrade").as_deref(), Some("websocket"));
}

/// An HTTP/2 server with prior knowledge (h2c) on a free port: every request answered `200`
/// with `h2 <path>`; returns its address and how many requests it took.
async fn h2c_server() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let body = format!("h2 {}", req.uri().path());
                    let resp = http::Response::builder().status(200).body(()).unwrap();
                    if let Ok(mut send) = respond.send_response(resp, false) {
                        let _ = send.send_data(bytes::Bytes::from(body), true);
                    }
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_pool_is_spoken_to_in_http2() {
    use std::sync::atomic::Ordering;
    let origin = Origin::start().await;
    let (h2, taken) = h2c_server().await;
    let extra = format!(
        "upstreams:\n\
         \x20 h2: {{ servers: ['{h2}'], protocol: h2 }}\n\
         routes:\n\
         \x20 - {{ path: /h2/, upstream: h2 }}\n"
    );
    let edge = shop_edge(origin.addr, "  []", "", &extra).await;
    let c = reqwest::Client::new();
    for i in 0..3 {
        let (status, _, body) = get(&c, &format!("{}/h2/{i}", edge.base), &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (200, format!("h2 /h2/{i}").as_str())
        );
    }
    assert_eq!(
        taken.load(Ordering::SeqCst),
        3,
        "the HTTP/2 server took each request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_writes_shop_requests_under_route_shop() {
    let origin = Origin::start().await;
    let shop = ShopServer::start("logged").await;
    let logs = tempfile::tempdir().unwrap();
    let file = logs.path().join("access.log");
    let extra = format!(
        "upstreams:\n\
         \x20 shop: {{ servers: [{}] }}\n\
         routes:\n\
         \x20 - {{ path: /p/, upstream: shop }}\n\
         access_log: {{ path: '{}', routes: [shop] }}\n",
        servers(&[&shop]),
        file.display()
    );
    let edge = shop_edge(origin.addr, "  []", "", &extra).await;
    let c = reqwest::Client::new();
    assert_eq!(get(&c, &format!("{}/p/1", edge.base), &[]).await.0, 200);
    assert_eq!(
        get(&c, &format!("{}/", edge.base), &[]).await.0,
        200,
        "the page: not logged"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if !text.is_empty() || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["route"], "shop");
    assert_eq!(lines[0]["outcome"], "proxied");
    assert_eq!(lines[0]["status"], 200);
}
