//! Test harness shared by the integration tests of every ironmesh crate. Everything here
//! talks to loopback only.

pub mod agent;
pub mod browser;
pub mod cli;
mod freshness;
pub mod gateway;
pub mod http;
pub mod meshcentral;
pub mod meshctrl;
pub mod postgres;
pub mod pty;
pub mod server;
pub mod source;
pub mod twofactor;
pub mod ws;
pub mod xdisplay;

use std::path::PathBuf;
use std::time::Duration;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(|p| p.parent())
        .expect("workspace root")
        .to_path_buf()
}

/// A built binary of the workspace, e.g. `ironmesh-server`: next to the test executable's
/// own target folder.
///
/// Refuses (panics) when the binary is missing or older than one of its sources: the tests
/// would otherwise quietly test an old build. The sources are the ones cargo recorded for the
/// binary in `<name>.d` beside it: every source file of its package and of the workspace
/// crates it depends on (for `ironmesh-server`: crates/server, crates/core, crates/proto;
/// including `build.rs` and what the build script watches, e.g. `web/`), exactly the files
/// the binary was compiled from. `cargo test -p X` builds X's own binaries first; the others
/// come from `cargo build --workspace --bins`, which `scripts/test` runs before the tests.
/// (The test cannot build it: `cargo build` would wait for the lock the running `cargo test`
/// holds.)
///
/// A package's `Cargo.toml` is not compared: cargo relinks a binary only when the manifest
/// changes something the binary is built from, so after, say, a new dev-dependency the
/// up-to-date binary stays older than its manifest and would be refused for good.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run `{BUILD_BINARIES}` first (scripts/test does)",
        path.display()
    );
    // Checked once per binary and test process (tests start the same binary many times).
    static FRESH: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut fresh = FRESH.lock().unwrap_or_else(|p| p.into_inner());
    if !fresh.iter().any(|n| n == name) {
        if let Err(why) = freshness::check(&path) {
            panic!(
                "refusing to run a stale {}: {why}. Run `{BUILD_BINARIES}` (with the same \
                 CARGO_TARGET_DIR) before the tests; scripts/test does",
                path.display()
            );
        }
        fresh.push(name.to_string());
    }
    path
}

/// The command that builds every binary the tests run.
const BUILD_BINARIES: &str = "cargo build --workspace --bins";

/// What a [`wait_until`] condition reports on each check: a `bool` (holds or not), an
/// `Option<T>` (`Some(value)` ends the wait with the value), or a `Result<T, E>` (`Ok(value)`
/// ends it; `Err` describes what was seen instead, and the last one is shown on timeout).
pub trait Condition {
    type Value;
    /// `Ok(value)` when the condition holds; otherwise what was seen, if anything.
    fn check(self) -> Result<Self::Value, Option<String>>;
}

impl Condition for bool {
    type Value = ();
    fn check(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Condition for Option<T> {
    type Value = T;
    fn check(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: std::fmt::Display> Condition for Result<T, E> {
    type Value = T;
    fn check(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Shortest pause between two checks of a [`wait_until`] condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Longest pause between two checks.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Waits for `condition` instead of sleeping a fixed time: checks it, then again after a
/// short pause, until it holds, and returns its value (see [`Condition`]); panics naming
/// `what` (and the last thing seen, for a `Result`) once `timeout` has passed. Tests use it
/// for every "wait until X happened" (a device online, a gateway listed, a log line), so
/// they take as long as the machine needs and no longer.
///
/// The pause is 20 ms, or as long as the last check took when that was longer (up to
/// 500 ms): a check that runs a process (meshctrl) does not keep a busy machine busier than
/// the thing being waited for.
///
/// ```text
/// wait_until(Duration::from_secs(10), "the gateway listed", async || {
///     gateways(&mut c).await.iter().any(|g| g["deviceid"] == "G1")
/// })
/// .await;
/// ```
pub async fn wait_until<C: Condition>(
    timeout: Duration,
    what: &str,
    mut condition: impl AsyncFnMut() -> C,
) -> C::Value {
    let started = tokio::time::Instant::now();
    loop {
        let checked = tokio::time::Instant::now();
        let last = match condition().await.check() {
            Ok(value) => return value,
            Err(last) => last,
        };
        if started.elapsed() >= timeout {
            match last {
                Some(last) => {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
                }
                None => panic!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        let pause = checked.elapsed().clamp(POLL_INTERVAL, MAX_POLL_INTERVAL);
        tokio::time::sleep(pause).await;
    }
}

/// Reports the running test as skipped and why, for a test that then returns early (e.g. a
/// PostgreSQL variant under `IRONMESH_SKIP_PG=1`): one line `SKIPPED: <test name>: <reason>`
/// on the process's stderr, written directly so the test harness's capture (which hides the
/// output of passing tests) does not swallow it. `scripts/test` counts these lines: the test
/// is reported as skipped, not passed. The name is the test thread's (libtest names each
/// test's thread after the test).
pub fn skip(reason: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let name = thread
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("<unnamed test>");
    // One write, so the line is not interleaved with other output.
    let line = format!("SKIPPED: {name}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Random lower-case hex, for unique names.
pub fn random_hex(bytes: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// Runs the `ironmesh` CLI with its stored login in `config_dir`; `stdin` (if any) is
/// written as one line. ([`cli::Cli`] does the same with a configuration folder of its own.)
pub fn ironmesh_cli(
    config_dir: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(binary("ironmesh"))
        .args(args)
        .env("IRONMESH_CONFIG_DIR", config_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning ironmesh");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(input) = stdin {
        pipe.write_all(format!("{input}\n").as_bytes())
            .expect("writing stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("ironmesh")
}
