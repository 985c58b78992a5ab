//! `recordings`: the session recordings the caller may watch (of one device with
//! `nodeid`), newest first; each is downloaded from `/recordings/<id>.cast`.

use ironmesh_core::access::SignedIn;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use serde_json::{json, Value};

use super::{optional_str, optional_u32, Action, Replies};
use crate::control::session::ControlSession;

pub struct List {
    device_id: Option<String>,
    limit: u32,
}

impl Action for List {
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        let device_id = match optional_str(req, "nodeid")? {
            Some(id) => Some(
                normalize_id(IdKind::Node, &id)
                    .map_err(|_| DomainError::NotFound("Invalid device id"))?,
            ),
            None => None,
        };
        Ok(List {
            device_id,
            limit: optional_u32(req, "limit")?.unwrap_or(500).clamp(1, 5000),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let list: Vec<Value> = s
            .state
            .domain
            .recordings(&s.actor, self.device_id.as_deref(), i64::from(self.limit))
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "nodeid": r.node_id,
                    "meshid": r.group_id,
                    "userid": r.user_id,
                    "username": r.username,
                    "protocol": r.protocol,
                    "format": r.format,
                    "size": r.size,
                    "started": r.started_ms,
                    "ended": r.ended_ms,
                    "eventid": r.event_id,
                    "url": format!("/recordings/{}.cast", r.id),
                })
            })
            .collect();
        Ok(vec![req.reply().with("recordings", list).into_value()])
    }
}
