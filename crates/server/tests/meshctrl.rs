//! The real `meshctrl.js` against the real server binary, on SQLite and PostgreSQL:
//! output checked line by line, not just exit codes (meshctrl exits 0 on most errors).

use ironmesh_testkit::meshctrl::{self, MeshCtrlOutput};
use ironmesh_testkit::postgres;
use ironmesh_testkit::server::{Db, TestServer};
use serde_json::Value;

const ADMIN_PASS: &str = "Adm1n-pass!";

async fn mc(server: &TestServer, args: &[&str]) -> MeshCtrlOutput {
    meshctrl::run(&server.wss_url(), "admin", ADMIN_PASS, args).await
}

async fn mc_as(server: &TestServer, user: &str, pass: &str, args: &[&str]) -> MeshCtrlOutput {
    meshctrl::run(&server.wss_url(), user, pass, args).await
}

fn key_value(out: &str, key: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_string))
}

/// SHA-384 of the agent-server certificate's PKCS#1 public key, computed here from the
/// PEM file with no help from the server, in MeshCentral's b64@$ form.
fn expected_agent_cert_hash(server: &TestServer) -> String {
    use sha2::Digest;
    let pem = std::fs::read_to_string(server.data_path("agent-server-cert.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64_decode(&b64);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let pkcs1 = &cert.public_key().subject_public_key.data;
    let hash = sha2::Sha384::digest(pkcs1);
    ironmesh_proto::ids::b64_at_dollar(&hash)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

async fn full_session(db: Db) {
    let server = TestServer::start(db).await;
    server.add_user("admin", ADMIN_PASS, true).await;

    // serverinfo: the pinned ServerID and the TLS hash.
    let out = mc(&server, &["serverinfo"]).await;
    assert_eq!(
        key_value(&out.stdout, "domain").as_deref(),
        Some(""),
        "{out:?}"
    );
    assert_eq!(
        key_value(&out.stdout, "agentCertHash").unwrap(),
        expected_agent_cert_hash(&server)
    );
    assert_eq!(key_value(&out.stdout, "tlshash").unwrap().len(), 96);
    assert_eq!(
        key_value(&out.stdout, "port").unwrap(),
        server.port.to_string()
    );

    // userinfo.
    let out = mc(&server, &["userinfo"]).await;
    assert_eq!(
        key_value(&out.stdout, "_id").as_deref(),
        Some("user//admin")
    );
    assert_eq!(
        key_value(&out.stdout, "siteadmin").as_deref(),
        Some("4294967295")
    );
    assert!(
        !out.stdout.contains("argon2"),
        "no password hash leaks: {}",
        out.stdout
    );

    // adduser: ok, then the errors a person can act on.
    let out = mc(
        &server,
        &[
            "adduser",
            "--user",
            "bob",
            "--pass",
            "bobpass123",
            "--email",
            "bob@example.com",
        ],
    )
    .await;
    assert_eq!(out.stdout.trim(), "ok");
    let out = mc(
        &server,
        &["adduser", "--user", "bob", "--pass", "bobpass123"],
    )
    .await;
    assert_eq!(out.stdout.trim(), "User already exists");
    let out = mc(
        &server,
        &[
            "adduser",
            "--user",
            "carol",
            "--pass",
            "carolpass1",
            "--email",
            "carol@localhost",
        ],
    )
    .await;
    assert_eq!(out.stdout.trim(), "Invalid email");
    let out = mc(&server, &["adduser", "--user", "dave", "--pass", "short"]).await;
    assert!(out.stdout.contains("Password too short"), "{}", out.stdout);

    // listusers.
    let out = mc(&server, &["listusers"]).await;
    assert!(
        out.stdout.contains("\"admin\", \"admin\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\"bob\", \"bob\", \"bob@example.com\""),
        "{}",
        out.stdout
    );
    let out = mc(&server, &["listusers", "--json"]).await;
    let users: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2);

    // Device groups.
    let out = mc(
        &server,
        &["adddevicegroup", "--name", "g1", "--desc", "first group"],
    )
    .await;
    let mesh_id = out
        .stdout
        .trim()
        .strip_prefix("ok ")
        .expect("ok <meshid>")
        .to_string();
    assert!(
        mesh_id.starts_with("mesh//") && mesh_id.len() == 6 + 64,
        "{mesh_id}"
    );
    mc(&server, &["adddevicegroup", "--name", "g2"]).await;
    let out = mc(&server, &["listdevicegroups"]).await;
    let bare = mesh_id.strip_prefix("mesh//").unwrap();
    assert!(
        out.stdout.contains(&format!("\"{bare}\", \"g1\"")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\"g2\""), "{}", out.stdout);

    let out = mc(
        &server,
        &[
            "addusertodevicegroup",
            "--group",
            "g1",
            "--userid",
            "bob",
            "--remotecontrol",
        ],
    )
    .await;
    assert_eq!(out.stdout.trim(), "Added user bob");
    let out = mc(
        &server,
        &[
            "addusertodevicegroup",
            "--group",
            "g1",
            "--userid",
            "nobody",
            "--remotecontrol",
        ],
    )
    .await;
    assert!(out.stdout.starts_with("Nothing done"), "{}", out.stdout);
    let out = mc(
        &server,
        &[
            "addusertodevicegroup",
            "--group",
            "nosuch",
            "--userid",
            "bob",
        ],
    )
    .await;
    assert_eq!(out.stdout.trim(), "Unknown group");
    let out = mc(&server, &["listdevicegroups", "--json"]).await;
    let groups: Value = serde_json::from_str(&out.stdout).unwrap();
    let g1 = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "g1")
        .unwrap();
    assert_eq!(g1["links"]["user//bob"]["rights"], 8);
    assert_eq!(g1["links"]["user//admin"]["rights"], 4294967295u64);
    assert_eq!(g1["desc"], "first group");

    // What bob (not an administrator) sees and may do.
    let out = mc_as(&server, "bob", "bobpass123", &["listusers"]).await;
    assert_eq!(out.stdout.trim(), "Access denied");
    let out = mc_as(
        &server,
        "bob",
        "bobpass123",
        &["adduser", "--user", "eve", "--pass", "evepass123"],
    )
    .await;
    assert_eq!(out.stdout.trim(), "Permission denied");
    let out = mc_as(&server, "bob", "bobpass123", &["listdevicegroups"]).await;
    assert!(
        out.stdout.contains("\"g1\"") && !out.stdout.contains("\"g2\""),
        "{}",
        out.stdout
    );
    // g2 is invisible to bob: it reads as unknown, not as forbidden.
    let out = mc_as(
        &server,
        "bob",
        "bobpass123",
        &["removedevicegroup", "--group", "g2"],
    )
    .await;
    assert_eq!(out.stdout.trim(), "Invalid group identifier");
    // g1 is visible but bob lacks full rights.
    let out = mc_as(
        &server,
        "bob",
        "bobpass123",
        &["removedevicegroup", "--id", &mesh_id],
    )
    .await;
    assert_eq!(out.stdout.trim(), "Access denied");

    // listdevices: no agents yet.
    let out = mc(&server, &["listdevices"]).await;
    assert_eq!(out.stdout.trim(), "None");

    // removedevicegroup and removeuser.
    let out = mc(&server, &["removedevicegroup", "--group", "g2"]).await;
    assert_eq!(out.stdout.trim(), "ok");
    let out = mc(&server, &["listdevicegroups"]).await;
    assert!(!out.stdout.contains("\"g2\""), "{}", out.stdout);
    let out = mc(&server, &["removeuser", "--userid", "bob"]).await;
    assert_eq!(out.stdout.trim(), "ok");
    let out = mc(&server, &["removeuser", "--userid", "bob"]).await;
    assert_eq!(out.stdout.trim(), "User does not exists");

    // The audit trail, newest first, times as ISO strings.
    let out = mc(&server, &["listevents"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "time,type,action,nodeid,userid,msg");
    // Every meshctrl run signs in (and is recorded); the newest change is the removal.
    let newest_change = lines[1..]
        .iter()
        .find(|l| !l.contains("\"login\""))
        .unwrap();
    assert!(
        newest_change.contains("\"accountremove\""),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].contains("\"login\"") && lines[1].contains("Signed in (password)"),
        "{}",
        out.stdout
    );
    for action in ["accountcreate", "createmesh", "addmeshuser", "deletemesh"] {
        assert!(
            out.stdout.contains(&format!("\"{action}\"")),
            "{action}: {}",
            out.stdout
        );
    }
    assert!(
        lines[1].starts_with("\"20") && lines[1].contains('T'),
        "{}",
        lines[1]
    );

    // Login tokens log in like a user/password pair.
    let out = mc(&server, &["logintokens", "--add", "ci"]).await;
    let token_user = key_value(&out.stdout, "Username").expect(&out.stdout);
    let token_pass = key_value(&out.stdout, "Password").unwrap();
    assert!(token_user.starts_with("~t:"));
    let out = mc_as(&server, &token_user, &token_pass, &["userinfo"]).await;
    assert_eq!(
        key_value(&out.stdout, "_id").as_deref(),
        Some("user//admin")
    );
    let out = mc(&server, &["logintokens"]).await;
    assert!(out.stdout.contains(&token_user), "{}", out.stdout);
    mc(&server, &["logintokens", "--remove", &token_user]).await;
    let out = mc_as(&server, &token_user, &token_pass, &["userinfo"]).await;
    assert_eq!(out.stdout.trim(), "Invalid login.");

    // Wrong password.
    let out = mc_as(&server, "admin", "wrong-password", &["serverinfo"]).await;
    assert_eq!(out.stdout.trim(), "Invalid login.");
}

#[tokio::test]
async fn meshctrl_against_sqlite() {
    full_session(Db::Sqlite).await;
}

#[tokio::test]
async fn meshctrl_against_postgres() {
    if postgres::enabled() {
        full_session(Db::Postgres).await;
    }
}
