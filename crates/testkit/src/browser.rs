//! The web console's Chromium scenarios (`web/e2e/*.mjs`, driven by playwright-core) run
//! against a test server: every such test starts them the same way.

use std::path::PathBuf;
use std::time::Duration;

use crate::server::TestServer;
use crate::workspace_root;

/// Where the scenarios save their screenshots.
pub fn screenshots() -> PathBuf {
    workspace_root().join("target/console-screenshots")
}

/// Runs `scenario` of the script `web/e2e/<script>` against `server`, signed in as
/// `admin`/`pass`, with `extra` in its environment; fails with the script's output unless it
/// succeeds and ran at least one step (`ok  <scenario>: …`).
pub async fn run_scenario(
    script: &str,
    server: &TestServer,
    (admin, pass): (&str, &str),
    scenario: &str,
    extra: &[(&str, String)],
) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: the console tests need Debian's chromium (scripts/test installs it \
         when run as root: apt-get install chromium)"
    );
    let web = workspace_root().join("web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "web/node_modules is missing: building ironmesh-server runs `npm ci` in web/"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(web.join("e2e").join(script))
        .arg(scenario)
        .env("IRONMESH_URL", format!("https://127.0.0.1:{}", server.port))
        .env("IRONMESH_USER", admin)
        .env("IRONMESH_PASS", pass)
        .env("SCREENSHOT_DIR", screenshots())
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("the browser scenario took over 5 minutes")
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "browser scenario {scenario} failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("ok  {scenario}:")), "no step ran");
}
