//! A reserve attempt: the edge's one try at taking a unit for a buy, named by a random id the
//! edge makes before it sends the reserve. When the store never answers a reserve that was sent
//! (a timeout, a connection broken after the write), the buyer is told `202 pending` with the
//! attempt's status URL; asking it settles the attempt in the store itself — it took a unit and
//! the buyer holds it, or it is fenced and never will ([`super::StockStore::fence`]) — so every
//! edge gives the same answer, however late the reserve's bytes arrive.

use std::fmt;
use std::time::Duration;

/// How long a store remembers an attempt (what it took, or that it is fenced): far longer than
/// any reserve's bytes can be held in the network and still be delivered.
pub const ATTEMPT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The id of one reserve attempt: 32 lowercase hex digits (128 random bits), so that no one
/// can name, and fence, another buyer's attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attempt(String);

/// Why an attempt could not be named.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a reserve attempt id: {0}")]
pub struct AttemptError(getrandom::Error);

impl Attempt {
    /// A fresh attempt id from the operating system's randomness.
    pub fn new() -> Result<Self, AttemptError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(AttemptError)?;
        Ok(Attempt(hex::encode(bytes)))
    }

    /// The attempt `text` names, if it is an attempt id.
    pub fn parse(text: &str) -> Option<Self> {
        let well_formed = text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Attempt(text.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_parse_back_and_differ() {
        let a = Attempt::new().unwrap();
        let b = Attempt::new().unwrap();
        assert_ne!(a, b);
        assert_eq!(Attempt::parse(a.as_str()), Some(a));
    }

    #[test]
    fn only_32_lowercase_hex_digits_are_an_attempt() {
        for bad in ["", "abc", &"A".repeat(32), &"g".repeat(32), &"0".repeat(33)] {
            assert_eq!(Attempt::parse(bad), None, "{bad}");
        }
        assert!(Attempt::parse(&"0a".repeat(16)).is_some());
    }
}
