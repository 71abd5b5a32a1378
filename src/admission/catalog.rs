//! Is this product known at all? A Bloom filter over the catalog answers in a few hash probes
//! with no false "no": an id it rejects is certainly unknown, an id it accepts is known or, at
//! the configured false-positive rate, a stray that the sale lookup then turns away.

use bloomfilter::Bloom;

use crate::config::Catalog;

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the catalog filter: {0}")]
pub struct CatalogError(&'static str);

/// The catalog filter.
pub struct ProductFilter {
    bloom: Bloom<u64>,
    items: u64,
}

impl ProductFilter {
    /// Build the filter over every id of `catalog`.
    pub fn build(catalog: &Catalog) -> Result<Self, CatalogError> {
        let items = catalog.len();
        let mut bloom = Bloom::new_for_fp_rate(items.max(1) as usize, catalog.false_positive_rate)
            .map_err(CatalogError)?;
        for id in catalog.ids() {
            bloom.set(&id);
        }
        Ok(ProductFilter { bloom, items })
    }

    /// False means certainly not in the catalog.
    pub fn may_contain(&self, product: u64) -> bool {
        self.bloom.check(&product)
    }

    /// Ids the filter was built over.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Bytes of the filter's bitmap.
    pub fn bytes(&self) -> u64 {
        self.bloom.len().div_ceil(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IdRange;

    #[test]
    fn knows_every_member_and_few_strangers() {
        let catalog = Catalog {
            ranges: vec![IdRange {
                first: 1,
                last: 10_000,
            }],
            listed: vec![555_555],
            false_positive_rate: 0.001,
        };
        let f = ProductFilter::build(&catalog).unwrap();
        assert!((1..=10_000).all(|id| f.may_contain(id)));
        assert!(f.may_contain(555_555));
        let strays = (1_000_000..1_100_000)
            .filter(|id| f.may_contain(*id))
            .count();
        assert!(
            strays < 400,
            "{strays} false positives in 100k (expected ~100)"
        );
    }
}
