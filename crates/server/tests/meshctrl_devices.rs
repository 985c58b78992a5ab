//! A device's life driven by the real `meshctrl.js` with a real agent online: `editdevice`,
//! `addusertodevice` / `removeuserfromdevice`, `movetodevicegroup`, `runcommand` as an event,
//! `removedevice` — the replies meshctrl prints (MeshCentral 1.1.55's texts, refusals
//! included) and the events `listevents --id` lists. ironmesh-agent uninstalls itself when
//! its device is removed; the stock agent, like MeshCentral's, comes back as a new device.

use std::time::Duration;

use ironmesh_testkit::agent::{add_member, create_group, fetch_msh, StockAgent, TestAgent};
use ironmesh_testkit::meshctrl::{self, MeshCtrlOutput};
use ironmesh_testkit::postgres;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::{wait_until, ws};
use serde_json::{json, Value};

const ADMIN_PASS: &str = "Adm1n-pass!";
const BOB_PASS: &str = "bob-pass-123";

async fn mc(server: &TestServer, args: &[&str]) -> MeshCtrlOutput {
    meshctrl::run(&server.wss_url(), "admin", ADMIN_PASS, args).await
}

async fn mc_bob(server: &TestServer, args: &[&str]) -> MeshCtrlOutput {
    meshctrl::run(&server.wss_url(), "bob", BOB_PASS, args).await
}

/// What meshctrl printed, trimmed; fails the test on a crash (meshctrl exits 0 on most
/// refusals, so the text is what counts).
async fn said(out: MeshCtrlOutput) -> String {
    assert!(
        !out.stderr.contains("Error") && !out.stderr.contains("TypeError"),
        "meshctrl failed: {out:?}"
    );
    out.stdout.trim().to_string()
}

/// `listdevices --json` as seen by `who`.
async fn devices(server: &TestServer, bob: bool) -> Vec<Value> {
    let args = ["listdevices", "--json"];
    let out = if bob {
        mc_bob(server, &args).await
    } else {
        mc(server, &args).await
    };
    if out.stdout.trim() == "None" {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("listdevices --json ({e}): {out:?}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The CSV lines of `listevents --id <node>` (after the header), newest first.
async fn device_events(server: &TestServer, bare: &str) -> Vec<String> {
    let out = mc(server, &["listevents", "--id", bare]).await;
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("time,type,action,userid,msg"), "{out:?}");
    lines.map(str::to_string).collect()
}

/// One request on the control channel as `user` (for fields meshctrl cannot send).
async fn raw(server: &TestServer, user: &str, pass: &str, request: Value) -> Value {
    let mut c = ws::control(server.port, user, pass).await.unwrap();
    ws::request(&mut c, &request).await.unwrap()
}

async fn lifecycle(db: Db) {
    let server = TestServer::start(db).await;
    server.add_user("admin", ADMIN_PASS, true).await;
    server.add_user("bob", BOB_PASS, false).await;
    let g1 = create_group(&server, "admin", ADMIN_PASS, "g1").await;
    let g2 = create_group(&server, "admin", ADMIN_PASS, "g2").await;
    let mut agent = TestAgent::start(&fetch_msh(&server, &g1).await).await;
    let (node, _) = agent.wait_online().await;
    let bare = node.trim_start_matches("node//").to_string();
    let unknown = "A".repeat(64);

    // editdevice: name, description, tags, icon; shown by listdevices; an event.
    let out = mc(
        &server,
        &[
            "editdevice",
            "--id",
            &bare,
            "--name",
            "build-box",
            "--desc",
            "Rack 4",
            "--tags",
            "linux,ci",
            "--icon",
            "4",
        ],
    )
    .await;
    assert_eq!(said(out).await, "ok");
    let listed = devices(&server, false).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let d = &listed[0];
    assert_eq!(
        (&d["name"], &d["desc"], &d["tags"], &d["icon"], &d["conn"]),
        (
            &json!("build-box"),
            &json!("Rack 4"),
            &json!(["ci", "linux"]),
            &json!(4),
            &json!(1)
        ),
        "{d}"
    );
    let events = device_events(&server, &bare).await;
    assert!(
        events[0].contains("\"node\",\"changenode\",\"user//admin\",\"Changed device build-box from group g1: icon, name, description, tags\""),
        "{events:?}"
    );
    // --tags with no value removes them; --desc with none empties it.
    assert_eq!(
        said(mc(&server, &["editdevice", "--id", &bare, "--tags", "--desc"]).await).await,
        "ok"
    );
    let d = devices(&server, false).await.remove(0);
    assert!(d.get("tags").is_none() && d.get("desc").is_none(), "{d}");
    // Refusals: an unknown device, a malformed field, meshctrl's own check.
    assert_eq!(
        said(mc(&server, &["editdevice", "--id", &unknown, "--name", "x"]).await).await,
        "Access Denied"
    );
    assert_eq!(
        said(mc(&server, &["editdevice", "--id", &bare, "--name", " "]).await).await,
        "Invalid device name: 1-256 printable characters"
    );
    assert_eq!(
        said(mc(&server, &["editdevice", "--id", &bare, "--icon", "9"]).await).await,
        "Icon must be between 1 and 8."
    );
    // Bob, in no group, sees nothing and may change nothing: the same words as for no device.
    assert!(devices(&server, true).await.is_empty());
    assert_eq!(
        said(mc_bob(&server, &["editdevice", "--id", &bare, "--name", "x"]).await).await,
        "Access Denied"
    );

    // addusertodevice: bob sees this device (not its group) and uses what the link allows.
    let out = mc(
        &server,
        &[
            "addusertodevice",
            "--id",
            &bare,
            "--userid",
            "bob",
            "--remotecontrol",
        ],
    )
    .await;
    assert_eq!(said(out).await, "ok");
    let seen = devices(&server, true).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["links"], json!({ "user//bob": { "rights": 8 } }));
    let groups = mc_bob(&server, &["listdevicegroups"]).await;
    assert!(!groups.stdout.contains("g1"), "{groups:?}");
    // Remote control alone does not run commands (meshctrl cannot grant that right).
    assert_eq!(
        said(mc_bob(&server, &["runcommand", "--id", &bare, "--run", "echo hi"]).await).await,
        "Access denied"
    );
    let r = raw(
        &server,
        "admin",
        ADMIN_PASS,
        json!({"action":"adddeviceuser","nodeid":node,"userids":["user//bob"],"rights":8 | 131072}),
    )
    .await;
    assert_eq!(r["result"], "ok", "{r}");
    let out = mc_bob(
        &server,
        &[
            "runcommand",
            "--id",
            &bare,
            "--run",
            "echo from-bob",
            "--reply",
        ],
    )
    .await;
    assert!(out.stdout.contains("from-bob"), "{out:?}");
    // ... and nothing else: no other device's rights, no changes.
    assert_eq!(
        said(mc_bob(&server, &["editdevice", "--id", &bare, "--name", "x"]).await).await,
        "Access Denied"
    );
    assert_eq!(
        said(mc_bob(&server, &["removedevice", "--id", &bare]).await).await,
        "Denied"
    );
    assert_eq!(
        said(
            mc_bob(
                &server,
                &[
                    "addusertodevice",
                    "--id",
                    &bare,
                    "--userid",
                    "bob",
                    "--fullrights"
                ]
            )
            .await
        )
        .await,
        "Access denied"
    );
    // The run is in the device's events, as MeshCentral records it.
    let events = device_events(&server, &bare).await;
    assert!(
        events
            .iter()
            .any(|l| l.contains("\"node\",\"runcommands\",\"user//bob\",\"Running commands\"")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|l| l.contains(
            "\"changenode\",\"user//admin\",\"Changed user device rights for build-box\""
        )),
        "{events:?}"
    );
    // Refusals.
    assert_eq!(
        said(
            mc(
                &server,
                &["addusertodevice", "--id", &unknown, "--userid", "bob"]
            )
            .await
        )
        .await,
        "Invalid nodeid"
    );
    assert_eq!(
        said(
            mc(
                &server,
                &["addusertodevice", "--id", &bare, "--userid", "nobody"]
            )
            .await
        )
        .await,
        "Invalid usernames"
    );
    let r = raw(
        &server,
        "admin",
        ADMIN_PASS,
        json!({"action":"adddeviceuser","nodeid":node,"userids":["user//bob"],"rights":4}),
    )
    .await;
    assert_eq!(r["result"], "Invalid rights", "{r}");
    // removeuserfromdevice: gone from bob's view.
    let out = mc(
        &server,
        &["removeuserfromdevice", "--id", &bare, "--userid", "bob"],
    )
    .await;
    assert_eq!(said(out).await, "ok");
    assert!(devices(&server, true).await.is_empty());

    // movetodevicegroup: the agent stays online and keeps working in its new group.
    // Bob manages g1's devices: g2 is invisible to him, then (managing its devices too)
    // he still lacks "edit group" to move devices.
    add_member(&server, ("admin", ADMIN_PASS), &g1, "bob", 4).await;
    assert_eq!(
        said(
            mc_bob(
                &server,
                &["movetodevicegroup", "--devid", &bare, "--id", &g2]
            )
            .await
        )
        .await,
        "Unknown device group"
    );
    add_member(&server, ("admin", ADMIN_PASS), &g2, "bob", 4).await;
    assert_eq!(
        said(
            mc_bob(
                &server,
                &["movetodevicegroup", "--devid", &bare, "--group", "g2"]
            )
            .await
        )
        .await,
        "Permission denied"
    );
    mc(
        &server,
        &[
            "removeuserfromdevicegroup",
            "--group",
            "g2",
            "--userid",
            "bob",
        ],
    )
    .await;
    assert_eq!(
        said(
            mc(
                &server,
                &["movetodevicegroup", "--devid", &bare, "--group", "nowhere"]
            )
            .await
        )
        .await,
        "Invalid groupid"
    );
    assert_eq!(
        said(
            mc(
                &server,
                &["movetodevicegroup", "--devid", &unknown, "--group", "g2"]
            )
            .await
        )
        .await,
        "Device not found"
    );
    assert_eq!(
        said(
            mc(
                &server,
                &["movetodevicegroup", "--devid", &bare, "--group", "g1"]
            )
            .await
        )
        .await,
        "Device already in correct group"
    );
    assert_eq!(
        said(
            mc(
                &server,
                &["movetodevicegroup", "--devid", &bare, "--group", "g2"]
            )
            .await
        )
        .await,
        "ok"
    );
    let d = devices(&server, false).await.remove(0);
    assert_eq!((&d["meshid"], &d["conn"]), (&json!(g2), &json!(1)), "{d}");
    let out = mc(
        &server,
        &[
            "runcommand",
            "--id",
            &bare,
            "--run",
            "echo moved-$((40+2))",
            "--reply",
        ],
    )
    .await;
    assert!(out.stdout.contains("moved-42"), "{out:?}");
    let events = device_events(&server, &bare).await;
    assert!(
        events.iter().any(|l| l
            .contains("\"nodemeshchange\",\"user//admin\",\"Moved device build-box to group g2\"")),
        "{events:?}"
    );
    // Bob's rights were on g1: the device left his view with it.
    assert!(devices(&server, true).await.is_empty());

    // removedevice: refused without the right, then done; ironmesh-agent uninstalls itself.
    assert_eq!(
        said(mc(&server, &["removedevice", "--id", &unknown]).await).await,
        "Denied"
    );
    assert_eq!(
        said(mc(&server, &["removedevice", "--id", &bare]).await).await,
        "ok"
    );
    let status = agent.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "the agent exited with {status}");
    assert!(
        !agent.state_dir.exists(),
        "the agent's state folder is gone"
    );
    assert!(devices(&server, false).await.is_empty());
    let out = mc(&server, &["listevents"]).await;
    assert!(
        out.stdout.contains(&format!("\"node\",\"removenode\",\"{node}\",\"user//admin\",\"Removed device build-box from device group g2\"")),
        "{out:?}"
    );
    assert_eq!(
        said(mc(&server, &["removedevice", "--id", &bare]).await).await,
        "Denied"
    );
}

#[tokio::test]
async fn device_lifecycle_with_meshctrl_on_sqlite() {
    lifecycle(Db::Sqlite).await;
}

#[tokio::test]
async fn device_lifecycle_with_meshctrl_on_postgres() {
    if postgres::enabled() {
        lifecycle(Db::Postgres).await;
    }
}

/// The stock agent gets no uninstall request: MeshCentral only disconnects it, and it comes
/// back as a new device of its group, its old record (name, description, links) gone.
/// Moved while connected, it keeps working in its new group.
#[tokio::test]
async fn a_removed_stock_agent_enrols_again_as_a_new_device() {
    let server = TestServer::start_for_stock_agents(Db::Sqlite).await;
    server.add_user("admin", ADMIN_PASS, true).await;
    server.add_user("bob", BOB_PASS, false).await;
    let g1 = create_group(&server, "admin", ADMIN_PASS, "g1").await;
    create_group(&server, "admin", ADMIN_PASS, "g2").await;
    let _agent = StockAgent::start(&fetch_msh(&server, &g1).await).await;
    let first = wait_until(
        Duration::from_secs(60),
        "the stock agent online",
        async || {
            devices(&server, false)
                .await
                .into_iter()
                .find(|d| d["conn"] == 1 && d["agent"]["core"].is_string())
        },
    )
    .await;
    let bare = first["_id"]
        .as_str()
        .unwrap()
        .trim_start_matches("node//")
        .to_string();
    assert_eq!(
        said(
            mc(
                &server,
                &["movetodevicegroup", "--devid", &bare, "--group", "g2"]
            )
            .await
        )
        .await,
        "ok"
    );
    let out = mc(
        &server,
        &[
            "runcommand",
            "--id",
            &bare,
            "--run",
            "echo stock-$((40+2))",
            "--reply",
        ],
    )
    .await;
    assert!(out.stdout.contains("stock-42"), "{out:?}");
    assert_eq!(
        said(
            mc(
                &server,
                &[
                    "editdevice",
                    "--id",
                    &bare,
                    "--name",
                    "old-name",
                    "--desc",
                    "old"
                ]
            )
            .await
        )
        .await,
        "ok"
    );
    assert_eq!(
        said(
            mc(
                &server,
                &[
                    "addusertodevice",
                    "--id",
                    &bare,
                    "--userid",
                    "bob",
                    "--remotecontrol"
                ]
            )
            .await
        )
        .await,
        "ok"
    );

    assert_eq!(
        said(mc(&server, &["removedevice", "--id", &bare]).await).await,
        "ok"
    );
    // Back, with the same key (so the same id), in the group its settings name, as new.
    let again = wait_until(
        Duration::from_secs(90),
        "the stock agent back",
        async || {
            devices(&server, false)
                .await
                .into_iter()
                .find(|d| d["conn"] == 1)
        },
    )
    .await;
    assert_eq!(again["_id"], first["_id"]);
    assert_eq!(again["meshid"], g1.as_str(), "{again}");
    assert_ne!(again["name"], "old-name", "{again}");
    assert!(
        again.get("desc").is_none() && again.get("links").is_none(),
        "{again}"
    );
    assert!(
        again["firstconnect"].as_i64() > first["firstconnect"].as_i64(),
        "a new record: {again}"
    );
    assert!(
        devices(&server, true).await.is_empty(),
        "bob's link went with the old record"
    );
}
