//! The stock MeshCentral agent binary against ironmesh: it authenticates, takes
//! MeshCentral's own core (assembled from the installed npm package), reports, and shows
//! up online in `meshctrl.js listdevices` with its host name and OS.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::time::Duration;

use ironmesh_testkit::agent::{create_group, fetch_msh, StockAgent};
use ironmesh_testkit::meshctrl;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use serde_json::Value;

const PASS: &str = "Adm1n-pass!";

#[tokio::test]
async fn stock_agent_comes_online_with_host_name_and_os() {
    let mut server = TestServer::start_for_stock_agents(Db::Sqlite).await;
    server.add_user("admin", PASS, true).await;
    let group = create_group(&server, "admin", PASS, "stock").await;
    let msh = fetch_msh(&server, &group).await;
    assert!(
        msh.contains(&format!(
            "MeshServer=wss://127.0.0.1:{}/agent.ashx",
            server.port
        )),
        "{msh}"
    );

    let mut agent = StockAgent::start(&msh).await;
    let host = ironmesh_agent::reports::hostname();
    let device = wait_until(
        Duration::from_secs(60),
        "the stock agent online with coreinfo",
        async || {
            let out =
                meshctrl::run(&server.wss_url(), "admin", PASS, &["listdevices", "--json"]).await;
            let list: Vec<Value> = serde_json::from_str(&out.stdout).unwrap_or_default();
            // Online, and the pushed core has reported (coreinfo carries the OS).
            list.into_iter()
                .find(|d| d["conn"] == 1 && d["osdesc"].as_str().is_some_and(|s| !s.is_empty()))
                .ok_or(out.stdout)
        },
    )
    .await;
    assert_eq!(device["name"], host.as_str());
    assert_eq!(device["osdesc"], ironmesh_agent::reports::os_description());
    assert_eq!(device["agent"]["id"], 6);
    // The core's own version text, as MeshCentral's core reports it.
    assert!(
        device["agent"]["core"].as_str().unwrap().contains("2022"),
        "{device}"
    );
    // The plain listing shows it as connected (conn 1, power 1).
    let out = meshctrl::run(&server.wss_url(), "admin", PASS, &["listdevices"]).await;
    assert!(
        out.stdout.contains(&format!("\"{host}\", 1, 1, 1")),
        "{}",
        out.stdout
    );

    // deviceinfo works on it (network info from the core's netinfo).
    let id = device["_id"]
        .as_str()
        .unwrap()
        .trim_start_matches("node//")
        .to_string();
    let info = wait_until(Duration::from_secs(20), "network info", async || {
        let out = meshctrl::run(
            &server.wss_url(),
            "admin",
            PASS,
            &["deviceinfo", "--id", &id],
        )
        .await;
        if out.stdout.contains("--- Networking ---") {
            Ok(out.stdout)
        } else {
            Err(out.stdout)
        }
    })
    .await;
    assert!(info.contains("Mesh Agent: Linux 64bit"), "{info}");

    // After a server restart the stock agent returns by itself (it backs off 0.5-2 s first).
    server.restart().await;
    wait_until(
        Duration::from_secs(60),
        "the stock agent back after the restart",
        async || {
            let out = meshctrl::run(&server.wss_url(), "admin", PASS, &["listdevices"]).await;
            if out.stdout.contains(&format!("\"{host}\", 1, 1, 1")) {
                Ok(())
            } else {
                Err(out.stdout)
            }
        },
    )
    .await;
    agent.kill().await;
}
