//! The real ironmesh-agent against the real server: online, offline, same identity after
//! restart, the skip path, group rules, live events.

use std::time::{Duration, Instant};

use ironmesh_testkit::agent::{create_group, fetch_msh, TestAgent};
use ironmesh_testkit::meshctrl;
use ironmesh_testkit::postgres;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws;
use serde_json::Value;

const PASS: &str = "Adm1n-pass!";

async fn devices(server: &TestServer) -> Vec<Value> {
    let out = meshctrl::run(&server.wss_url(), "admin", PASS, &["listdevices", "--json"]).await;
    if out.stdout.trim() == "None" {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_for_conn(server: &TestServer, node: &str, conn: u64) -> Value {
    wait_until(
        Duration::from_secs(20),
        &format!("{node} to reach conn={conn}"),
        async || {
            let list = devices(server).await;
            match list.iter().find(|d| d["_id"] == node) {
                Some(d) if d["conn"] == conn => Ok(d.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

use ironmesh_testkit::agent::node_id_in as node_from_log;

async fn lifecycle(db: Db) {
    let server = TestServer::start(db).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "office").await;
    let msh = fetch_msh(&server, &group).await;
    assert!(
        msh.contains("MeshServer=wss://localhost:") || msh.contains("MeshServer=wss://127.0.0.1:"),
        "{msh}"
    );

    // A console watching events sees the device arrive.
    let mut console = ws::control(server.port, "admin", PASS).await.unwrap();

    let mut agent = TestAgent::start(&msh).await;
    let first = agent
        .wait_for_log("authenticated", Duration::from_secs(60))
        .await;
    assert!(
        first.contains("skip_path=false"),
        "first connection verifies the server: {first}"
    );
    let node = node_from_log(&first);
    let started = Instant::now();
    let device = wait_for_conn(&server, &node, 1).await;
    eprintln!(
        "online in listdevices {:?} after authentication",
        started.elapsed()
    );
    assert_eq!(device["name"], ironmesh_agent::reports::hostname());
    assert_eq!(device["groupname"], "office");
    assert_eq!(device["agent"]["id"], 6);
    // coreinfo arrives right after the core check.
    let d = wait_until(Duration::from_secs(10), "coreinfo", async || {
        let d = devices(&server)
            .await
            .into_iter()
            .find(|d| d["_id"] == node.as_str())
            .unwrap();
        if d["osdesc"] == ironmesh_agent::reports::os_description() {
            Ok(d)
        } else {
            Err(d)
        }
    })
    .await;
    assert!(d["agent"]["core"]
        .as_str()
        .unwrap()
        .starts_with("ironmesh-agent"));
    let mut saw = (false, false);
    while !(saw.0 && saw.1) {
        let e = ws::recv_any_json(&mut console).await.unwrap();
        if e["event"]["nodeid"] != node.as_str() {
            continue;
        }
        match e["event"]["action"].as_str() {
            Some("addnode") => saw.0 = true,
            Some("nodeconnect") if e["event"]["conn"] == 1 => saw.1 = true,
            _ => {}
        }
    }

    // Offline after the agent stops.
    agent.kill().await;
    wait_for_conn(&server, &node, 0).await;
    loop {
        let e = ws::recv_any_json(&mut console).await.unwrap();
        if e["event"]["action"] == "nodeconnect" && e["event"]["conn"] == 0 {
            break;
        }
    }

    // Same identity after restart, and the skip path (no server signature) this time.
    agent.restart().await;
    let again = agent
        .wait_for_log("authenticated", Duration::from_secs(30))
        .await;
    assert_eq!(node_from_log(&again), node);
    assert!(again.contains("skip_path=true"), "{again}");
    wait_for_conn(&server, &node, 1).await;
    assert_eq!(devices(&server).await.len(), 1, "no duplicate device");

    // A restarted server keeps the device and the agent comes back by itself.
    let mut server = server;
    server.restart().await;
    let back = agent
        .wait_for_log("authenticated", Duration::from_secs(30))
        .await;
    assert!(
        back.contains("skip_path=true"),
        "TLS certificate survived the restart: {back}"
    );
    wait_for_conn(&server, &node, 1).await;
}

#[tokio::test]
async fn agent_lifecycle_on_sqlite() {
    lifecycle(Db::Sqlite).await;
}

#[tokio::test]
async fn agent_lifecycle_on_postgres() {
    if postgres::enabled() {
        lifecycle(Db::Postgres).await;
    }
}

#[tokio::test]
async fn known_devices_keep_their_group_and_unknown_groups_are_refused() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let a = create_group(&server, "admin", PASS, "a").await;
    let b = create_group(&server, "admin", PASS, "b").await;
    let msh_a = fetch_msh(&server, &a).await;
    let msh_b = fetch_msh(&server, &b).await;

    let mut agent = TestAgent::start(&msh_a).await;
    let node = node_from_log(
        &agent
            .wait_for_log("authenticated", Duration::from_secs(60))
            .await,
    );
    agent.kill().await;
    // Same key, settings of group b: the stored group wins.
    std::fs::write(agent.state_dir.parent().unwrap().join("agent.msh"), &msh_b).unwrap();
    agent.restart().await;
    agent
        .wait_for_log("authenticated", Duration::from_secs(30))
        .await;
    let d = wait_for_conn(&server, &node, 1).await;
    assert_eq!(d["meshid"], a.as_str());
    agent.kill().await;

    // A new agent naming a group that does not exist is refused with a reason.
    let bogus = msh_a.replace(
        &msh_a[msh_a.find("MeshID=0x").unwrap() + 9..][..8],
        "00000000",
    );
    let mut stranger = TestAgent::start(&bogus).await;
    let refused = stranger
        .wait_for_log("unknown or deleted device group", Duration::from_secs(60))
        .await;
    assert!(refused.contains("registration refused"), "{refused}");

    // Deleting the group takes the device with it; its agent is then refused too.
    let mut c = ws::control(server.port, "admin", PASS).await.unwrap();
    let r = ws::request(
        &mut c,
        &serde_json::json!({"action":"deletemesh","meshid":a}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "ok");
    std::fs::write(agent.state_dir.parent().unwrap().join("agent.msh"), &msh_a).unwrap();
    agent.restart().await;
    agent
        .wait_for_log("unknown or deleted device group", Duration::from_secs(30))
        .await;
    assert!(devices(&server)
        .await
        .iter()
        .all(|d| d["_id"] != node.as_str()));
}
