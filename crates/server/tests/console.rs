//! The web console in a real browser: Debian's Chromium driven by playwright-core
//! (`web/e2e/console.mjs`) against the real server and a real agent on loopback.
//! Screenshots land in `target/console-screenshots/`.

use std::sync::Arc;

use ironmesh_agent::handshake::{AgentDescription, ClientHandshake};
use ironmesh_agent::identity::AgentIdentity;
use ironmesh_testkit::agent::{create_group, fetch_msh, SimAgent};
use ironmesh_testkit::binary;
use ironmesh_testkit::browser::screenshots;
use ironmesh_testkit::server::{Db, TestServer};

const PASS: &str = "Adm1n-pass!";

/// Runs one scenario of the browser script; fails with its output.
async fn browser(server: &TestServer, scenario: &str, extra: &[(&str, String)]) {
    ironmesh_testkit::browser::run_scenario(
        "console.mjs",
        server,
        ("admin", PASS),
        scenario,
        extra,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_end_to_end_in_chromium() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "Lab").await;
    let msh = fetch_msh(&server, &group).await;
    let work = tempfile::tempdir().unwrap();
    let msh_path = work.path().join("agent.msh");
    std::fs::write(&msh_path, &msh).unwrap();
    // The script starts the agent itself once the page is showing, to see it arrive live.
    browser(
        &server,
        "main",
        &[
            ("AGENT_BIN", binary("ironmesh-agent").display().to_string()),
            ("AGENT_MSH", msh_path.display().to_string()),
            (
                "AGENT_STATE",
                work.path().join("agent-state").display().to_string(),
            ),
            ("WORK_DIR", work.path().join("files").display().to_string()),
        ],
    )
    .await;
    for name in [
        "main-devices-live.png",
        "main-terminal.png",
        "main-events.png",
        "main-events-filtered.png",
        "main-recording-player.png",
        "main-rights-dialog.png",
        "main-full-admin-confirm.png",
        "main-users-site-rights.png",
        "main-user-groups.png",
        "main-device-group-user-group.png",
        "main-user-disabled.png",
        "main-broadcast.png",
        "main-narrow-devices.png",
        "main-device-settings.png",
        "main-devices-selected.png",
        "main-devices-moved.png",
        "main-devices-removed.png",
    ] {
        assert!(screenshots().join(name).exists(), "{name} saved");
    }
}

/// The account page's second factors, each with its own user: an authenticator app (codes
/// computed by the script from the secret the page shows) and a passkey (Chromium's virtual
/// authenticator). WebAuthn refuses IP-address origins, so the passkey scenario runs at
/// `https://localhost` (the server's default name; its certificate names it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factors_in_chromium() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("totp-user", PASS, false).await;
    server.add_user("passkey-user", PASS, false).await;
    browser(
        &server,
        "totp",
        &[("IRONMESH_USER", "totp-user".to_string())],
    )
    .await;
    browser(
        &server,
        "passkey",
        &[
            ("IRONMESH_USER", "passkey-user".to_string()),
            ("IRONMESH_URL", format!("https://localhost:{}", server.port)),
        ],
    )
    .await;
    for name in [
        "totp-enrol.png",
        "totp-recovery-codes.png",
        "totp-wrong-code.png",
        "passkey-registered.png",
        "passkey-signed-in.png",
    ] {
        assert!(screenshots().join(name).exists(), "{name} saved");
    }
}

/// `require_second_factor = true`: an account without a second factor signs in to its
/// account page alone, adds an authenticator app there, then reaches the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_second_factor_in_chromium() {
    let server = TestServer::start_with_config(Db::Sqlite, "require_second_factor = true\n").await;
    server.add_user("new-user", PASS, false).await;
    browser(
        &server,
        "required",
        &[("IRONMESH_USER", "new-user".to_string())],
    )
    .await;
    for name in ["required-enrolment.png", "required-after-enrolment.png"] {
        assert!(screenshots().join(name).exists(), "{name} saved");
    }
}

/// A device whose host name is markup (as an attacker controlling a device would report):
/// the console must show it as text and run nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_device_name_is_only_text() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "Lab").await;
    let msh = fetch_msh(&server, &group).await;
    let hostile = "<img src=x onerror=\"window.__ironmeshPwned=true\"><script>window.__ironmeshPwned=true</script>";
    let identity = Arc::new(AgentIdentity::generate(2048).unwrap().0);
    let sim = SimAgent::new(identity.clone(), &msh, server.port);
    let (mut socket, cert) = sim.open().await;
    let mut hs = ClientHandshake::new(
        &identity,
        sim.server_id,
        sim.mesh_id.clone(),
        AgentDescription {
            hostname: hostile.into(),
            host_info: format!("{hostile} - x64"),
            ..SimAgent::description()
        },
        &cert,
        None,
    );
    ironmesh_agent::handshake::complete(&mut socket, &mut hs)
        .await
        .expect("handshake");
    // Keep the socket read so the server sees a live agent while the browser looks.
    let keep = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = socket.next().await {}
    });
    browser(
        &server,
        "hostile-device",
        &[("HOSTILE_NAME", hostile.into())],
    )
    .await;
    keep.abort();
}
