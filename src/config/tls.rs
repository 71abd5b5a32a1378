//! `tls:` — the public listener's certificate chain and private key, two PEM files. Resolving
//! the section reads both files and checks them the way a handshake would use them: the chain
//! holds at least one X.509 certificate, the key file a private key rustls can sign with, and the
//! key belongs to the first (leaf) certificate. What comes out is an [`Identity`], ready for the
//! listener to present. A reload resolves the section again, so a renewed certificate written
//! over the same files is read anew; a file that fails any check refuses the configuration, like
//! any other mistake in it, and names the file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::context::Reading;
use super::error::{ConfigError, TlsError};
use super::pem::{read_chain, read_key};
use super::schema::FileTls;
use super::Timestamp;

/// `tls:` resolved: where the files are, and what they hold now.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The certificate chain file (PEM), leaf first.
    pub cert: PathBuf,
    /// The private key file (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The chain and key as read from the files when the configuration was loaded.
    pub identity: Identity,
}

impl Tls {
    /// Log the certificate new handshakes present: `what` says where (at start, after a
    /// reload), followed by the certificate file's name.
    pub fn log_identity(&self, what: &str) {
        tracing::info!(
            subject = %self.identity.subject,
            sha256 = %self.identity.fingerprint,
            not_after = %self.identity.not_after,
            "{what} {}",
            self.cert.display()
        );
    }
}

/// A certificate chain with its private key, checked to belong together, and what an operator
/// wants to see of it. Its `Debug` shows the leaf's subject and fingerprint, never the key.
#[derive(Clone)]
pub struct Identity {
    certified: Arc<CertifiedKey>,
    /// SHA-256 of the leaf certificate (DER), lowercase hex, as `openssl x509 -fingerprint
    /// -sha256` shows it without the colons.
    pub fingerprint: String,
    /// The leaf's subject, e.g. `CN=shop.example`.
    pub subject: String,
    /// The start of the leaf's validity.
    pub not_before: Timestamp,
    /// The end of the leaf's validity.
    pub not_after: Timestamp,
    /// Certificates in the chain, leaf included.
    pub chain_len: usize,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("sha256", &self.fingerprint)
            .field("not_after", &self.not_after.to_string())
            .field("chain_len", &self.chain_len)
            .finish()
    }
}

impl Identity {
    /// Read and check `cert` (chain, PEM) and `key` (private key, PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let chain = read_chain(cert)?;
        let private = read_key(key)?;
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(private)
            .map_err(|source| TlsError::Key {
                file: key.to_path_buf(),
                source,
            })?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            // ring cannot always tell the public key of a signing key (`Unknown`); the handshake
            // would then fail for every client, so only a known mismatch is refused here and the
            // rest is left to rustls, as `CertifiedKey::from_der` does.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                return Err(TlsError::Mismatch {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                })
            }
        }
        let leaf = certified
            .cert
            .first()
            .ok_or_else(|| TlsError::NoCertificate {
                file: cert.to_path_buf(),
            })?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
            TlsError::Certificate {
                file: cert.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        let validity = parsed.validity();
        let identity = Identity {
            fingerprint: hex::encode(Sha256::digest(leaf.as_ref())),
            subject: parsed.subject().to_string(),
            not_before: at(validity.not_before.timestamp()),
            not_after: at(validity.not_after.timestamp()),
            chain_len: certified.cert.len(),
            certified: Arc::new(certified),
        };
        Ok(identity)
    }

    /// What the listener presents in a handshake.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }

    /// How long the leaf is still valid at `now`; None once it has expired.
    pub fn valid_for(&self, now: SystemTime) -> Option<Duration> {
        self.not_after.0.duration_since(now).ok()
    }
}

/// A certificate time (seconds since the epoch) as a [`Timestamp`].
fn at(seconds: i64) -> Timestamp {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    Timestamp(if seconds >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    })
}

impl TlsError {
    /// Whether the error is about the key file (else the certificate file).
    fn about_key(&self) -> bool {
        matches!(
            self,
            TlsError::NoKey { .. } | TlsError::Key { .. } | TlsError::Mismatch { .. }
        )
    }
}

/// Resolve `tls:`: both files read and checked; an error points at the value naming the file
/// it is about.
pub(super) fn resolve(cx: &Reading, file: &Option<FileTls>) -> Result<Option<Tls>, ConfigError> {
    let Some(tls) = file else {
        return Ok(None);
    };
    let cert = PathBuf::from(cx.required("tls.cert", &tls.cert)?);
    let key = PathBuf::from(cx.required("tls.key", &tls.key)?);
    let identity = Identity::load(&cert, &key).map_err(|source| {
        let path = if source.about_key() {
            "tls.key"
        } else {
            "tls.cert"
        };
        cx.tls_err(path, source)
    })?;
    Ok(Some(Tls {
        cert,
        key,
        identity,
    }))
}
