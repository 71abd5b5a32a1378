//! `GET /api/sale?product=ID`: what a sale is — its title, price and image, when it opens and
//! closes, its captcha, its waiting room (`queue`: null, or the mode, when joining opens, the
//! admission rate and how long a turn lasts) — as JSON for the page, fetched once per page view (the once-a-second
//! `button.js` stays small: it carries only what changes). Every body is built with serde when
//! a configuration is built (start-up, reload), with a strong ETag from its content; a request
//! is a table look-up. An image under `static_dir` is given by its content-hashed name, so it is
//! cached for a year and still never stale.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::static_files::StaticFiles;
use crate::config::{Captcha, Image, QueueSettings, Sale};

/// How long a browser or CDN may keep a sale's description (`Cache-Control`).
pub const CACHE_CONTROL: &str = "public, max-age=5";

/// One sale's prepared answer.
#[derive(Debug, Clone)]
pub struct Described {
    /// The JSON body.
    pub body: Bytes,
    /// Its strong ETag (quoted).
    pub etag: String,
}

/// Every sale's prepared answer, by product.
#[derive(Debug, Default)]
pub struct SaleInfo {
    sales: HashMap<u64, Described>,
}

#[derive(Serialize)]
struct Body<'a> {
    product: u64,
    title: Option<&'a str>,
    price: Option<&'a str>,
    image: Option<String>,
    starts_at: String,
    ends_at: String,
    starts_at_ms: u64,
    ends_at_ms: u64,
    captcha: &'static str,
    queue: Option<QueueBody>,
}

/// `queue` of the answer: what the page needs to draw the waiting room.
#[derive(Serialize)]
struct QueueBody {
    mode: &'static str,
    /// When `POST /api/queue` starts taking places (`starts_at` less the pre-queue).
    opens_at_ms: u64,
    admit_per_second: u64,
    pass_ttl_s: u64,
}

impl QueueBody {
    fn of(q: &QueueSettings, starts_ms: u64) -> Self {
        let prequeue_ms = u64::try_from(q.prequeue.as_millis()).unwrap_or(u64::MAX);
        QueueBody {
            mode: q.mode.name(),
            opens_at_ms: starts_ms.saturating_sub(prequeue_ms),
            admit_per_second: q.admit_per_second,
            pass_ttl_s: q.pass_ttl.as_secs(),
        }
    }
}

impl SaleInfo {
    /// Describe every sale of `sales`; static images are named as `files` serves them.
    pub fn build(sales: &[Sale], files: &StaticFiles) -> Self {
        let sales = sales
            .iter()
            .map(|sale| (sale.product, describe(sale, files)))
            .collect();
        SaleInfo { sales }
    }

    /// The prepared answer for `product`, if it is on sale.
    pub fn get(&self, product: u64) -> Option<&Described> {
        self.sales.get(&product)
    }
}

/// The JSON for one sale.
fn describe(sale: &Sale, files: &StaticFiles) -> Described {
    let show = &sale.showcase;
    let image = show.image.as_ref().map(|image| match image {
        // The configuration checked that the file exists; a file that went away between the
        // check and the load keeps its plain name (a 404 rather than no answer).
        Image::Static(rel) => format!("/static/{}", files.hashed(rel).unwrap_or(rel)),
        Image::Https(url) => url.clone(),
    });
    let body = Body {
        product: sale.product,
        title: show.title.as_deref(),
        price: show.price.as_deref(),
        image,
        starts_at: sale.starts_at.to_string(),
        ends_at: sale.ends_at.to_string(),
        starts_at_ms: sale.starts_at.unix_millis(),
        ends_at_ms: sale.ends_at.unix_millis(),
        captcha: match sale.captcha {
            Captcha::None => "none",
            Captcha::Pow => "pow",
            Captcha::Token => "token",
        },
        queue: sale
            .queue
            .as_ref()
            .map(|q| QueueBody::of(q, sale.starts_at.unix_millis())),
    };
    // Serializing plain strings and numbers cannot fail; an empty object is the safe fallback.
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let digest = Sha256::digest(&json);
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    Described {
        body: Bytes::from(json),
        etag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Showcase, Timestamp};
    use std::time::{Duration, UNIX_EPOCH};

    fn sale(showcase: Showcase) -> Sale {
        Sale {
            product: 9,
            stock: 1,
            starts_at: Timestamp(UNIX_EPOCH + Duration::from_secs(1000)),
            ends_at: Timestamp(UNIX_EPOCH + Duration::from_secs(2000)),
            captcha: Captcha::Pow,
            showcase,
            queue: None,
        }
    }

    #[test]
    fn describes_with_serde_and_hashed_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.png"), b"\x89PNG").unwrap();
        let files = StaticFiles::load(dir.path()).unwrap();
        let title = "<script>alert(\"x\")</script> 手机 '";
        let info = SaleInfo::build(
            &[sale(Showcase {
                title: Some(title.into()),
                price: Some("¥99.00".into()),
                image: Some(Image::Static("p.png".into())),
            })],
            &files,
        );
        let d = info.get(9).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(v["title"], title);
        assert_eq!(v["price"], "¥99.00");
        assert_eq!(v["captcha"], "pow");
        assert_eq!(v["starts_at_ms"], 1_000_000);
        let hashed = files.hashed("p.png").unwrap();
        assert_ne!(hashed, "p.png");
        assert_eq!(v["image"], format!("/static/{hashed}"));
        assert!(d.etag.starts_with('"') && d.etag.len() == 26);
        assert!(info.get(10).is_none());
        // The fallbacks are nulls, and another description has another ETag.
        let plain = SaleInfo::build(&[sale(Showcase::default())], &files);
        let p = plain.get(9).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        assert!(v["title"].is_null() && v["price"].is_null() && v["image"].is_null());
        assert!(v["queue"].is_null());
        assert_ne!(p.etag, d.etag);
        // A queued sale says how its waiting room works.
        let mut queued = sale(Showcase::default());
        queued.queue = Some(QueueSettings {
            mode: crate::config::QueueMode::Shuffle,
            prequeue: Duration::from_secs(300),
            admit_per_second: 50,
            pass_ttl: Duration::from_secs(90),
            stock_multiple: 2,
        });
        let info = SaleInfo::build(&[queued], &files);
        let v: serde_json::Value = serde_json::from_slice(&info.get(9).unwrap().body).unwrap();
        assert_eq!(
            v["queue"],
            serde_json::json!({"mode": "shuffle", "opens_at_ms": 700_000,
                "admit_per_second": 50, "pass_ttl_s": 90})
        );
    }
}
