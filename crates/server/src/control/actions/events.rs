//! `events` (listevents).

use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use serde_json::Value;

use super::{optional_str, optional_u32, Replies};
use crate::control::session::ControlSession;
use crate::domain::access::{Granted, Need};
use crate::domain::{DomainError, DomainResult};
use crate::store::events::EventFilter;

/// Most events one request returns.
const MAX_EVENTS: u32 = 10_000;

pub mod list {
    use super::*;

    pub async fn need(_: &ControlSession, req: &Request) -> DomainResult<Need> {
        match optional_str(req, "nodeid")? {
            Some(id) => Ok(Need::Device {
                id: normalize_id(IdKind::Node, id)
                    .map_err(|_| DomainError::NotFound("Invalid device id"))?,
                rights: 0,
            }),
            None => Ok(Need::Login),
        }
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let limit = optional_u32(req, "limit")?
            .unwrap_or(MAX_EVENTS)
            .clamp(1, MAX_EVENTS);
        let node_id = match &g {
            Granted::Device { device, .. } => Some(device.id.clone()),
            _ => None,
        };
        // meshctrl sends `user` for --userid (control spec §6.11); accept both.
        let user_filter = match optional_str(req, "userid")?.or(optional_str(req, "user")?) {
            Some(u) => Some(
                normalize_id(IdKind::User, u)
                    .map_err(|_| DomainError::NotFound("User does not exists"))?,
            ),
            None => None,
        };
        let me = s.actor.user.id.clone();
        let filter = EventFilter {
            node_id: node_id.as_deref(),
            user_id: user_filter.as_deref(),
            visible_to: if s.actor.is_full_admin() {
                None
            } else {
                Some(&me)
            },
            limit: limit as i64,
        };
        let records = s.state.domain.store.events(&filter).await?;
        let events: Vec<Value> = records
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .collect();
        let mut reply = req.reply().with("events", Value::Array(events));
        if let Some(n) = node_id {
            reply = reply.with("nodeid", n);
        }
        Ok(vec![reply.into_value()])
    }
}
