//! `ironmesh devices rename|describe|tag|move|remove` against the real server and a real
//! ironmesh-agent on loopback: text and `--json` output, the server's refusals in its own
//! words, and the agent uninstalling itself when its device is removed.

use std::process::Output;
use std::time::Duration;

use ironmesh_testkit::agent::{add_member, create_group, fetch_msh, TestAgent};
use ironmesh_testkit::cli::Cli;
use ironmesh_testkit::server::{Db, TestServer};
use serde_json::Value;

const PASS: &str = "Adm1n-pass!";
const VIEWER_PASS: &str = "Viewer-pass-1";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the CLI and expects success; returns its standard output.
fn ok(cli: &Cli, args: &[&str]) -> String {
    let out = cli.run(args);
    assert!(
        out.status.success(),
        "ironmesh {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs the CLI and expects failure; returns its error output.
fn refused(cli: &Cli, args: &[&str]) -> String {
    let out = cli.run(args);
    assert!(
        !out.status.success(),
        "ironmesh {args:?} should have failed: {}",
        stdout(&out)
    );
    stderr(&out)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn rename_describe_tag_move_and_remove_a_device() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    server.add_user("viewer", VIEWER_PASS, false).await;
    let lab = create_group(&server, "admin", PASS, "lab").await;
    create_group(&server, "admin", PASS, "office").await;
    add_member(&server, ("admin", PASS), &lab, "viewer", 0).await;
    let mut agent = TestAgent::start(&fetch_msh(&server, &lab).await).await;
    let (node, _) = agent.wait_online().await;
    let bare = node.trim_start_matches("node//").to_string();
    let cli = Cli::new();
    cli.login(&server, "admin", PASS);

    // Rename (by id), then everything else by the new name.
    let out = ok(&cli, &["devices", "rename", &bare, "build-box"]);
    assert!(
        out.trim().starts_with("Renamed ") && out.trim().ends_with(" to build-box."),
        "{out}"
    );
    let out = ok(
        &cli,
        &["devices", "describe", "build-box", "Rack 4", "--json"],
    );
    let device = json(&out);
    assert_eq!(
        (&device["name"], &device["desc"]),
        (&"build-box".into(), &"Rack 4".into()),
        "{device}"
    );
    assert_eq!(device["_id"], node.as_str());

    // Tags: exactly these, then added and removed, then none.
    let out = ok(
        &cli,
        &["devices", "tag", "build-box", "linux", "ci", "linux"],
    );
    assert_eq!(out.trim(), "Tagged build-box: ci, linux.");
    let out = ok(
        &cli,
        &[
            "devices",
            "tag",
            "build-box",
            "--add",
            "gpu",
            "--remove",
            "ci",
            "--json",
        ],
    );
    assert_eq!(json(&out)["tags"], serde_json::json!(["gpu", "linux"]));
    let out = ok(&cli, &["devices", "tag", "build-box", "--clear", "--json"]);
    assert!(json(&out).get("tags").is_none(), "{out}");
    let out = ok(&cli, &["devices", "tag", "build-box", "--clear"]);
    assert_eq!(out.trim(), "build-box has no tags.");

    // The server's refusals, in its words.
    let err = refused(&cli, &["devices", "rename", "build-box", ""]);
    assert!(err.contains("Invalid device name"), "{err}");
    let err = refused(&cli, &["devices", "rename", "no-such-device", "x"]);
    assert!(err.contains("no device matches"), "{err}");
    let err = refused(
        &cli,
        &["devices", "move", "build-box", "--group", "nowhere"],
    );
    assert!(err.contains("no device group \"nowhere\""), "{err}");
    let err = refused(&cli, &["devices", "move", "build-box", "--group", "lab"]);
    assert!(err.contains("Device already in correct group"), "{err}");
    // A member without the rights sees the device and may change nothing.
    let viewer = Cli::new();
    viewer.login(&server, "viewer", VIEWER_PASS);
    for (args, text) in [
        (
            vec!["devices", "rename", "build-box", "mine"],
            "Access Denied",
        ),
        (
            vec!["devices", "describe", "build-box", "mine"],
            "Access Denied",
        ),
        (
            vec!["devices", "move", "build-box", "--group", "lab"],
            "Permission denied",
        ),
        (vec!["devices", "remove", "build-box"], "Denied"),
    ] {
        let err = refused(&viewer, &args);
        assert!(err.contains(text), "{args:?}: {err}");
    }

    // Move: the agent stays connected, now in the other group.
    let out = ok(&cli, &["devices", "move", "build-box", "--group", "office"]);
    assert_eq!(out.trim(), "Moved build-box to office.");
    let listed = json(&ok(&cli, &["devices", "--group", "office", "--json"]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (&listed[0]["name"], &listed[0]["conn"]),
        (&"build-box".into(), &1.into())
    );
    let out = ok(&cli, &["run", "build-box", "echo", "still-here"]);
    assert!(out.contains("still-here"), "{out}");
    // The viewer's rights were on lab: the device is gone from their view.
    let err = refused(&viewer, &["devices", "rename", "build-box", "mine"]);
    assert!(err.contains("no device matches"), "{err}");

    // Remove: the agent uninstalls itself (exits, its state and settings gone).
    let out = ok(&cli, &["devices", "remove", "build-box", "--json"]);
    let removed = json(&out);
    assert_eq!(
        (&removed["_id"], &removed["removed"]),
        (&node.as_str().into(), &true.into())
    );
    let status = agent.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "the agent exited with {status}");
    assert!(
        !agent.state_dir.exists(),
        "the agent's state folder is gone"
    );
    assert!(
        !agent.msh_path().exists(),
        "the agent's settings file is gone"
    );
    assert_eq!(ok(&cli, &["devices"]).trim(), "No devices.");
    let err = refused(&cli, &["devices", "remove", &bare]);
    assert!(err.contains("no device matches"), "{err}");
}
