//! `catalog:` resolved: the ranges written in the file and in `products_file`, and the ids
//! `products_file` lists one by one. Those ids are never held in the configuration: a catalog
//! of ten million of them would keep 80 MB for the life of the process. The file is read as a
//! stream, once to check every line (errors name the file, line and column), count the ids and
//! take a digest, and again by whoever builds a membership structure from it
//! ([`ListedIds::for_each`]), which fails if the file changed in between.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{DefaultHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::context::Reading;
use super::error::{ConfigError, Position};
use super::schema::FileConfig;
use super::values::IdRange;

/// `catalog:` resolved.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Ranges written in the file, and the ranges of `products_file`.
    pub ranges: Vec<IdRange>,
    /// Single ids: those of `products_file`.
    pub listed: ListedIds,
    /// Wanted false-positive rate of the Bloom filter.
    pub false_positive_rate: f64,
}

/// Single product ids: in memory (built by a program), or the lines of `products_file`.
#[derive(Debug, Clone)]
pub enum ListedIds {
    /// Ids held in memory.
    Ids(Arc<[u64]>),
    /// Ids read from a file, as it was when the configuration was read.
    File(ListedFile),
}

/// `products_file`'s single ids, as read when the configuration was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// The file.
    pub path: PathBuf,
    /// How many single ids it lists (repeats count each time).
    pub count: u64,
    /// A digest of its bytes: a second read that differs is refused.
    digest: u64,
    /// Which of the sales' products it lists, found while reading it.
    sale_ids: Vec<u64>,
}

/// Why the listed ids could not be read again.
#[derive(Debug, thiserror::Error)]
pub enum ListedError {
    /// The file cannot be read, or a line no longer parses.
    #[error(transparent)]
    Read(#[from] ConfigError),
    /// The file is not what it was when the configuration was read.
    #[error("{} changed since the configuration was read; load it again", .0.display())]
    Changed(PathBuf),
}

impl ListedIds {
    /// How many ids there are.
    pub fn len(&self) -> u64 {
        match self {
            ListedIds::Ids(ids) => ids.len() as u64,
            ListedIds::File(f) => f.count,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Call `each` with every id, in order.
    pub fn for_each(&self, mut each: impl FnMut(u64)) -> Result<(), ListedError> {
        match self {
            ListedIds::Ids(ids) => {
                ids.iter().copied().for_each(each);
                Ok(())
            }
            ListedIds::File(f) => {
                let read = read_id_file(&f.path, |line| {
                    if let Line::Id(id) = line {
                        each(id);
                    }
                })?;
                if read.digest == f.digest && read.count == f.count {
                    Ok(())
                } else {
                    Err(ListedError::Changed(f.path.clone()))
                }
            }
        }
    }

    /// Whether `id` is listed; for a file, answered for the ids the sales name (the only ids
    /// the configuration asks about), false for any other.
    fn names_sale(&self, id: u64) -> bool {
        match self {
            ListedIds::Ids(ids) => ids.contains(&id),
            ListedIds::File(f) => f.sale_ids.contains(&id),
        }
    }
}

impl Catalog {
    /// How many ids the catalog holds (ids in both a range and the file count twice).
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .map(IdRange::len)
            .fold(self.listed.len(), u64::saturating_add)
    }

    /// Whether the catalog holds no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the catalog holds `id`, one of the sales' products (for the ids a file lists,
    /// only those were noted while it was read).
    pub(crate) fn has_sale_product(&self, id: u64) -> bool {
        self.ranges.iter().any(|r| r.contains(id)) || self.listed.names_sale(id)
    }
}

pub(super) fn resolve_catalog(cx: &Reading, file: &FileConfig) -> Result<Catalog, ConfigError> {
    let fpr = file.catalog.false_positive_rate;
    if !(fpr > 0.0 && fpr < 0.5) {
        return Err(cx.err(
            "catalog.false_positive_rate",
            format!("false_positive_rate must be between 0 and 0.5, found {fpr}"),
        ));
    }
    let mut ranges = file.catalog.products.clone();
    let listed = match &file.catalog.products_file {
        Some(path) => {
            let wanted: HashSet<u64> = file.sales.iter().map(|s| s.product).collect();
            let mut sale_ids = Vec::new();
            let read = read_id_file(path, |line| match line {
                Line::Id(id) if wanted.contains(&id) => sale_ids.push(id),
                Line::Id(_) => {}
                Line::Range(range) => ranges.push(range),
            })?;
            ListedIds::File(ListedFile {
                path: path.clone(),
                count: read.count,
                digest: read.digest,
                sale_ids,
            })
        }
        None => ListedIds::Ids(Arc::new([])),
    };
    let catalog = Catalog {
        ranges,
        listed,
        false_positive_rate: fpr,
    };
    if catalog.is_empty() {
        return Err(cx.err(
            "catalog",
            "the catalog is empty: list products (e.g. [1-1000]) and/or a products_file",
        ));
    }
    Ok(catalog)
}

/// One meaningful line of a products file.
enum Line {
    Id(u64),
    Range(IdRange),
}

/// What a read of a products file found.
#[derive(Debug)]
struct Read {
    count: u64,
    digest: u64,
}

/// One product id a line; blank lines and `#` comments are skipped. A line may also be a
/// range (`1-1000`): ranges are kept whole, whatever their size, never expanded into ids. A
/// line of digits alone is read without the general parser (the usual line of a large file).
fn read_id_file(path: &Path, mut each: impl FnMut(Line)) -> Result<Read, ConfigError> {
    let unreadable = |source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path).map_err(unreadable)?);
    let mut digest = DefaultHasher::new();
    let mut line = Vec::with_capacity(64);
    let (mut n, mut count) = (0usize, 0u64);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(unreadable)? == 0 {
            break;
        }
        n += 1;
        digest.write(&line);
        let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if let Some(id) = digits(bytes) {
            count += 1;
            each(Line::Id(id));
            continue;
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let column = String::from_utf8_lossy(&bytes[..e.valid_up_to()])
                .chars()
                .count()
                + 1;
            ConfigError::at(path, Position { line: n, column }, "expected UTF-8 text")
        })?;
        let body = text.split('#').next().unwrap_or("");
        let trimmed = body.trim();
        if trimmed.is_empty() {
            continue;
        }
        let range: IdRange = trimmed.parse().map_err(|msg: String| {
            ConfigError::at(path, Position::first_non_blank(n, body), msg)
        })?;
        if range.first == range.last {
            count += 1;
            each(Line::Id(range.first));
        } else {
            each(Line::Range(range));
        }
    }
    Ok(Read {
        count,
        digest: digest.finish(),
    })
}

/// `bytes` as an id when it is 1 to 19 ASCII digits and nothing else (always within `u64`);
/// anything else goes through the general parser.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn ids(path: &Path) -> (Vec<u64>, Vec<(u64, u64)>, u64) {
        let (mut ids, mut ranges) = (Vec::new(), Vec::new());
        let read = read_id_file(path, |line| match line {
            Line::Id(id) => ids.push(id),
            Line::Range(r) => ranges.push((r.first, r.last)),
        })
        .unwrap();
        assert_eq!(read.count, ids.len() as u64);
        (ids, ranges, read.digest)
    }

    #[test]
    fn lines_are_ids_ranges_comments_and_blanks() {
        // Found by the property tests (tests/properties): a range line was expanded into its
        // ids, so `1-99999999999999` aborted the process allocating them.
        let f = file("42\n  7 \r\n# a comment\n\n1-99999999999999 # wide\n 0-18446744073709551615\n9999999999999999999\n18446744073709551615\n3");
        let (ids, ranges, _) = ids(f.path());
        assert_eq!(ids, [42, 7, 9_999_999_999_999_999_999, u64::MAX, 3]);
        assert_eq!(ranges, [(1, 99_999_999_999_999), (0, u64::MAX)]);
    }

    #[test]
    fn a_bad_line_is_named_with_its_position() {
        for (text, line, column) in [
            ("1\n2\n  +3\n", 3, 3),
            ("1\n18446744073709551616\n", 2, 1),
            ("1\n\u{3000}x\n", 2, 2),
            ("1\n5-4\n", 2, 1),
        ] {
            let f = file(text);
            let err = read_id_file(f.path(), |_| {}).unwrap_err();
            assert_eq!(
                err.position(),
                Some(Position { line, column }),
                "{text:?}: {err}"
            );
        }
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"1\nab\xff\n").unwrap();
        let err = read_id_file(f.path(), |_| {}).unwrap_err();
        assert_eq!(err.position(), Some(Position { line: 2, column: 3 }));
    }

    #[test]
    fn a_file_changed_after_it_was_read_is_refused() {
        let f = file("1\n2\n3\n");
        let (_, _, digest) = ids(f.path());
        let listed = ListedIds::File(ListedFile {
            path: f.path().to_path_buf(),
            count: 3,
            digest,
            sale_ids: vec![],
        });
        let mut seen = vec![];
        listed.for_each(|id| seen.push(id)).unwrap();
        assert_eq!(seen, [1, 2, 3]);
        std::fs::write(f.path(), "1\n2\n4\n").unwrap();
        assert!(matches!(
            listed.for_each(|_| {}),
            Err(ListedError::Changed(_))
        ));
    }
}
