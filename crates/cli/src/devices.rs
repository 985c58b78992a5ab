//! Read-only views: devices, groups, users, one device's details, live events.

use ironmesh_proto::rights::MeshRights;
use serde_json::{json, Value};

use crate::config::Store;
use crate::output::{self, table};
use crate::session::{all_devices, connect, resolve_device};

fn state(node: &Value) -> &'static str {
    if node["conn"].as_u64().unwrap_or(0) & 1 == 1 {
        "online"
    } else {
        "offline"
    }
}

pub async fn list_devices(store: &Store, group: Option<&str>, json: bool) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    let mut devices = all_devices(&mut client).await?;
    if let Some(g) = group {
        devices.retain(|d| {
            d["groupname"] == g
                || d["meshid"] == g
                || d["meshid"].as_str() == Some(&format!("mesh//{g}"))
        });
    }
    if json {
        output::json(&Value::Array(devices));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d["name"].as_str().unwrap_or("").to_string(),
                d["groupname"].as_str().unwrap_or("").to_string(),
                state(d).to_string(),
                d["osdesc"].as_str().unwrap_or("").to_string(),
                output::time(d["lastconnect"].as_i64().unwrap_or(0)),
                d["_id"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("node//")
                    .to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("No devices.");
    } else {
        table(
            &["NAME", "GROUP", "STATE", "OS", "LAST SEEN (UTC)", "ID"],
            &rows,
        );
    }
    Ok(())
}

pub async fn list_groups(store: &Store, json: bool) -> anyhow::Result<()> {
    let (login, mut client) = connect(store).await?;
    let reply = client.request(json!({"action": "meshes"})).await?;
    let meshes = reply["meshes"].as_array().cloned().unwrap_or_default();
    if json {
        output::json(&Value::Array(meshes));
        return Ok(());
    }
    let me = client.user_info["_id"].as_str().unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = meshes
        .iter()
        .map(|m| {
            let rights = m["links"][&me]["rights"].as_u64();
            vec![
                m["name"].as_str().unwrap_or("").to_string(),
                rights
                    .map(|r| rights_text(r as u32))
                    .unwrap_or_else(|| "site administrator".into()),
                m["_id"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("mesh//")
                    .to_string(),
            ]
        })
        .collect();
    let _ = login;
    if rows.is_empty() {
        println!("No device groups.");
    } else {
        table(&["NAME", "YOUR RIGHTS", "ID"], &rows);
    }
    Ok(())
}

fn rights_text(rights: u32) -> String {
    if rights == MeshRights::FULL {
        return "full".into();
    }
    let names: Vec<&str> = MeshRights::NAMES
        .iter()
        .filter(|(bit, _)| rights & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

pub async fn info(store: &Store, device: &str, json: bool) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    let node = resolve_device(&mut client, device).await?;
    let id = node["_id"].as_str().unwrap_or("").to_string();
    let sys = client
        .request(json!({"action": "getsysinfo", "nodeid": id, "nodeinfo": true}))
        .await?;
    let net = client
        .request(json!({"action": "getnetworkinfo", "nodeid": id}))
        .await?;
    let last = client
        .request(json!({"action": "lastconnect", "nodeid": id}))
        .await?;
    if json {
        output::json(
            &json!({"node": node, "sysinfo": sys, "network": net["netif2"], "lastconnect": last}),
        );
        return Ok(());
    }
    println!("Name:          {}", node["name"].as_str().unwrap_or(""));
    println!("Id:            {id}");
    println!(
        "Group:         {}",
        node["groupname"].as_str().unwrap_or("")
    );
    println!("State:         {}", state(&node));
    println!("OS:            {}", node["osdesc"].as_str().unwrap_or(""));
    println!("Host name:     {}", node["rname"].as_str().unwrap_or(""));
    println!(
        "Agent:         {}",
        node["agent"]["core"].as_str().unwrap_or("")
    );
    println!(
        "Last seen:     {} UTC from {}",
        output::time(last["time"].as_i64().unwrap_or(0)),
        last["addr"].as_str().unwrap_or("")
    );
    if let Some(cpu) = sys["hardware"]["identifiers"]["cpu_name"].as_str() {
        println!("CPU:           {cpu}");
    }
    if let Some(ifaces) = net["netif2"].as_object() {
        for (name, addrs) in ifaces {
            let list: Vec<String> = addrs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["address"].as_str().map(str::to_string))
                .collect();
            println!("Interface:     {name} {}", list.join(" "));
        }
    }
    Ok(())
}
