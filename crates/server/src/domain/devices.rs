//! Devices as users see them.

use serde_json::{json, Value};

use crate::store::DeviceRecord;

/// Live connection facts the agent channel knows and the database does not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveState {
    /// Connectivity bits: 1 = agent connected.
    pub conn: u32,
    /// Power state: 1 = on, 0 = unknown.
    pub pwr: u32,
    /// Unix ms when the agent connected.
    pub connected_ms: i64,
}

/// The node record as MeshCentral clients read it (control spec §2.3).
pub fn node_json(d: &DeviceRecord, live: LiveState) -> Value {
    let mut node = json!({
        "type": "node",
        "mtype": 2,
        "_id": d.id,
        "meshid": d.group_id,
        "name": d.name,
        "rname": d.host,
        "host": d.host,
        "domain": "",
        "icon": d.icon,
        "osdesc": d.os_desc,
        "agent": {
            "id": d.agent_id,
            "ver": d.agent_version,
            "caps": d.agent_caps,
        },
        "ip": d.last_addr.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(""),
        "firstconnect": d.first_connect_ms,
        "lastconnect": d.last_connect_ms,
        "conn": live.conn,
        "pwr": live.pwr,
    });
    if live.conn != 0 {
        node["agct"] = live.connected_ms.into();
    }
    if let Some(core) = d
        .core_info
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
    {
        if let Some(v) = core.get("value") {
            node["agent"]["core"] = v.clone();
        }
        if let Some(root) = core.get("root") {
            node["agent"]["root"] = root.clone();
        }
    }
    node
}
