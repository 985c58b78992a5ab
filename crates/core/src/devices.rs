//! Devices as users see them, and what their agents report.
//!
//! Everything an agent reports is capped before it is stored or shown (an agent is only
//! as trustworthy as whoever holds its group's `.msh`): names at [`MAX_DEVICE_TEXT`]
//! characters, the OS description at [`MAX_OS_DESC`], and each JSON report at
//! [`DeviceReport::max_len`] bytes (larger reports are refused, not truncated).

use serde_json::{json, Value};

use crate::store::DeviceRecord;

/// Longest host name or device name kept from an agent, in characters.
pub const MAX_DEVICE_TEXT: usize = 256;
/// Longest OS description kept from an agent, in characters.
pub const MAX_OS_DESC: usize = 512;

/// `text` cut to at most `max` characters.
pub fn clip(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

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

/// Whether the device's agent is ironmesh-agent, as its `coreinfo` says (the stock agent
/// reports MeshCentral's core there).
pub fn is_ironmesh_agent(d: &DeviceRecord) -> bool {
    d.core_info
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|c| {
            c.get("value")?
                .as_str()
                .map(|v| v.starts_with("ironmesh-agent "))
        })
        .unwrap_or(false)
}

/// The node record as MeshCentral clients read it (docs/protocol/control.md §2.3).
pub fn node_json(d: &DeviceRecord, live: LiveState) -> Value {
    // In MeshCentral's key order: meshctrl prints keys in the order they arrive.
    let mut node = json!({
        "type": "node",
        "mtype": 2,
        "_id": d.id,
        "icon": d.icon,
        "meshid": d.group_id,
        "name": d.name,
        "rname": d.host,
        "domain": "",
        "agent": {
            "ver": d.agent_version,
            "id": d.agent_id,
            "caps": d.agent_caps,
        },
        // MeshCentral keeps `host` for devices without an agent (a host name or address to
        // reach); an agent's device has none.
        "host": null,
        "firstconnect": d.first_connect_ms,
        "ip": d.last_addr.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(""),
        "osdesc": d.os_desc,
        "conn": live.conn,
        "pwr": live.pwr,
    });
    if live.conn != 0 {
        node["agct"] = live.connected_ms.into();
    }
    // What users set, present only when set, as in MeshCentral's records.
    if !d.description.is_empty() {
        node["desc"] = d.description.clone().into();
    }
    if !d.tags.is_empty() {
        node["tags"] = d.tags.clone().into();
    }
    if d.consent != 0 {
        node["consent"] = d.consent.into();
    }
    if !d.links.is_empty() {
        let links: serde_json::Map<String, Value> = d
            .links
            .iter()
            .map(|l| (l.user_id.clone(), json!({ "rights": l.rights })))
            .collect();
        node["links"] = links.into();
    }
    // ironmesh's addition (MeshCentral keeps it in a record of its own, `lastconnect`).
    node["lastconnect"] = d.last_connect_ms.into();
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
        // Console and JavaScript bits come from command 3, the rest from the core
        // (docs/protocol/agent.md §5.3).
        if let Some(caps) = core.get("caps").and_then(Value::as_i64) {
            node["agent"]["caps"] = ((d.agent_caps & 0x18) | caps).into();
        }
    }
    node
}

use ironmesh_proto::agent::AuthInfo;
use ironmesh_proto::ids::{b64_at_dollar, hex_upper};

use crate::access::Actor;
use crate::events::Event;
use crate::groups::MTYPE_AGENT;
use crate::store::devices::DeviceReport;
use crate::store::{now_ms, Outage};
use crate::{Domain, DomainError, DomainResult};

/// The group id an agent's command 3 names: b64@$ of 48 bytes, or lower-case hex of a
/// legacy 32-byte id (docs/protocol/agent.md §3.1).
pub fn group_id_from_agent(mesh_id: &[u8]) -> String {
    if mesh_id.len() == 32 {
        format!("mesh//{}", hex_upper(mesh_id).to_ascii_lowercase())
    } else {
        format!("mesh//{}", b64_at_dollar(mesh_id))
    }
}

/// Outcome of an agent registration.
pub struct Registration {
    pub device: DeviceRecord,
    pub is_new: bool,
}

impl Domain {
    /// The devices the actor may see: of one group (on which the caller's rights were
    /// checked), or of every group they belong to.
    pub async fn visible_devices(
        &self,
        actor: &Actor,
        group_id: Option<&str>,
    ) -> DomainResult<Vec<DeviceRecord>> {
        Ok(match group_id {
            Some(g) => self.store.devices_in_group(g).await?,
            None if actor.is_full_admin() => self.store.devices().await?,
            None => self.store.devices_of_user(&actor.user.id).await?,
        })
    }

    /// Whether a device with this id exists (whoever may see it).
    pub async fn device_exists(&self, node_id: &str) -> DomainResult<bool> {
        Ok(self.store.device(node_id).await?.is_some())
    }

    /// Creates or refreshes the device of an authenticated agent. A known device keeps its
    /// stored group and name; a new one joins the group its command 3 names, which must
    /// exist and be an agent group.
    pub async fn register_agent(
        &self,
        node_id: &str,
        info: &AuthInfo,
        agent_name: Option<&str>,
        addr: &str,
    ) -> DomainResult<Registration> {
        let now = now_ms();
        let hostname = clip(&info.hostname, MAX_DEVICE_TEXT).to_string();
        let agent_name = agent_name.map(|n| clip(n, MAX_DEVICE_TEXT));
        let existing = self.store.device(node_id).await?;
        let is_new = existing.is_none();
        let device = match existing {
            Some(mut d) => {
                d.host = hostname.clone();
                d.agent_id = info.agent_id as i64;
                d.agent_version = info.agent_version as i64;
                d.agent_caps = info.capabilities as i64;
                d.platform_type = info.platform_type as i64;
                d.last_connect_ms = now;
                d.last_addr = addr.to_string();
                d
            }
            None => {
                let group_id = group_id_from_agent(&info.mesh_id);
                match self.store.group(&group_id).await? {
                    Some(g) if g.mtype == MTYPE_AGENT => {}
                    _ => return Err(DomainError::NotFound("unknown or deleted device group")),
                }
                DeviceRecord {
                    id: node_id.to_string(),
                    group_id,
                    name: agent_name.unwrap_or(&hostname).to_string(),
                    host: hostname.clone(),
                    icon: icon_for_platform(info.platform_type),
                    agent_id: info.agent_id as i64,
                    agent_version: info.agent_version as i64,
                    agent_caps: info.capabilities as i64,
                    platform_type: info.platform_type as i64,
                    first_connect_ms: now,
                    last_connect_ms: now,
                    last_addr: addr.to_string(),
                    ..Default::default()
                }
            }
        };
        match self.store.upsert_device_on_connect(&device).await {
            Ok(()) => {}
            // A known device stays manageable while the disk is full (the store has logged
            // it); only its last-connect time and address are not recorded.
            Err(e) if !is_new && e.outage() == Some(Outage::StorageFull) => {}
            Err(e) => return Err(e.into()),
        }
        if is_new {
            let event = Event::new("node", "addnode", format!("Added device {}", device.name))
                .group(&device.group_id)
                .node(&device.id)
                .with("node", node_json(&device, LiveState::default()));
            self.publish(event).await;
        }
        Ok(Registration { device, is_new })
    }

    /// Announces a device's connection state; kept in the audit trail (agent connected
    /// from where, or disconnected).
    pub async fn announce_connection(&self, device: &DeviceRecord, live: LiveState) {
        let msg = if live.conn != 0 {
            format!("Agent connected from {}", device.last_addr)
        } else {
            "Agent disconnected".to_string()
        };
        let event = Event::new("node", "nodeconnect", msg)
            .group(&device.group_id)
            .node(&device.id)
            .with("conn", live.conn)
            .with("pwr", live.pwr)
            .with("ct", live.connected_ms);
        self.publish(event).await;
        self.record_power(&device.id, live).await;
    }

    /// Stores one agent report and tells consoles the device changed.
    pub async fn store_agent_report(
        &self,
        node_id: &str,
        report: DeviceReport,
        json: &str,
        os_desc: Option<&str>,
        live: LiveState,
    ) -> DomainResult<()> {
        if json.len() > report.max_len() {
            return Err(DomainError::Invalid(format!(
                "{report:?} report of {} bytes refused: at most {} bytes are kept",
                json.len(),
                report.max_len()
            )));
        }
        let os_desc = os_desc.map(|d| clip(d, MAX_OS_DESC));
        self.store
            .set_device_report(node_id, report, json, os_desc)
            .await?;
        if let Some(device) = self.store.device(node_id).await? {
            let event = Event::new("node", "changenode", "")
                .group(&device.group_id)
                .node(&device.id)
                .with("node", node_json(&device, live))
                .live_only();
            self.publish(event).await;
        }
        Ok(())
    }
}

/// MeshCentral's device icons: 1 desktop, 2 laptop, 3 phone, 4 server, 5 disk, 6 router,
/// 7 pi, 8 virtual.
fn icon_for_platform(platform: u32) -> i64 {
    if (1..=8).contains(&platform) {
        platform as i64
    } else {
        1
    }
}
