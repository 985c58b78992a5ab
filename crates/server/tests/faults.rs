//! Crashes: the server is killed with SIGKILL in the middle of work, restarted, and must
//! find its database intact and its agents back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironmesh_agent::identity::AgentIdentity;
use ironmesh_core::Domain;
use ironmesh_testkit::agent::{create_group, fetch_msh, SimAgent, TestAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws;
use serde_json::json;

const PASS: &str = "Adm1n-pass!";
/// Large enough that the upload is still running when the server is killed.
const SIZE: usize = 128 << 20;

async fn online(server: &TestServer, node: &str) -> bool {
    let Ok(mut c) = ws::control(server.port, "admin", PASS).await else {
        return false;
    };
    let r = ws::request(&mut c, &json!({"action":"nodes"}))
        .await
        .unwrap();
    r["nodes"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, l)| l.as_array().cloned().unwrap_or_default())
        .any(|n| n["_id"] == node && n["conn"] == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_registrations_and_an_upload() {
    let mut server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "g").await;
    let msh = fetch_msh(&server, &group).await;
    let mut agent = TestAgent::start(&msh).await;
    let (node, _) = agent.wait_online().await;

    // A stream of new agents registering while the server dies.
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(Arc::new(AgentIdentity::generate(2048).unwrap().0));
    }
    let port = server.port;
    let msh2 = msh.clone();
    let registering = tokio::spawn(async move {
        for id in ids {
            let sim = SimAgent::new(id, &msh2, port);
            let _ = tokio::time::timeout(Duration::from_secs(2), sim.connect(None)).await;
        }
    });
    // And an upload through the relay.
    let up_dir = tempfile::tempdir().unwrap();
    let file = up_dir.path().join("big.bin");
    std::fs::write(&file, vec![7u8; SIZE]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let cfg = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(ironmesh_testkit::binary("ironmesh"))
            .args(args)
            .env("IRONMESH_CONFIG_DIR", cfg.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut login = cli(&[
        "login",
        "--url",
        &server.wss_url(),
        "--user",
        "admin",
        "--password-stdin",
    ]);
    use std::io::Write;
    login
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASS}\n").as_bytes())
        .unwrap();
    assert!(login.wait().unwrap().success());
    let upload = cli(&[
        "upload",
        &node,
        file.to_str().unwrap(),
        dest.path().to_str().unwrap(),
    ]);

    // Kill the server once the first bytes have reached the agent's side: by time alone the
    // outcome would depend on the machine's speed.
    let landed = dest.path().join("big.bin");
    wait_until(Duration::from_secs(20), "the upload to start", async || {
        std::fs::metadata(&landed).map(|m| m.len()).unwrap_or(0) > 0
    })
    .await;
    server.kill().await;
    let out = upload.wait_with_output().unwrap();
    assert!(!out.status.success(), "the upload cannot have finished");
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("upload failed after") && msg.contains("run the same upload again"),
        "{msg}"
    );
    let _ = registering.await;

    // The database is intact (SQLite's own check) and still usable.
    {
        let domain = Domain::open(&server.database_url).await.unwrap();
        assert_eq!(domain.check_integrity().await.unwrap(), "ok");
        assert!(domain.actor("user//admin").await.unwrap().is_some());
        assert!(domain.group_by_id(&group).await.unwrap().is_some());
        assert!(domain.device_exists(&node).await.unwrap());
        domain.close().await;
    }

    // Restarted: the agent is back by itself within 10 s, and the upload can be redone.
    let started = Instant::now();
    server.restart().await;
    wait_until(
        Duration::from_secs(10).saturating_sub(started.elapsed()),
        "the agent back within 10 s of the restart",
        async || online(&server, &node).await,
    )
    .await;
    eprintln!(
        "agent back online {:?} after the restart began",
        started.elapsed()
    );
    let out = cli(&[
        "upload",
        &node,
        file.to_str().unwrap(),
        dest.path().to_str().unwrap(),
    ])
    .wait_with_output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(dest.path().join("big.bin"))
            .unwrap()
            .len(),
        SIZE as u64
    );
    agent.kill().await;
}
