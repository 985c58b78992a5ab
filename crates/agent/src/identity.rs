//! The agent's own identity: an RSA key and a self-signed certificate (`CN=MeshNodeCertificate`,
//! like the stock agent's, docs/protocol/agent.md §8), generated on first start; plus the
//! remembered hash of the server's TLS certificate that lets later connections take the skip path.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_RSA_SHA384,
};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use sha2::{Digest, Sha384};

/// Key size of a real agent.
pub const AGENT_KEY_BITS: usize = 3072;

/// An agent's key pair and certificate.
pub struct AgentIdentity {
    pub key: ring::signature::RsaKeyPair,
    pub cert_der: Vec<u8>,
    /// `node//<b64@$ of SHA-384 of the PKCS#1 key>`, as the server will compute it.
    pub node_id: String,
}

impl AgentIdentity {
    /// Generates a new key pair and certificate (seconds for RSA-3072).
    pub fn generate(bits: usize) -> anyhow::Result<(AgentIdentity, Vec<u8>)> {
        let rsa_key =
            rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits).context("generating RSA key")?;
        let pkcs8 = rsa_key.to_pkcs8_der()?.as_bytes().to_vec();
        let identity = Self::from_parts(&pkcs8, None)?;
        Ok((identity, pkcs8))
    }

    /// Rebuilds an identity from a PKCS#8 key and (optionally) its stored certificate.
    pub fn from_parts(pkcs8: &[u8], cert_der: Option<Vec<u8>>) -> anyhow::Result<AgentIdentity> {
        let rsa_key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8)
            .context("agent key is not an RSA PKCS#8 key")?;
        let pkcs1 = rsa_key.to_public_key().to_pkcs1_der()?;
        let node_id = format!(
            "node//{}",
            ironmesh_proto::ids::b64_at_dollar(&Sha384::digest(pkcs1.as_bytes()))
        );
        let cert_der = match cert_der {
            Some(c) => c,
            None => self_signed(pkcs8)?,
        };
        let key = ring::signature::RsaKeyPair::from_pkcs8(pkcs8)
            .map_err(|e| anyhow::anyhow!("agent key unusable: {e}"))?;
        Ok(AgentIdentity {
            key,
            cert_der,
            node_id,
        })
    }

    /// Signs a handshake message (RSA PKCS#1 v1.5, SHA-384).
    pub fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA384,
                &ring::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|_| anyhow::anyhow!("signing failed"))?;
        Ok(sig)
    }
}

fn self_signed(pkcs8: &[u8]) -> anyhow::Result<Vec<u8>> {
    let key = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.to_vec()),
        &PKCS_RSA_SHA384,
    )?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "MeshNodeCertificate");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(3);
    params.not_after = now + time::Duration::days(10_000);
    Ok(params.self_signed(&key)?.der().to_vec())
}

/// Files of the agent's state folder.
pub struct AgentState {
    dir: PathBuf,
}

const KEY_FILE: &str = "agent-key.pem";
const CERT_FILE: &str = "agent-cert.der";
const TRUSTED_FILE: &str = "trusted-tls-hash";

impl AgentState {
    pub fn new(dir: &Path) -> AgentState {
        AgentState {
            dir: dir.to_path_buf(),
        }
    }

    /// Removes the state folder and everything in it (uninstall).
    pub fn remove(&self) -> anyhow::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(anyhow::anyhow!("removing {}: {e}", self.dir.display())),
        }
    }

    /// Loads the identity, generating and saving one on first start.
    pub fn load_or_create_identity(&self) -> anyhow::Result<AgentIdentity> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let key_path = self.dir.join(KEY_FILE);
        let cert_path = self.dir.join(CERT_FILE);
        if key_path.exists() {
            let pem = std::fs::read_to_string(&key_path)?;
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).context("parsing agent key")?;
            let pkcs8 = key.to_pkcs8_der()?.as_bytes().to_vec();
            let cert = std::fs::read(&cert_path).ok();
            let identity = AgentIdentity::from_parts(&pkcs8, cert)?;
            if !cert_path.exists() {
                write_private(&cert_path, &identity.cert_der)?;
            }
            return Ok(identity);
        }
        tracing::info!(bits = AGENT_KEY_BITS, "generating the agent key");
        let (identity, pkcs8) = AgentIdentity::generate(AGENT_KEY_BITS)?;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8)?;
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)?;
        write_private(&key_path, pem.as_bytes())?;
        write_private(&cert_path, &identity.cert_der)?;
        Ok(identity)
    }

    /// The TLS certificate hash of a server this agent already verified.
    pub fn trusted_tls_hash(&self) -> Option<[u8; 48]> {
        let text = std::fs::read_to_string(self.dir.join(TRUSTED_FILE)).ok()?;
        ironmesh_proto::ids::decode_hex(text.trim())?
            .try_into()
            .ok()
    }

    pub fn remember_tls_hash(&self, hash: &[u8; 48]) -> anyhow::Result<()> {
        write_private(
            &self.dir.join(TRUSTED_FILE),
            ironmesh_proto::ids::hex_upper(hash).as_bytes(),
        )
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
