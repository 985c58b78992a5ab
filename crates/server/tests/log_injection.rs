//! Defect 11 of SECURITY.md: values from clients are logged escaped (a newline cannot
//! forge a log line), and a refused relay names no device the user has no rights on. A
//! test binary of its own: it raises the server's log level through the environment.

use std::time::Duration;

use futures_util::StreamExt;
use ironmesh_testkit::agent::{create_group, fetch_msh, TestAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws::{self, b64};
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";

#[tokio::test]
async fn client_values_cannot_forge_log_lines() {
    // The only test here, so changing the environment affects no other test.
    std::env::set_var("IRONMESH_TEST_LOG", "info");
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;
    s.add_user("eve", "eve-pass-1", false).await;
    let group = create_group(&s, "admin", PASS, "g").await;
    let mut agent = TestAgent::start(&fetch_msh(&s, &group).await).await;
    let (node, _) = agent.wait_online().await;
    let eve = format!("{},{}", b64(b"eve"), b64(b"eve-pass-1"));
    // Two sockets of eve paired under a relay id holding a newline and a fake log line.
    let forged = "abc%0A2026-01-01T00:00:00Z%20INFO%20FORGED%20admin%20logged%20in";
    let mut pair = Vec::new();
    for _ in 0..2 {
        pair.push(
            ws::connect(
                s.port,
                &format!("/meshrelay.ashx?id={forged}"),
                &[("x-meshauth", &eve)],
            )
            .await
            .unwrap(),
        );
    }
    for side in pair.iter_mut() {
        // Both get the paired signal once the session (and its log line) started.
        match tokio::time::timeout(Duration::from_secs(10), side.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.as_str(), "c"),
            other => panic!("not paired: {other:?}"),
        }
    }
    drop(pair);
    // A device eve has no rights on.
    let mut relay = ws::connect(
        s.port,
        &format!("/meshrelay.ashx?nodeid={node}&p=1"),
        &[("x-meshauth", &eve)],
    )
    .await
    .unwrap();
    while let Some(Ok(m)) = relay.next().await {
        if matches!(m, Message::Close(_)) {
            break;
        }
    }
    // The server's own pipe may lag a moment behind the socket close.
    let lines = wait_until(
        Duration::from_secs(10),
        "the refused relay logged",
        async || {
            let lines = s.log_lines();
            lines
                .iter()
                .any(|l| l.contains("relay refused") && l.contains("unknown device"))
                .then_some(lines)
        },
    )
    .await;
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            !line.starts_with("2026-01-01T00:00:00Z"),
            "a forged line made it into the log: {line}"
        );
        assert!(
            !(line.contains("relay") && line.contains(&node)),
            "eve's refused relay was logged against the device: {line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("FORGED") && l.contains("\\n")),
        "{lines:#?}"
    );
}
