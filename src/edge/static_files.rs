//! The static sale page, read from `static_dir` once at start-up and served from memory with a
//! strong ETag, `If-None-Match` → 304, a CDN-friendly `Cache-Control` and the right
//! `Content-Type`. Text files (HTML, CSS, JavaScript, JSON, SVG) are compressed once at load,
//! with brotli and with gzip, and the variant the client's `Accept-Encoding` prefers is served
//! (`Content-Encoding`, `Vary: Accept-Encoding`, an ETag per variant); a variant that would
//! not be smaller is not kept. Each asset is served under its content-hashed name too
//! ([`fingerprint`]), cached for a year, and the references to it are rewritten. Only files found under `static_dir` at start-up exist in the table, so no
//! request path — `..`, `%2e%2e`, `%2f`, backslashes — can name anything else; such paths are
//! also refused before the lookup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use super::fingerprint;

/// Largest file loaded; larger ones belong on a CDN, not in the gateway's memory.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Files smaller than this are served as they are: compression would not pay for its headers.
const MIN_COMPRESS_BYTES: usize = 256;

/// One file held in memory.
#[derive(Debug, Clone)]
pub struct StaticFile {
    /// The content.
    pub body: Bytes,
    /// Strong ETag, quoted.
    pub etag: String,
    /// Content-Type value.
    pub content_type: String,
    /// Cache-Control value.
    pub cache_control: &'static str,
    /// Whether the file is text that is offered compressed (`Vary: Accept-Encoding`).
    pub compressible: bool,
    /// Whether it is served under its content-hashed name (cached for a year).
    pub immutable: bool,
    /// The brotli variant, when smaller.
    pub br: Option<Encoded>,
    /// The gzip variant, when smaller.
    pub gzip: Option<Encoded>,
}

/// A compressed variant of a file.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The compressed content.
    pub body: Bytes,
    /// Its own strong ETag (the file's, tagged with the coding).
    pub etag: String,
}

impl Encoded {
    fn chosen(&self, coding: &'static str) -> Chosen<'_> {
        Chosen {
            body: &self.body,
            etag: &self.etag,
            encoding: Some(coding),
        }
    }
}

/// What to send for one request: the body, its ETag and its `Content-Encoding`, if any.
#[derive(Debug, Clone, Copy)]
pub struct Chosen<'a> {
    pub body: &'a Bytes,
    pub etag: &'a str,
    pub encoding: Option<&'static str>,
}

impl StaticFile {
    /// The variant `accept_encoding` (the request's header) prefers: brotli, then gzip, then
    /// the file as it is.
    pub fn choose<'a>(&'a self, accept_encoding: Option<&[u8]>) -> Chosen<'a> {
        let accepts = |coding: &str| {
            accept_encoding
                .and_then(|v| std::str::from_utf8(v).ok())
                .is_some_and(|v| accepts(v, coding))
        };
        let variant = |e: Option<&'a Encoded>, name: &'static str| {
            e.filter(|_| accepts(name)).map(|e| e.chosen(name))
        };
        variant(self.br.as_ref(), "br")
            .or_else(|| variant(self.gzip.as_ref(), "gzip"))
            .unwrap_or(Chosen {
                body: &self.body,
                etag: &self.etag,
                encoding: None,
            })
    }
}

/// Whether an `Accept-Encoding` value accepts `coding` (listed, or `*`, with a q above 0).
fn accepts(header: &str, coding: &str) -> bool {
    let mut star = false;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q > 0.0;
        }
        if name == "*" {
            star = q > 0.0;
        }
    }
    star
}

/// `body` compressed with gzip and brotli, each kept only when smaller.
fn compress(body: &[u8], etag: &str) -> (Option<Encoded>, Option<Encoded>) {
    use std::io::Write;
    let tagged = |coding: &str| format!("{}-{coding}\"", etag.trim_end_matches('"'));
    let keep = |out: Vec<u8>, coding: &str| {
        (out.len() < body.len()).then(|| Encoded {
            body: Bytes::from(out),
            etag: tagged(coding),
        })
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gzip = gz
        .write_all(body)
        .and_then(|()| gz.finish())
        .ok()
        .and_then(|out| keep(out, "gz"));
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    let br = brotli::BrotliCompress(&mut &body[..], &mut out, &params)
        .ok()
        .and_then(|_| keep(out, "br"));
    (br, gzip)
}

/// Why the static directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    /// Reading failed.
    #[error("static_dir {}: {source}", path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is too large.
    #[error("static file {} is over {MAX_FILE_BYTES} bytes", .0.display())]
    TooLarge(PathBuf),
}

/// Every file of static_dir, by path relative to it (`/`-separated).
#[derive(Debug, Default)]
pub struct StaticFiles {
    files: HashMap<String, StaticFile>,
}

impl StaticFiles {
    /// Load every regular file under `dir` (symbolic links are skipped), each asset also
    /// under its content-hashed name ([`fingerprint`]) with the references to it rewritten.
    pub fn load(dir: &Path) -> Result<Self, StaticError> {
        let mut read = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            let io = |source| StaticError::Io {
                path: current.clone(),
                source,
            };
            for entry in std::fs::read_dir(&current).map_err(io)? {
                let entry = entry.map_err(io)?;
                let kind = entry.file_type().map_err(io)?;
                let path = entry.path();
                if kind.is_dir() {
                    pending.push(path);
                } else if kind.is_file() {
                    let body = read_bytes(&path)?;
                    read.push((relative_key(dir, &path), path, body));
                }
            }
        }
        // The texts whose references can be rewritten, and the hashes of everything else.
        let mut texts = HashMap::new();
        let mut binary = HashMap::new();
        for (rel, path, body) in &read {
            match std::str::from_utf8(body) {
                Ok(text) if is_text(&mime_of(path)) => {
                    texts.insert(rel.clone(), text.to_string());
                }
                _ => {
                    binary.insert(rel.clone(), fingerprint::digest(body));
                }
            }
        }
        let assets: HashMap<String, String> = texts
            .iter()
            .filter(|(rel, _)| !rel.ends_with(".html"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let names = fingerprint::names(&assets, &binary);
        let mut files = HashMap::new();
        for (rel, path, body) in read {
            let body = match texts.get(&rel) {
                Some(text) => fingerprint::rewrite(text, &names).into_bytes(),
                None => body,
            };
            let mime = mime_of(&path);
            if let Some(hashed) = names.get(&rel).filter(|_| !is_html(&mime)) {
                files.insert(hashed.clone(), build(&mime, body.clone(), true));
            }
            files.insert(rel, build(&mime, body, false));
        }
        Ok(StaticFiles { files })
    }

    /// The content-hashed name a request should use for `rel` (for tests and tools).
    pub fn hashed(&self, rel: &str) -> Option<&str> {
        let etag = &self.files.get(rel)?.etag;
        self.files
            .iter()
            .find(|(name, f)| name.as_str() != rel && &f.etag == etag && f.immutable)
            .map(|(name, _)| name.as_str())
    }

    /// The file a request path names (`rest` is the part after `/static/`, still
    /// percent-encoded), or None.
    pub fn lookup(&self, rest: &str) -> Option<&StaticFile> {
        let decoded = percent_decode_str(rest).decode_utf8().ok()?;
        if decoded.is_empty()
            || decoded.starts_with('/')
            || decoded.contains('\\')
            || decoded.contains('\0')
            || decoded
                .split('/')
                .any(|seg| seg == ".." || seg == "." || seg.is_empty())
        {
            return None;
        }
        self.files.get(decoded.as_ref())
    }

    /// How many files are held.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is held.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

fn relative_key(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, StaticError> {
    let io = |source| StaticError::Io {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::metadata(path).map_err(io)?.len() > MAX_FILE_BYTES {
        return Err(StaticError::TooLarge(path.to_path_buf()));
    }
    std::fs::read(path).map_err(io)
}

fn mime_of(path: &Path) -> mime_guess::Mime {
    mime_guess::from_path(path).first_or_octet_stream()
}

fn is_html(mime: &mime_guess::Mime) -> bool {
    mime.subtype() == mime_guess::mime::HTML
}

/// Text worth compressing, whose `/static/…` references are rewritten.
fn is_text(mime: &mime_guess::Mime) -> bool {
    mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
        || mime.subtype() == mime_guess::mime::JSON
        || mime.subtype() == mime_guess::mime::SVG
}

/// A file as served: `immutable` for a content-hashed name.
fn build(mime: &mime_guess::Mime, body: Vec<u8>, immutable: bool) -> StaticFile {
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    let content_type = if mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
        || mime.subtype() == mime_guess::mime::JSON
    {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let compressible = is_text(mime);
    let (br, gzip) = if compressible && body.len() >= MIN_COMPRESS_BYTES {
        compress(&body, &etag)
    } else {
        (None, None)
    };
    StaticFile {
        body: Bytes::from(body),
        etag,
        content_type,
        cache_control: if immutable {
            // The name changes with the content: keep it for a year.
            "public, max-age=31536000, immutable"
        } else if is_html(mime) {
            // The page itself may change up to the sale.
            "public, max-age=30, s-maxage=60, stale-while-revalidate=30"
        } else {
            "public, max-age=300, s-maxage=3600"
        },
        compressible,
        immutable,
        br,
        gzip,
    }
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, as RFC 9110 asks for it).
pub fn not_modified(if_none_match: Option<&[u8]>, etag: &str) -> bool {
    let Some(value) = if_none_match.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, StaticFiles) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<h1>sale</h1>").unwrap();
        std::fs::create_dir(dir.path().join("css")).unwrap();
        std::fs::write(dir.path().join("css/app.css"), "body{}").unwrap();
        let f = StaticFiles::load(dir.path()).unwrap();
        (dir, f)
    }

    #[test]
    fn serves_files_with_types_and_etags() {
        let (_d, f) = files();
        let page = f.lookup("index.html").unwrap();
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert!(not_modified(Some(page.etag.as_bytes()), &page.etag));
        assert!(not_modified(
            Some(format!("W/{}, \"x\"", page.etag).as_bytes()),
            &page.etag
        ));
        assert!(!not_modified(Some(b"\"other\""), &page.etag));
        assert_eq!(
            f.lookup("css/app.css").unwrap().content_type,
            "text/css; charset=utf-8"
        );
        assert!(
            f.lookup("css%2Fapp.css").is_some(),
            "an encoded slash inside static_dir is fine"
        );
    }

    #[test]
    fn text_is_offered_compressed_as_the_client_prefers() {
        let dir = tempfile::tempdir().unwrap();
        let script = "function buy() { return fetch('/buy'); }\n".repeat(40);
        std::fs::write(dir.path().join("app.js"), &script).unwrap();
        std::fs::write(dir.path().join("tiny.css"), "body{}").unwrap();
        let f = StaticFiles::load(dir.path()).unwrap();
        let js = f.lookup("app.js").unwrap();
        assert!(js.compressible);
        let br = js.choose(Some(b"gzip, deflate, br"));
        assert_eq!(br.encoding, Some("br"));
        assert!(br.body.len() < script.len() / 5, "{}", br.body.len());
        assert_ne!(br.etag, js.etag);
        let gz = js.choose(Some(b"gzip;q=1, br;q=0"));
        assert_eq!(gz.encoding, Some("gzip"));
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut plain)
            .unwrap();
        assert_eq!(plain, script);
        let mut unbr = Vec::new();
        brotli::BrotliDecompress(&mut &br.body[..], &mut unbr).unwrap();
        assert_eq!(unbr, script.as_bytes());
        for identity in [
            None,
            Some(&b"identity"[..]),
            Some(b"gzip;q=0, br;q=0"),
            Some(b"deflate"),
        ] {
            let c = js.choose(identity);
            assert_eq!(
                (c.encoding, c.etag),
                (None, js.etag.as_str()),
                "{identity:?}"
            );
        }
        assert_eq!(js.choose(Some(b"*")).encoding, Some("br"));
        // Too small to pay: served as it is.
        let css = f.lookup("tiny.css").unwrap();
        assert!(css.br.is_none() && css.gzip.is_none());
        assert_eq!(css.choose(Some(b"br")).encoding, None);
    }

    #[test]
    fn traversal_never_escapes() {
        let (_d, f) = files();
        for bad in [
            "../Cargo.toml",
            "%2e%2e/Cargo.toml",
            "%2E%2E%2FCargo.toml",
            "css/../../etc/passwd",
            "..%5cCargo.toml",
            "/etc/passwd",
            "%2fetc%2fpasswd",
            "css//app.css",
            "./index.html",
            "index.html%00",
        ] {
            assert!(f.lookup(bad).is_none(), "{bad} must not resolve");
        }
    }
}
