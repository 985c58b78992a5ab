//! `require_second_factor = true`: an account without a second factor may sign in, but
//! only to add one; everything else is refused with the reason, until it has one.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ironmesh_agent::identity::AgentIdentity;
use ironmesh_testkit::agent::{fetch_msh, SimAgent};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::twofactor::add_authenticator;
use ironmesh_testkit::ws::{self, b64, Ws};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PASS: &str = "Adm1n-pass!";
const REASON: &str = "This server requires a second factor";

async fn ask(c: &mut Ws, mut req: Value) -> Value {
    req["responseid"] = "r".into();
    ws::send_json(c, &req).await.unwrap();
    loop {
        let v = ws::recv_json(c).await.unwrap();
        if v["responseid"] == "r" {
            return v;
        }
    }
}

/// The close code and reason a relay socket ends with.
async fn relay_refusal(s: &TestServer, node: &str) -> (u16, String) {
    let auth = format!("{},{}", b64(b"admin"), b64(PASS.as_bytes()));
    let mut c = ws::connect(
        s.port,
        &format!("/meshrelay.ashx?nodeid={node}&p=1"),
        &[("x-meshauth", auth.as_str())],
    )
    .await
    .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(15), c.next())
            .await
            .expect("no close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => return (0, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("error instead of close: {e}"),
        }
    }
}

#[tokio::test]
async fn an_account_without_a_second_factor_may_only_add_one() {
    let s = TestServer::start_with_config(Db::Sqlite, "require_second_factor = true\n").await;
    s.add_user("admin", PASS, true).await;
    // The group and its device exist before the policy bites (the server's command line
    // is not subject to it).
    let made = s
        .subcommand(&["group", "add", "lab", "--owner", "admin"])
        .await;
    assert!(made.status.success(), "{made:?}");
    let group = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let (identity, _) = AgentIdentity::generate(2048).unwrap();
    let sim = SimAgent::new(Arc::new(identity), &fetch_msh(&s, &group).await, s.port);
    let node = sim.identity.node_id.clone();
    let (_agent, _) = sim.connect(None).await.unwrap();

    // Signing in works; the greeting says what is missing.
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();
    let info = ask(&mut c, json!({"action":"userinfo"})).await;
    assert_eq!(info["userinfo"]["secondfactorpending"], true, "{info}");
    assert!(ask(&mut c, json!({"action":"serverinfo"})).await["serverinfo"].is_object());
    // Everything else is refused with the reason, even for a full administrator.
    for req in [
        json!({"action":"meshes"}),
        json!({"action":"nodes"}),
        json!({"action":"users"}),
        json!({"action":"events"}),
        json!({"action":"createLoginToken","name":"cli"}),
        json!({"action":"authcookie"}),
        json!({"action":"runcommands","nodeids":[node],"cmds":"id","type":0}),
        json!({"action":"adduser","username":"mallory","pass":"long-pass-1"}),
    ] {
        let r = ask(&mut c, req.clone()).await;
        assert!(
            r["result"].as_str().unwrap_or("").starts_with(REASON) && r["failed"] == true,
            "{req}: {r}"
        );
    }
    // Relays too.
    let (code, reason) = relay_refusal(&s, &node).await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.starts_with(REASON), "{reason}");
    // meshctrl shows the reason.
    let out =
        ironmesh_testkit::meshctrl::run(&s.wss_url(), "admin", PASS, &["listdevicegroups"]).await;
    assert!(!out.stdout.contains("lab"), "{out:?}");

    // Changing one's own password is allowed (a first password may be temporary).
    let changed = ask(
        &mut c,
        json!({"action":"changepassword","oldpass":PASS,"newpass":"Second-pass-2"}),
    )
    .await;
    assert!(changed.get("failed").is_none(), "{changed}");

    // Adding an authenticator app lifts it, in the same session.
    add_authenticator(&mut c).await;
    let meshes = ask(&mut c, json!({"action":"meshes"})).await;
    assert!(meshes.to_string().contains("lab"), "{meshes}");
    let info = ask(&mut c, json!({"action":"userinfo"})).await;
    assert!(
        info["userinfo"].get("secondfactorpending").is_none(),
        "{info}"
    );
    // Nothing was created by the refused requests.
    let users = ask(&mut c, json!({"action":"users"})).await;
    assert!(!users.to_string().contains("mallory"), "{users}");
}

#[tokio::test]
async fn without_the_policy_accounts_need_no_second_factor() {
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();
    let info = ask(&mut c, json!({"action":"userinfo"})).await;
    assert!(
        info["userinfo"].get("secondfactorpending").is_none(),
        "{info}"
    );
    assert!(ask(&mut c, json!({"action":"meshes"})).await["meshes"].is_array());
}
