//! `GET /api/sale?product=ID` through the real binary: the configured title, price and image
//! as serde JSON (markup, quotes and non-ASCII kept as written), the image by its hashed name,
//! the fallbacks, the ETag and `304`, the fixed refusals, and a reload that changes the title
//! (a new body and a new ETag).

use crate::common::*;
use serde_json::Value;

const TOKEN: &str = "sale-info-token-0123456789abcdef-0123456789";
const TITLE: &str = r#"<script>alert("x")</script> 'Ünïcode' 手机 & co"#;

fn sales(title: &str) -> String {
    let (start, end) = (at(-60), at(3600));
    // serde_json writes a YAML double-quoted scalar.
    let title = serde_json::to_string(title).unwrap();
    format!(
        "  - {{ product: 1, stock: 1, starts_at: '{start}', ends_at: '{end}', captcha: pow, \
              title: {title}, price: '¥99.00', image: img/phone.svg }}\n\
         \x20 - {{ product: 2, stock: 1, starts_at: '{start}', ends_at: '{end}' }}\n\
         \x20 - {{ product: 3, stock: 1, starts_at: '{start}', ends_at: '{end}', \
              image: 'https://cdn.example/p.webp?w=2&h=1' }}"
    )
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_each_sale_with_etag_and_fallbacks() {
    let origin = Origin::start().await;
    let sales = sales(TITLE);
    let edge = edge_with(
        Setup {
            store: "{ kind: memory }",
            origin: origin.addr,
            sales: &sales,
            limits: "  []",
            trusted: "[]",
            blocklist: "",
        },
        &format!("admin_token: {TOKEN}"),
    )
    .await;
    let c = reqwest::Client::new();
    let url = format!("{}/api/sale?product=1", edge.base);

    let (status, headers, v) = get(&c, &url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "public, max-age=5");
    assert_eq!(v["product"], 1);
    assert_eq!(v["title"], TITLE);
    assert_eq!(v["price"], "¥99.00");
    assert_eq!(v["captcha"], "pow");
    assert!(v["queue"].is_null());
    assert!(v["starts_at_ms"].as_u64().unwrap() < v["ends_at_ms"].as_u64().unwrap());
    let image = v["image"].as_str().unwrap();
    assert!(
        image.starts_with("/static/img/phone.") && image.ends_with(".svg") && image.len() > 25,
        "{image}"
    );
    let served = c.get(format!("{}{image}", edge.base)).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let shipped = std::fs::read(static_dir().join("img/phone.svg")).unwrap();
    assert_eq!(served.bytes().await.unwrap().as_ref(), shipped.as_slice());

    // Revalidation: 304 with the same ETag and no body.
    let etag = headers["etag"].clone();
    let again = c
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.bytes().await.unwrap().is_empty());

    // The fallbacks are nulls; an https image is given as written.
    let (_, _, plain) = get(&c, &format!("{}/api/sale?product=2", edge.base)).await;
    assert_eq!(
        (&plain["title"], &plain["price"], &plain["image"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(plain["captcha"], "none");
    let (_, _, remote) = get(&c, &format!("{}/api/sale?product=3", edge.base)).await;
    assert_eq!(remote["image"], "https://cdn.example/p.webp?w=2&h=1");

    // Fixed refusals.
    for query in ["product=4", "product=x", "product=+1", "", "p=1"] {
        let (status, _, v) = get(&c, &format!("{}/api/sale?{query}", edge.base)).await;
        assert_eq!(
            (status, v["outcome"].as_str()),
            (404, Some("unknown_product")),
            "{query}"
        );
    }
    let post = c.post(&url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let head = c.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());

    // A reload with another title: a new body, a new ETag; the old ETag no longer matches.
    let config = edge.dir.path().join("flashgate.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    let renamed = yaml.replace(
        &serde_json::to_string(TITLE).unwrap(),
        "\"Phone, second edition\"",
    );
    assert_ne!(renamed, yaml);
    std::fs::write(&config, renamed).unwrap();
    let reloaded = c
        .post(format!("{}/admin/reload", edge.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 200);
    let (status, headers, v) = get(&c, &url).await;
    assert_eq!(status, 200);
    assert_eq!(v["title"], "Phone, second edition");
    assert_ne!(headers["etag"], etag);
    let stale = c
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);

    let metrics = reqwest::get(format!("{}/metrics", edge.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("flashgate_requests_total{outcome=\"not_modified\",route=\"button\"} 1"),
        "the description is counted with the button script:\n{metrics}"
    );
}
