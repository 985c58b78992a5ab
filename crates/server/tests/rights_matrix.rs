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
use ironmesh_testkit::wait_until;
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
            // MeshCentral's texts for the device lifecycle actions and `toast`, each the
            // same for an unknown device as for a forbidden one (or, for moves, an unknown
            // group).
            | "Access Denied"
            | "Denied"
            | "Permission denied"
            | "Device not found"
            | "Invalid nodeid"
            | "Invalid group id"
            | "Invalid group identifier"
            | "Unknown group"
            | "Invalid device id"
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

/// A server with the gateway endpoint on a plain port, its administrator signed in, a
/// device group and a connected (simulated) agent in it.
struct Setup {
    s: TestServer,
    plain: u16,
    group: String,
    admin: Ws,
    node: String,
    _agent: ironmesh_client::connect::Socket,
}

impl Setup {
    async fn new(group_name: &str) -> Setup {
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
        let group = create_group(&s, "admin", PASS, group_name).await;
        let admin = ws::control(s.port, "admin", PASS).await.unwrap();
        let (identity, _) = AgentIdentity::generate(2048).unwrap();
        let sim = SimAgent::new(Arc::new(identity), &fetch_msh(&s, &group).await, s.port);
        let node = sim.identity.node_id.clone();
        let (agent, _) = sim.connect(None).await.unwrap();
        Setup {
            s,
            plain,
            group,
            admin,
            node,
            _agent: agent,
        }
    }
}

#[tokio::test]
async fn every_action_checks_rights() {
    let Setup {
        s,
        plain,
        group,
        mut admin,
        node,
        _agent,
    } = Setup::new("secured").await;
    // A device (online) and a gateway (approved) in the group.
    let _gw = SimGateway::start(GatewayOptions::new(Firmware::V9, "GW-M", plain));
    wait_until(Duration::from_secs(15), "the device online", async || {
        ws::node_conn(&mut admin, &node).await == Some(1)
    })
    .await;
    wait_until(Duration::from_secs(15), "GW-M listed", async || {
        let r = ask(&mut admin, json!({"action":"wifidogs"})).await;
        r["gateways"]
            .as_array()
            .is_some_and(|l| l.iter().any(|g| g["deviceid"] == "GW-M"))
    })
    .await;
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
        // Another account's second factors: user managers only.
        (
            "otpauth-clear",
            json!({"action":"otpauth-clear","userid":"user//admin"}),
            None,
        ),
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
            "changedevice",
            json!({"action":"changedevice","nodeid":node,"name":"renamed"}),
            Some(4),
        ),
        // Edit group on both groups and manage devices on the target: here the same group
        // (allowed, it would answer "Device already in correct group").
        (
            "changeDeviceMesh",
            json!({"action":"changeDeviceMesh","nodeids":[node],"meshid":group}),
            Some(5),
        ),
        (
            "adddeviceuser",
            json!({"action":"adddeviceuser","nodeid":node,"usernames":["nobody"],"rights":8}),
            Some(2),
        ),
        (
            "removedevices",
            json!({"action":"removedevices","nodeids":[node]}),
            Some(32768),
        ),
        (
            "poweraction",
            json!({"action":"poweraction","nodeids":[node],"actiontype":3}),
            Some(262144),
        ),
        (
            "wakedevices",
            json!({"action":"wakedevices","nodeids":[node]}),
            Some(64),
        ),
        (
            "toast",
            json!({"action":"toast","nodeids":[node],"msg":"hello"}),
            Some(16384),
        ),
        (
            "powertimeline",
            json!({"action":"powertimeline","nodeid":node}),
            Some(0),
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
        // User groups and broadcasts: site rights USERGROUPS / MANAGEUSERS.
        (
            "createusergroup",
            json!({"action":"createusergroup","name":"staff"}),
            None,
        ),
        (
            "deleteusergroup",
            json!({"action":"deleteusergroup","ugrpid":"ugrp//nosuch"}),
            None,
        ),
        (
            "addusertousergroup",
            json!({"action":"addusertousergroup","ugrpid":"ugrp//nosuch","usernames":["nobody"]}),
            None,
        ),
        (
            "removeuserfromusergroup",
            json!({"action":"removeuserfromusergroup","ugrpid":"ugrp//nosuch","userid":"nobody"}),
            None,
        ),
        (
            "userbroadcast",
            json!({"action":"userbroadcast","msg":"hello"}),
            None,
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
        json!({"action":"getDeviceDetails","type":"json"}),
        json!({"action":"events"}),
        json!({"action":"authcookie"}),
        json!({"action":"createLoginToken","name":"m"}),
        json!({"action":"loginTokens"}),
        json!({"action":"wifidogs"}),
        json!({"action":"changepassword","oldpass":"not-the-password","newpass":"Another-pass-1"}),
        // Second factors: each acts on the caller's own account.
        json!({"action":"otpauth-request"}),
        json!({"action":"otpauth-setup","secret":"JBSWY3DPEHPK3PXP","token":"000000"}),
        json!({"action":"otpauth-getpasswords"}),
        json!({"action":"otpauth-clear"}),
        json!({"action":"otp-status"}),
        json!({"action":"webauthn-startregister"}),
        json!({"action":"webauthn-endregister","response":{}}),
        json!({"action":"otp-hkey-remove","id":"no-such-key"}),
        // Lists only the recordings the caller may watch.
        json!({"action":"recordings"}),
        // User group names (the whole records need USERGROUPS); session counts (empty
        // without MANAGEUSERS).
        json!({"action":"usergroups"}),
        json!({"action":"wssessioncount"}),
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
            // never "denied" (the lifecycle actions answer MeshCentral's one text for both,
            // as tests/meshctrl_devices.rs and the in-process tests check).
            if rights.is_none() && needs.is_some() {
                assert_ne!(
                    result, "Access denied",
                    "{name} learned that the object of {action} exists"
                );
            }
        }
    }
    // Nothing was changed by the refused requests.
    let g = group_as_listed(&mut admin, &group).await;
    assert_eq!(g["name"], "secured");
    let nodes = ask(&mut admin, json!({"action":"nodes"})).await;
    let device = &nodes["nodes"][&group][0];
    assert_eq!(device["_id"], node.as_str(), "{nodes}");
    assert_ne!(device["name"], "renamed");
    assert!(device.get("links").is_none(), "{device}");
    assert!(g["links"].get("user//nobody").is_none());
    assert_eq!(g["links"]["user//operator"]["rights"], 8);
}

/// One case per group right the console offers: the request a member may make only with
/// the bit (a granting right), or only without it (a restriction, `restricts`), on top of
/// `base`.
struct BitCase {
    bit: u32,
    base: u32,
    restricts: bool,
    request: Value,
    /// The answer without the right (wake and notify keep MeshCentral's texts).
    refusal: &'static str,
}

/// The group rights the console's rights dialog offers, read from its source
/// (web/src/rights.ts, `GROUP_RIGHTS`), so a bit offered there cannot miss its case here.
fn offered_group_bits() -> Vec<u32> {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/src/rights.ts"),
    )
    .unwrap();
    let table = source
        .split("export const GROUP_RIGHTS")
        .nth(1)
        .and_then(|rest| rest.split("\n];").next())
        .expect("GROUP_RIGHTS table in web/src/rights.ts");
    let bits: Vec<u32> = table
        .lines()
        .filter_map(|line| line.trim().strip_prefix('['))
        .filter_map(|entry| entry.split(',').next()?.trim().parse().ok())
        .collect();
    assert!(bits.len() >= 10, "GROUP_RIGHTS was not read: {bits:?}");
    bits
}

/// The group as `meshes` lists it to the administrator.
async fn group_as_listed(admin: &mut Ws, group: &str) -> Value {
    let meshes = ask(admin, json!({"action":"meshes"})).await;
    meshes["meshes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["_id"] == group)
        .unwrap()
        .clone()
}

/// Sets the member's rights on the group (as the administrator).
async fn set_member_rights(admin: &mut Ws, group: &str, rights: u32) {
    let r = ask(
        admin,
        json!({"action":"addmeshuser","meshid":group,"usernames":["member"],"meshadmin":rights}),
    )
    .await;
    assert!(r["result"].as_str().unwrap().starts_with("Added"), "{r}");
}

#[tokio::test]
async fn every_offered_group_right_is_enforced() {
    let Setup {
        s,
        plain,
        group,
        mut admin,
        node,
        _agent,
    } = Setup::new("bits").await;
    s.add_user("member", USER_PASS, false).await;
    s.add_user("carol", USER_PASS, false).await;
    // An unknown gateway waits for approval (approving it needs "manage devices").
    let _gw = SimGateway::start(GatewayOptions::new(Firmware::V9, "GW-B", plain));
    wait_until(Duration::from_secs(15), "GW-B listed", async || {
        let list = ask(&mut admin, json!({"action":"wifidogs"})).await;
        if list.to_string().contains("GW-B") {
            Ok(())
        } else {
            Err(list)
        }
    })
    .await;
    set_member_rights(&mut admin, &group, 0).await;
    let mut member = ws::control(s.port, "member", USER_PASS).await.unwrap();

    let rc = 8; // remote control
    let tunnel = |p: u32| {
        json!({"action":"msg","nodeid":node,"type":"tunnel",
               "value":format!("*/meshrelay.ashx?p={p}&nodeid={node}&id=bit{p}&rauth=x")})
    };
    let cases = vec![
        BitCase {
            bit: 1,
            base: 0,
            restricts: false,
            request: json!({"action":"editmesh","meshid":group,"meshname":"renamed"}),
            refusal: "Access denied",
        },
        BitCase {
            bit: 2,
            base: 0,
            restricts: false,
            request: json!({"action":"addmeshuser","meshid":group,"usernames":["carol"],"meshadmin":0}),
            refusal: "Access denied",
        },
        BitCase {
            bit: 4,
            base: 0,
            restricts: false,
            request: json!({"action":"wifidogapprove","deviceid":"GW-B","meshid":group}),
            refusal: "Access denied",
        },
        BitCase {
            bit: 8,
            base: 0,
            restricts: false,
            request: tunnel(1),
            refusal: "Access denied",
        },
        BitCase {
            bit: 16,
            base: rc,
            restricts: false,
            request: json!({"action":"msg","nodeid":node,"type":"console","value":"help"}),
            refusal: "Access denied",
        },
        BitCase {
            bit: 512,
            base: rc,
            restricts: true,
            request: tunnel(1),
            refusal: "Access denied",
        },
        BitCase {
            bit: 1024,
            base: rc,
            restricts: true,
            request: tunnel(5),
            refusal: "Access denied",
        },
        BitCase {
            bit: 65536,
            base: rc,
            restricts: true,
            request: tunnel(2),
            refusal: "Access denied",
        },
        BitCase {
            bit: 131072,
            base: 0,
            restricts: false,
            request: json!({"action":"runcommands","nodeids":[node],"cmds":"id","type":0}),
            refusal: "Access denied",
        },
        BitCase {
            bit: 64,
            base: 0,
            restricts: false,
            request: json!({"action":"wakedevices","nodeids":[node]}),
            refusal: "Invalid nodeid",
        },
        BitCase {
            bit: 16384,
            base: 0,
            restricts: false,
            request: json!({"action":"toast","nodeids":[node],"msg":"hi"}),
            refusal: "Access Denied",
        },
        BitCase {
            bit: 262144,
            base: 0,
            restricts: false,
            request: json!({"action":"poweraction","nodeids":[node],"actiontype":4}),
            refusal: "Access denied",
        },
        BitCase {
            bit: 1048576,
            base: 0,
            restricts: false,
            request: json!({"action":"getnetworkinfo","nodeid":node}),
            refusal: "Access denied",
        },
        BitCase {
            bit: 2097152,
            base: 0,
            restricts: false,
            request: tunnel(4),
            refusal: "Access denied",
        },
        BitCase {
            bit: 4,
            base: 0,
            restricts: false,
            request: json!({"action":"changedevice","nodeid":node,"desc":"edited by the member"}),
            // MeshCentral's words for the device lifecycle actions.
            refusal: "Access Denied",
        },
        // Last: allowed, it removes the device.
        BitCase {
            bit: 32768,
            base: 0,
            restricts: false,
            request: json!({"action":"removedevices","nodeids":[node]}),
            refusal: "Denied",
        },
    ];
    // "Only own events" (8192) changes what is listed, not whether: checked below. "Desktop
    // view only" (256) changes what passes inside a session, not whether it opens:
    // tests/desktop_rights.rs (the server drops the input) and tests/desktop.rs (the agent).
    let mut covered: HashSet<u32> = cases.iter().map(|c| c.bit).collect();
    covered.insert(8192);
    covered.insert(256);
    for bit in offered_group_bits() {
        assert!(covered.contains(&bit), "offered right {bit} has no case");
    }

    for case in &cases {
        let (refused_with, allowed_with) = if case.restricts {
            (case.base | case.bit, case.base)
        } else {
            (case.base, case.base | case.bit)
        };
        set_member_rights(&mut admin, &group, refused_with).await;
        let r = ask(&mut member, case.request.clone()).await;
        assert_eq!(
            r["result"], case.refusal,
            "bit {} (rights {refused_with}): {r}",
            case.bit
        );
        set_member_rights(&mut admin, &group, allowed_with).await;
        let r = ask(&mut member, case.request.clone()).await;
        let result = r["result"].as_str().unwrap_or("");
        assert!(
            !refused(result) && r.get("error").is_none(),
            "bit {} (rights {allowed_with}) was refused: {r}",
            case.bit
        );
    }
    // The allowed cases did what they asked.
    let nodes = ask(&mut admin, json!({"action":"nodes","meshid":group})).await;
    assert_eq!(nodes["nodes"][&group], json!([]), "the device was removed");
    let g = group_as_listed(&mut admin, &group).await;
    assert_eq!(g["name"], "renamed");
    assert!(g["links"].get("user//carol").is_some(), "{g}");

    // Only own events: with the bit, what the administrator did in the group is hidden
    // (what was done to the member, such as setting their rights, stays visible).
    let edited = ask(
        &mut admin,
        json!({"action":"editmesh","meshid":group,"desc":"edited by the administrator"}),
    )
    .await;
    assert_eq!(edited["result"], "ok", "{edited}");
    let admins_events = |list: &Value| {
        list["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["userid"] == "user//admin" && e["targetuserid"] != "user//member")
            .count()
    };
    set_member_rights(&mut admin, &group, 0).await;
    let all = ask(&mut member, json!({"action":"events","meshid":group})).await;
    assert!(admins_events(&all) > 0, "{all}");
    set_member_rights(&mut admin, &group, 8192).await;
    let own = ask(&mut member, json!({"action":"events","meshid":group})).await;
    assert_eq!(admins_events(&own), 0, "{own}");
    assert!(own["events"].as_array().unwrap().len() < all["events"].as_array().unwrap().len());
}
