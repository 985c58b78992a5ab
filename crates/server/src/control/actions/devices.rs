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
