//! What a sale shows on its page: `sales[].title`, `price` and `image`, checked here. All three
//! are optional; the page falls back to "Product {id}", no price and no image. Text is bounded
//! and free of control characters (it is set with `textContent` and sent as serde JSON, so
//! `<`, quotes and non-ASCII are fine); an image is a file under `static_dir` that exists, or an
//! `https://` URL that parses.

use std::path::Path;

use super::context::Reading;
use super::error::ConfigError;

/// The most characters of a `title`.
pub const MAX_TITLE_CHARS: usize = 120;
/// The most characters of a `price`.
pub const MAX_PRICE_CHARS: usize = 32;
/// The most bytes of an `image` (a path or a URL).
pub const MAX_IMAGE_BYTES: usize = 512;

/// A sale's title, price and image, as the page shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Showcase {
    /// The product's name; None shows "Product {id}".
    pub title: Option<String>,
    /// The price as displayed (`¥99.00`); None shows no price.
    pub price: Option<String>,
    /// The picture; None shows none.
    pub image: Option<Image>,
}

/// `sales[].image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// A file of `static_dir`, by its `/`-separated path relative to it (served under
    /// `/static/`, by its content-hashed name).
    Static(String),
    /// An absolute `https://` URL, as written.
    Https(String),
}

/// Check the showcase fields of `sales[index]`; `static_dir` is where image paths must exist.
pub(crate) fn resolve(
    cx: &Reading,
    index: usize,
    title: Option<&str>,
    price: Option<&str>,
    image: Option<&str>,
    static_dir: &Path,
) -> Result<Showcase, ConfigError> {
    let at = |key: &str| format!("sales[{index}].{key}");
    let title = title
        .map(|t| text(t, MAX_TITLE_CHARS).map_err(|e| cx.err(&at("title"), format!("title {e}"))))
        .transpose()?;
    let price = price
        .map(|p| text(p, MAX_PRICE_CHARS).map_err(|e| cx.err(&at("price"), format!("price {e}"))))
        .transpose()?;
    let image = image
        .map(|i| parse_image(i, static_dir).map_err(|e| cx.err(&at("image"), format!("image {e}"))))
        .transpose()?;
    Ok(Showcase {
        title,
        price,
        image,
    })
}

/// A shown text: trimmed, not empty, at most `max` characters, no control characters.
fn text(value: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is empty; leave it out for the default".into());
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(format!("has {chars} characters; at most {max}"));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!(
            "holds the control character U+{:04X}",
            u32::from(c)
        ));
    }
    Ok(value.to_string())
}

/// An `https://` URL, or a path of an existing file under `static_dir`.
fn parse_image(value: &str, static_dir: &Path) -> Result<Image, String> {
    if value.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "is {} bytes long; at most {MAX_IMAGE_BYTES}",
            value.len()
        ));
    }
    if value.is_empty() {
        return Err("is empty; leave it out for no image".into());
    }
    // Only visible ASCII: a URL or path with spaces, quotes or angle brackets is a typo or worse.
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii_graphic() || "\"'<>`\\".contains(*c))
    {
        return Err(format!(
            "holds {c:?}; use a path under static_dir or an https:// URL (percent-encode)"
        ));
    }
    if value.starts_with("https://") {
        let uri: http::Uri = value
            .parse()
            .map_err(|e| format!("{value:?} is no URL: {e}"))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("{value:?} names no host"));
        }
        return Ok(Image::Https(value.to_string()));
    }
    if value.contains("://") || value.starts_with("//") {
        return Err(format!("{value:?}: only https:// URLs are allowed"));
    }
    let rel = value.strip_prefix("/static/").unwrap_or(value);
    // The characters of a file name the page's references use (`edge::fingerprint`): nothing
    // that a URL would read as a query, a fragment or an escape.
    if let Some(c) = rel
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/".contains(*c)))
    {
        return Err(format!(
            "{value:?} holds {c:?}; a file under static_dir is named with letters, digits, `.`, `_`, `-` and `/`"
        ));
    }
    if rel.starts_with('/')
        || rel
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!(
            "{value:?} is not a plain path under static_dir (e.g. img/phone.webp)"
        ));
    }
    let path = static_dir.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(Image::Static(rel.to_string())),
        Ok(_) => Err(format!(
            "{} is not a regular file (the page serves regular files only)",
            path.display()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_bounded_and_free_of_controls() {
        assert_eq!(
            text("  <b>\"Ünï\" 手机</b> ", 120).unwrap(),
            "<b>\"Ünï\" 手机</b>"
        );
        assert!(text("   ", 10).is_err());
        assert!(text("a\u{7}b", 10).unwrap_err().contains("U+0007"));
        assert!(text("a\nb", 10).is_err());
        assert!(text("a\u{85}b", 10).is_err());
        assert!(text(&"é".repeat(11), 10)
            .unwrap_err()
            .contains("11 characters"));
        assert!(text(&"é".repeat(10), 10).is_ok());
    }

    #[test]
    fn images_are_https_or_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("img")).unwrap();
        std::fs::write(dir.path().join("img/p.png"), b"png").unwrap();
        let d = dir.path();
        assert_eq!(
            parse_image("img/p.png", d).unwrap(),
            Image::Static("img/p.png".into())
        );
        assert_eq!(
            parse_image("/static/img/p.png", d).unwrap(),
            Image::Static("img/p.png".into())
        );
        assert_eq!(
            parse_image("https://cdn.example/p.png?w=2", d).unwrap(),
            Image::Https("https://cdn.example/p.png?w=2".into())
        );
        for bad in [
            "img/missing.png",
            "img",
            "../etc/passwd",
            "img/../img/p.png",
            "/etc/passwd",
            "http://cdn.example/p.png",
            "javascript:alert(1)",
            "//cdn.example/p.png",
            "https://",
            "https://cdn.example/a b.png",
            "https://cdn.example/\"onerror=\"x",
            "img/p.png\u{0}",
            "img/p.png?x",
            "img/p%2e.png",
            "img/p.png#x",
            "",
        ] {
            assert!(parse_image(bad, d).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_image(&format!("https://a.example/{}", "x".repeat(600)), d).is_err());
        // A file that exists but whose name a URL would misread.
        std::fs::write(dir.path().join("img/q?.png"), b"png").unwrap();
        std::fs::write(dir.path().join("img/a%41.png"), b"png").unwrap();
        assert!(parse_image("img/q?.png", d)
            .unwrap_err()
            .contains("holds '?'"));
        assert!(parse_image("img/a%41.png", d)
            .unwrap_err()
            .contains("holds '%'"));
    }
}
