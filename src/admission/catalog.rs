//! Is this product known at all? Ranges of the catalog (`products: [1-1000]`, and range lines
//! of `products_file`) are kept as ranges and answered exactly by a binary search, whatever
//! their size. Ids listed one by one (`products_file`) are kept exactly too while they are few
//! (up to [`EXACT_IDS`], 512 KiB); beyond that they go into a blocked Bloom filter
//! ([`super::bloom`]: one cache line per id), which answers with no false "no": an id it
//! rejects is certainly unknown, an id it accepts is known or, at the configured
//! false-positive rate, a stray that the sale lookup then turns away.

use super::bloom::BlockedBloom;

use crate::config::{Catalog, ListedError};

/// Why the filter could not be built: `products_file` cannot be read again as it was.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the catalog filter: {0}")]
pub struct CatalogError(#[from] ListedError);

/// Listed ids up to this many are kept in a sorted list rather than a Bloom filter.
pub const EXACT_IDS: usize = 65_536;

/// How the listed ids are held.
enum Listed {
    /// Sorted, for a binary search.
    Exact(Vec<u64>),
    /// Too many to keep: their Bloom filter.
    Bloom(BlockedBloom),
}

/// The catalog filter.
pub struct ProductFilter {
    /// Disjoint, sorted, non-adjacent `(first, last)` ranges.
    ranges: Vec<(u64, u64)>,
    listed: Listed,
    items: u64,
}

/// `ranges` sorted, with overlapping and adjacent ones merged.
fn merged(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match out.last_mut() {
            Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

impl ProductFilter {
    /// Build the filter over every id of `catalog`.
    pub fn build(catalog: &Catalog) -> Result<Self, CatalogError> {
        let ranges = merged(catalog.ranges.iter().map(|r| (r.first, r.last)).collect());
        let count = catalog.listed.len();
        let listed = if count <= EXACT_IDS as u64 {
            let mut ids = Vec::with_capacity(count as usize);
            catalog.listed.for_each(|id| ids.push(id))?;
            ids.sort_unstable();
            ids.dedup();
            Listed::Exact(ids)
        } else {
            let seed =
                crate::ground::clock::now_ms() ^ u64::from(std::process::id()).rotate_left(32);
            let mut bloom = BlockedBloom::new(count, catalog.false_positive_rate, seed);
            catalog.listed.for_each(|id| bloom.insert(id))?;
            Listed::Bloom(bloom)
        };
        Ok(ProductFilter {
            ranges,
            listed,
            items: catalog.len(),
        })
    }

    /// False means certainly not in the catalog.
    pub fn may_contain(&self, product: u64) -> bool {
        let after = self.ranges.partition_point(|&(first, _)| first <= product);
        let in_range = after > 0 && product <= self.ranges[after - 1].1;
        in_range
            || match &self.listed {
                Listed::Exact(ids) => ids.binary_search(&product).is_ok(),
                Listed::Bloom(bloom) => bloom.contains(product),
            }
    }

    /// Ids the filter was built over.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Bytes of the filter: the ranges, and the listed ids or their Bloom filter's bitmap.
    pub fn bytes(&self) -> u64 {
        let listed = match &self.listed {
            Listed::Exact(ids) => (ids.len() * std::mem::size_of::<u64>()) as u64,
            Listed::Bloom(bloom) => bloom.bytes(),
        };
        listed + (self.ranges.len() * std::mem::size_of::<(u64, u64)>()) as u64
    }

    /// Whether listed ids are answered by a Bloom filter (with its false positives).
    pub fn approximate(&self) -> bool {
        matches!(self.listed, Listed::Bloom(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IdRange, ListedIds};
    use std::sync::Arc;

    #[test]
    fn knows_every_member_and_few_strangers() {
        let catalog = Catalog {
            ranges: vec![IdRange {
                first: 1,
                last: 10_000,
            }],
            listed: ListedIds::Ids(Arc::new([555_555])),
            false_positive_rate: 0.001,
        };
        let f = ProductFilter::build(&catalog).unwrap();
        assert!((1..=10_000).all(|id| f.may_contain(id)));
        assert!(f.may_contain(555_555));
        assert!(!f.approximate());
        let strays = (1_000_000..1_100_000)
            .filter(|id| f.may_contain(*id))
            .count();
        assert!(strays == 0, "a short catalog is exact: {strays} strays");
    }

    #[test]
    fn many_listed_ids_go_through_the_bloom_filter() {
        let n = EXACT_IDS as u64 + 1;
        let catalog = Catalog {
            ranges: vec![],
            listed: ListedIds::Ids((1..=n).map(|n| n * 7).collect()),
            false_positive_rate: 0.001,
        };
        let f = ProductFilter::build(&catalog).unwrap();
        assert!(f.approximate());
        assert!((1..=n).all(|n| f.may_contain(n * 7)));
        let strays = (10_000_000..10_100_000)
            .filter(|id| f.may_contain(*id))
            .count();
        assert!(
            strays < 400,
            "{strays} false positives in 100k (expected ~100)"
        );
    }

    #[test]
    fn huge_and_overlapping_ranges_are_exact_and_take_no_room() {
        let range = |first, last| IdRange { first, last };
        let catalog = Catalog {
            ranges: vec![
                range(10, 20),
                range(1, 5),
                range(6, 9),
                range(100, u64::MAX),
                range(15, 30),
            ],
            listed: ListedIds::Ids(Arc::new([])),
            false_positive_rate: 0.001,
        };
        let f = ProductFilter::build(&catalog).unwrap();
        assert_eq!(f.ranges, vec![(1, 30), (100, u64::MAX)]);
        for (id, known) in [(0, false), (1, true), (30, true), (31, false), (99, false)] {
            assert_eq!(f.may_contain(id), known, "{id}");
        }
        assert!(f.may_contain(u64::MAX) && f.may_contain(1 << 40));
        assert!(f.bytes() <= 64);
    }
}
