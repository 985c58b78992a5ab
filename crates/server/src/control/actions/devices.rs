//! `nodes` (listdevices).

use std::collections::BTreeMap;

use ironmesh_proto::control::Request;
use serde_json::{Map, Value};

use super::groups::resolve_group;
use super::Replies;
use crate::control::session::ControlSession;
use crate::domain::access::{Granted, Need};
use crate::domain::devices::node_json;
use crate::domain::DomainResult;

pub mod list {
    use super::*;

    pub async fn need(s: &ControlSession, req: &Request) -> DomainResult<Need> {
        if req.body.contains_key("meshid") || req.body.contains_key("meshname") {
            Ok(Need::Group {
                id: resolve_group(s, req).await?,
                rights: 0,
            })
        } else {
            Ok(Need::Login)
        }
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let store = &s.state.domain.store;
        let devices = match &g {
            Granted::Group { group, .. } => store.devices_in_group(&group.id).await?,
            _ if s.actor.is_full_admin() => store.devices().await?,
            _ => store.devices_of_user(&s.actor.user.id).await?,
        };
        let mut by_group: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        if let Granted::Group { group, .. } = &g {
            by_group.entry(group.id.clone()).or_default();
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

/// The device a request names in `nodeid` (full or bare).
pub fn device_need(req: &Request, rights: u32) -> DomainResult<Need> {
    let id = super::required_str(req, "nodeid")?;
    Ok(Need::Device {
        id: ironmesh_proto::ids::normalize_id(ironmesh_proto::ids::IdKind::Node, id)
            .map_err(|_| crate::domain::DomainError::NotFound("Invalid device id"))?,
        rights,
    })
}

fn granted_device(
    g: Granted,
) -> DomainResult<(
    crate::store::DeviceRecord,
    ironmesh_proto::rights::MeshRights,
)> {
    match g {
        Granted::Device { device, rights, .. } => Ok((*device, rights)),
        _ => Err(crate::domain::DomainError::Internal(anyhow::anyhow!(
            "expected a device grant"
        ))),
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

pub mod network_info {
    use super::*;

    pub async fn need(_: &ControlSession, req: &Request) -> DomainResult<Need> {
        device_need(req, 0)
    }

    /// `netif2` as the agent reported it; `null` when nothing is stored (no `result`:
    /// meshctrl `deviceinfo` treats a `result` here as fatal).
    pub async fn run(_: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let (device, _) = granted_device(g)?;
        let report = stored(&device.net_info);
        let netif2 = report
            .as_ref()
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

pub mod last_connect {
    use super::*;

    pub async fn need(_: &ControlSession, req: &Request) -> DomainResult<Need> {
        device_need(req, 0)
    }

    pub async fn run(_: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let (device, _) = granted_device(g)?;
        Ok(vec![req
            .reply()
            .with("nodeid", device.id)
            .with("time", device.last_connect_ms)
            .with("addr", device.last_addr)
            .into_value()])
    }
}

pub mod sys_info {
    use super::*;

    pub async fn need(_: &ControlSession, req: &Request) -> DomainResult<Need> {
        device_need(req, 0)
    }

    /// The stored `sysinfo` data (e.g. `hardware`), plus the node and the caller's rights.
    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let (device, rights) = granted_device(g)?;
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
            None => reply = reply.with("noinfo", true),
        }
        if req.bool_field("nodeinfo") == Some(true) {
            reply = reply.with("node", node_json(&device, s.state.live_state(&device.id)));
        }
        Ok(vec![reply
            .with("nodeid", device.id)
            .with("rights", rights.0)
            .into_value()])
    }
}
