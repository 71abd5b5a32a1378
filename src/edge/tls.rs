//! HTTPS on the public listener: Pingora's rustls acceptor, offering HTTP/2 and HTTP/1.1 by
//! ALPN, with a certificate resolver that presents whatever certificate the configuration in
//! place holds. The configuration (`Live`, swapped whole by a reload) carries the chain and key
//! read at its load, so a reload that read a renewed certificate makes every handshake after it
//! present the new one — no restart, and connections already open keep theirs. Whether the
//! listener speaks TLS at all is decided at the start (a reload keeps it; see `reload`).

use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::Gateway;

/// Presents the certificate of the configuration in place, read anew by every reload.
pub struct LiveCertificate {
    gw: Arc<Gateway>,
}

impl LiveCertificate {
    /// Resolve from `gateway`'s configuration, whichever is in place at each handshake.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        LiveCertificate { gw: gateway }
    }
}

impl std::fmt::Debug for LiveCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let live = self.gw.live.load();
        f.debug_struct("LiveCertificate")
            .field("identity", &live.config.tls.as_ref().map(|t| &t.identity))
            .finish()
    }
}

impl ResolvesServerCert for LiveCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // None (a configuration without TLS, which a reload never puts in place on a TLS
        // listener) fails the handshake.
        let live = self.gw.live.load();
        live.config
            .tls
            .as_ref()
            .map(|tls| tls.identity.certified_key())
    }
}

/// The public listener's TLS settings: HTTP/2 preferred, HTTP/1.1 allowed, the certificate
/// from `gateway`'s configuration at each handshake.
pub fn settings(gateway: Arc<Gateway>) -> pingora::Result<TlsSettings> {
    // No files here: the resolver stands in for them (Pingora reads none when one is set).
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(Arc::new(LiveCertificate::new(gateway)));
    settings.enable_h2();
    Ok(settings)
}
