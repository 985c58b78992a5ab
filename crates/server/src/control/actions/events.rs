//! `events` (listevents).

use ironmesh_core::access::{DeviceGrant, DeviceNeed};
use ironmesh_core::model::EventFilter;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use serde_json::Value;

use super::{optional_str, optional_u32, Action, Replies};
use crate::control::session::ControlSession;

/// Most events one request returns.
const MAX_EVENTS: u32 = 10_000;

/// `events`: stored events the caller may see, newest first, optionally of one device
/// or one user.
pub struct List {
    device_id: Option<String>,
    user_id: Option<String>,
    group_id: Option<String>,
    /// Only events of this action (`filter`, as meshctrl and MeshCentral name it).
    action: Option<String>,
    /// Unix ms: from (inclusive), until (exclusive).
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    limit: u32,
}

/// A time bound in Unix ms (a non-negative number).
fn time_field(req: &Request, key: &str) -> DomainResult<Option<i64>> {
    match req.body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().filter(|ms| *ms >= 0).map(Some).ok_or_else(|| {
            DomainError::Invalid(format!("Field {key} must be a time in Unix milliseconds"))
        }),
    }
}

impl Action for List {
    type Need = Option<DeviceNeed>;

    fn parse(req: &Request) -> DomainResult<Self> {
        let device_id = match optional_str(req, "nodeid")? {
            Some(id) => Some(
                normalize_id(IdKind::Node, &id)
                    .map_err(|_| DomainError::NotFound("Invalid device id"))?,
            ),
            None => None,
        };
        // meshctrl sends `user` for --userid (docs/protocol/control.md §6.11); accept both.
        let user_id = match optional_str(req, "userid")?.or(optional_str(req, "user")?) {
            Some(u) => Some(
                normalize_id(IdKind::User, &u)
                    .map_err(|_| DomainError::NotFound("User does not exists"))?,
            ),
            None => None,
        };
        let group_id = match optional_str(req, "meshid")? {
            Some(id) => Some(
                normalize_id(IdKind::Mesh, &id)
                    .map_err(|_| DomainError::NotFound("Invalid group id"))?,
            ),
            None => None,
        };
        Ok(List {
            device_id,
            user_id,
            group_id,
            action: optional_str(req, "filter")?,
            since_ms: time_field(req, "since")?,
            until_ms: time_field(req, "until")?,
            limit: optional_u32(req, "limit")?
                .unwrap_or(MAX_EVENTS)
                .clamp(1, MAX_EVENTS),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Option<DeviceNeed>> {
        Ok(self.device_id.as_ref().map(|id| DeviceNeed {
            id: id.clone(),
            rights: 0,
        }))
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: Option<DeviceGrant>,
    ) -> DomainResult<Replies> {
        let node_id = g.map(|g| g.device.id);
        let me = s.actor.user.id.clone();
        let filter = EventFilter {
            node_id: node_id.as_deref(),
            user_id: self.user_id.as_deref(),
            group_id: self.group_id.as_deref(),
            action: self.action.as_deref(),
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            visible_to: if s.actor.is_full_admin() {
                None
            } else {
                Some(&me)
            },
            manages_users: s
                .actor
                .site()
                .has(ironmesh_proto::rights::SiteRights::MANAGE_USERS),
            limit: self.limit as i64,
        };
        let records = s.state.domain.stored_events(&filter).await?;
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
