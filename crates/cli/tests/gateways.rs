//! `ironmesh gateways | gateway-approve | gateway | gateway-auth-mode` against the real
//! server and a simulated WiFiDogX gateway.

use std::time::Duration;

use ironmesh_testkit::agent::create_group;
use ironmesh_testkit::cli::Cli;
use ironmesh_testkit::gateway::{Firmware, GatewayOptions, SimGateway};
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;

const PASS: &str = "Adm1n-pass!";

// Multi-threaded: the simulated gateway keeps its heartbeats going while the test blocks
// on CLI processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_commands_from_the_cli() {
    let plain = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_with_config(
        Db::Sqlite,
        &format!("[wifidog]\nplain_port = {plain}\nheartbeat_secs = 1\n"),
    )
    .await;
    server.add_user("admin", PASS, true).await;
    create_group(&server, "admin", PASS, "hotspots").await;
    let cli = Cli::new();
    cli.login(&server, "admin", PASS);

    let sim = SimGateway::start(GatewayOptions::new(Firmware::V9, "AP-1", plain));
    let text = wait_until(Duration::from_secs(15), "AP-1 listed", async || {
        let out = cli.run(&["gateways"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("AP-1") {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    })
    .await;
    assert!(
        text.contains("AP-1") && text.contains("waiting") && text.contains("9.x"),
        "{text}"
    );

    let out = cli.run(&["gateway-approve", "AP-1", "--group", "hotspots"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli.run(&[
        "gateway",
        "AP-1",
        "shell",
        "--param",
        "command=uptime",
        "--param",
        "timeout=5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ran: uptime"));
    let out = cli.run(&["--json", "gateway", "AP-1", "get_firmware_info"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reply"]["data"]["DISTRIB_ID"], "OpenWrt");
    let out = cli.run(&["gateway-auth-mode", "AP-1", "GW0001", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim.wait_for("portal off", Duration::from_secs(5), |o| {
        o.auth_modes == [("GW0001".to_string(), 0)]
    })
    .await;
    let out = cli.run(&["gateway", "AP-1", "fly"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("fly is not supported by 9.x gateways"));
    let out = cli.run(&["gateway", "NOPE", "get_clients"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown gateway"));
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The operations' help, device_id and gw_id filled from the gateway's record, values kept
/// as strings unless the operation types them or `key:=JSON` asks, and `--wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_parameters_from_the_cli() {
    let cli = Cli::new();
    // The help needs no server.
    let out = cli.run(&["gateways", "ops"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.lines()
            .any(|l| l.starts_with("kickoff")
                && l.contains("client_ip client_mac [device_id] [gw_id]")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("shell") && l.contains("9.x")),
        "{text}"
    );
    let out = cli.run(&["gateways", "ops", "tmp_pass"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("client_mac") && text.contains("timeout") && text.contains("integer"),
        "{text}"
    );
    let out = cli.run(&["gateways", "ops", "fly"]);
    assert!(stderr(&out).contains("no operation \"fly\"; `ironmesh gateways ops` lists them"));

    let plain = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_with_config(
        Db::Sqlite,
        &format!("[wifidog]\nplain_port = {plain}\nheartbeat_secs = 1\n"),
    )
    .await;
    server.add_user("admin", PASS, true).await;
    create_group(&server, "admin", PASS, "hotspots").await;
    cli.login(&server, "admin", PASS);
    let v8 = SimGateway::start(GatewayOptions::new(Firmware::V8, "AP-8", plain));
    let mut two = GatewayOptions::new(Firmware::V9, "AP-9", plain);
    two.gateways = vec!["GW-A".into(), "GW-B".into()];
    let v9 = SimGateway::start(two);
    wait_until(Duration::from_secs(15), "both listed", async || {
        let text = String::from_utf8_lossy(&cli.run(&["gateways"]).stdout).into_owned();
        (text.contains("AP-8") && text.contains("AP-9")).then_some(())
    })
    .await;
    for dev in ["AP-8", "AP-9"] {
        let out = cli.run(&["gateway-approve", dev, "--group", "hotspots"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // kickoff: the 8.x device checks device_id and finds the client by ip+mac; both ids
    // come from the gateway's record.
    let out = cli.run(&[
        "gateway",
        "AP-8",
        "kickoff",
        "--param",
        "client_ip=192.168.1.10",
        "--param",
        "client_mac=aa:bb:cc:dd:ee:01",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = v8.snapshot(|o| o.received.iter().find(|m| m["type"] == "kickoff").cloned());
    let sent = sent.expect("kickoff reached the device");
    assert_eq!(
        (sent["device_id"].as_str(), sent["gw_id"].as_str()),
        (Some("AP-8"), Some("GW0001"))
    );
    // Several gateway ids: the CLI asks which.
    let out = cli.run(&[
        "gateway",
        "AP-9",
        "kickoff",
        "--param",
        "client_ip=192.168.1.10",
        "--param",
        "client_mac=aa:bb:cc:dd:ee:01",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "AP-9 serves several gateway ids (GW-A, GW-B): choose one with --param gw_id=…"
        ),
        "{}",
        stderr(&out)
    );
    let out = cli.run(&[
        "gateway",
        "AP-9",
        "kickoff",
        "--param",
        "client_ip=192.168.1.10",
        "--param",
        "client_mac=aa:bb:cc:dd:ee:01",
        "--param",
        "gw_id=GW-B",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A missing parameter is named before anything is sent.
    let out = cli.run(&["gateway", "AP-8", "kickoff", "--param", "client_ip=1.2.3.4"]);
    assert!(
        stderr(&out).contains("kickoff needs client_mac (see `ironmesh gateways ops kickoff`)"),
        "{}",
        stderr(&out)
    );

    // Strings stay strings (a MAC-like "1e10" is not a number); typed parameters and
    // `:=` are sent as JSON.
    let out = cli.run(&[
        "gateway",
        "AP-8",
        "get_client_info",
        "--param",
        "mac=1e10",
        "--param",
        "tag=true",
        "--param",
        "extra:=[1,null]",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli.run(&[
        "gateway",
        "AP-9",
        "shell",
        "--param",
        "command=uptime",
        "--param",
        "timeout=5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shell = v9.snapshot(|o| {
        o.received
            .iter()
            .find(|m| m["op"] == "shell")
            .cloned()
            .unwrap()
    });
    let info = v8.snapshot(|o| {
        o.received
            .iter()
            .find(|m| m["type"] == "get_client_info")
            .cloned()
            .unwrap()
    });
    assert_eq!(info["mac"], serde_json::json!("1e10"));
    assert_eq!(info["tag"], serde_json::json!("true"));
    assert_eq!(info["extra"], serde_json::json!([1, null]));
    assert_eq!(shell["timeout"], serde_json::json!(5));
    let out = cli.run(&[
        "gateway",
        "AP-9",
        "shell",
        "--param",
        "command=uptime",
        "--param",
        "timeout=5s",
    ]);
    assert!(
        stderr(&out).contains("shell takes a whole number for timeout (got \"5s\")"),
        "{}",
        stderr(&out)
    );

    // --wait: an offline gateway is waited for, then the command goes through.
    v8.stop();
    wait_until(Duration::from_secs(10), "AP-8 offline", async || {
        let out = cli.run(&["--json", "gateways"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        list.as_array()
            .into_iter()
            .flatten()
            .any(|g| g["deviceid"] == "AP-8" && g["online"] == false)
    })
    .await;
    let out = cli.run(&["gateway", "AP-8", "get_firmware_info", "--wait", "1"]);
    assert!(
        stderr(&out).contains("gateway AP-8 did not come online within 1 s"),
        "{}",
        stderr(&out)
    );
    let mut waiting = cli
        .command(&["gateway", "AP-8", "get_firmware_info", "--wait", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The gateway comes back only once the CLI says it waits.
    let mut err = std::io::BufReader::new(waiting.stderr.take().unwrap());
    let (first, err) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        (line, err)
    })
    .await
    .unwrap();
    assert!(
        first.contains("Waiting up to 30 s for gateway AP-8 to come online"),
        "{first}"
    );
    let back = SimGateway::start(GatewayOptions::new(Firmware::V8, "AP-8", plain));
    let (out, rest) = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut err = err;
        let mut rest = String::new();
        err.read_to_string(&mut rest).unwrap();
        (waiting.wait_with_output().unwrap(), rest)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{rest}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("OpenWrt"));
    back.stop();
}
