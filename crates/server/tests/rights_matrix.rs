//! Every control action against users who lack what it needs: each is refused, and things
//! a user may not see are reported exactly like things that do not exist. The matrix must
//! name every action the server serves, so a new action cannot skip it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ironmesh_agent::identity::AgentIdentity;
use ironmesh_testkit::agent::{create_group, fetch_msh, SimAgent};
use ironmesh_testkit::gateway::{Firmware, GatewayOptions, SimGateway};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws::{self, Ws};
use serde_json::{json, Value};

const PASS: &str = "Adm1n-pass!";
const USER_PASS: &str = "long-pass-1";

/// Who asks: (name, rights on the group or None for no membership).
const SUBJECTS: [(&str, Option<u32>); 3] = [
    ("nobody", None),
    ("watcher", Some(0)),
    ("operator", Some(8)),
];

/// What a refusal looks like: one of these results.
fn refused(result: &str) -> bool {
    matches!(
        result,
        "Access denied"
            | "Invalid group id"
            | "Invalid device id"
            | "Invalid nodeid"
            | "Unknown gateway"
            | "Unknown device group"
    )
}

async fn ask(c: &mut Ws, mut req: Value) -> Value {
    req["responseid"] = "matrix".into();
    ws::send_json(c, &req).await.unwrap();
    loop {
        let v = ws::recv_any_json(c).await.unwrap();
        if v["responseid"] == "matrix" {
            return v;
        }
    }
}

#[tokio::test]
async fn every_action_checks_rights() {
    let plain = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = TestServer::start_with_config(
        Db::Sqlite,
        &format!("[wifidog]\nplain_port = {plain}\nheartbeat_secs = 1\n"),
    )
    .await;
    s.add_user("admin", PASS, true).await;
    let group = create_group(&s, "admin", PASS, "secured").await;
    let mut admin = ws::control(s.port, "admin", PASS).await.unwrap();
    // A device (online) and a gateway (approved) in the group.
    let (identity, _) = AgentIdentity::generate(2048).unwrap();
    let sim = SimAgent::new(Arc::new(identity), &fetch_msh(&s, &group).await, s.port);
    let node = sim.identity.node_id.clone();
    let (_agent, _) = sim.connect(None).await.unwrap();
    let _gw = SimGateway::start(GatewayOptions::new(Firmware::V9, "GW-M", plain));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        ask(
            &mut admin,
            json!({"action":"wifidogapprove","deviceid":"GW-M","meshid":group})
        )
        .await["result"],
        "ok"
    );
    for (name, rights) in SUBJECTS {
        assert_eq!(
            ask(
                &mut admin,
                json!({"action":"adduser","username":name,"pass":USER_PASS})
            )
            .await["result"],
            "ok"
        );
        if let Some(r) = rights {
            let added = ask(
                &mut admin,
                json!({"action":"addmeshuser","meshid":group,"usernames":[name],"meshadmin":r}),
            )
            .await;
            assert!(
                added["result"].as_str().unwrap().starts_with("Added"),
                "{added}"
            );
        }
    }

    // (action, request, the rights a subject needs: Some(bits on the group) or None = site
    // administrator; "login" actions are open to every signed-in user).
    let tunnel = format!("*/meshrelay.ashx?p=1&nodeid={node}&id=abc&rauth=x");
    let matrix: Vec<(&str, Value, Option<u32>)> = vec![
        ("users", json!({"action":"users"}), None),
        (
            "adduser",
            json!({"action":"adduser","username":"x1","pass":USER_PASS}),
            None,
        ),
        (
            "deleteuser",
            json!({"action":"deleteuser","userid":"admin"}),
            None,
        ),
        (
            "edituser",
            json!({"action":"edituser","userid":"admin","siteadmin":0}),
            None,
        ),
        (
            "changeuserpass",
            json!({"action":"changeuserpass","userid":"admin","pass":"Takeover-pass1!"}),
            None,
        ),
        (
            "deletemesh",
            json!({"action":"deletemesh","meshid":group}),
            Some(u32::MAX),
        ),
        (
            "editmesh",
            json!({"action":"editmesh","meshid":group,"meshname":"renamed"}),
            Some(1),
        ),
        (
            "addmeshuser",
            json!({"action":"addmeshuser","meshid":group,"usernames":["nobody"],"meshadmin":8}),
            Some(2),
        ),
        (
            "removemeshuser",
            json!({"action":"removemeshuser","meshid":group,"userid":"operator"}),
            Some(2),
        ),
        ("nodes", json!({"action":"nodes","meshid":group}), Some(0)),
        (
            "getnetworkinfo",
            json!({"action":"getnetworkinfo","nodeid":node}),
            Some(1048576),
        ),
        (
            "lastconnect",
            json!({"action":"lastconnect","nodeid":node}),
            Some(0),
        ),
        (
            "getsysinfo",
            json!({"action":"getsysinfo","nodeid":node}),
            Some(1048576),
        ),
        // New accounts may not create device groups (the NO_NEW_GROUPS site right).
        (
            "createmesh",
            json!({"action":"createmesh","meshname":"own"}),
            None,
        ),
        ("events", json!({"action":"events","nodeid":node}), Some(0)),
        (
            "msg",
            json!({"action":"msg","nodeid":node,"type":"tunnel","value":tunnel}),
            Some(8),
        ),
        (
            "runcommands",
            json!({"action":"runcommands","nodeids":[node],"cmds":"id","type":0}),
            Some(131072),
        ),
        (
            "wifidogapprove",
            json!({"action":"wifidogapprove","deviceid":"GW-M","meshid":group}),
            Some(4),
        ),
        (
            "wifidogcmd",
            json!({"action":"wifidogcmd","deviceid":"GW-M","op":"get_clients"}),
            Some(8),
        ),
        (
            "wifidogauthmode",
            json!({"action":"wifidogauthmode","deviceid":"GW-M","gwid":"GW0001","authmode":0}),
            Some(8),
        ),
    ];
    // Open to every signed-in user: they answer, without a refusal.
    let open: Vec<Value> = vec![
        json!({"action":"serverinfo"}),
        json!({"action":"userinfo"}),
        json!({"action":"ping"}),
        json!({"action":"meshes"}),
        json!({"action":"nodes"}),
        json!({"action":"events"}),
        json!({"action":"authcookie"}),
        json!({"action":"createLoginToken","name":"m"}),
        json!({"action":"loginTokens"}),
        json!({"action":"wifidogs"}),
        json!({"action":"changepassword","oldpass":"not-the-password","newpass":"Another-pass-1"}),
    ];
    let covered: HashSet<String> = matrix
        .iter()
        .map(|(a, _, _)| a.to_string())
        .chain(
            open.iter()
                .map(|r| r["action"].as_str().unwrap().to_string()),
        )
        .collect();
    for action in ironmesh_server::control::ACTION_NAMES {
        assert!(
            covered.contains(*action),
            "action {action} is missing from the rights matrix"
        );
    }

    for (name, rights) in SUBJECTS {
        let mut c = ws::control(s.port, name, USER_PASS).await.unwrap();
        for req in &open {
            let r = ask(&mut c, req.clone()).await;
            let result = r["result"].as_str().unwrap_or("");
            assert!(!refused(result), "{name} refused {}: {r}", req["action"]);
        }
        for (action, req, needs) in &matrix {
            let allowed = match (needs, rights) {
                (None, _) | (_, None) => false,
                (Some(need), Some(have)) => *need != u32::MAX && have & need == *need,
            };
            if allowed {
                continue; // the allowed paths are exercised by the feature tests
            }
            let r = ask(&mut c, req.clone()).await;
            let result = r["result"].as_str().unwrap_or("");
            assert!(
                refused(result),
                "{name} (rights {rights:?}) was not refused {action}: {r}"
            );
            // Without membership the group, device and gateway are invisible: "not found",
            // never "denied".
            if rights.is_none() && needs.is_some() {
                assert_ne!(
                    result, "Access denied",
                    "{name} learned that the object of {action} exists"
                );
            }
        }
    }
    // Nothing was changed by the refused requests.
    let meshes = ask(&mut admin, json!({"action":"meshes"})).await;
    let g = meshes["meshes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["_id"] == group.as_str())
        .unwrap()
        .clone();
    assert_eq!(g["name"], "secured");
    assert!(g["links"].get("user//nobody").is_none());
    assert_eq!(g["links"]["user//operator"]["rights"], 8);
}
