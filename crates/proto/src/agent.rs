//! The binary agent channel `/agent.ashx` (docs/protocol/agent.md §3, §4): command numbers, exact
//! layouts, the two signed messages. All integers big-endian. Pure encode/decode.

/// Length of every hash and nonce in the handshake (SHA-384).
pub const HASH_LEN: usize = 48;
/// SHA-384, the hash behind every identity and signature of the agent channel.
pub fn sha384(bytes: &[u8]) -> [u8; HASH_LEN] {
    use sha2::{Digest, Sha384};
    Sha384::digest(bytes).into()
}

/// Exact length of command 1 in both directions.
pub const AUTH_REQUEST_LEN: usize = 2 + 2 * HASH_LEN;

/// Command numbers (docs/protocol/agent.md §3.1, §4).
pub mod cmd {
    pub const AUTH_REQUEST: u16 = 1;
    pub const AUTH_VERIFY: u16 = 2;
    pub const AUTH_INFO: u16 = 3;
    pub const AUTH_CONFIRM: u16 = 4;
    pub const SERVER_ID: u16 = 5;
    pub const CORE_MODULE: u16 = 10;
    pub const CORE_MODULE_HASH: u16 = 11;
    pub const AGENT_HASH: u16 = 12;
    pub const AGENT_TAG: u16 = 15;
    pub const CORE_OK: u16 = 16;
    pub const COMPRESSED_CORE_MODULE: u16 = 20;
    pub const AGENT_COMMIT_DATE: u16 = 30;
    pub const HOST_INFO: u16 = 31;
}

/// Capability bits of command 3 and `coreinfo` (docs/protocol/agent.md §3.1).
pub mod caps {
    pub const DESKTOP: u32 = 0x01;
    pub const TERMINAL: u32 = 0x02;
    pub const FILES: u32 = 0x04;
    pub const CONSOLE: u32 = 0x08;
    pub const JAVASCRIPT: u32 = 0x10;
    pub const TEMPORARY: u32 = 0x20;
    pub const RECOVERY: u32 = 0x40;
    pub const COMPRESSED_CORE: u32 = 0x100;
}

/// Why a frame is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame shorter than 2 bytes")]
    TooShort,
    #[error("command {cmd}: expected {expected} bytes, got {got}")]
    BadLength {
        cmd: u16,
        expected: String,
        got: usize,
    },
    #[error("command {cmd}: inner length field exceeds the frame")]
    BadInnerLength { cmd: u16 },
}

/// The command number of a binary frame, or `None` for JSON (first byte `{`).
pub fn command_of(frame: &[u8]) -> Result<Option<u16>, FrameError> {
    if frame.first() == Some(&b'{') {
        return Ok(None);
    }
    if frame.len() < 2 {
        return Err(FrameError::TooShort);
    }
    Ok(Some(u16::from_be_bytes([frame[0], frame[1]])))
}

/// Command 1 in either direction: 48 hash bytes then a 48-byte nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// From the agent: SHA-384 of the TLS certificate it sees. From the server: echoed.
    pub tls_hash: [u8; HASH_LEN],
    pub nonce: [u8; HASH_LEN],
}

impl AuthRequest {
    pub fn decode(frame: &[u8]) -> Result<AuthRequest, FrameError> {
        if frame.len() != AUTH_REQUEST_LEN {
            return Err(FrameError::BadLength {
                cmd: cmd::AUTH_REQUEST,
                expected: AUTH_REQUEST_LEN.to_string(),
                got: frame.len(),
            });
        }
        let mut tls_hash = [0; HASH_LEN];
        let mut nonce = [0; HASH_LEN];
        tls_hash.copy_from_slice(&frame[2..50]);
        nonce.copy_from_slice(&frame[50..98]);
        Ok(AuthRequest { tls_hash, nonce })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(AUTH_REQUEST_LEN);
        out.extend_from_slice(&cmd::AUTH_REQUEST.to_be_bytes());
        out.extend_from_slice(&self.tls_hash);
        out.extend_from_slice(&self.nonce);
        out
    }
}

/// Command 2 in either direction: a DER certificate and an RSA signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthVerify {
    pub cert_der: Vec<u8>,
    pub signature: Vec<u8>,
}

impl AuthVerify {
    pub fn decode(frame: &[u8]) -> Result<AuthVerify, FrameError> {
        if frame.len() < 4 {
            return Err(FrameError::BadLength {
                cmd: cmd::AUTH_VERIFY,
                expected: "at least 4".into(),
                got: frame.len(),
            });
        }
        let cert_len = u16::from_be_bytes([frame[2], frame[3]]) as usize;
        if 4 + cert_len > frame.len() || cert_len == 0 {
            return Err(FrameError::BadInnerLength {
                cmd: cmd::AUTH_VERIFY,
            });
        }
        Ok(AuthVerify {
            cert_der: frame[4..4 + cert_len].to_vec(),
            signature: frame[4 + cert_len..].to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.cert_der.len() + self.signature.len());
        out.extend_from_slice(&cmd::AUTH_VERIFY.to_be_bytes());
        out.extend_from_slice(&(self.cert_der.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.cert_der);
        out.extend_from_slice(&self.signature);
        out
    }
}

/// What the server signs (docs/protocol/agent.md §3.2): `H ‖ agentNonce ‖ serverNonce`.
pub fn server_signed_message(
    tls_hash: &[u8; 48],
    agent_nonce: &[u8; 48],
    server_nonce: &[u8; 48],
) -> [u8; 144] {
    concat3(tls_hash, agent_nonce, server_nonce)
}

/// What the agent signs: `H ‖ serverNonce ‖ agentNonce` (the other order).
pub fn agent_signed_message(
    tls_hash: &[u8; 48],
    server_nonce: &[u8; 48],
    agent_nonce: &[u8; 48],
) -> [u8; 144] {
    concat3(tls_hash, server_nonce, agent_nonce)
}

fn concat3(a: &[u8; 48], b: &[u8; 48], c: &[u8; 48]) -> [u8; 144] {
    let mut out = [0u8; 144];
    out[..48].copy_from_slice(a);
    out[48..96].copy_from_slice(b);
    out[96..].copy_from_slice(c);
    out
}

/// Command 3 from the agent: who it is and which group it wants to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    pub info_version: u32,
    /// Architecture number (6 = Linux x86-64).
    pub agent_id: u32,
    pub agent_version: u32,
    /// 1 desktop, 2 laptop, 3 mobile, 4 server, 5 disk, 6 router, 7 pi, 8 virtual.
    pub platform_type: u32,
    /// 48 bytes, or 32 for legacy agents (then shown as hex).
    pub mesh_id: Vec<u8>,
    pub capabilities: u32,
    pub hostname: String,
}

/// Smallest valid command 3.
pub const AUTH_INFO_MIN_LEN: usize = 72;

impl AuthInfo {
    pub fn decode(frame: &[u8]) -> Result<AuthInfo, FrameError> {
        if frame.len() < AUTH_INFO_MIN_LEN {
            return Err(FrameError::BadLength {
                cmd: cmd::AUTH_INFO,
                expected: format!("at least {AUTH_INFO_MIN_LEN}"),
                got: frame.len(),
            });
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
        let host_len = u16::from_be_bytes([frame[70], frame[71]]) as usize;
        if 72 + host_len > frame.len() {
            return Err(FrameError::BadInnerLength {
                cmd: cmd::AUTH_INFO,
            });
        }
        // A legacy 32-byte mesh id leaves bytes 50..66 zero (docs/protocol/agent.md §3.1).
        let mesh = &frame[18..66];
        let mesh_id = if mesh[32..].iter().all(|b| *b == 0) {
            mesh[..32].to_vec()
        } else {
            mesh.to_vec()
        };
        let platform = u32_at(14);
        Ok(AuthInfo {
            info_version: u32_at(2),
            agent_id: u32_at(6),
            agent_version: u32_at(10),
            platform_type: if (1..=8).contains(&platform) {
                platform
            } else {
                1
            },
            mesh_id,
            capabilities: u32_at(66),
            hostname: String::from_utf8_lossy(&frame[72..72 + host_len]).into_owned(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let host = self.hostname.as_bytes();
        let host = &host[..host.len().min(u16::MAX as usize)];
        let mut out = Vec::with_capacity(72 + host.len());
        out.extend_from_slice(&cmd::AUTH_INFO.to_be_bytes());
        for v in [
            self.info_version,
            self.agent_id,
            self.agent_version,
            self.platform_type,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        let mut mesh = [0u8; 48];
        let n = self.mesh_id.len().min(48);
        mesh[..n].copy_from_slice(&self.mesh_id[..n]);
        out.extend_from_slice(&mesh);
        out.extend_from_slice(&self.capabilities.to_be_bytes());
        out.extend_from_slice(&(host.len() as u16).to_be_bytes());
        out.extend_from_slice(host);
        out
    }
}

/// A command with no payload: `[u16 cmd]` (e.g. 4 AuthConfirm).
pub fn bare(command: u16) -> Vec<u8> {
    command.to_be_bytes().to_vec()
}

/// A post-authentication command `[u16 cmd][u16 request id = 0]` + payload (docs/protocol/agent.md
/// §4).
pub fn with_request_id(command: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&command.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    out
}

/// Command 10: `hash(48) ‖ blob`, where the hash is SHA-384 of the whole blob.
pub fn core_module(hash: &[u8; 48], blob: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(48 + blob.len());
    payload.extend_from_slice(hash);
    payload.extend_from_slice(blob);
    with_request_id(cmd::CORE_MODULE, &payload)
}

/// The agent's answer to command 11: `None` = no core, `Some(hash)` otherwise
/// (48 zero bytes = "custom core, leave it").
pub fn parse_core_hash(frame: &[u8]) -> Result<Option<[u8; 48]>, FrameError> {
    match frame.len() {
        4 => Ok(None),
        52 => {
            let mut h = [0u8; 48];
            h.copy_from_slice(&frame[4..52]);
            Ok(Some(h))
        }
        n => Err(FrameError::BadLength {
            cmd: cmd::CORE_MODULE_HASH,
            expected: "4 or 52".into(),
            got: n,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_request_is_exactly_98_bytes() {
        let r = AuthRequest {
            tls_hash: [1; 48],
            nonce: [2; 48],
        };
        let bytes = r.encode();
        assert_eq!(bytes.len(), 98);
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(AuthRequest::decode(&bytes).unwrap(), r);
        assert!(AuthRequest::decode(&bytes[..97]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(AuthRequest::decode(&long).is_err());
    }

    #[test]
    fn auth_verify_round_trip_and_bounds() {
        let v = AuthVerify {
            cert_der: vec![0x30; 1030],
            signature: vec![9; 384],
        };
        let bytes = v.encode();
        assert_eq!(bytes.len(), 1418);
        assert_eq!(AuthVerify::decode(&bytes).unwrap(), v);
        // Inner length pointing past the end.
        let mut bad = bytes.clone();
        bad[2] = 0xff;
        assert_eq!(
            AuthVerify::decode(&bad),
            Err(FrameError::BadInnerLength { cmd: 2 })
        );
        assert!(AuthVerify::decode(&[0, 2, 0]).is_err());
    }

    #[test]
    fn auth_info_matches_the_observed_trace() {
        // Observed 74-byte command 3 (docs/protocol/agent.md §11.1) with host "vm", caps 0x118.
        let mut frame = vec![0, 3, 0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 1];
        frame.extend_from_slice(&[0xee; 48]);
        frame.extend_from_slice(&[0, 0, 1, 0x18, 0, 2, b'v', b'm']);
        assert_eq!(frame.len(), 74);
        let info = AuthInfo::decode(&frame).unwrap();
        assert_eq!(
            (info.agent_id, info.platform_type, info.capabilities),
            (6, 1, 0x118)
        );
        assert_eq!(info.hostname, "vm");
        assert_eq!(info.mesh_id, vec![0xee; 48]);
        assert_eq!(info.encode(), frame);
        // Out-of-range platform types read as desktop; truncated host is refused.
        let mut odd = frame.clone();
        odd[17] = 99;
        assert_eq!(AuthInfo::decode(&odd).unwrap().platform_type, 1);
        assert!(AuthInfo::decode(&frame[..73]).is_err());
        assert!(AuthInfo::decode(&frame[..40]).is_err());
    }

    #[test]
    fn signed_messages_use_different_orders() {
        let (h, a, s) = ([1u8; 48], [2u8; 48], [3u8; 48]);
        let server = server_signed_message(&h, &a, &s);
        let agent = agent_signed_message(&h, &s, &a);
        assert_eq!((server[48], server[96]), (2, 3));
        assert_eq!((agent[48], agent[96]), (3, 2));
    }

    #[test]
    fn command_numbers_and_json() {
        assert_eq!(command_of(b"{\"a\":1}").unwrap(), None);
        assert_eq!(command_of(&[0, 30, 1]).unwrap(), Some(30));
        assert_eq!(command_of(&[0]), Err(FrameError::TooShort));
        assert_eq!(parse_core_hash(&[0, 11, 0, 0]).unwrap(), None);
        assert!(parse_core_hash(&[0, 11, 0]).is_err());
        assert_eq!(core_module(&[7; 48], b"abc").len(), 4 + 48 + 3);
    }
}
