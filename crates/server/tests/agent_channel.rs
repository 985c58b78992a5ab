//! Bad input on `/agent.ashx`: each broken handshake is refused with a close reason, and
//! none of them disturbs an agent that is already connected.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ironmesh_agent::handshake::ClientHandshake;
use ironmesh_agent::identity::AgentIdentity;
use ironmesh_proto::agent::{self, cmd, AuthRequest, AuthVerify};
use ironmesh_testkit::agent::{close_reason, create_group, fetch_msh, SimAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";

async fn send(s: &mut ironmesh_client::connect::Socket, frame: Vec<u8>) {
    s.send(Message::Binary(frame.into())).await.unwrap();
}

async fn next_binary(s: &mut ironmesh_client::connect::Socket) -> Vec<u8> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Binary(b))) => return b.to_vec(),
            Some(Ok(Message::Close(c))) => panic!("closed: {c:?}"),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn broken_handshakes_are_refused_without_disturbing_other_agents() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "g").await;
    let msh = fetch_msh(&server, &group).await;
    let (good_id, _) = AgentIdentity::generate(2048).unwrap();
    let (evil_id, _) = AgentIdentity::generate(2048).unwrap();
    let good = SimAgent::new(Arc::new(good_id), &msh, server.port);
    let evil = SimAgent::new(Arc::new(evil_id), &msh, server.port);

    // A healthy agent, connected throughout.
    let (mut healthy, _) = good.connect(None).await.unwrap();
    assert_eq!(
        next_binary(&mut healthy).await,
        agent::with_request_id(cmd::CORE_MODULE_HASH, &[])
    );

    // Truncated command 1.
    let (mut s, _) = evil.open().await;
    send(&mut s, vec![0, 1, 5, 5]).await;
    assert!(close_reason(&mut s)
        .await
        .contains("command 1: expected 98 bytes, got 4"));

    // A frame too short to hold a command number.
    let (mut s, _) = evil.open().await;
    send(&mut s, vec![7]).await;
    assert!(close_reason(&mut s).await.contains("shorter than 2 bytes"));

    // Oversized handshake frame.
    let (mut s, _) = evil.open().await;
    let mut big = vec![0, 2, 0x40, 0];
    big.resize(20_000, 0x30);
    send(&mut s, big).await;
    assert!(close_reason(&mut s).await.contains("too large"));

    // Wrong TLS hash (as behind a TLS-terminating proxy, or a forged server identity).
    let (mut s, _) = evil.open().await;
    send(
        &mut s,
        AuthRequest {
            tls_hash: [9; 48],
            nonce: [1; 48],
        }
        .encode(),
    )
    .await;
    assert!(close_reason(&mut s)
        .await
        .contains("TLS certificate hash mismatch"));

    // Repeated command 1.
    let (mut s, cert) = evil.open().await;
    let mut hs = ClientHandshake::new(
        &evil.identity,
        evil.server_id,
        evil.mesh_id.clone(),
        SimAgent::description(),
        &cert,
        None,
    );
    let opening = hs.opening();
    let cmd1 = opening.last().unwrap().clone();
    send(&mut s, cmd1.clone()).await;
    send(&mut s, cmd1).await;
    assert!(close_reason(&mut s).await.contains("command 1 sent twice"));

    // A post-authentication command before authentication.
    let (mut s, _) = evil.open().await;
    send(&mut s, agent::with_request_id(cmd::CORE_MODULE, &[0; 48])).await;
    assert!(close_reason(&mut s)
        .await
        .contains("command 10 not allowed before authentication"));

    // Forged agent signature: the server's nonce is signed by a different key than the
    // certificate's.
    let (mut s, cert) = evil.open().await;
    let mut hs = ClientHandshake::new(
        &evil.identity,
        evil.server_id,
        evil.mesh_id.clone(),
        SimAgent::description(),
        &cert,
        None,
    );
    for f in hs.opening() {
        send(&mut s, f).await;
    }
    let server_cmd1 = next_binary(&mut s).await;
    let ironmesh_agent::handshake::Progress::Send(frames) = hs.on_frame(&server_cmd1).unwrap()
    else {
        panic!("expected our command 2");
    };
    let mut forged = AuthVerify::decode(&frames[0]).unwrap();
    forged.cert_der = good.identity.cert_der.clone(); // claim to be the healthy agent
    send(&mut s, forged.encode()).await;
    let reason = close_reason(&mut s).await;
    assert!(
        reason.contains("agent signature does not verify"),
        "{reason}"
    );

    // A handshake command after authentication.
    let (mut late, _) = evil.connect(None).await.unwrap();
    send(
        &mut late,
        AuthRequest {
            tls_hash: [0; 48],
            nonce: [0; 48],
        }
        .encode(),
    )
    .await;
    assert!(close_reason(&mut late)
        .await
        .contains("handshake command 1 after authentication"));

    // Malformed JSON after authentication is ignored, the connection stays up.
    let (mut chatty, _) = evil.connect(None).await.unwrap();
    chatty
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    chatty
        .send(Message::Text(json!({"action":"ping"}).to_string().into()))
        .await
        .unwrap();
    loop {
        let frame = next_binary(&mut chatty).await;
        if frame == br#"{"action":"pong"}"# {
            break;
        }
    }

    // The healthy agent was never disturbed: it still answers, and is still online.
    healthy
        .send(Message::Text(json!({"action":"ping"}).to_string().into()))
        .await
        .unwrap();
    loop {
        if next_binary(&mut healthy).await == br#"{"action":"pong"}"# {
            break;
        }
    }
    let mut c = ws::control(server.port, "admin", PASS).await.unwrap();
    let r = ws::request(&mut c, &json!({"action":"nodes"}))
        .await
        .unwrap();
    let nodes = r["nodes"][&group].as_array().unwrap();
    let healthy_node = nodes
        .iter()
        .find(|n| n["_id"] == good.identity.node_id.as_str())
        .unwrap();
    assert_eq!(healthy_node["conn"], 1);
}

#[tokio::test]
async fn a_second_connection_of_the_same_agent_replaces_the_first() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "g").await;
    let msh = fetch_msh(&server, &group).await;
    let (id, _) = AgentIdentity::generate(2048).unwrap();
    let sim = SimAgent::new(Arc::new(id), &msh, server.port);
    let (mut first, trust) = sim.connect(None).await.unwrap();
    assert!(
        trust.is_some(),
        "first connection verified the server signature"
    );
    // The second connection takes the skip path with the remembered TLS hash.
    let (mut second, trust2) = sim.connect(trust).await.unwrap();
    assert!(trust2.is_none(), "skip path: no server signature this time");
    assert!(close_reason(&mut first)
        .await
        .contains("replaced by a newer connection"));
    // Still online through the second connection.
    second
        .send(Message::Text(json!({"action":"ping"}).to_string().into()))
        .await
        .unwrap();
    loop {
        if next_binary(&mut second).await == br#"{"action":"pong"}"# {
            break;
        }
    }
    let mut c = ws::control(server.port, "admin", PASS).await.unwrap();
    let r = ws::request(&mut c, &json!({"action":"nodes","meshid":group}))
        .await
        .unwrap();
    assert_eq!(r["nodes"][&group][0]["conn"], 1);
}
