//! `ironmesh groups` against the real server on loopback: add, rename, remove, and members
//! with rights given by name, as an administrator and as a member without the rights to
//! change the group; each refusal with a clear message and a failing exit.

use std::process::Output;

use ironmesh_testkit::cli::Cli;
use ironmesh_testkit::server::{Db, TestServer};
use serde_json::Value;

const PASS: &str = "Adm1n-pass!";
const VIEWER_PASS: &str = "Viewer-pass1!";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdout(out)
    );
    stdout(out)
}

/// `out` failed with an error message containing every one of `words`.
#[track_caller]
fn refused(out: &Output, words: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {}\n{err}", stdout(out));
    for w in words {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

/// The table row that starts with `first`.
fn row(table: &str, first: &str) -> Option<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .map(str::to_string)
}

#[tokio::test]
async fn groups_add_members_rename_remove() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    server.add_user("viewer", VIEWER_PASS, false).await;
    let admin = Cli::new();
    admin.login(&server, "admin", PASS);
    let viewer = Cli::new();
    viewer.login(&server, "viewer", VIEWER_PASS);

    let out = ok(&admin.run(&["groups", "add", "lab", "--desc", "Test lab"]));
    assert!(out.starts_with("added lab ("), "{out}");
    let table = ok(&admin.run(&["groups"]));
    let lab = row(&table, "lab").expect("lab listed");
    assert!(lab.contains("full"), "{lab}");
    assert_eq!(ok(&viewer.run(&["groups"])).trim(), "No device groups.");

    // Rights by name; the viewer then sees the group with exactly those rights.
    ok(&admin.run(&[
        "groups",
        "members",
        "lab",
        "add",
        "viewer",
        "--rights",
        "remotecontrol,wakedevices",
    ]));
    let members = ok(&admin.run(&["groups", "members", "lab"]));
    let v = row(&members, "viewer").expect("viewer is a member");
    assert!(
        v.contains("remotecontrol,wakedevices") && v.contains("user//viewer"),
        "{v}"
    );
    let json: Value =
        serde_json::from_str(&ok(&admin.run(&["groups", "members", "lab", "--json"]))).unwrap();
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "user//viewer")
        .expect("viewer in --json");
    assert_eq!(entry["rights"], 8 | 64);
    assert_eq!(
        entry["rightnames"],
        serde_json::json!(["remotecontrol", "wakedevices"])
    );
    let seen = ok(&viewer.run(&["groups"]));
    assert!(
        row(&seen, "lab")
            .unwrap()
            .contains("remotecontrol,wakedevices"),
        "{seen}"
    );

    // Bad input and missing rights: each refused with what to do.
    refused(
        &admin.run(&[
            "groups", "members", "lab", "add", "viewer", "--rights", "fly",
        ]),
        &["unknown right \"fly\"", "remotecontrol"],
    );
    refused(
        &admin.run(&[
            "groups", "members", "lab", "add", "ghost", "--rights", "full",
        ]),
        &["lab: Nothing done"],
    );
    refused(
        &viewer.run(&[
            "groups", "members", "lab", "add", "viewer", "--rights", "full",
        ]),
        &["lab:", "denied"],
    );
    refused(&viewer.run(&["groups", "rename", "lab", "mine"]), &["lab:"]);
    refused(&viewer.run(&["groups", "remove", "lab"]), &["lab:"]);
    refused(
        &admin.run(&["groups", "remove", "nosuch"]),
        &["no device group \"nosuch\""],
    );

    // A user group as a member.
    let ugrp = ok(&admin.run(&["usergroups", "add", "ops"]))
        .trim()
        .to_string();
    assert!(ugrp.starts_with("ugrp//"), "{ugrp}");
    ok(&admin.run(&["groups", "members", "lab", "add", &ugrp, "--rights", "full"]));
    let members = ok(&admin.run(&["groups", "members", "lab"]));
    let ops = row(&members, "ops").expect("user group listed");
    assert!(ops.contains("user group") && ops.contains("full"), "{ops}");

    // Removing the viewer takes the group out of their sight.
    ok(&admin.run(&["groups", "members", "lab", "remove", "viewer"]));
    assert!(row(&ok(&admin.run(&["groups", "members", "lab"])), "viewer").is_none());
    assert_eq!(ok(&viewer.run(&["groups"])).trim(), "No device groups.");

    ok(&admin.run(&["groups", "rename", "lab", "lab2"]));
    let table = ok(&admin.run(&["groups"]));
    assert!(
        row(&table, "lab2").is_some() && row(&table, "lab").is_none(),
        "{table}"
    );
    ok(&admin.run(&["groups", "remove", "lab2"]));
    assert_eq!(ok(&admin.run(&["groups"])).trim(), "No device groups.");
}
