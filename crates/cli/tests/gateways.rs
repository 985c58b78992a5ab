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
