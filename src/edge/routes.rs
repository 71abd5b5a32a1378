//! Which route a request is for, from its method and path alone. Parsing borrows from the path
//! and allocates nothing. A product id in a path is exactly its decimal digits
//! ([`parse_decimal`]): `/buy/+42/…` is no second spelling of `/buy/42/…`.

use http::Method;

use crate::ground::signing::parse_decimal;

/// A classified request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `GET /`: the sale page.
    Index,
    /// `GET /static/<rest>`: a file of static_dir (`rest` still percent-encoded).
    Static(&'a str),
    /// `GET /sale/{product}/button.js`.
    Button(u64),
    /// `GET /api/challenge?product=ID`: a proof-of-work challenge.
    Challenge,
    /// `GET /api/sale?product=ID`: what a sale is (title, price, image, times).
    SaleInfo,
    /// `POST /api/queue?product=ID` (join, `true`) or `GET` (poll, `false`).
    Queue(bool),
    /// `GET /api/queue/draw?product=ID`: the shuffle's published draw.
    QueueDraw,
    /// `GET /api/buy/status?product=ID`: whether the logged-in user won (after `202 pending`).
    BuyStatus,
    /// `POST /buy/{product}/{token}`; `product` is None when it is not a number.
    Buy {
        /// The product id, if the segment is a number.
        product: Option<u64>,
        /// Everything after the product segment.
        token: &'a str,
    },
    /// A known path with the wrong method; carries the `Allow` value.
    WrongMethod(&'static str),
    /// Nothing here.
    NotFound,
}

/// Classify `method` and `path` (the path without the query).
pub fn classify<'a>(method: &Method, path: &'a str) -> Endpoint<'a> {
    let readable = method == Method::GET || method == Method::HEAD;
    if path == "/" {
        return if readable {
            Endpoint::Index
        } else {
            Endpoint::WrongMethod("GET, HEAD")
        };
    }
    if let Some(rest) = path.strip_prefix("/static/") {
        return if readable {
            Endpoint::Static(rest)
        } else {
            Endpoint::WrongMethod("GET, HEAD")
        };
    }
    if let Some(rest) = path.strip_prefix("/sale/") {
        let Some(product) = rest.strip_suffix("/button.js").and_then(parse_decimal) else {
            return Endpoint::NotFound;
        };
        return if readable {
            Endpoint::Button(product)
        } else {
            Endpoint::WrongMethod("GET, HEAD")
        };
    }
    if path == "/api/challenge" {
        return if readable {
            Endpoint::Challenge
        } else {
            Endpoint::WrongMethod("GET, HEAD")
        };
    }
    if path == "/api/sale" {
        return if readable {
            Endpoint::SaleInfo
        } else {
            Endpoint::WrongMethod("GET, HEAD")
        };
    }
    if path == "/api/queue" {
        return if readable {
            Endpoint::Queue(false)
        } else if method == Method::POST {
            Endpoint::Queue(true)
        } else {
            Endpoint::WrongMethod("GET, HEAD, POST")
        };
    }
    if path == "/api/buy/status" {
        return if readable {
            Endpoint::BuyStatus
        } else {
            Endpoint::WrongMethod("GET, HEAD")
        };
    }
    if path == "/api/queue/draw" {
        return if readable {
            Endpoint::QueueDraw
        } else {
            Endpoint::WrongMethod("GET, HEAD")
        };
    }
    if let Some(rest) = path.strip_prefix("/buy/") {
        if method != Method::POST {
            return Endpoint::WrongMethod("POST");
        }
        let (product, token) = rest.split_once('/').unwrap_or((rest, ""));
        return Endpoint::Buy {
            product: parse_decimal(product),
            token,
        };
    }
    Endpoint::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_route() {
        assert_eq!(classify(&Method::GET, "/"), Endpoint::Index);
        assert_eq!(
            classify(&Method::GET, "/static/a/b.css"),
            Endpoint::Static("a/b.css")
        );
        assert_eq!(
            classify(&Method::GET, "/sale/42/button.js"),
            Endpoint::Button(42)
        );
        assert_eq!(
            classify(&Method::GET, "/sale/x/button.js"),
            Endpoint::NotFound
        );
        assert_eq!(
            classify(&Method::POST, "/buy/42/abc"),
            Endpoint::Buy {
                product: Some(42),
                token: "abc"
            }
        );
        assert_eq!(
            classify(&Method::POST, "/buy/zz"),
            Endpoint::Buy {
                product: None,
                token: ""
            }
        );
        assert_eq!(
            classify(&Method::GET, "/buy/42/abc"),
            Endpoint::WrongMethod("POST")
        );
        assert_eq!(
            classify(&Method::POST, "/"),
            Endpoint::WrongMethod("GET, HEAD")
        );
        assert_eq!(classify(&Method::GET, "/etc/passwd"), Endpoint::NotFound);
        // Found by the property tests (tests/properties): a sign was read as part of the id.
        assert_eq!(
            classify(&Method::POST, "/buy/+42/abc"),
            Endpoint::Buy {
                product: None,
                token: "abc"
            }
        );
        assert_eq!(
            classify(&Method::GET, "/sale/+0/button.js"),
            Endpoint::NotFound
        );
        assert_eq!(
            classify(&Method::GET, "/api/challenge"),
            Endpoint::Challenge
        );
        assert_eq!(classify(&Method::HEAD, "/api/sale"), Endpoint::SaleInfo);
        assert_eq!(
            classify(&Method::POST, "/api/sale"),
            Endpoint::WrongMethod("GET, HEAD")
        );
        assert_eq!(classify(&Method::GET, "/api/sale/"), Endpoint::NotFound);
        assert_eq!(classify(&Method::GET, "/api/queue"), Endpoint::Queue(false));
        assert_eq!(classify(&Method::POST, "/api/queue"), Endpoint::Queue(true));
        assert_eq!(
            classify(&Method::DELETE, "/api/queue"),
            Endpoint::WrongMethod("GET, HEAD, POST")
        );
        assert_eq!(
            classify(&Method::GET, "/api/queue/draw"),
            Endpoint::QueueDraw
        );
        assert_eq!(
            classify(&Method::GET, "/api/buy/status"),
            Endpoint::BuyStatus
        );
        assert_eq!(
            classify(&Method::POST, "/api/buy/status"),
            Endpoint::WrongMethod("GET, HEAD")
        );
        assert_eq!(
            classify(&Method::POST, "/api/challenge"),
            Endpoint::WrongMethod("GET, HEAD")
        );
    }
}
