//! `getDeviceDetails` (meshctrl `listdevices --details`): every device the caller can see,
//! with its network report and last connection, as one JSON text in `data`
//! (docs/protocol/control.md §2.4).

use std::collections::HashMap;

use ironmesh_core::access::SignedIn;
use ironmesh_core::devices::node_json;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::{json, Value};

use super::{optional_str_list, Action, Replies};
use crate::control::session::ControlSession;

pub struct DeviceDetails {
    /// Only these devices; all the caller can see when absent.
    only: Option<Vec<String>>,
}

impl Action for DeviceDetails {
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        // MeshCentral also offers `csv`; ironmesh answers JSON only and says so.
        match req.body.get("type").and_then(Value::as_str) {
            None | Some("json") => {}
            Some(other) => {
                return Err(DomainError::Invalid(format!(
                    "Unsupported type {other}: only json"
                )))
            }
        }
        let only = optional_str_list(req, "nodeids", "device ids")?
            .map(|ids| {
                ids.iter()
                    .map(|id| normalize_id(IdKind::Node, id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|_| DomainError::NotFound("Invalid device id"))?;
        Ok(DeviceDetails { only })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let group_names: HashMap<String, String> = s
            .state
            .domain
            .visible_groups(&s.actor)
            .await?
            .into_iter()
            .map(|(g, _)| (g.id, g.name))
            .collect();
        let devices = s.state.domain.visible_devices(&s.actor, None).await?;
        let mut results = Vec::new();
        for d in devices {
            if self.only.as_ref().is_some_and(|only| !only.contains(&d.id)) {
                continue;
            }
            let mut node = node_json(&d, s.state.live_state(&d.id));
            // The last connection has a record of its own here (`lastConnect`), as in
            // MeshCentral's answer.
            if let Some(fields) = node.as_object_mut() {
                fields.remove("lastconnect");
            }
            if let Some(name) = group_names.get(&d.group_id) {
                node["groupname"] = name.clone().into();
            }
            let mut entry = json!({ "node": node });
            // Network details only with the DEVICE_DETAILS right, as `getnetworkinfo`; the
            // rights come from the actor already loaded, not one lookup per device.
            let rights = s.actor.device_rights(&d);
            if rights.is_some_and(|r| r.has(MeshRights::DEVICE_DETAILS)) {
                let netif2 = d
                    .net_info
                    .as_deref()
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    .and_then(|r| r.get("netif2").cloned());
                // `null` until the agent has reported, as MeshCentral answers.
                entry["net"] = match netif2 {
                    Some(netif2) => json!({
                        "netif2": netif2,
                        "updateTime": d.last_connect_ms,
                        "_id": format!("if{}", d.id),
                        "domain": "",
                        "type": "ifinfo",
                    }),
                    None => Value::Null,
                };
            }
            if d.last_connect_ms > 0 {
                entry["lastConnect"] = json!({
                    "time": d.last_connect_ms,
                    "cause": 1,
                    "connectType": 1,
                    "addr": d.last_addr,
                });
            }
            results.push(entry);
        }
        // MeshCentral sends the list as JSON text, which meshctrl prints as is.
        Ok(vec![req
            .reply()
            .with("data", Value::Array(results).to_string())
            .with("type", "json")
            .into_value()])
    }
}
