//! rustls configuration for the one HTTPS + WSS port.
//!
//! TLS 1.2 and 1.3 only, with rustls' ring provider: every suite it offers is ECDHE
//! (forward-secret) with an AEAD cipher; there is no RSA key exchange, CBC or RC4 to disable.
//! ALPN offers only `http/1.1`, since WebSockets need an HTTP/1.1 upgrade.
//! With `[client_certs] ca`, clients are asked for a certificate: one that does not chain to
//! that CA fails the handshake, none at all is accepted (agents have none); whether a
//! request came with a verified certificate is then up to each endpoint
//! ([`ClientCert`], checked by the control channel).

use std::sync::Arc;

use std::path::Path;

use anyhow::Context;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;

use crate::identity::WebIdentity;

/// Request extension: the connection presented a client certificate that chains to the
/// configured CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCert(pub bool);

pub fn server_config(
    web: &WebIdentity,
    client_ca: Option<&Path>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
    };
    let mut config = builder
        .with_single_cert(web.cert_chain.clone(), web.key.clone_key())
        .context("the web certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Session resumption keeps returning agents' and browsers' handshakes cheap.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(64 * 1024);
    Ok(Arc::new(config))
}

/// Verifies client certificates against the CA certificates in a PEM file; clients may
/// also present none.
fn client_verifier(
    path: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("reading the client CA file {}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.with_context(|| format!("parsing {}", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("a CA certificate in {} is not usable", path.display()))?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "{} holds no PEM certificate (BEGIN CERTIFICATE)",
        path.display()
    );
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")
}
