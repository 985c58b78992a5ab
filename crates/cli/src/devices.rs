//! Devices, one device's details; and changes to a device: its name,
//! description, tags, group, or its removal.

use ironmesh_client::control::ControlClient;
use serde_json::{json, Value};

use crate::config::Store;
use crate::output::{self, table};
use crate::session::{all_devices, connect, resolve_device, resolve_group};

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

/// What `ironmesh devices tag` does to a device's tags.
pub struct TagChange {
    /// Replace the tags with exactly these (when given).
    pub set: Option<Vec<String>>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub clear: bool,
}

/// The device `wanted` names, on a new connection.
async fn device(store: &Store, wanted: &str) -> anyhow::Result<(ControlClient, Value, String)> {
    let (_, mut client) = connect(store).await?;
    let node = resolve_device(&mut client, wanted).await?;
    let id = node["_id"].as_str().unwrap_or("").to_string();
    Ok((client, node, id))
}

/// Sends `request` and expects `ok`; a refusal is the error, in the server's words.
async fn expect_ok(client: &mut ControlClient, request: Value) -> anyhow::Result<()> {
    let reply = client.request(request).await?;
    match reply["result"].as_str() {
        Some("ok") => Ok(()),
        other => anyhow::bail!("{}", other.unwrap_or("no answer from the server")),
    }
}

/// Sends one change of device `id` and reports it: the device as it is afterwards with
/// `--json`, else `done`.
async fn apply(
    client: &mut ControlClient,
    id: &str,
    request: Value,
    json: bool,
    done: String,
) -> anyhow::Result<()> {
    expect_ok(client, request).await?;
    if json {
        output::json(&resolve_device(client, id).await?);
    } else {
        println!("{done}");
    }
    Ok(())
}

fn name_of(node: &Value) -> &str {
    node["name"].as_str().unwrap_or("")
}

pub async fn rename(store: &Store, wanted: &str, name: &str, json: bool) -> anyhow::Result<()> {
    let (mut client, node, id) = device(store, wanted).await?;
    let request = json!({"action": "changedevice", "nodeid": id, "name": name});
    let done = format!("Renamed {} to {name}.", name_of(&node));
    apply(&mut client, &id, request, json, done).await
}

/// An empty `text` removes the description.
pub async fn describe(store: &Store, wanted: &str, text: &str, json: bool) -> anyhow::Result<()> {
    let (mut client, node, id) = device(store, wanted).await?;
    let request = json!({"action": "changedevice", "nodeid": id, "desc": text});
    let done = if text.is_empty() {
        format!("Removed the description of {}.", name_of(&node))
    } else {
        format!("Described {}.", name_of(&node))
    };
    apply(&mut client, &id, request, json, done).await
}

pub async fn tag(store: &Store, wanted: &str, change: TagChange, json: bool) -> anyhow::Result<()> {
    let (mut client, node, id) = device(store, wanted).await?;
    let mut tags: Vec<String> = match (change.clear, change.set) {
        (true, _) => Vec::new(),
        (false, Some(set)) => set,
        (false, None) => node["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
    };
    tags.extend(change.add);
    tags.retain(|t| !change.remove.contains(t));
    // As the server keeps them: trimmed, sorted, each once.
    let mut tags: Vec<String> = tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    tags.sort();
    tags.dedup();
    // No tags are sent as "" (MeshCentral's way of removing them all).
    let value = if tags.is_empty() {
        Value::from("")
    } else {
        Value::from(tags.clone())
    };
    let request = json!({"action": "changedevice", "nodeid": id, "tags": value});
    let done = if tags.is_empty() {
        format!("{} has no tags.", name_of(&node))
    } else {
        format!("Tagged {}: {}.", name_of(&node), tags.join(", "))
    };
    apply(&mut client, &id, request, json, done).await
}

/// To the group named or identified by `group`.
pub async fn move_to(store: &Store, wanted: &str, group: &str, json: bool) -> anyhow::Result<()> {
    let (mut client, node, id) = device(store, wanted).await?;
    let target = resolve_group(&mut client, group).await?;
    let request = json!({"action": "changeDeviceMesh", "nodeids": [id], "meshid": target["_id"]});
    let done = format!("Moved {} to {}.", name_of(&node), name_of(&target));
    apply(&mut client, &id, request, json, done).await
}

/// The server forgets the device; a connected ironmesh-agent uninstalls itself.
pub async fn remove(store: &Store, wanted: &str, json: bool) -> anyhow::Result<()> {
    let (mut client, node, id) = device(store, wanted).await?;
    expect_ok(
        &mut client,
        json!({"action": "removedevices", "nodeids": [id]}),
    )
    .await?;
    if json {
        output::json(&json!({"_id": id, "name": node["name"], "removed": true}));
    } else {
        println!("Removed {}.", name_of(&node));
    }
    Ok(())
}
