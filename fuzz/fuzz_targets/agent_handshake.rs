//! Agent handshake frames (agent spec §3) into `ironmesh_proto::agent`'s decoders and the
//! server's `AgentHandshake` state machine, as `/agent.ashx` feeds them before
//! authentication.
//!
//! Input: frames of `[u16 big-endian length][frame]`. A frame starting with `{` is the JSON
//! an agent may send before command 3 (`agentName`); the others are binary commands. The
//! state machine's server nonce and TLS hashes are the constants below, so seeds can carry
//! a real signed handshake (`fuzz/seed_handshakes.py` writes them).
//!
//! Checked: every decoder that accepts a frame re-encodes it byte for byte (or, for
//! command 3, to a frame that decodes to the same value); the state machine answers
//! command 1 with the echoed hash and our nonce, asks for a server proof only without
//! command 4, and reports an agent authenticated once, only after commands 1, 2 and 3,
//! with the node id of the certificate in command 2.

#![no_main]

use ironmesh_fuzz::length_prefixed_frames;
use ironmesh_fuzz::server_handshake::{
    rsa_public_key, AgentHandshake, HandshakeError, Step, TlsHashes, MAX_HANDSHAKE_FRAME,
};
use ironmesh_proto::agent::{
    self, cmd, server_signed_message, AuthInfo, AuthRequest, AuthVerify, FrameError,
};
use ironmesh_proto::ids::b64_at_dollar;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SERVER_NONCE: [u8; 48] = [0x53; 48];
const TLS: TlsHashes = TlsHashes {
    cert_hash: [0xC3; 48],
    key_hash: [0x4B; 48],
};

fuzz_target!(|data: &[u8]| {
    let mut hs = AgentHandshake::new(TLS, SERVER_NONCE);
    // Frames of commands 1..=4 the state machine accepted.
    let mut accepted: [Option<Vec<u8>>; 5] = Default::default();
    let mut agent_name = None;
    for frame in length_prefixed_frames(data) {
        decoders_round_trip(frame);
        if frame.first() == Some(&b'{') {
            // As `agents::connection` does with JSON before authentication.
            if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(frame) {
                if obj.get("action").and_then(Value::as_str) == Some("agentName") {
                    if let Some(name) = obj.get("value").and_then(Value::as_str) {
                        hs.on_agent_name(name);
                        let name = name.trim();
                        if (1..=255).contains(&name.chars().count()) {
                            agent_name = Some(name.to_string());
                        }
                    }
                }
            }
            continue;
        }
        let command = agent::command_of(frame).ok().flatten().unwrap_or(0);
        let steps = match hs.on_frame(frame) {
            Ok(steps) => steps,
            Err(e) => {
                if frame.len() > MAX_HANDSHAKE_FRAME {
                    assert_eq!(e, HandshakeError::TooLarge(frame.len()));
                }
                // The connection closes with the error as its reason.
                assert!(!e.to_string().is_empty());
                return;
            }
        };
        assert!(frame.len() <= MAX_HANDSHAKE_FRAME);
        if (1..=4).contains(&command) {
            assert!(
                accepted[command as usize].is_none(),
                "command {command} accepted twice"
            );
            accepted[command as usize] = Some(frame.to_vec());
        }
        for step in steps {
            match step {
                Step::Send(bytes) => {
                    assert_eq!(command, cmd::AUTH_REQUEST);
                    let req = AuthRequest::decode(frame).unwrap();
                    assert!(req.tls_hash == TLS.cert_hash || req.tls_hash == TLS.key_hash);
                    let answer = AuthRequest {
                        tls_hash: req.tls_hash,
                        nonce: SERVER_NONCE,
                    };
                    assert_eq!(bytes, answer.encode());
                }
                Step::SendServerProof { message } => {
                    assert_eq!(command, cmd::AUTH_REQUEST);
                    assert!(accepted[4].is_none(), "server proof after command 4");
                    let req = AuthRequest::decode(frame).unwrap();
                    assert_eq!(
                        message,
                        server_signed_message(&req.tls_hash, &req.nonce, &SERVER_NONCE)
                    );
                }
                Step::Authenticated(who) => {
                    let [_, Some(_), Some(verify), Some(info), confirm] = &accepted else {
                        panic!("authenticated without commands 1, 2 and 3: {accepted:?}");
                    };
                    assert_eq!(who.used_skip_path, confirm.is_some());
                    assert_eq!(who.info, AuthInfo::decode(info).unwrap());
                    assert_eq!(who.agent_name, agent_name);
                    let cert = AuthVerify::decode(verify).unwrap().cert_der;
                    let key = rsa_public_key(&cert).unwrap();
                    assert_eq!(
                        who.node_id,
                        format!("node//{}", b64_at_dollar(&ironmesh_fuzz::sha384(&key)))
                    );
                    // The connection leaves the handshake here.
                    return;
                }
            }
        }
    }
});

/// Every decoder on every frame, whatever its command number: what one accepts, it
/// re-encodes to the same bytes (command 3: to the same value).
fn decoders_round_trip(frame: &[u8]) {
    match agent::command_of(frame) {
        Ok(None) => assert_eq!(frame[0], b'{'),
        Ok(Some(c)) => assert_eq!(c.to_be_bytes(), frame[..2]),
        Err(e) => assert!(frame.len() < 2 && e == FrameError::TooShort),
    }
    if let Ok(req) = AuthRequest::decode(frame) {
        assert_eq!(req.encode()[2..], frame[2..]);
    }
    if let Ok(verify) = AuthVerify::decode(frame) {
        assert!(!verify.cert_der.is_empty());
        assert_eq!(verify.encode()[2..], frame[2..]);
    }
    if let Ok(info) = AuthInfo::decode(frame) {
        assert!((1..=8).contains(&info.platform_type));
        assert!([32, 48].contains(&info.mesh_id.len()));
        let encoded = info.encode();
        if info.hostname.len() <= u16::MAX as usize {
            assert_eq!(AuthInfo::decode(&encoded).as_ref(), Ok(&info));
        }
    }
    if let Ok(Some(hash)) = agent::parse_core_hash(frame) {
        assert_eq!(hash, frame[4..52]);
    }
}
