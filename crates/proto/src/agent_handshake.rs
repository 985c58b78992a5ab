//! The server side of the agent authentication handshake (docs/protocol/agent.md §3), as a state
//! machine that consumes frames and says what to send. No sockets here; the one expensive
//! step (the server's RSA signature) is returned as a request for the caller to run off
//! the async workers.

use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA384};

use crate::agent::{
    agent_signed_message, cmd, server_signed_message, sha384, AuthInfo, AuthRequest, AuthVerify,
    FrameError, HASH_LEN,
};
use crate::ids::b64_at_dollar;

/// Frames larger than this are never part of a handshake (the largest, command 2 with an
/// RSA-4096 certificate and signature, is well under 4 KiB).
pub const MAX_HANDSHAKE_FRAME: usize = 16 * 1024;

/// What the server knows about its own TLS certificate, to check the agent's command 1.
#[derive(Clone, Copy)]
pub struct TlsHashes {
    pub cert_hash: [u8; HASH_LEN],
    pub key_hash: [u8; HASH_LEN],
}

/// The next thing the connection must do.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Send this frame now.
    Send(Vec<u8>),
    /// Sign `message` with the agent-server key and send it as command 2.
    SendServerProof { message: [u8; 144] },
    /// The agent is authenticated: register it, then send command 4.
    Authenticated(AuthenticatedAgent),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatedAgent {
    /// `node//<b64@$>`.
    pub node_id: String,
    pub info: AuthInfo,
    /// The agent's `agentName` setting, if it sent one before command 3.
    pub agent_name: Option<String>,
    /// The agent skipped the server signature (it already trusted our TLS certificate).
    pub used_skip_path: bool,
}

/// Why a handshake is refused; the text becomes the close reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed command: {0}")]
    Frame(#[from] FrameError),
    #[error("command {0} sent twice")]
    Repeated(u16),
    #[error("command {0} not allowed before authentication")]
    NotYet(u16),
    #[error("TLS certificate hash mismatch (a TLS-terminating proxy in front of the server?)")]
    TlsHashMismatch,
    #[error("agent certificate unusable: {0}")]
    BadCertificate(String),
    #[error("agent signature does not verify")]
    BadSignature,
    #[error("handshake frame of {0} bytes is too large")]
    TooLarge(usize),
}

pub struct AgentHandshake {
    expected: TlsHashes,
    server_nonce: [u8; HASH_LEN],
    /// Bit per command 1..=4 already accepted.
    received: u8,
    /// From command 1.
    tls_hash: Option<[u8; HASH_LEN]>,
    agent_nonce: Option<[u8; HASH_LEN]>,
    /// Command 4 seen: the agent needs no server signature.
    skip_server_proof: bool,
    /// Command 2 that arrived before command 1 (its signature needs our nonce, which the
    /// agent has, and its own nonce, which we get from command 1).
    pending_verify: Option<AuthVerify>,
    node_id: Option<String>,
    info: Option<AuthInfo>,
    agent_name: Option<String>,
    done: bool,
}

impl AgentHandshake {
    pub fn new(expected: TlsHashes, server_nonce: [u8; HASH_LEN]) -> AgentHandshake {
        AgentHandshake {
            expected,
            server_nonce,
            received: 0,
            tls_hash: None,
            agent_nonce: None,
            skip_server_proof: false,
            pending_verify: None,
            node_id: None,
            info: None,
            agent_name: None,
            done: false,
        }
    }

    /// Handles one binary frame received before authentication completed.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Vec<Step>, HandshakeError> {
        if frame.len() > MAX_HANDSHAKE_FRAME {
            return Err(HandshakeError::TooLarge(frame.len()));
        }
        let Some(command) = crate::agent::command_of(frame)? else {
            return Ok(Vec::new());
        };
        match command {
            cmd::AGENT_COMMIT_DATE | cmd::HOST_INFO | cmd::SERVER_ID => Ok(Vec::new()),
            cmd::AUTH_REQUEST => {
                self.accept_once(command)?;
                let req = AuthRequest::decode(frame)?;
                if req.tls_hash != self.expected.cert_hash && req.tls_hash != self.expected.key_hash
                {
                    return Err(HandshakeError::TlsHashMismatch);
                }
                self.tls_hash = Some(req.tls_hash);
                self.agent_nonce = Some(req.nonce);
                let mut steps = vec![Step::Send(
                    AuthRequest {
                        tls_hash: req.tls_hash,
                        nonce: self.server_nonce,
                    }
                    .encode(),
                )];
                if !self.skip_server_proof {
                    steps.push(Step::SendServerProof {
                        message: server_signed_message(
                            &req.tls_hash,
                            &req.nonce,
                            &self.server_nonce,
                        ),
                    });
                }
                if let Some(pending) = self.pending_verify.take() {
                    self.verify_agent(&pending)?;
                }
                Ok(self.maybe_done(steps))
            }
            cmd::AUTH_VERIFY => {
                self.accept_once(command)?;
                let verify = AuthVerify::decode(frame)?;
                if self.agent_nonce.is_some() {
                    self.verify_agent(&verify)?;
                } else {
                    self.pending_verify = Some(verify);
                }
                Ok(self.maybe_done(Vec::new()))
            }
            cmd::AUTH_INFO => {
                self.accept_once(command)?;
                self.info = Some(AuthInfo::decode(frame)?);
                Ok(self.maybe_done(Vec::new()))
            }
            cmd::AUTH_CONFIRM => {
                self.accept_once(command)?;
                if frame.len() != 2 {
                    return Err(FrameError::BadLength {
                        cmd: command,
                        expected: "2".into(),
                        got: frame.len(),
                    }
                    .into());
                }
                self.skip_server_proof = true;
                Ok(Vec::new())
            }
            other => Err(HandshakeError::NotYet(other)),
        }
    }

    /// The optional `{"action":"agentName","value":…}` sent before command 3.
    pub fn on_agent_name(&mut self, name: &str) {
        let name = name.trim();
        if (1..=255).contains(&name.chars().count()) {
            self.agent_name = Some(name.to_string());
        }
    }

    fn accept_once(&mut self, command: u16) -> Result<(), HandshakeError> {
        let bit = 1u8 << command;
        if self.received & bit != 0 {
            return Err(HandshakeError::Repeated(command));
        }
        self.received |= bit;
        Ok(())
    }

    fn verify_agent(&mut self, verify: &AuthVerify) -> Result<(), HandshakeError> {
        let (Some(tls_hash), Some(agent_nonce)) = (self.tls_hash, self.agent_nonce) else {
            return Ok(());
        };
        let pkcs1 = rsa_public_key(&verify.cert_der)?;
        let message = agent_signed_message(&tls_hash, &self.server_nonce, &agent_nonce);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA384, &pkcs1)
            .verify(&message, &verify.signature)
            .map_err(|_| HandshakeError::BadSignature)?;
        self.node_id = Some(format!("node//{}", b64_at_dollar(&sha384(&pkcs1))));
        Ok(())
    }

    fn maybe_done(&mut self, mut steps: Vec<Step>) -> Vec<Step> {
        if self.done {
            return steps;
        }
        if let (Some(node_id), Some(info)) = (&self.node_id, &self.info) {
            self.done = true;
            steps.push(Step::Authenticated(AuthenticatedAgent {
                node_id: node_id.clone(),
                info: info.clone(),
                agent_name: self.agent_name.clone(),
                used_skip_path: self.skip_server_proof,
            }));
        }
        steps
    }
}

/// The PKCS#1 `RSAPublicKey` DER inside a certificate. The certificate is otherwise not judged
/// (docs/protocol/agent.md §12): odd names, expiry or a broken self-signature are accepted, as real
/// agents have them.
pub fn rsa_public_key(cert_der: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| HandshakeError::BadCertificate(e.to_string()))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(HandshakeError::BadCertificate("key is not RSA".into()));
    }
    Ok(spki.subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn hashes() -> TlsHashes {
        TlsHashes {
            cert_hash: [1; 48],
            key_hash: [2; 48],
        }
    }

    #[test]
    fn random_frames_never_panic_the_handshake() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for _ in 0..5_000 {
            let mut hs = AgentHandshake::new(hashes(), [9; 48]);
            for _ in 0..rng.gen_range(1..6) {
                let cmd: u16 = *[1u16, 2, 3, 4, 5, 30, 31, 10, 11, 999]
                    .get(rng.gen_range(0..10))
                    .unwrap();
                let len = rng.gen_range(0..200);
                let mut frame = cmd.to_be_bytes().to_vec();
                frame.extend((0..len).map(|_| rng.gen::<u8>()));
                if hs.on_frame(&frame).is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn refuses_wrong_hash_repeats_and_early_commands() {
        let mut hs = AgentHandshake::new(hashes(), [9; 48]);
        let wrong = AuthRequest {
            tls_hash: [7; 48],
            nonce: [3; 48],
        }
        .encode();
        assert_eq!(hs.on_frame(&wrong), Err(HandshakeError::TlsHashMismatch));
        let mut hs = AgentHandshake::new(hashes(), [9; 48]);
        let good = AuthRequest {
            tls_hash: [1; 48],
            nonce: [3; 48],
        }
        .encode();
        let steps = hs.on_frame(&good).unwrap();
        assert!(matches!(steps[0], Step::Send(_)));
        assert!(matches!(steps[1], Step::SendServerProof { .. }));
        assert_eq!(hs.on_frame(&good), Err(HandshakeError::Repeated(1)));
        // The key hash is accepted too (older agents), and command 4 skips the proof.
        let mut hs = AgentHandshake::new(hashes(), [9; 48]);
        assert!(hs
            .on_frame(&crate::agent::bare(cmd::AUTH_CONFIRM))
            .unwrap()
            .is_empty());
        let by_key = AuthRequest {
            tls_hash: [2; 48],
            nonce: [3; 48],
        }
        .encode();
        let steps = hs.on_frame(&by_key).unwrap();
        assert_eq!(steps.len(), 1, "no server proof on the skip path");
        let mut hs = AgentHandshake::new(hashes(), [9; 48]);
        assert_eq!(hs.on_frame(&[0, 11, 0, 0]), Err(HandshakeError::NotYet(11)));
        assert_eq!(
            hs.on_frame(&vec![0u8; MAX_HANDSHAKE_FRAME + 1]),
            Err(HandshakeError::TooLarge(MAX_HANDSHAKE_FRAME + 1))
        );
    }
}
