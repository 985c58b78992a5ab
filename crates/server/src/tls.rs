//! rustls configuration for the one HTTPS + WSS port.
//!
//! TLS 1.2 and 1.3 only, with rustls' ring provider: every suite it offers is ECDHE
//! (forward-secret) with an AEAD cipher; there is no RSA key exchange, CBC or RC4 to disable.
//! ALPN offers only `http/1.1`, since WebSockets need an HTTP/1.1 upgrade.

use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;

use crate::identity::WebIdentity;

pub fn server_config(web: &WebIdentity) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(web.cert_chain.clone(), web.key.clone_key())
        .context("the web certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Session resumption keeps returning agents' and browsers' handshakes cheap.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(64 * 1024);
    Ok(Arc::new(config))
}
