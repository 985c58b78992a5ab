//! Signing in to an account that has a second factor, with the `ironmesh` CLI and with
//! MeshCentral's `meshctrl.js`, against the real server.

use ironmesh_testkit::cli::Cli;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::twofactor::{add_authenticator, totp, wrong_code};
use ironmesh_testkit::ws;
use serde_json::Value;

const PASS: &str = "Adm1n-pass!";

#[tokio::test]
async fn the_cli_and_meshctrl_sign_in_with_a_second_factor() {
    let s = TestServer::start(Db::Sqlite).await;
    s.add_user("admin", PASS, true).await;
    // The administrator adds an authenticator app (TOTP); confirming it gives recovery
    // codes.
    let mut c = ws::control(s.port, "admin", PASS).await.unwrap();
    let (secret, recovery) = add_authenticator(&mut c).await;
    assert!(recovery.len() >= 4, "{recovery:?}");

    let cli = Cli::new();
    // No code: refused, saying what is missing; nothing stored.
    let out = cli.try_login(&s, "admin", PASS, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("second factor") && err.contains("--code"),
        "{err}"
    );
    assert!(!cli.path().join("credentials.json").exists());
    // A wrong code: refused as wrong.
    let wrong = wrong_code(&secret);
    let out = cli.try_login(&s, "admin", PASS, &["--code", wrong]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("wrong second-factor code"), "{err}");
    // The next step's code (the one used to confirm cannot be used again).
    let code = totp(&secret, 1);
    let out = cli.try_login(&s, "admin", PASS, &["--code", &code]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same code again (as someone who saw it would): refused.
    let replay = Cli::new();
    let out = replay.try_login(&s, "admin", PASS, &["--code", &code]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a code was accepted twice");
    assert!(err.contains("wrong second-factor code"), "{err}");
    // Later commands use the stored login token, which needs no code.
    let users = cli.run(&["users", "--json"]);
    assert!(users.status.success(), "{users:?}");
    let list: Value = serde_json::from_slice(&users.stdout).unwrap();
    assert!(list.to_string().contains("admin"), "{list}");

    // meshctrl.js: told to use --token without one; a recovery code works once.
    let url = s.wss_url();
    let out = ironmesh_testkit::meshctrl::run(&url, "admin", PASS, &["serverinfo"]).await;
    assert!(
        out.stdout.contains("Authentication token required"),
        "{out:?}"
    );
    let with_code = |code: String| {
        let url = url.clone();
        async move {
            ironmesh_testkit::meshctrl::run(&url, "admin", PASS, &["--token", &code, "serverinfo"])
                .await
        }
    };
    let out = with_code(recovery[0].clone()).await;
    assert!(out.stdout.contains("agentCertHash"), "{out:?}");
    let out = with_code(recovery[0].clone()).await;
    assert!(
        !out.stdout.contains("agentCertHash") && out.stdout.contains("token required"),
        "a recovery code was accepted twice: {out:?}"
    );
}
