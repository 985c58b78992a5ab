//! The agent side of the authentication handshake (docs/protocol/agent.md §3): what to send first,
//! and how to judge the server's answers. Trust comes only from the pinned ServerID and
//! the server's signature, or, on later connections, from a TLS certificate hash this agent
//! verified before (the skip path).

use ironmesh_proto::agent::{
    self, agent_signed_message, cmd, server_signed_message, AuthInfo, AuthRequest, AuthVerify,
    HASH_LEN,
};
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA384};
use sha2::{Digest, Sha384};

use crate::identity::AgentIdentity;

/// Everything the agent says about itself in command 3 and before.
#[derive(Debug, Clone)]
pub struct AgentDescription {
    pub agent_id: u32,
    pub platform_type: u32,
    pub capabilities: u32,
    pub hostname: String,
    /// For command 31, e.g. `Debian GNU/Linux 12 (bookworm) - x64`.
    pub host_info: String,
    pub build_date: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerRejected {
    #[error("server sent a malformed handshake command: {0}")]
    Malformed(String),
    #[error("server echoed a different TLS hash")]
    EchoMismatch,
    #[error("server certificate does not match the pinned ServerID")]
    WrongServerId,
    #[error("server signature does not verify")]
    BadSignature,
    #[error("unexpected command {0} during the handshake")]
    Unexpected(u16),
}

/// One handshake attempt.
pub struct ClientHandshake<'a> {
    identity: &'a AgentIdentity,
    server_id: [u8; HASH_LEN],
    mesh_id: Vec<u8>,
    description: AgentDescription,
    /// SHA-384 of the TLS certificate this connection sees.
    tls_hash: [u8; HASH_LEN],
    agent_nonce: [u8; HASH_LEN],
    server_nonce: Option<[u8; HASH_LEN]>,
    /// We told the server to skip its signature (command 4).
    skipping: bool,
    info_sent: bool,
    server_verified: bool,
}

/// What to do after a server frame.
#[derive(Debug, PartialEq)]
pub enum Progress {
    /// Send these frames and keep reading.
    Send(Vec<Vec<u8>>),
    /// Command 4 arrived: authenticated. If `trust_tls_hash` is set, remember it for the
    /// skip path next time.
    Authenticated {
        trust_tls_hash: Option<[u8; HASH_LEN]>,
    },
}

impl<'a> ClientHandshake<'a> {
    pub fn new(
        identity: &'a AgentIdentity,
        server_id: [u8; HASH_LEN],
        mesh_id: Vec<u8>,
        description: AgentDescription,
        tls_cert_der: &[u8],
        trusted_tls_hash: Option<[u8; HASH_LEN]>,
    ) -> ClientHandshake<'a> {
        let tls_hash: [u8; HASH_LEN] = Sha384::digest(tls_cert_der).into();
        let mut agent_nonce = [0u8; HASH_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut agent_nonce)
            .expect("random");
        ClientHandshake {
            identity,
            server_id,
            mesh_id,
            description,
            tls_hash,
            agent_nonce,
            server_nonce: None,
            skipping: trusted_tls_hash == Some(tls_hash),
            info_sent: false,
            server_verified: false,
        }
    }

    /// Whether this attempt takes the skip path.
    pub fn skipping(&self) -> bool {
        self.skipping
    }

    /// The opening frames: 30, 31, 5, (4), 1, and with the skip path 3 right away.
    pub fn opening(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut date = cmd::AGENT_COMMIT_DATE.to_be_bytes().to_vec();
        date.extend_from_slice(self.description.build_date.as_bytes());
        date.push(0);
        frames.push(date);
        let mut host = cmd::HOST_INFO.to_be_bytes().to_vec();
        host.extend_from_slice(self.description.host_info.as_bytes());
        frames.push(host);
        let mut sid = cmd::SERVER_ID.to_be_bytes().to_vec();
        sid.extend_from_slice(&self.server_id);
        frames.push(sid);
        if self.skipping {
            frames.push(agent::bare(cmd::AUTH_CONFIRM));
        }
        frames.push(
            AuthRequest {
                tls_hash: self.tls_hash,
                nonce: self.agent_nonce,
            }
            .encode(),
        );
        if self.skipping {
            frames.push(self.auth_info());
            self.info_sent = true;
        }
        frames
    }

    fn auth_info(&self) -> Vec<u8> {
        AuthInfo {
            info_version: 1,
            agent_id: self.description.agent_id,
            agent_version: 0,
            platform_type: self.description.platform_type,
            mesh_id: self.mesh_id.clone(),
            capabilities: self.description.capabilities,
            hostname: self.description.hostname.clone(),
        }
        .encode()
    }

    /// Handles one binary frame from the server.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Progress, ServerRejected> {
        let command = agent::command_of(frame)
            .map_err(|e| ServerRejected::Malformed(e.to_string()))?
            .ok_or(ServerRejected::Unexpected(0x7b))?;
        match command {
            cmd::AUTH_REQUEST => {
                let req = AuthRequest::decode(frame)
                    .map_err(|e| ServerRejected::Malformed(e.to_string()))?;
                if req.tls_hash != self.tls_hash {
                    return Err(ServerRejected::EchoMismatch);
                }
                self.server_nonce = Some(req.nonce);
                let message = agent_signed_message(&self.tls_hash, &req.nonce, &self.agent_nonce);
                let signature = self
                    .identity
                    .sign(&message)
                    .map_err(|e| ServerRejected::Malformed(e.to_string()))?;
                Ok(Progress::Send(vec![AuthVerify {
                    cert_der: self.identity.cert_der.clone(),
                    signature,
                }
                .encode()]))
            }
            cmd::AUTH_VERIFY => {
                let Some(server_nonce) = self.server_nonce else {
                    return Err(ServerRejected::Unexpected(command));
                };
                let verify = AuthVerify::decode(frame)
                    .map_err(|e| ServerRejected::Malformed(e.to_string()))?;
                let pkcs1 = rsa_public_key(&verify.cert_der)?;
                let pinned: [u8; HASH_LEN] = Sha384::digest(&pkcs1).into();
                if pinned != self.server_id {
                    return Err(ServerRejected::WrongServerId);
                }
                let message =
                    server_signed_message(&self.tls_hash, &self.agent_nonce, &server_nonce);
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA384, &pkcs1)
                    .verify(&message, &verify.signature)
                    .map_err(|_| ServerRejected::BadSignature)?;
                self.server_verified = true;
                let mut out = Vec::new();
                if !self.info_sent {
                    out.push(self.auth_info());
                    self.info_sent = true;
                }
                Ok(Progress::Send(out))
            }
            cmd::AUTH_CONFIRM => {
                if !(self.server_verified || self.skipping) {
                    return Err(ServerRejected::Unexpected(command));
                }
                Ok(Progress::Authenticated {
                    trust_tls_hash: self.server_verified.then_some(self.tls_hash),
                })
            }
            other => Err(ServerRejected::Unexpected(other)),
        }
    }
}

/// Sends the opening frames and answers the server until command 4; returns the TLS hash
/// to remember for the skip path, if this connection verified the server's signature.
pub async fn complete(
    socket: &mut ironmesh_client::Socket,
    hs: &mut ClientHandshake<'_>,
) -> anyhow::Result<Option<[u8; HASH_LEN]>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    for frame in hs.opening() {
        socket.send(Message::Binary(frame.into())).await?;
    }
    loop {
        let frame = match socket.next().await {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(c))) => anyhow::bail!(
                "server closed: {}",
                c.map(|f| format!("{} ({})", f.reason, u16::from(f.code)))
                    .unwrap_or_else(|| "no reason".into())
            ),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("server closed the connection"),
        };
        match hs.on_frame(&frame)? {
            Progress::Send(frames) => {
                for f in frames {
                    socket.send(Message::Binary(f.into())).await?;
                }
            }
            Progress::Authenticated { trust_tls_hash } => return Ok(trust_tls_hash),
        }
    }
}

fn rsa_public_key(cert_der: &[u8]) -> Result<Vec<u8>, ServerRejected> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| ServerRejected::Malformed(format!("server certificate: {e}")))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}
