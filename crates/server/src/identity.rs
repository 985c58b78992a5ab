//! The server's long-lived identity (docs/protocol/agent.md §2, §8), generated on first start into
//! the data folder and reloaded on every later start:
//!
//! * a root CA that issues the other two certificates;
//! * the **web certificate** presented on the HTTPS port. ECDSA P-256 by default: every
//!   agent reconnect costs one TLS handshake, and an ECDSA signature is ~100x cheaper than
//!   RSA-3072, which is what keeps a reconnect storm cheap. Agents check it only by hash,
//!   so it may change (or be replaced by a user-supplied one) at any time;
//! * the **agent-server certificate**, RSA (3072 bits, 2048 with `--fast-cert`) because the
//!   stock agent verifies with `RSA_verify`. SHA-384 of its PKCS#1 public key is the
//!   *ServerID* every agent pins: this key must never change.
//!
//! Key files are written with mode 0600 before any content reaches them.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA384,
};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const ROOT_CERT: &str = "root-cert.pem";
const ROOT_KEY: &str = "root-key.pem";
const WEB_CERT: &str = "web-cert.pem";
const WEB_KEY: &str = "web-key.pem";
const AGENT_CERT: &str = "agent-server-cert.pem";
const AGENT_KEY: &str = "agent-server-key.pem";

/// A 48-byte SHA-384 digest.
pub type Hash384 = [u8; 48];

pub use ironmesh_proto::agent::sha384;

/// What the HTTPS port presents.
pub struct WebIdentity {
    /// Leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-384 of the leaf's whole DER: what current agents send in command 1.
    pub cert_hash: Hash384,
    /// SHA-384 of the leaf's public key (PKCS#1 for RSA, SPKI otherwise): older agents.
    pub key_hash: Hash384,
    /// When the leaf expires, in Unix ms (`serverinfo`'s `certExpire`); read once at load.
    pub not_after_ms: Option<i64>,
}

/// The key agents pin.
pub struct AgentServerIdentity {
    pub cert_der: Vec<u8>,
    /// PKCS#8 DER of the RSA private key, for signing handshake command 2.
    pub key_pkcs8: Vec<u8>,
    /// SHA-384 of the PKCS#1 `RSAPublicKey` DER.
    pub server_id: Hash384,
}

pub struct ServerIdentity {
    pub root_cert_pem: String,
    pub web: WebIdentity,
    pub agent_server: AgentServerIdentity,
}

/// Options for [`ServerIdentity::load_or_create`].
pub struct IdentityOptions<'a> {
    pub data_dir: &'a Path,
    pub server_name: &'a str,
    pub agent_key_bits: usize,
    /// User-supplied web certificate chain and key (PEM files).
    pub custom_web: Option<(&'a Path, &'a Path)>,
}

impl ServerIdentity {
    pub fn load_or_create(opts: &IdentityOptions) -> anyhow::Result<ServerIdentity> {
        let dir = opts.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data folder {}", dir.display()))?;
        let root = load_or_create_root(dir)?;
        let agent_server = load_or_create_agent_server(dir, &root, opts.agent_key_bits)?;
        let web = match opts.custom_web {
            Some((cert, key)) => {
                load_web(cert, key).context("loading the custom web certificate")?
            }
            None => load_or_create_web(dir, &root, opts.server_name)?,
        };
        Ok(ServerIdentity {
            root_cert_pem: std::fs::read_to_string(dir.join(ROOT_CERT))?,
            web,
            agent_server,
        })
    }
}

/// The root CA, in the form rcgen needs to issue certificates.
struct Root {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn load_or_create_root(dir: &Path) -> anyhow::Result<Root> {
    let (cert_path, key_path) = (dir.join(ROOT_CERT), dir.join(ROOT_KEY));
    if cert_path.exists() && key_path.exists() {
        let key = KeyPair::from_pem(&read(&key_path)?).context("parsing root key")?;
        let params = CertificateParams::from_ca_cert_pem(&read(&cert_path)?)
            .context("parsing root certificate")?;
        // Re-signing in memory yields an issuer with the stored name and key; the file on
        // disk is left untouched.
        let cert = params.self_signed(&key)?;
        return Ok(Root { cert, key });
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!(
        "ironmesh root {}",
        short_id(&key.public_key_der())
    ));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params);
    let cert = params.self_signed(&key)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_private(&cert_path, cert.pem().as_bytes())?;
    Ok(Root { cert, key })
}

fn load_or_create_agent_server(
    dir: &Path,
    root: &Root,
    bits: usize,
) -> anyhow::Result<AgentServerIdentity> {
    let (cert_path, key_path) = (dir.join(AGENT_CERT), dir.join(AGENT_KEY));
    if cert_path.exists() || key_path.exists() {
        // Never regenerate over a half-present identity: that would silently break every
        // agent's ServerID pin.
        if !(cert_path.exists() && key_path.exists()) {
            bail!(
                "{} or {} is missing; restore it from a backup (a new agent-server key would \
                 disconnect every agent)",
                cert_path.display(),
                key_path.display()
            );
        }
        let key_pem = read(&key_path)?;
        let rsa_key = rsa::RsaPrivateKey::from_pkcs8_pem(&key_pem)
            .context("parsing the agent-server key (must be RSA, PKCS#8 PEM)")?;
        let cert_der = CertificateDer::from_pem_slice(read(&cert_path)?.as_bytes())
            .context("parsing the agent-server certificate")?;
        return Ok(AgentServerIdentity {
            cert_der: cert_der.to_vec(),
            key_pkcs8: rsa_key.to_pkcs8_der()?.as_bytes().to_vec(),
            server_id: rsa_server_id(&rsa_key)?,
        });
    }
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits)
        .context("generating the agent-server RSA key")?;
    let pkcs8 = rsa_key.to_pkcs8_der()?;
    let key = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec()),
        &PKCS_RSA_SHA384,
    )?;
    let server_id = rsa_server_id(&rsa_key)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("ironmesh agent-server {}", &hex(&server_id)[..6]));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DataEncipherment,
    ];
    set_validity(&mut params);
    let cert = params.signed_by(&key, &root.cert, &root.key)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_private(&cert_path, cert.pem().as_bytes())?;
    Ok(AgentServerIdentity {
        cert_der: cert.der().to_vec(),
        key_pkcs8: pkcs8.as_bytes().to_vec(),
        server_id,
    })
}

fn rsa_server_id(key: &rsa::RsaPrivateKey) -> anyhow::Result<Hash384> {
    let pkcs1 = key.to_public_key().to_pkcs1_der()?;
    Ok(sha384(pkcs1.as_bytes()))
}

fn load_or_create_web(dir: &Path, root: &Root, server_name: &str) -> anyhow::Result<WebIdentity> {
    let (cert_path, key_path) = (dir.join(WEB_CERT), dir.join(WEB_KEY));
    if !(cert_path.exists() && key_path.exists()) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut names = vec![server_name.to_string(), "localhost".to_string()];
        names.dedup();
        let mut params = CertificateParams::default();
        params.distinguished_name = name(server_name);
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(n.as_str().try_into()?)),
            })
            .collect::<Result<Vec<_>, rcgen::Error>>()?;
        let loopback = SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        if !params.subject_alt_names.contains(&loopback) {
            params.subject_alt_names.push(loopback);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params);
        let cert = params.signed_by(&key, &root.cert, &root.key)?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        // Chain: leaf then root, so browsers that trust the root can build the path.
        let chain = format!("{}{}", cert.pem(), root.cert.pem());
        write_private(&cert_path, chain.as_bytes())?;
    }
    load_web(&cert_path, &key_path)
}

fn load_web(cert_path: &Path, key_path: &Path) -> anyhow::Result<WebIdentity> {
    let cert_chain = CertificateDer::pem_slice_iter(read(cert_path)?.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    let Some(leaf) = cert_chain.first() else {
        bail!("{} holds no certificate", cert_path.display());
    };
    let key = PrivateKeyDer::from_pem_slice(read(key_path)?.as_bytes())
        .with_context(|| format!("parsing {}", key_path.display()))?;
    let cert_hash = sha384(leaf);
    let key_hash = public_key_hash(leaf)?;
    let not_after_ms = not_after_ms(leaf);
    Ok(WebIdentity {
        cert_chain,
        key,
        cert_hash,
        key_hash,
        not_after_ms,
    })
}

/// SHA-384 of a certificate's public key as MeshCentral computes it (docs/protocol/agent.md §2):
/// the PKCS#1 `RSAPublicKey` for RSA keys, the whole SPKI for other key types.
pub fn public_key_hash(cert_der: &[u8]) -> anyhow::Result<Hash384> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| anyhow::anyhow!("parsing certificate: {e}"))?;
    let spki = cert.public_key();
    let rsa_oid = x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
    if spki.algorithm.algorithm == rsa_oid {
        Ok(sha384(&spki.subject_public_key.data))
    } else {
        Ok(sha384(spki.raw))
    }
}

/// When a certificate expires, in Unix milliseconds (`None` if it does not parse).
fn not_after_ms(cert_der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.validity().not_after.timestamp() * 1000)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "ironmesh");
    dn
}

fn set_validity(params: &mut CertificateParams) {
    // Fixed, long validity like MeshCentral's: agents never check it, and an expiring
    // agent-server certificate must never force a key change.
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
}

fn short_id(bytes: &[u8]) -> String {
    hex(&sha384(bytes))[..6].to_string()
}

fn hex(bytes: &[u8]) -> String {
    ironmesh_proto::ids::hex_upper(bytes).to_lowercase()
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Creates `path` with mode 0600 (never readable by others, not even briefly) and writes
/// `bytes` through a temporary file renamed into place, so a crash leaves no torn file.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Signs the server's handshake proof on the blocking pool: an RSA-3072 private-key
/// operation takes milliseconds, which must never stall the async workers.
pub struct AgentSigner {
    key: std::sync::Arc<ring::signature::RsaKeyPair>,
    /// Signatures in progress at most (one per core): in a storm of new agents the rest
    /// queue here instead of each occupying a blocking thread.
    slots: tokio::sync::Semaphore,
}

impl AgentSigner {
    pub fn new(pkcs8: &[u8]) -> anyhow::Result<AgentSigner> {
        let key = ring::signature::RsaKeyPair::from_pkcs8(pkcs8)
            .map_err(|e| anyhow::anyhow!("agent-server key unusable: {e}"))?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(AgentSigner {
            key: std::sync::Arc::new(key),
            slots: tokio::sync::Semaphore::new(cores),
        })
    }

    pub async fn sign(&self, message: [u8; 144]) -> anyhow::Result<Vec<u8>> {
        let _slot = self.slots.acquire().await?;
        let key = self.key.clone();
        tokio::task::spawn_blocking(move || {
            let mut sig = vec![0u8; key.public().modulus_len()];
            key.sign(
                &ring::signature::RSA_PKCS1_SHA384,
                &ring::rand::SystemRandom::new(),
                &message,
                &mut sig,
            )
            .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
            Ok(sig)
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_then_reloads_identically() {
        let dir = tempfile::tempdir().unwrap();
        let opts = IdentityOptions {
            data_dir: dir.path(),
            server_name: "mesh.example",
            agent_key_bits: 2048,
            custom_web: None,
        };
        let first = ServerIdentity::load_or_create(&opts).unwrap();
        let files: Vec<_> = [
            ROOT_CERT, ROOT_KEY, WEB_CERT, WEB_KEY, AGENT_CERT, AGENT_KEY,
        ]
        .iter()
        .map(|f| std::fs::read(dir.path().join(f)).unwrap())
        .collect();
        #[cfg(unix)]
        for f in [ROOT_KEY, WEB_KEY, AGENT_KEY, AGENT_CERT] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let second = ServerIdentity::load_or_create(&opts).unwrap();
        assert_eq!(first.agent_server.server_id, second.agent_server.server_id);
        assert_eq!(first.web.cert_hash, second.web.cert_hash);
        for (f, before) in [
            ROOT_CERT, ROOT_KEY, WEB_CERT, WEB_KEY, AGENT_CERT, AGENT_KEY,
        ]
        .iter()
        .zip(files)
        {
            assert_eq!(
                std::fs::read(dir.path().join(f)).unwrap(),
                before,
                "{f} changed"
            );
        }
        // The ServerID is the hash of the certificate's PKCS#1 key, as agents compute it.
        assert_eq!(
            public_key_hash(&first.agent_server.cert_der).unwrap(),
            first.agent_server.server_id
        );
        // The web certificate is ECDSA: its key hash is over the SPKI, not the cert.
        assert_ne!(first.web.key_hash, first.web.cert_hash);
    }

    #[test]
    fn refuses_a_half_missing_agent_identity() {
        let dir = tempfile::tempdir().unwrap();
        let opts = IdentityOptions {
            data_dir: dir.path(),
            server_name: "localhost",
            agent_key_bits: 2048,
            custom_web: None,
        };
        ServerIdentity::load_or_create(&opts).unwrap();
        std::fs::remove_file(dir.path().join(AGENT_KEY)).unwrap();
        let err = ServerIdentity::load_or_create(&opts).err().unwrap();
        assert!(format!("{err:#}").contains("restore it from a backup"));
    }
}
