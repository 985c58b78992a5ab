//! `devices power` (off, restart, sleep through the device's agent; wake through the other
//! agents of its network) and `devices message` (a message box or notification for the
//! device's user).

use serde_json::{json, Value};

use crate::config::Store;
use crate::output;
use crate::session::{connect, resolve_device};

/// What `devices power` can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PowerOp {
    Restart,
    Off,
    Sleep,
    Wake,
}

/// Prints the server's answer (`--json`: the reply as it came) and fails on a refusal.
fn report(reply: &Value, done: &str, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        output::json(reply);
    }
    let result = reply["result"].as_str().unwrap_or("");
    if reply["failed"] == true {
        anyhow::bail!("{result}");
    }
    if !json_out {
        println!("{done}");
    }
    Ok(())
}

pub async fn power(store: &Store, device: &str, op: PowerOp, json_out: bool) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    let node = resolve_device(&mut client, device).await?;
    let id = node["_id"].as_str().unwrap_or("").to_string();
    let name = node["name"].as_str().unwrap_or(&id).to_string();
    let request = match op {
        PowerOp::Wake => json!({"action": "wakedevices", "nodeids": [id]}),
        PowerOp::Off => json!({"action": "poweraction", "nodeids": [id], "actiontype": 2}),
        PowerOp::Restart => json!({"action": "poweraction", "nodeids": [id], "actiontype": 3}),
        PowerOp::Sleep => json!({"action": "poweraction", "nodeids": [id], "actiontype": 4}),
    };
    let reply = client.request(request).await?;
    let done = match op {
        // The server says how many agents it asked.
        PowerOp::Wake => format!(
            "{name}: {}.",
            reply["result"].as_str().unwrap_or("wake packets requested")
        ),
        PowerOp::Off => format!("{name}: asked to power off."),
        PowerOp::Restart => format!("{name}: asked to restart."),
        PowerOp::Sleep => format!("{name}: asked to sleep."),
    };
    report(&reply, &done, json_out)
}

pub async fn message(
    store: &Store,
    device: &str,
    toast: bool,
    title: &str,
    text: &str,
    json_out: bool,
) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    let node = resolve_device(&mut client, device).await?;
    let id = node["_id"].as_str().unwrap_or("").to_string();
    let name = node["name"].as_str().unwrap_or(&id).to_string();
    let (request, what) = if toast {
        (
            json!({"action": "toast", "nodeids": [id], "title": title, "msg": text}),
            "notification",
        )
    } else {
        (
            json!({"action": "msg", "type": "messagebox", "nodeid": id, "title": title,
                   "msg": text, "timeout": 120_000}),
            "message",
        )
    };
    let reply = client.request(request).await?;
    report(&reply, &format!("{name}: {what} sent."), json_out)
}
