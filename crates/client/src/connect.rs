//! Opening a WebSocket to an ironmesh (or MeshCentral) server. The TLS layer accepts any
//! certificate and hands it back: callers judge the server by its hash (the agent: pinned ServerID
//! plus handshake signature, docs/protocol/agent.md §1; the CLI: the hash it saw at login).

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

pub type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// Time allowed for TCP + TLS + WebSocket upgrade (the stock agent uses 20 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
struct CaptureOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for CaptureOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Deliberate: the server is authenticated by ServerID + signature (or by the hash of
        // this very certificate, verified earlier), not by the web PKI.
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The peer must still prove it holds the certificate's key.
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client certificate this process presents, when one was set (servers that require
/// mutual TLS on the control channel).
static CLIENT_IDENTITY: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();

/// Makes every later connection of this process present this certificate and key (PEM
/// files). For single-identity processes such as the `ironmesh` CLI.
pub fn use_client_certificate(
    cert_pem: &std::path::Path,
    key_pem: &std::path::Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    let chain = CertificateDer::pem_file_iter(cert_pem)
        .with_context(|| format!("reading {}", cert_pem.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert_pem.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no PEM certificate",
        cert_pem.display()
    );
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key_pem)
        .with_context(|| format!("reading the private key {}", key_pem.display()))?;
    let config = tls_config_with_client_cert(chain, key)
        .context("the client certificate and key do not form a usable pair")?;
    let _ = CLIENT_IDENTITY.set(config);
    Ok(())
}

/// A TLS client configuration shared by all connections of a process (with the client
/// certificate set by [`use_client_certificate`], if any).
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    if let Some(config) = CLIENT_IDENTITY.get() {
        return config.clone();
    }
    tls_config_for(&[&rustls::version::TLS13, &rustls::version::TLS12])
}

/// [`tls_config`] presenting a client certificate (servers that require mutual TLS on the
/// control channel).
pub fn tls_config_with_client_cert(
    chain: Vec<CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaptureOnly(provider)))
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`tls_config`] limited to some TLS versions (tests check what the server negotiates).
pub fn tls_config_for(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaptureOnly(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Connects to `wss://host:port/path` and returns the socket and the DER of the server's
/// TLS certificate. `source` optionally binds the local address (load tests use several
/// 127.x addresses).
pub async fn connect(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    path: &str,
    source: Option<std::net::IpAddr>,
) -> anyhow::Result<(Socket, Vec<u8>)> {
    connect_with_headers(tls, host, port, path, source, &[]).await
}

/// [`connect`] with extra request headers (e.g. `x-meshauth`).
pub async fn connect_with_headers(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    path: &str,
    source: Option<std::net::IpAddr>,
    headers: &[(&str, String)],
) -> anyhow::Result<(Socket, Vec<u8>)> {
    tokio::time::timeout(CONNECT_TIMEOUT, async {
        let tcp = match source {
            None => TcpStream::connect((host, port)).await?,
            Some(ip) => {
                let addr = tokio::net::lookup_host((host, port))
                    .await?
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("no address for {host}"))?;
                let socket = if addr.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()?
                } else {
                    tokio::net::TcpSocket::new_v6()?
                };
                socket.bind(std::net::SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
        };
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(host.to_string())?;
        let stream = TlsConnector::from(tls).connect(name, tcp).await?;
        let cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .ok_or_else(|| anyhow::anyhow!("server presented no certificate"))?;
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let mut request = format!("wss://{bracketed}:{port}{path}").into_client_request()?;
        request.headers_mut().insert(
            "user-agent",
            format!("ironmesh/{}", env!("CARGO_PKG_VERSION")).parse()?,
        );
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())?,
                value.parse()?,
            );
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(16 << 20));
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
        Ok((ws, cert))
    })
    .await
    // An io::Error of kind TimedOut, so callers can tell a silent server from other failures.
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connection timed out after {} s", CONNECT_TIMEOUT.as_secs()),
        )
    })?
}
