//! `ironmesh devices power` and `ironmesh devices message` against the real server and a
//! real ironmesh-agent whose power and notification commands are test recorders.

use std::path::Path;
use std::time::Duration;

use ironmesh_testkit::agent::{create_group, fetch_msh, TestAgent};
use ironmesh_testkit::cli::Cli;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use serde_json::Value;

const PASS: &str = "Adm1n-pass!";

/// A program appending its arguments, NUL-terminated, then a newline, to `log`.
fn recorder(dir: &Path, name: &str, log: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let log = log.display();
    std::fs::write(
        &path,
        format!("#!/bin/sh\nprintf '%s\\0' \"$@\" >> '{log}'\nprintf '\\n' >> '{log}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

async fn recorded(log: &Path, n: usize) -> Vec<Vec<String>> {
    wait_until(Duration::from_secs(15), "the agent's command", async || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let calls: Vec<Vec<String>> = text
            .split("\0\n")
            .filter(|c| !c.is_empty())
            .map(|c| c.split('\0').map(str::to_string).collect())
            .collect();
        if calls.len() >= n {
            Ok(calls)
        } else {
            Err(format!("{calls:?}"))
        }
    })
    .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn power_and_messages_from_the_command_line() {
    let server = TestServer::start(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "lab").await;
    let tmp = tempfile::tempdir().unwrap();
    let power_log = tmp.path().join("power.log");
    let notify_log = tmp.path().join("notify.log");
    // Wake packets (the agent may wake through itself: it reports its own MACs) stay on
    // loopback.
    let catcher = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let env = vec![
        (
            "IRONMESH_AGENT_WOL_ADDRESS".to_string(),
            catcher.local_addr().unwrap().to_string(),
        ),
        (
            "IRONMESH_AGENT_POWER_COMMAND".to_string(),
            recorder(tmp.path(), "power", &power_log),
        ),
        (
            "IRONMESH_AGENT_NOTIFY_COMMAND".to_string(),
            recorder(tmp.path(), "notify", &notify_log),
        ),
    ];
    let mut agent = TestAgent::start_with_env(&fetch_msh(&server, &group).await, env).await;
    let (node, _) = agent.wait_online().await;
    let bare = node.trim_start_matches("node//").to_string();
    let cli = Cli::new();
    cli.login(&server, "admin", PASS);

    let out = cli.run(&["devices", "power", &bare, "restart"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("asked to restart"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(recorded(&power_log, 1).await, [["reboot"]]);
    let out = cli.run(&["--json", "devices", "power", &bare, "sleep"]);
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["result"], "ok", "{reply}");
    assert_eq!(recorded(&power_log, 2).await[1], ["suspend"]);

    let hostile = "say \"hi\"\n'$(id)' `x` ; rm -rf / &";
    let out = cli.run(&["devices", "message", &bare, "--title", "T; $T", hostile]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli.run(&[
        "devices", "message", &bare, "--toast", "--title", "N", "note",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let calls = recorded(&notify_log, 2).await;
    assert_eq!(calls[0], ["T; $T", hostile]);
    assert_eq!(calls[1], ["N", "note"]);

    // Wake: the server says how many agents it asked (or that the device reported no MAC
    // address, on a machine with loopback only).
    let out = cli.run(&["devices", "power", &bare, "wake"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains("wake packets") || said.contains("No known MAC addresses"),
        "{said}"
    );
    let out = cli.run(&["devices", "power", "no-such-device", "off"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no device matches \"no-such-device\""),
        "{}",
        text(&out.stderr)
    );
    // Offline: the server's refusal.
    agent.kill().await;
    wait_until(Duration::from_secs(15), "the agent offline", async || {
        let out = cli.run(&["devices", "power", &bare, "off"]);
        let err = text(&out.stderr);
        if !out.status.success() && err.contains("Agent not connected") {
            Ok(())
        } else {
            Err(err)
        }
    })
    .await;
    assert_eq!(recorded(&power_log, 2).await.len(), 2, "nothing more ran");
}
