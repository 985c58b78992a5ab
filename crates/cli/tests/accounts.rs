//! `ironmesh users`, `usergroups`, `tokens` and `passwd` against the real server on
//! loopback: what each prints (table and `--json`), and the refusals (unknown user or
//! group, a caller without the site right), each with a clear message and a failing exit.

use std::process::Output;

use ironmesh_testkit::agent::create_group;
use ironmesh_testkit::cli::Cli;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::ws;
use serde_json::{json, Value};

const PASS: &str = "Adm1n-pass!";
const VIEWER_PASS: &str = "Viewer-pass1!";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `out` succeeded; returns its standard output.
#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stderr(out),
        stdout(out)
    );
    stdout(out)
}

/// `out` failed with an error message containing every one of `words`.
#[track_caller]
fn refused(out: &Output, words: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "succeeded: {}\n{err}", stdout(out));
    for w in words {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// The table row (a line of output) that starts with `first`.
fn row<'a>(table: &'a str, first: &str) -> Option<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
}

/// A server with the administrator `admin` and the plain user `viewer`, each with a CLI
/// logged in.
async fn setup() -> (TestServer, Cli, Cli) {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    server.add_user("viewer", VIEWER_PASS, false).await;
    let admin = Cli::new();
    admin.login(&server, "admin", PASS);
    let viewer = Cli::new();
    viewer.login(&server, "viewer", VIEWER_PASS);
    (server, admin, viewer)
}

#[tokio::test]
async fn users_add_list_passwd_disable_enable_remove() {
    let (server, admin, viewer) = setup().await;

    let out = admin.run_with_stdin(
        &[
            "users",
            "add",
            "Alice",
            "--email",
            "alice@example.test",
            "--password-stdin",
        ],
        "Al1ce-pass!",
    );
    assert_eq!(ok(&out).trim(), "added user//alice");
    let out = admin.run_with_stdin(&["users", "add", "alice", "--password-stdin"], "x-Pass-99!");
    refused(&out, &["alice: "]);
    let out = admin.run_with_stdin(
        &["users", "add", "boss", "--admin", "--password-stdin"],
        "B0ss-pass!",
    );
    ok(&out);

    // The table: a header, one row per account, full administrators named as such.
    let table = ok(&admin.run(&["users"]));
    assert!(table.starts_with("NAME"), "{table}");
    let alice = row(&table, "Alice").unwrap_or_else(|| panic!("no Alice: {table}"));
    assert!(
        alice.contains("alice@example.test") && alice.contains("enabled"),
        "{alice}"
    );
    assert!(alice.contains("user//alice"), "{alice}");
    let boss = row(&table, "boss").unwrap();
    assert!(boss.contains("administrator"), "{boss}");
    let list = json_of(&admin.run(&["users", "--json"]));
    let alice = list
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["_id"] == "user//alice")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(alice["email"], "alice@example.test");
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");

    // passwd: the new password signs in, the old one no longer does.
    let out = admin.run_with_stdin(
        &["users", "passwd", "alice", "--password-stdin"],
        "N3w-alice!",
    );
    assert_eq!(ok(&out).trim(), "password of alice changed");
    let alice_cli = Cli::new();
    refused(
        &alice_cli.try_login(&server, "alice", "Al1ce-pass!", &[]),
        &["login failed"],
    );
    alice_cli.login(&server, "alice", "N3w-alice!");
    let out = admin.run_with_stdin(
        &["users", "passwd", "ghost", "--password-stdin"],
        "N3w-ghost!",
    );
    refused(&out, &["ghost", "User does not exists"]);

    // disable: the account is shown disabled, cannot sign in, and its stored login stops
    // working; the other site rights are kept.
    assert_eq!(
        ok(&admin.run(&["users", "disable", "alice"])).trim(),
        "alice disabled"
    );
    let table = ok(&admin.run(&["users"]));
    assert!(
        row(&table, "Alice").unwrap().contains("disabled"),
        "{table}"
    );
    let list = json_of(&admin.run(&["users", "--json"]));
    let site = |list: &Value, id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|u| u["_id"] == id)
            .map(|u| u["siteadmin"].as_u64().unwrap_or(0))
            .unwrap()
    };
    let locked = site(&list, "user//alice");
    assert_eq!(locked & 32, 32, "{list}");
    refused(
        &Cli::new().try_login(&server, "alice", "N3w-alice!", &[]),
        &["account locked"],
    );
    assert!(!alice_cli.run(&["tokens"]).status.success());
    // A full administrator cannot be disabled (restrictions do not apply to one): said so,
    // and nothing changes.
    refused(
        &admin.run(&["users", "disable", "boss"]),
        &["boss is a full administrator"],
    );
    assert_eq!(
        site(&json_of(&admin.run(&["users", "--json"])), "user//boss"),
        u32::MAX as u64
    );
    refused(
        &admin.run(&["users", "disable", "ghost"]),
        &["ghost: User does not exists"],
    );

    // enable (with --json: the server's reply).
    let reply = json_of(&admin.run(&["users", "enable", "alice", "--json"]));
    assert_eq!(reply["result"], "ok", "{reply}");
    let list = json_of(&admin.run(&["users", "--json"]));
    assert_eq!(site(&list, "user//alice"), locked & !32);
    Cli::new().login(&server, "alice", "N3w-alice!");

    // A caller without the right to manage users is told which right is missing.
    refused(&viewer.run(&["users"]), &["Access denied", "manage users"]);
    refused(
        &viewer.run_with_stdin(
            &["users", "add", "mallory", "--password-stdin"],
            "M4llory-pass!",
        ),
        &["Permission denied", "manage users"],
    );
    refused(
        &viewer.run(&["users", "remove", "alice"]),
        &["Access denied", "manage users"],
    );
    refused(
        &viewer.run(&["users", "disable", "alice"]),
        &["Access denied", "manage users"],
    );
    refused(
        &viewer.run_with_stdin(
            &["users", "passwd", "alice", "--password-stdin"],
            "Hijack-pass1!",
        ),
        &["Access denied", "manage users"],
    );
    Cli::new().login(&server, "alice", "N3w-alice!");

    // remove, twice.
    assert_eq!(
        ok(&admin.run(&["users", "remove", "alice"])).trim(),
        "removed alice"
    );
    assert!(row(&ok(&admin.run(&["users"])), "Alice").is_none());
    let reply = json_of(&admin.run(&["users", "remove", "boss", "--json"]));
    assert_eq!(reply["result"], "ok", "{reply}");
    refused(
        &admin.run(&["users", "remove", "alice"]),
        &["alice", "User does not exists"],
    );
}

#[tokio::test]
async fn user_groups_add_members_list_remove() {
    let (server, admin, viewer) = setup().await;
    server.add_user("alice", "Al1ce-pass!", false).await;
    server.add_user("bob", "B0b-pass-1!", false).await;

    // None yet: an empty table, an empty list.
    let table = ok(&admin.run(&["usergroups"]));
    assert_eq!(table.lines().count(), 1, "{table}");
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(json_of(&admin.run(&["usergroups", "--json"])), json!([]));

    let id = ok(&admin.run(&["usergroups", "add", "ops", "--desc", "Operations"]));
    let id = id.trim().to_string();
    assert!(id.starts_with("ugrp//"), "{id}");
    let reply = json_of(&admin.run(&["usergroups", "add", "audit", "--json"]));
    assert_eq!(reply["result"], "ok", "{reply}");
    let audit = reply["ugrpid"].as_str().unwrap().to_string();

    let out = admin.run(&["usergroups", "members", "add", "ops", "alice", "user//bob"]);
    assert_eq!(ok(&out).trim(), "added 2 user(s) to ops");
    // Unknown users are named, and the command fails; the known ones are added.
    let out = admin.run(&["usergroups", "members", "add", &audit, "ghost", "alice"]);
    refused(&out, &["added 1 user(s)", "unknown user(s): ghost"]);
    let out = admin.run(&["usergroups", "members", "add", "audit", "ghost", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["failed"],
        1
    );
    refused(&out, &["unknown user(s): ghost"]);
    refused(
        &admin.run(&["usergroups", "members", "add", "nosuch", "alice"]),
        &["no user group named nosuch"],
    );

    // The group gets rights on a device group: listed with them.
    let lab = create_group(&server, "admin", PASS, "lab").await;
    let mut c = ws::control(server.port, "admin", PASS).await.unwrap();
    let r = ws::request(
        &mut c,
        &json!({"action":"addmeshuser","meshid":lab,"userid":id,"meshadmin":8}),
    )
    .await
    .unwrap();
    assert!(
        r["result"].as_str().unwrap_or("").starts_with("Added user"),
        "{r}"
    );

    let table = ok(&admin.run(&["usergroups"]));
    let ops = row(&table, "ops").unwrap_or_else(|| panic!("{table}"));
    assert!(
        ops.contains("alice")
            && ops.contains("bob")
            && ops.contains("lab (8)")
            && ops.contains(&id),
        "{ops}"
    );
    let audit_row = row(&table, "audit").unwrap();
    assert!(
        audit_row.contains("alice") && !audit_row.contains("bob"),
        "{audit_row}"
    );
    let list = json_of(&admin.run(&["usergroups", "--json"]));
    let ops = list
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(ops["name"], "ops");
    assert_eq!(ops["desc"], "Operations");
    assert!(ops["links"]["user//alice"].is_object(), "{ops}");
    assert!(ops["links"][lab.as_str()]["rights"] == 8, "{ops}");

    // members remove: by name; a user not in the group is named, and nobody is removed.
    let out = admin.run(&["usergroups", "members", "remove", "ops", "bob"]);
    assert_eq!(ok(&out).trim(), "removed bob from ops");
    refused(
        &admin.run(&["usergroups", "members", "remove", "ops", "alice", "bob"]),
        &["bob is not a member of ops"],
    );
    let table = ok(&admin.run(&["usergroups"]));
    let ops = row(&table, "ops").unwrap();
    assert!(ops.contains("alice") && !ops.contains("bob"), "{ops}");
    refused(
        &admin.run(&["usergroups", "members", "remove", "ops", "ghost"]),
        &["ghost is not a member of ops"],
    );

    // Without the right to manage user groups: names only, and every change refused.
    let table = ok(&viewer.run(&["usergroups"]));
    assert!(row(&table, "ops").is_some(), "{table}");
    let names = json_of(&viewer.run(&["usergroups", "--json"]));
    assert!(names.to_string().contains("ops") && !names.to_string().contains("alice"));
    refused(
        &viewer.run(&["usergroups", "add", "mine"]),
        &["Permission denied", "manage user groups"],
    );
    refused(
        &viewer.run(&["usergroups", "members", "add", "ops", "viewer"]),
        &["Permission denied", "manage user groups"],
    );
    refused(
        &viewer.run(&["usergroups", "members", "remove", "ops", "alice"]),
        &["Permission denied", "manage user groups"],
    );
    refused(
        &viewer.run(&["usergroups", "remove", "ops"]),
        &["Permission denied", "manage user groups"],
    );

    // remove: by name, by id; then unknown.
    assert_eq!(
        ok(&admin.run(&["usergroups", "remove", "ops"])).trim(),
        "removed ops"
    );
    let reply = json_of(&admin.run(&["usergroups", "remove", &audit, "--json"]));
    assert_eq!(reply["ugrpid"], audit.as_str(), "{reply}");
    refused(
        &admin.run(&["usergroups", "remove", "ops"]),
        &["no user group named ops"],
    );
    assert_eq!(json_of(&admin.run(&["usergroups", "--json"])), json!([]));
    // The device group no longer lists the removed user group.
    let meshes = ws::request(&mut c, &json!({"action":"meshes"}))
        .await
        .unwrap();
    assert!(!meshes.to_string().contains(&id), "{meshes}");
}

#[tokio::test]
async fn tokens_list_revoke_and_own_password() {
    let (server, admin, viewer) = setup().await;
    let mut c = ws::control(server.port, "admin", PASS).await.unwrap();
    let backup = ws::request(
        &mut c,
        &json!({"action":"createLoginToken","name":"backup","expire":0}),
    )
    .await
    .unwrap();
    let (token_user, token_pass) = (
        backup["tokenUser"].as_str().unwrap().to_string(),
        backup["tokenPass"].as_str().unwrap().to_string(),
    );

    // The CLI's own token (made by `login`) and the one above.
    let table = ok(&admin.run(&["tokens"]));
    assert!(table.starts_with("NAME"), "{table}");
    let line = row(&table, "backup").unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains(&token_user) && line.contains("never"),
        "{line}"
    );
    assert!(table.contains("ironmesh CLI"), "{table}");
    let list = json_of(&admin.run(&["tokens", "--json"]));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(names.contains(&"backup"), "{list}");
    assert!(
        !list.to_string().contains(&token_pass),
        "a token's password is listed"
    );
    // Each user sees only their own tokens.
    let theirs = json_of(&viewer.run(&["tokens", "--json"]));
    assert_eq!(theirs.as_array().unwrap().len(), 1, "{theirs}");
    assert!(!theirs.to_string().contains("backup"));

    refused(
        &admin.run(&["tokens", "revoke", "ghost"]),
        &["no login token named ghost"],
    );
    refused(
        &viewer.run(&["tokens", "revoke", "backup"]),
        &["no login token named backup"],
    );
    assert!(ws::control(server.port, &token_user, &token_pass)
        .await
        .is_ok());
    assert_eq!(
        ok(&admin.run(&["tokens", "revoke", "backup"])).trim(),
        "revoked backup"
    );
    assert!(
        ws::control(server.port, &token_user, &token_pass)
            .await
            .is_err(),
        "a revoked token still signs in"
    );
    assert_eq!(
        json_of(&admin.run(&["tokens", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // By token user too.
    let spare = ws::request(&mut c, &json!({"action":"createLoginToken","name":"spare"}))
        .await
        .unwrap();
    let spare_user = spare["tokenUser"].as_str().unwrap();
    ok(&admin.run(&["tokens", "revoke", spare_user]));
    assert!(!ok(&admin.run(&["tokens"])).contains(spare_user));

    // passwd: the current password is checked; the stored login keeps working after a
    // refusal, and is revoked by the change.
    let out = viewer.run_with_stdin(&["passwd", "--password-stdin"], "not-it\nN3w-viewer-pass!");
    refused(&out, &[]);
    assert!(!stderr(&out).trim().is_empty());
    ok(&viewer.run(&["tokens"]));
    let out = viewer.run_with_stdin(
        &["passwd", "--password-stdin"],
        &format!("{VIEWER_PASS}\nN3w-viewer-pass!"),
    );
    assert!(ok(&out).contains("password changed"), "{}", stdout(&out));
    assert!(!viewer.run(&["tokens"]).status.success());
    refused(
        &Cli::new().try_login(&server, "viewer", VIEWER_PASS, &[]),
        &["login failed"],
    );
    viewer.login(&server, "viewer", "N3w-viewer-pass!");
}
