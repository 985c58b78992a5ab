//! `nodes` (listdevices), `getnetworkinfo`, `lastconnect`, `getsysinfo`.

use std::collections::BTreeMap;

use ironmesh_core::access::{DeviceGrant, DeviceNeed, GroupGrant, GroupNeed};
use ironmesh_core::devices::node_json;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::{Map, Value};

use super::groups::GroupRef;
use super::{required_str, Action, Replies};
use crate::control::session::ControlSession;

/// The device a request names in `nodeid` (full or bare).
pub fn device_id(req: &Request) -> DomainResult<String> {
    normalize_id(IdKind::Node, &required_str(req, "nodeid")?)
        .map_err(|_| DomainError::NotFound("Invalid device id"))
}

/// `nodes`: devices by group, of one group or of every group the caller can see.
pub struct List(Option<GroupRef>);

impl Action for List {
    type Need = Option<GroupNeed>;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(List(GroupRef::parse_optional(req)?))
    }

    async fn need(&self, s: &ControlSession) -> DomainResult<Option<GroupNeed>> {
        match &self.0 {
            Some(group) => Ok(Some(group.need(s, 0).await?)),
            None => Ok(None),
        }
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: Option<GroupGrant>,
    ) -> DomainResult<Replies> {
        let group_id = g.as_ref().map(|g| g.group.id.as_str());
        let devices = s.state.domain.visible_devices(&s.actor, group_id).await?;
        let mut by_group: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        if let Some(id) = group_id {
            by_group.entry(id.to_string()).or_default();
        }
        for d in &devices {
            let live = s.state.live_state(&d.id);
            by_group
                .entry(d.group_id.clone())
                .or_default()
                .push(node_json(d, live));
        }
        let nodes: Map<String, Value> = by_group
            .into_iter()
            .map(|(k, v)| (k, Value::Array(v)))
            .collect();
        Ok(vec![req.reply().with("nodes", nodes).into_value()])
    }
}

/// What reading a device's system and network details needs: the DEVICE_DETAILS right
/// (without it: "Access denied").
fn details_need(device_id: &str) -> DeviceNeed {
    DeviceNeed {
        id: device_id.to_string(),
        rights: MeshRights::DEVICE_DETAILS,
    }
}

/// A stored report's JSON object, if any.
fn stored(json: &Option<String>) -> Option<Map<String, Value>> {
    json.as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
}

/// `getnetworkinfo`: `netif2` as the agent reported it.
pub struct NetworkInfo {
    device_id: String,
}

impl Action for NetworkInfo {
    type Need = DeviceNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(NetworkInfo {
            device_id: device_id(req)?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<DeviceNeed> {
        Ok(details_need(&self.device_id))
    }

    /// `null` when nothing is stored (no `result`: meshctrl `deviceinfo` treats a `result`
    /// here as fatal).
    async fn run(
        self,
        _: &mut ControlSession,
        req: &Request,
        g: DeviceGrant,
    ) -> DomainResult<Replies> {
        let device = g.device;
        let netif2 = stored(&device.net_info)
            .and_then(|r| r.get("netif2").cloned())
            .unwrap_or(Value::Null);
        Ok(vec![req
            .reply()
            .with("nodeid", device.id)
            .with("updateTime", device.last_connect_ms)
            .with("netif", Value::Null)
            .with("netif2", netif2)
            .into_value()])
    }
}

/// `lastconnect`: when and from where the device last connected.
pub struct LastConnect {
    device_id: String,
}

impl Action for LastConnect {
    type Need = DeviceNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(LastConnect {
            device_id: device_id(req)?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<DeviceNeed> {
        Ok(DeviceNeed {
            id: self.device_id.clone(),
            rights: 0,
        })
    }

    async fn run(
        self,
        _: &mut ControlSession,
        req: &Request,
        g: DeviceGrant,
    ) -> DomainResult<Replies> {
        let device = g.device;
        Ok(vec![req
            .reply()
            .with("nodeid", device.id)
            .with("time", device.last_connect_ms)
            .with("addr", device.last_addr)
            .into_value()])
    }
}

/// `getsysinfo`: the stored `sysinfo` data (e.g. `hardware`), plus the node and the
/// caller's rights.
pub struct SysInfo {
    device_id: String,
    with_node: bool,
}

impl Action for SysInfo {
    type Need = DeviceNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(SysInfo {
            device_id: device_id(req)?,
            with_node: req.bool_field("nodeinfo") == Some(true),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<DeviceNeed> {
        Ok(details_need(&self.device_id))
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: DeviceGrant,
    ) -> DomainResult<Replies> {
        let device = g.device;
        let mut reply = req.reply();
        let data = stored(&device.sys_info).and_then(|r| match r.get("data") {
            Some(Value::Object(d)) => Some(d.clone()),
            _ => None,
        });
        match data {
            Some(d) => {
                for (k, v) in d {
                    if k != "action" {
                        reply = reply.with(&k, v);
                    }
                }
            }
            None => {
                // MeshCentral answers a device without a report this way: no node, no
                // rights, and a `result` text that meshctrl takes as "no system info".
                return Ok(vec![reply
                    .with("nodeid", device.id)
                    .with("noinfo", true)
                    .with("result", "Invalid device id")
                    .into_value()]);
            }
        }
        if self.with_node {
            reply = reply.with("node", node_json(&device, s.state.live_state(&device.id)));
        }
        Ok(vec![reply
            .with("nodeid", device.id)
            .with("rights", g.rights.0)
            .into_value()])
    }
}
