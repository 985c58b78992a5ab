//! The real `meshctrl.js` from the npm package `meshcentral`, installed by `scripts/test`
//! under `.deps/npm` (never committed).

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

pub fn script() -> PathBuf {
    let dir = std::env::var("IRONMESH_TEST_MESHCENTRAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::workspace_root().join(".deps/npm/node_modules/meshcentral"));
    let script = dir.join("meshctrl.js");
    assert!(
        script.exists(),
        "{} is missing: run scripts/test (it installs the meshcentral npm package), or set \
         IRONMESH_TEST_MESHCENTRAL_DIR",
        script.display()
    );
    script
}

/// Output of one meshctrl run.
#[derive(Debug)]
pub struct MeshCtrlOutput {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<i32>,
}

/// Runs `node meshctrl.js --url <url> --loginuser U --loginpass P <args…>`. meshctrl has
/// no timeouts of its own, so a hung run fails the test after `timeout`.
pub async fn run(url: &str, user: &str, pass: &str, args: &[&str]) -> MeshCtrlOutput {
    let mut full = vec!["--url", url, "--loginuser", user, "--loginpass", pass];
    full.extend_from_slice(args);
    run_raw(&full, Duration::from_secs(30)).await
}

pub async fn run_raw(args: &[&str], timeout: Duration) -> MeshCtrlOutput {
    try_run_raw(args, timeout)
        .await
        .unwrap_or_else(|| panic!("meshctrl {args:?} did not finish in {timeout:?}"))
}

/// As [`run_raw`], but a run that does not finish in `timeout` is killed and gives `None`
/// (for comparisons where hanging is an answer too).
pub async fn try_run_raw(args: &[&str], timeout: Duration) -> Option<MeshCtrlOutput> {
    let mut cmd = Command::new("node");
    cmd.arg(script()).args(args).kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .ok()?
        .expect("running node");
    Some(MeshCtrlOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code(),
    })
}

/// `wscat` (npm package, installed beside meshcentral by `scripts/test`).
pub fn wscat() -> PathBuf {
    let path = script()
        .parent()
        .and_then(|p| p.parent())
        .expect("node_modules")
        .join("wscat/bin/wscat");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test",
        path.display()
    );
    path
}
