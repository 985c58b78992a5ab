//! Random and mutated input to every parser: an error is fine, a panic is not. (Seeded, so
//! a failure reproduces; the cargo-fuzz targets in `fuzz/` search further and check more.)

use ironmesh_proto::agent::{self, AuthInfo, AuthRequest, AuthVerify};
use ironmesh_proto::control::Request;
use ironmesh_proto::msh::MeshSettings;
use ironmesh_proto::relay::{RelayQuery, StartFrame};
use ironmesh_proto::{ids, meshauth, wifidog};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ROUNDS: usize = 20_000;

fn random_bytes(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.gen_range(0..300);
    (0..len).map(|_| rng.gen()).collect()
}

/// A valid sample with a few bytes changed, cut or extended.
fn mutate(rng: &mut StdRng, sample: &[u8]) -> Vec<u8> {
    let mut v = sample.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..3) {
            0 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] = rng.gen();
            }
            1 => v.truncate(rng.gen_range(0..=v.len())),
            _ => v.extend((0..rng.gen_range(1..20)).map(|_| rng.gen::<u8>())),
        }
    }
    v
}

fn all_parsers(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = Request::parse(&text);
    let _ = meshauth::parse(&text);
    let _ = MeshSettings::parse(&text);
    let _ = wifidog::parse_device_frame(&text);
    let _ = RelayQuery::parse(&text);
    let _ = StartFrame::parse(&text);
    let _ = ids::decode_b64_at_dollar(&text);
    let _ = ids::decode_hex(&text);
    for kind in [ids::IdKind::User, ids::IdKind::Mesh, ids::IdKind::Node] {
        let _ = ids::normalize_id(kind, &text);
    }
    let _ = agent::command_of(bytes);
    let _ = AuthRequest::decode(bytes);
    let _ = AuthVerify::decode(bytes);
    let _ = AuthInfo::decode(bytes);
    let _ = agent::parse_core_hash(bytes);
}

#[test]
fn parsers_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x1d0d);
    let samples: Vec<Vec<u8>> = vec![
        br#"{"action":"adduser","username":"a","pass":"b","responseid":"x"}"#.to_vec(),
        br#"{"op":"heartbeat","device_id":"D","gateway":[{"gw_id":"G","auth_mode":1}],"req_id":"1"}"#.to_vec(),
        br#"{"req_id":"a","response":"200","data":{"type":"kickoff_response","status":"error"}}"#.to_vec(),
        b"\r\nMeshName=x\r\nMeshID=0xEE\r\nServerID=AA\r\nMeshServer=wss://h/agent.ashx\r\n".to_vec(),
        AuthRequest { tls_hash: [1; 48], nonce: [2; 48] }.encode(),
        AuthVerify { cert_der: vec![0x30; 100], signature: vec![1; 256] }.encode(),
        AuthInfo {
            info_version: 1,
            agent_id: 6,
            agent_version: 0,
            platform_type: 1,
            mesh_id: vec![7; 48],
            capabilities: 0x118,
            hostname: "vm".into(),
        }
        .encode(),
    ];
    for _ in 0..ROUNDS {
        all_parsers(&random_bytes(&mut rng));
        let sample = &samples[rng.gen_range(0..samples.len())];
        all_parsers(&mutate(&mut rng, sample));
    }
}
