//! OpenID Connect single sign-on end to end: a real provider (the certified npm package
//! `oidc-provider`, web/e2e/oidc-provider.mjs), the real server, Debian's Chromium
//! (web/e2e/sso.mjs). The account is created on the first sign-in with the group
//! membership its provider group maps to; refusals get clear pages; every attempt is in
//! the audit trail.

use std::time::Duration;

use ironmesh_testkit::agent::create_group;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::{workspace_root, ws};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

const PASS: &str = "Adm1n-pass!";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn npm_dir() -> std::path::PathBuf {
    workspace_root().join(".deps/npm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_in_chromium() {
    assert!(
        npm_dir().join("node_modules/oidc-provider").exists(),
        "oidc-provider is missing: scripts/test installs it into .deps/npm"
    );
    let provider_port = free_port();
    let issuer = format!("http://127.0.0.1:{provider_port}");
    let server = TestServer::start_with_config(
        Db::Sqlite,
        &format!(
            "[oidc]\nissuer = \"{issuer}\"\nclient_id = \"ironmesh\"\n\
             client_secret = \"ironmesh-client-secret\"\n\
             scopes = [\"openid\", \"profile\", \"email\", \"groups\"]\n\
             [[oidc.groups]]\nclaim = \"ops\"\ngroup = \"Servers\"\nrights = 8\n"
        ),
    )
    .await;
    server.add_user("admin", PASS, true).await;
    let servers = create_group(&server, "admin", PASS, "Servers").await;
    // The provider, told where to send browsers back.
    let redirect = format!("https://localhost:{}/oidc/callback", server.port);
    let mut provider = tokio::process::Command::new("node")
        .arg(workspace_root().join("web/e2e/oidc-provider.mjs"))
        .arg(provider_port.to_string())
        .arg(&redirect)
        .env("OIDC_PROVIDER_DIR", npm_dir())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the OpenID Connect provider");
    let mut lines = BufReader::new(provider.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the provider did not start")
        .unwrap()
        .unwrap_or_default();
    assert!(ready.starts_with("ready "), "{ready}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("node")
            .arg(workspace_root().join("web/e2e/sso.mjs"))
            // WebAuthn and cookies need a host name; the certificate includes localhost.
            .env("IRONMESH_URL", format!("https://localhost:{}", server.port))
            .env("OIDC_ISSUER", &issuer)
            .env(
                "SCREENSHOT_DIR",
                workspace_root().join("target/console-screenshots"),
            )
            .env("CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser scenario took over 5 minutes")
    .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "single sign-on scenario failed");

    // One account, created on the first sign-in, member of the mapped group.
    let mut admin = ws::control(server.port, "admin", PASS).await.unwrap();
    let users = ws::request(&mut admin, &json!({"action":"users","responseid":"u"}))
        .await
        .unwrap();
    let sso_users: Vec<&Value> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["name"].as_str().unwrap_or("").starts_with("ops-"))
        .collect();
    assert_eq!(sso_users.len(), 1, "{users}");
    assert_eq!(sso_users[0]["name"], "ops-alice");
    assert_eq!(sso_users[0]["links"][&servers]["rights"], 8, "{users}");
    // Each attempt is in the audit trail, with its outcome.
    let events = ws::request(
        &mut admin,
        &json!({"action":"events","filter":"login","responseid":"e"}),
    )
    .await
    .unwrap();
    let sso: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "single sign-on")
        .collect();
    let successes = sso.iter().filter(|e| e["outcome"].is_null()).count();
    let failures: Vec<String> = sso
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .map(|e| e["msg"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(successes, 2, "{events}");
    assert_eq!(failures.len(), 3, "{failures:?}");
    for needle in [
        "state does not match",
        "invalid_grant",
        "signature does not verify",
    ] {
        assert!(
            failures.iter().any(|f| f.contains(needle)),
            "{needle}: {failures:?}"
        );
    }
}
