//! The `ironmesh` CLI against the real server and a real ironmesh-agent on loopback.

use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironmesh_testkit::agent::{create_group, fetch_msh, TestAgent};
use ironmesh_testkit::cli::Cli;
use ironmesh_testkit::pty::PtyProcess;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use ironmesh_testkit::ws;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PASS: &str = "Adm1n-pass!";

struct Setup {
    server: TestServer,
    agent: TestAgent,
    node: String,
    /// Logged in as `admin`.
    cli: Cli,
}

impl Setup {
    async fn new() -> Setup {
        let server = TestServer::start(Db::Sqlite).await;
        server.add_user("admin", PASS, true).await;
        let group = create_group(&server, "admin", PASS, "lab").await;
        let mut agent = TestAgent::start(&fetch_msh(&server, &group).await).await;
        let (node, _) = agent.wait_online().await;
        let cli = Cli::new();
        cli.login(&server, "admin", PASS);
        Setup {
            server,
            agent,
            node,
            cli,
        }
    }

    fn bare(&self) -> &str {
        self.node.trim_start_matches("node//")
    }
}

/// Everything `pipe` yields, as it arrives.
fn collect(pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    use tokio::io::AsyncBufReadExt;
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn listing_and_running_commands() {
    let mut s = Setup::new().await;
    // The token, not the password, is stored, with mode 0600.
    let creds = std::fs::read_to_string(s.cli.path().join("credentials.json")).unwrap();
    assert!(!creds.contains(PASS) && creds.contains("~t:"), "{creds}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.cli.path().join("credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let out = s.cli.run(&["devices"]);
    let text = stdout(&out);
    assert!(
        text.starts_with("NAME") && text.contains("lab") && text.contains("online"),
        "{text}"
    );
    let out = s.cli.run(&["devices", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["_id"], s.node.as_str());
    assert_eq!(list[0]["groupname"], "lab");
    assert!(stdout(&s.cli.run(&["groups"])).contains("lab"));
    assert!(stdout(&s.cli.run(&["users"])).contains("admin"));
    let info = stdout(&s.cli.run(&["info", s.bare()]));
    assert!(
        info.contains("State:         online") && info.contains("Interface:"),
        "{info}"
    );

    // run: output returned; by id in several forms and by name.
    for device in [
        s.node.clone(),
        s.bare().to_string(),
        format!("@{}", s.bare()),
        ironmesh_agent::reports::hostname(),
    ] {
        let out = s.cli.run(&["run", &device, "--", "echo", "run-$((40+2))"]);
        assert_eq!(stdout(&out), "run-42\n", "{device}: {}", stderr(&out));
    }
    let out = s.cli.run(&["--json", "run", s.bare(), "--", "printf", "x"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["output"], "x");

    // Clear errors.
    let out = s.cli.run(&["run", "no-such-device", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no device matches \"no-such-device\""),
        "{}",
        stderr(&out)
    );

    // Live events: the agent going offline shows up.
    let mut events =
        tokio::process::Command::from(s.cli.command(&["events", "--follow", "--json"]))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
    let out = collect(events.stdout.take().unwrap());
    let err = collect(events.stderr.take().unwrap());
    // It says so once it is signed in, and the server subscribes a control channel to
    // events before it greets it.
    wait_until(
        Duration::from_secs(30),
        "`ironmesh events` waiting",
        async || {
            let err = err.lock().unwrap();
            if err.contains("Waiting for events") {
                Ok(())
            } else {
                Err(err.clone())
            }
        },
    )
    .await;
    s.agent.kill().await;
    let offline = |text: &str| {
        text.lines()
            .any(|l| l.contains("\"nodeconnect\"") && l.contains("\"conn\":0"))
    };
    wait_until(Duration::from_secs(15), "the offline event", async || {
        let out = out.lock().unwrap();
        if offline(&out) {
            Ok(())
        } else {
            Err(out.clone())
        }
    })
    .await;
    let _ = events.kill().await;
    let lines = out.lock().unwrap().clone();
    assert!(offline(&lines), "{lines}");
    let out = s.cli.run(&["run", s.bare(), "--", "true"]);
    assert!(stderr(&out).contains("is offline"), "{}", stderr(&out));

    // Logout revokes the token.
    let login: Value = serde_json::from_str(&creds).unwrap();
    assert!(s.cli.run(&["logout"]).status.success());
    let out = s.cli.run(&["devices"]);
    assert!(stderr(&out).contains("not logged in"), "{}", stderr(&out));
    let err = ws::control(
        s.server.port,
        login["token_user"].as_str().unwrap(),
        login["token_pass"].as_str().unwrap(),
    )
    .await;
    assert!(err.is_err(), "revoked token still logs in");
}

#[tokio::test]
async fn files_round_trip_with_identical_sha256() {
    let s = Setup::new().await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("payload.bin");
    // 3 MB, first byte `{` to exercise the escape rule.
    let mut data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    data[0] = b'{';
    std::fs::write(&local, &data).unwrap();
    let remote = tempfile::tempdir().unwrap();
    let remote_dir = remote.path().to_str().unwrap();
    let out = s
        .cli
        .run(&["upload", s.bare(), local.to_str().unwrap(), remote_dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Uploaded 3000000 bytes"),
        "{}",
        stderr(&out)
    );
    let uploaded = std::fs::read(remote.path().join("payload.bin")).unwrap();
    assert_eq!(Sha256::digest(&uploaded), Sha256::digest(&data));

    let back = dir.path().join("back.bin");
    let out = s.cli.run(&[
        "download",
        s.bare(),
        &format!("{remote_dir}/payload.bin"),
        back.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        Sha256::digest(std::fs::read(&back).unwrap()),
        Sha256::digest(&data)
    );

    // Folder work: mkdir, ls, mv, rm (refused on a non-empty folder without -r).
    let sub = format!("{remote_dir}/new/deeper");
    let out = s.cli.run(&["mkdir", s.bare(), &sub]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(remote.path().join("new/deeper").is_dir());
    let out = s.cli.run(&["ls", s.bare(), remote_dir]);
    let listing = stdout(&out);
    assert!(
        listing.contains("dir") && listing.contains("new") && listing.contains("3000000"),
        "{listing}"
    );
    let out = s.cli.run(&["--json", "ls", s.bare(), remote_dir]);
    let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(entries
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["n"] == "payload.bin" && e["t"] == 3 && e["s"] == 3_000_000));
    let out = s.cli.run(&[
        "mv",
        s.bare(),
        &format!("{remote_dir}/payload.bin"),
        "renamed.bin",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        remote.path().join("renamed.bin").exists() && !remote.path().join("payload.bin").exists()
    );
    let out = s.cli.run(&["rm", s.bare(), &format!("{remote_dir}/new")]);
    assert!(
        stderr(&out).contains("needs --recursive"),
        "{}",
        stderr(&out)
    );
    assert!(remote.path().join("new/deeper").is_dir());
    let out = s
        .cli
        .run(&["rm", "-r", s.bare(), &format!("{remote_dir}/new")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!remote.path().join("new").exists());
    let out = s
        .cli
        .run(&["rm", s.bare(), &format!("{remote_dir}/renamed.bin")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!remote.path().join("renamed.bin").exists());
    let out = s.cli.run(&["rm", s.bare(), &format!("{remote_dir}/ghost")]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = s.cli.run(&["ls", s.bare(), "/no/such/folder"]);
    assert!(
        stderr(&out).contains("cannot list /no/such/folder"),
        "{}",
        stderr(&out)
    );

    // Errors name the problem and leave nothing half-written under the final name.
    let out = s.cli.run(&[
        "download",
        s.bare(),
        "/no/such/file",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("cannot read /no/such/file"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("x").exists());
    let out = s
        .cli
        .run(&["upload", s.bare(), local.to_str().unwrap(), "/no/such/dir"]);
    assert!(
        stderr(&out).contains("cannot write /no/such/dir/payload.bin"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn interactive_shell_with_resize() {
    let s = Setup::new().await;
    let mut cmd = s.cli.command(&["shell", s.bare()]);
    cmd.env("TERM", "xterm");
    let mut shell = PtyProcess::spawn(cmd, 100, 30);
    assert!(
        shell.expect("#", Duration::from_secs(30)).await || shell.text().contains('$'),
        "no prompt: {}",
        shell.text()
    );
    shell.send(b"echo shell-$((6*7))\r").await;
    assert!(
        shell.expect("shell-42", Duration::from_secs(10)).await,
        "{}",
        shell.text()
    );
    // The agent's terminal has our size, then follows a resize.
    let mark = shell.output.len();
    shell.send(b"stty size\r").await;
    assert!(
        shell
            .expect_from(mark, "30 100", Duration::from_secs(10))
            .await,
        "{}",
        shell.text()
    );
    shell.resize(120, 40);
    // The resize travels beside the keystrokes (SIGWINCH, then a message of its own): ask
    // again until the agent's terminal has it.
    wait_until(
        Duration::from_secs(20),
        "the remote terminal resized to 40 120",
        async || {
            let mark = shell.output.len();
            shell.send(b"stty size\r").await;
            if shell
                .expect_from(mark, "40 120", Duration::from_secs(2))
                .await
            {
                Ok(())
            } else {
                Err(shell.text())
            }
        },
    )
    .await;
    // Exact byte pass-through, both ways (UTF-8 and control characters).
    let mark = shell.output.len();
    shell
        .send("printf 'caf\\303\\251 \\342\\234\\223\\n'\r".as_bytes())
        .await;
    assert!(
        shell
            .expect_from(mark, "café ✓", Duration::from_secs(10))
            .await,
        "{}",
        shell.text()
    );
    shell.send(b"exit\r").await;
    assert!(
        shell
            .expect("Connection closed.", Duration::from_secs(10))
            .await,
        "{}",
        shell.text()
    );
    let status = shell.finish(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()));
}

#[tokio::test]
async fn users_without_rights_get_clear_errors() {
    let s = Setup::new().await;
    let mut admin = ws::control(s.server.port, "admin", PASS).await.unwrap();
    let r = ws::request(
        &mut admin,
        &json!({"action":"adduser","username":"viewer","pass":"viewer-pass1"}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "ok");
    let nodes = ws::request(&mut admin, &json!({"action":"nodes"}))
        .await
        .unwrap();
    let group = nodes["nodes"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    // Remote control but no terminal and no commands.
    let r = ws::request(
        &mut admin,
        &json!({"action":"addmeshuser","meshid":group,"usernames":["viewer"],"meshadmin":8 | 512}),
    )
    .await
    .unwrap();
    assert_eq!(r["result"], "Added user viewer");
    let viewer = Cli::new();
    viewer.login(&s.server, "viewer", "viewer-pass1");
    let out = viewer.run(&["run", s.bare(), "--", "id"]);
    assert!(stderr(&out).contains("Access denied"), "{}", stderr(&out));
    let out = viewer.run(&["shell", s.bare()]);
    assert!(
        stderr(&out).contains("terminal is not allowed"),
        "{}",
        stderr(&out)
    );
    let out = viewer.run(&["users"]);
    assert!(stderr(&out).contains("Access denied"), "{}", stderr(&out));
    let out = viewer.try_login(&s.server, "viewer", "wrong", &[]);
    assert!(stderr(&out).contains("login failed"), "{}", stderr(&out));
}
