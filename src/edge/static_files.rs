//! The static sale page, read from `static_dir` once at start-up and served from memory with a
//! strong ETag, `If-None-Match` → 304, a CDN-friendly `Cache-Control` and the right
//! `Content-Type`. Only files found under `static_dir` at start-up exist in the table, so no
//! request path — `..`, `%2e%2e`, `%2f`, backslashes — can name anything else; such paths are
//! also refused before the lookup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

/// Largest file loaded; larger ones belong on a CDN, not in the gateway's memory.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

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
    /// Load every regular file under `dir` (symbolic links are skipped).
    pub fn load(dir: &Path) -> Result<Self, StaticError> {
        let mut files = HashMap::new();
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
                    let rel = relative_key(dir, &path);
                    let file = read_file(&path)?;
                    files.insert(rel, file);
                }
            }
        }
        Ok(StaticFiles { files })
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

fn read_file(path: &Path) -> Result<StaticFile, StaticError> {
    let io = |source| StaticError::Io {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::metadata(path).map_err(io)?.len() > MAX_FILE_BYTES {
        return Err(StaticError::TooLarge(path.to_path_buf()));
    }
    let body = std::fs::read(path).map_err(io)?;
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let content_type = if mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
        || mime.subtype() == mime_guess::mime::JSON
    {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let is_html = mime.subtype() == mime_guess::mime::HTML;
    Ok(StaticFile {
        body: Bytes::from(body),
        etag,
        content_type,
        // The page itself may change up to the sale; assets are fingerprinted by ETag.
        cache_control: if is_html {
            "public, max-age=30, s-maxage=60, stale-while-revalidate=30"
        } else {
            "public, max-age=300, s-maxage=3600"
        },
    })
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
