//! Which route a request is for, from its method and path alone. Parsing borrows from the path
//! and allocates nothing. A product id in a path is exactly its decimal digits
//! ([`parse_decimal`]): `/buy/+42/…` is no second spelling of `/buy/42/…`.

use http::Method;

use crate::ground::signing::parse_decimal;

/// A classified request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
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
pub fn classify<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let readable = method == Method::GET || method == Method::HEAD;
    if path == "/" {
        return if readable {
            Route::Index
        } else {
            Route::WrongMethod("GET, HEAD")
        };
    }
    if let Some(rest) = path.strip_prefix("/static/") {
        return if readable {
            Route::Static(rest)
        } else {
            Route::WrongMethod("GET, HEAD")
        };
    }
    if let Some(rest) = path.strip_prefix("/sale/") {
        let Some(product) = rest.strip_suffix("/button.js").and_then(parse_decimal) else {
            return Route::NotFound;
        };
        return if readable {
            Route::Button(product)
        } else {
            Route::WrongMethod("GET, HEAD")
        };
    }
    if path == "/api/challenge" {
        return if readable {
            Route::Challenge
        } else {
            Route::WrongMethod("GET, HEAD")
        };
    }
    if path == "/api/sale" {
        return if readable {
            Route::SaleInfo
        } else {
            Route::WrongMethod("GET, HEAD")
        };
    }
    if path == "/api/queue" {
        return if readable {
            Route::Queue(false)
        } else if method == Method::POST {
            Route::Queue(true)
        } else {
            Route::WrongMethod("GET, HEAD, POST")
        };
    }
    if path == "/api/buy/status" {
        return if readable {
            Route::BuyStatus
        } else {
            Route::WrongMethod("GET, HEAD")
        };
    }
    if path == "/api/queue/draw" {
        return if readable {
            Route::QueueDraw
        } else {
            Route::WrongMethod("GET, HEAD")
        };
    }
    if let Some(rest) = path.strip_prefix("/buy/") {
        if method != Method::POST {
            return Route::WrongMethod("POST");
        }
        let (product, token) = rest.split_once('/').unwrap_or((rest, ""));
        return Route::Buy {
            product: parse_decimal(product),
            token,
        };
    }
    Route::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_route() {
        assert_eq!(classify(&Method::GET, "/"), Route::Index);
        assert_eq!(
            classify(&Method::GET, "/static/a/b.css"),
            Route::Static("a/b.css")
        );
        assert_eq!(
            classify(&Method::GET, "/sale/42/button.js"),
            Route::Button(42)
        );
        assert_eq!(classify(&Method::GET, "/sale/x/button.js"), Route::NotFound);
        assert_eq!(
            classify(&Method::POST, "/buy/42/abc"),
            Route::Buy {
                product: Some(42),
                token: "abc"
            }
        );
        assert_eq!(
            classify(&Method::POST, "/buy/zz"),
            Route::Buy {
                product: None,
                token: ""
            }
        );
        assert_eq!(
            classify(&Method::GET, "/buy/42/abc"),
            Route::WrongMethod("POST")
        );
        assert_eq!(
            classify(&Method::POST, "/"),
            Route::WrongMethod("GET, HEAD")
        );
        assert_eq!(classify(&Method::GET, "/etc/passwd"), Route::NotFound);
        // Found by the property tests (tests/properties): a sign was read as part of the id.
        assert_eq!(
            classify(&Method::POST, "/buy/+42/abc"),
            Route::Buy {
                product: None,
                token: "abc"
            }
        );
        assert_eq!(
            classify(&Method::GET, "/sale/+0/button.js"),
            Route::NotFound
        );
        assert_eq!(classify(&Method::GET, "/api/challenge"), Route::Challenge);
        assert_eq!(classify(&Method::HEAD, "/api/sale"), Route::SaleInfo);
        assert_eq!(
            classify(&Method::POST, "/api/sale"),
            Route::WrongMethod("GET, HEAD")
        );
        assert_eq!(classify(&Method::GET, "/api/sale/"), Route::NotFound);
        assert_eq!(classify(&Method::GET, "/api/queue"), Route::Queue(false));
        assert_eq!(classify(&Method::POST, "/api/queue"), Route::Queue(true));
        assert_eq!(
            classify(&Method::DELETE, "/api/queue"),
            Route::WrongMethod("GET, HEAD, POST")
        );
        assert_eq!(classify(&Method::GET, "/api/queue/draw"), Route::QueueDraw);
        assert_eq!(classify(&Method::GET, "/api/buy/status"), Route::BuyStatus);
        assert_eq!(
            classify(&Method::POST, "/api/buy/status"),
            Route::WrongMethod("GET, HEAD")
        );
        assert_eq!(
            classify(&Method::POST, "/api/challenge"),
            Route::WrongMethod("GET, HEAD")
        );
    }
}
