//! A secret key: what the edge signs with (sale paths, challenges, the headers sent to origin)
//! and what login tokens are checked with.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A secret key. Its `Debug` never shows the bytes. The HMAC-SHA256 keyed with it is made
/// once, here, and cloned for each signature ([`Secret::hmac`]).
#[derive(Clone)]
pub struct Secret {
    bytes: Box<[u8]>,
    keyed: Hmac<Sha256>,
}

impl Secret {
    /// Wrap raw key bytes.
    pub fn new(bytes: impl Into<Box<[u8]>>) -> Self {
        let bytes = bytes.into();
        // HMAC takes a key of any length; this cannot fail.
        let keyed = Hmac::new_from_slice(&bytes).expect("HMAC takes a key of any length");
        Secret { bytes, keyed }
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// An HMAC-SHA256 keyed with this secret, ready for its message.
    pub fn hmac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.bytes.len())
    }
}
