//! Test harness shared by the integration tests of every ironmesh crate. Everything here
//! talks to loopback only.

pub mod agent;
pub mod gateway;
pub mod http;
pub mod meshctrl;
pub mod postgres;
pub mod pty;
pub mod server;
pub mod source;
pub mod ws;

use std::path::PathBuf;

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
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
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
/// written as one line.
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
