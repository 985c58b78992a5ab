//! Graceful shutdown: on SIGTERM every session is told why with a close frame (1001
//! "server shutting down") and the server exits cleanly; the data it acknowledged is kept.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ironmesh_agent::identity::AgentIdentity;
use ironmesh_core::Domain;
use ironmesh_testkit::agent::{close_reason, create_group, fetch_msh, SimAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws::{self, Ws};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";

/// The close frame a control socket gets next (skipping other frames).
async fn control_close(c: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return format!("{} {}", u16::from(f.code), f.reason)
            }
            Ok(Some(Ok(Message::Close(None)))) => return "close without reason".into(),
            Ok(Some(Ok(_))) => continue,
            other => return format!("no close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn sigterm_closes_every_session_with_a_reason() {
    let mut s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;
    let group = create_group(&s, "admin", PASS, "g").await;
    let (identity, _) = AgentIdentity::generate(2048).unwrap();
    let sim = SimAgent::new(Arc::new(identity), &fetch_msh(&s, &group).await, s.port);
    let (mut agent, _) = sim.connect(None).await.unwrap();
    let mut console = ws::control(s.port, "admin", PASS).await.unwrap();
    // A write acknowledged just before the signal is kept.
    let reply = ws::request(
        &mut console,
        &json!({"action":"createmesh","meshname":"last-write","responseid":"w"}),
    )
    .await
    .unwrap();
    assert_eq!(reply["result"], "ok", "{reply}");

    let status = s
        .stop()
        .await
        .expect("the server exits by itself after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        control_close(&mut console).await,
        "1001 server shutting down"
    );
    assert_eq!(close_reason(&mut agent).await, "1001 server shutting down");

    let domain = Domain::open(&s.database_url).await.unwrap();
    assert_eq!(domain.check_integrity().await.unwrap(), "ok");
    let names: Vec<String> = domain
        .all_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert!(names.contains(&"last-write".to_string()), "{names:?}");
    domain.close().await;
}
