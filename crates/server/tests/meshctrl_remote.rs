//! The real `meshctrl.js` working on devices through ironmesh: `runcommand --reply`,
//! `shell` (driven through a pseudo-terminal), `upload`, `download` — with ironmesh-agent,
//! and with the stock MeshCentral agent.

use std::process::Command;
use std::time::Duration;

use ironmesh_testkit::agent::{create_group, fetch_msh, TestAgent};
use ironmesh_testkit::meshctrl;
use ironmesh_testkit::pty::PtyProcess;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::{wait_until, ws};
use sha2::{Digest, Sha256};

const PASS: &str = "Adm1n-pass!";

fn meshctrl_command(server: &TestServer, args: &[&str]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(meshctrl::script())
        .args([
            "--url",
            &server.wss_url(),
            "--loginuser",
            "admin",
            "--loginpass",
            PASS,
        ])
        .args(args);
    cmd
}

/// `meshctrl shell`: type a command, read its output, leave.
async fn shell_round_trip(server: &TestServer, bare_id: &str) {
    let mut shell = PtyProcess::spawn(
        meshctrl_command(server, &["shell", "--id", bare_id]),
        100,
        30,
    );
    assert!(
        shell.expect("Connected.", Duration::from_secs(30)).await,
        "{}",
        shell.text()
    );
    // Type once the remote shell is reading: its prompt has come.
    let mark = shell
        .output
        .windows(10)
        .position(|w| w == b"Connected.")
        .unwrap()
        + 10;
    wait_until(
        Duration::from_secs(30),
        "the remote shell's prompt",
        async || {
            let hash = shell
                .expect_from(mark, "#", Duration::from_millis(200))
                .await;
            let since = String::from_utf8_lossy(&shell.output[mark..]).into_owned();
            if hash || since.contains('$') {
                Ok(())
            } else {
                Err(shell.text())
            }
        },
    )
    .await;
    shell.send(b"echo mc-shell-$((6*7))\r").await;
    assert!(
        shell.expect("mc-shell-42", Duration::from_secs(15)).await,
        "{}",
        shell.text()
    );
    shell.send(b"exit\r").await;
    assert!(
        shell
            .expect("Connection Closed.", Duration::from_secs(15))
            .await,
        "{}",
        shell.text()
    );
}

async fn run_reply(server: &TestServer, bare_id: &str) {
    let out = meshctrl::run(
        &server.wss_url(),
        "admin",
        PASS,
        &[
            "runcommand",
            "--id",
            bare_id,
            "--run",
            "echo hi-$((40+2))",
            "--reply",
        ],
    )
    .await;
    assert_eq!(out.stdout.trim(), "hi-42", "{out:?}");
}

#[tokio::test]
async fn meshctrl_with_ironmesh_agent() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "g").await;
    let mut agent = TestAgent::start(&fetch_msh(&server, &group).await).await;
    let (node, _) = agent.wait_online().await;
    let bare = node.trim_start_matches("node//").to_string();

    run_reply(&server, &bare).await;
    let out = meshctrl::run(
        &server.wss_url(),
        "admin",
        PASS,
        &["runcommand", "--id", &bare, "--run", "true"],
    )
    .await;
    assert_eq!(out.stdout.trim(), "OK");
    shell_round_trip(&server, &bare).await;

    // upload then download a multi-MB file that starts with `{` (escape rule), compare.
    let dir = tempfile::tempdir().unwrap();
    let mut data: Vec<u8> = (0..3_158_074u32)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    data[0] = b'{';
    let local = dir.path().join("big.bin");
    std::fs::write(&local, &data).unwrap();
    let remote = tempfile::tempdir().unwrap();
    let out = meshctrl::run(
        &server.wss_url(),
        "admin",
        PASS,
        &[
            "upload",
            "--id",
            &bare,
            "--file",
            local.to_str().unwrap(),
            "--target",
            remote.path().to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        out.stdout.contains("Upload done, 3158074 bytes sent."),
        "{out:?}"
    );
    // meshctrl exits without uploaddone; the agent has written every acknowledged chunk.
    wait_until(
        Duration::from_secs(5),
        "the whole upload written",
        async || {
            let written = std::fs::metadata(remote.path().join("big.bin"))
                .map(|m| m.len())
                .unwrap_or(0);
            if written >= data.len() as u64 {
                Ok(())
            } else {
                Err(format!(
                    "upload incomplete: {written} of {} bytes",
                    data.len()
                ))
            }
        },
    )
    .await;
    assert_eq!(
        Sha256::digest(std::fs::read(remote.path().join("big.bin")).unwrap()),
        Sha256::digest(&data)
    );
    let back = tempfile::tempdir().unwrap();
    let target = format!("{}/", back.path().display());
    let out = meshctrl::run(
        &server.wss_url(),
        "admin",
        PASS,
        &[
            "download",
            "--id",
            &bare,
            "--file",
            &format!("{}/big.bin", remote.path().display()),
            "--target",
            &target,
        ],
    )
    .await;
    assert!(
        out.stdout
            .contains("Download completed, 3158074 bytes written."),
        "{out:?}"
    );
    // meshctrl names the local file after the remote one without its extension.
    assert_eq!(
        Sha256::digest(std::fs::read(back.path().join("big")).unwrap()),
        Sha256::digest(&data)
    );

    // A device that is offline: a clear result instead of a hang.
    agent.kill().await;
    let mut c = ws::control(server.port, "admin", PASS).await.unwrap();
    wait_until(Duration::from_secs(15), "the device offline", async || {
        ws::node_conn(&mut c, &node).await == Some(0)
    })
    .await;
    let out = meshctrl::run(
        &server.wss_url(),
        "admin",
        PASS,
        &["runcommand", "--id", &bare, "--run", "true", "--reply"],
    )
    .await;
    assert_eq!(out.stdout.trim(), "Agent not connected");
    let out = meshctrl::run(&server.wss_url(), "admin", PASS, &["shell", "--id", &bare]).await;
    assert!(
        out.stdout.contains("Unable to route: device is offline"),
        "{out:?}"
    );
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[tokio::test]
async fn meshctrl_with_stock_agent() {
    use ironmesh_testkit::agent::StockAgent;
    let server = TestServer::start_for_stock_agents(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "stock").await;
    let mut agent = StockAgent::start(&fetch_msh(&server, &group).await).await;
    // Online with its core running (coreinfo stored).
    let bare = wait_until(
        Duration::from_secs(60),
        "the stock agent ready",
        async || {
            let out =
                meshctrl::run(&server.wss_url(), "admin", PASS, &["listdevices", "--json"]).await;
            let list: Vec<serde_json::Value> =
                serde_json::from_str(&out.stdout).unwrap_or_default();
            match list
                .iter()
                .find(|d| d["conn"] == 1 && d["agent"]["core"].is_string())
            {
                Some(d) => Ok(d["_id"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("node//")
                    .to_string()),
                None => Err(out.stdout),
            }
        },
    )
    .await;
    run_reply(&server, &bare).await;
    shell_round_trip(&server, &bare).await;
    agent.kill().await;
}
