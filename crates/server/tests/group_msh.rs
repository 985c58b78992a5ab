//! `ironmesh-server group msh` with the real binary: before the first start it creates the
//! identity the server then uses; afterwards it names the address the server really
//! listened on (a `--port`/`--name` given to the server, port 0 resolved), unless its own
//! flags or variables say otherwise.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use ironmesh_proto::msh::MeshSettings;
use tokio::io::{AsyncBufReadExt, BufReader};

/// `ironmesh-server --data <dir> --fast-cert <args>`, with no `IRONMESH_*` variable but
/// those in `env`.
fn server_cmd(data: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(ironmesh_testkit::binary("ironmesh-server"));
    for (key, _) in std::env::vars() {
        if key.starts_with("IRONMESH_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied())
        .arg("--data")
        .arg(data)
        .args(["--fast-cert", "--log", "warn"])
        .args(args);
    cmd
}

fn run(data: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = server_cmd(data, args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ironmesh-server");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// The `.msh` of group `g1`, parsed; panics with the command's error otherwise.
fn msh(data: &Path, flags: &[&str], env: &[(&str, &str)]) -> (MeshSettings, String) {
    let mut args = flags.to_vec();
    args.extend(["group", "msh", "g1"]);
    let out = run(data, &args, env, None);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "group msh: {stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    (
        MeshSettings::parse(&text).unwrap_or_else(|e| panic!("{e:?}: {text}")),
        stderr,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test]
async fn msh_names_the_address_the_server_really_uses() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let out = run(
        data,
        &["account", "add", "adm", "--admin", "--password-stdin"],
        &[],
        Some("Adm1n-pass!\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(data, &["group", "add", "g1", "--owner", "adm"], &[], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        data.join("config.toml"),
        "port = 5123\nserver_name = \"mesh.test\"\n",
    )
    .unwrap();

    // Before the first start: the configuration's address, and a new identity.
    assert!(!data.join("agent-server-cert.pem").exists());
    let (before, note) = msh(data, &[], &[]);
    assert_eq!(before.server_url, "wss://mesh.test:5123/agent.ashx");
    assert_eq!(before.mesh_name, "g1");
    assert!(note.contains("has not started yet"), "{note}");
    assert!(data.join("agent-server-cert.pem").exists());
    // A variable counts as much as a flag, as for the server.
    let (env, _) = msh(data, &[], &[("IRONMESH_PORT", "5124")]);
    assert_eq!(env.server_url, "wss://mesh.test:5124/agent.ashx");
    assert_eq!(
        env.server_id, before.server_id,
        "the identity is created once"
    );

    // The server started with flags the file does not know, on any free port: it uses the
    // identity created above.
    let mut server = tokio::process::Command::from(server_cmd(
        data,
        &["--port", "0", "--name", "127.0.0.1"],
        &[],
    ))
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("server exited");
            if line.starts_with("ironmesh-server ready on ") {
                return line;
            }
        }
    })
    .await
    .expect("server ready");
    let port: u16 = ready
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("port in the ready line");
    assert!(
        ready.contains(&format!("ServerID {}", hex(&before.server_id))),
        "the server kept the identity msh created: {ready}"
    );

    // Now msh, with no flags, names what the server really uses.
    let (after, note) = msh(data, &[], &[]);
    assert_eq!(
        after.server_url,
        format!("wss://127.0.0.1:{port}/agent.ashx")
    );
    assert_eq!(after.server_id, before.server_id);
    assert!(note.is_empty(), "{note}");
    // Its own flags still win (a public name or port in front of the server).
    let (named, _) = msh(data, &["--name", "gw.example.org"], &[]);
    assert_eq!(
        named.server_url,
        format!("wss://gw.example.org:{port}/agent.ashx")
    );
    let (ported, _) = msh(data, &["--port", "443"], &[]);
    assert_eq!(ported.server_url, "wss://127.0.0.1:443/agent.ashx");
    let _ = server.kill().await;

    // Still true after the server stopped.
    let (stopped, _) = msh(data, &[], &[]);
    assert_eq!(stopped.server_url, after.server_url);

    // Port 0 before any start cannot be named.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::write(fresh.path().join("config.toml"), "port = 0\n").unwrap();
    let out = run(
        fresh.path(),
        &["account", "add", "adm", "--admin", "--password-stdin"],
        &[],
        Some("Adm1n-pass!\n"),
    );
    assert!(out.status.success());
    let out = run(
        fresh.path(),
        &["group", "add", "g1", "--owner", "adm"],
        &[],
        None,
    );
    assert!(out.status.success());
    let out = run(fresh.path(), &["group", "msh", "g1"], &[], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen on any free port (port 0) and has not started yet"),
        "{err}"
    );
}
