//! WiFiDogX gateways: `wifidogs` (list), `wifidogapprove`, `wifidogcmd` (any device
//! command, answered when the device replies or the command times out), `wifidogauthmode`.

use std::time::Duration;

use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use ironmesh_core::access::{GatewayGrant, GatewayNeed, GroupGrant, GroupNeed, SignedIn};
use ironmesh_core::events::Event;
use ironmesh_core::model::GatewayRecord;
use ironmesh_core::{DomainError, DomainResult};

use super::{ok, optional_u32, required_str, Action, Replies};
use crate::control::session::ControlSession;
use crate::live::gateways::{Outcome, Request as GatewayRequest};

/// Default and longest wait for a gateway's answer.
const DEFAULT_TIMEOUT: u32 = 15;
const MAX_TIMEOUT: u32 = 120;

fn parsed(text: &Option<String>) -> Value {
    text.as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// The gateway as consoles and the CLI read it.
pub fn gateway_json(s: &ControlSession, g: &GatewayRecord) -> Value {
    let live = s.state.gateways.get(&g.device_id);
    json!({
        "deviceid": g.device_id,
        "meshid": g.group_id,
        "approved": g.approved,
        "generation": g.generation,
        "mode": g.mode,
        "device_info": parsed(&g.device_info),
        "gateways": parsed(&g.gateways),
        "sys_info": parsed(&g.sys_info),
        "wanted_auth_modes": parsed(&g.wanted_auth_modes),
        "remoteaddr": g.remote_addr,
        "firstseen": g.first_seen_ms,
        "lastseen": g.last_seen_ms,
        "online": live.is_some(),
    })
}

/// `wifidogs`: the gateways the caller can see.
pub struct List;

impl Action for List {
    type Need = SignedIn;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(List)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let mut visible: Vec<Value> = s
            .state
            .domain
            .visible_gateways(&s.actor)
            .await?
            .iter()
            .map(|g| gateway_json(s, g))
            .collect();
        // Unknown gateways waiting for approval (not stored) are for full administrators.
        if s.actor.is_full_admin() {
            for (device_id, p) in s.state.gateways.pending() {
                let record = GatewayRecord {
                    device_id,
                    generation: p.report.generation,
                    mode: p.report.mode,
                    device_info: p.report.device_info,
                    gateways: Some(p.report.gateways),
                    sys_info: p.report.sys_info,
                    remote_addr: p.report.remote_addr,
                    first_seen_ms: p.first_seen_ms,
                    last_seen_ms: p.last_seen_ms,
                    ..Default::default()
                };
                visible.push(gateway_json(s, &record));
            }
        }
        Ok(vec![req
            .reply()
            .with("gateways", Value::Array(visible))
            .into_value()])
    }
}

/// `wifidogapprove`: admits a gateway into a group the caller manages devices of.
pub struct Approve {
    group_id: String,
    device_id: String,
}

impl Action for Approve {
    type Need = GroupNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(Approve {
            group_id: normalize_id(IdKind::Mesh, &required_str(req, "meshid")?)
                .map_err(|_| DomainError::NotFound("Invalid group id"))?,
            device_id: required_str(req, "deviceid")?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<GroupNeed> {
        Ok(GroupNeed {
            id: self.group_id.clone(),
            rights: MeshRights::MANAGE_COMPUTERS,
        })
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: GroupGrant,
    ) -> DomainResult<Replies> {
        let pending = s
            .state
            .gateways
            .pending()
            .into_iter()
            .find(|(id, _)| id == &self.device_id)
            .map(|(_, p)| (p.report, p.first_seen_ms, p.last_seen_ms));
        s.state
            .domain
            .approve_gateway(&s.actor, &g.group, &self.device_id, pending)
            .await?;
        s.state.gateways.take_pending(&self.device_id);
        // A connected gateway is acknowledged now, not at its next heartbeat.
        if let Some(h) = s.state.gateways.get(&self.device_id) {
            let _ = h.tx.try_send(GatewayRequest::Approved);
        }
        Ok(vec![ok(req).into_value()])
    }
}

/// The gateway a request names in `deviceid`, with remote-control rights. A gateway still
/// waiting for approval (not stored yet) is known to full administrators only, and takes
/// no commands.
fn gateway_need(s: &ControlSession, device_id: &str) -> DomainResult<GatewayNeed> {
    if s.actor.is_full_admin() && s.state.gateways.is_pending(device_id) {
        return Err(DomainError::Invalid(
            "the gateway is waiting for approval".into(),
        ));
    }
    Ok(GatewayNeed {
        device_id: device_id.to_string(),
        rights: MeshRights::REMOTE_CONTROL,
    })
}

/// `wifidogcmd`: any device command, answered when the device replies or the command
/// times out.
pub struct Command {
    device_id: String,
    op: String,
    params: Map<String, Value>,
    timeout: u32,
}

impl Action for Command {
    type Need = GatewayNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        let device_id = required_str(req, "deviceid")?;
        let op = required_str(req, "op")?;
        if op.len() > 64 || !op.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(DomainError::Invalid(
                "Invalid op: letters, digits and _ only".into(),
            ));
        }
        let params: Map<String, Value> = match req.body.get("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(DomainError::Invalid(
                    "Field params must be an object".into(),
                ))
            }
        };
        let timeout = optional_u32(req, "timeout")?
            .unwrap_or(DEFAULT_TIMEOUT)
            .clamp(1, MAX_TIMEOUT);
        Ok(Command {
            device_id,
            op,
            params,
            timeout,
        })
    }

    async fn need(&self, s: &ControlSession) -> DomainResult<GatewayNeed> {
        gateway_need(s, &self.device_id)
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: GatewayGrant,
    ) -> DomainResult<Replies> {
        let gateway = g.gateway;
        let Command {
            op,
            params,
            timeout,
            ..
        } = self;
        let Some(handle) = s.state.gateways.get(&gateway.device_id) else {
            return Err(DomainError::Invalid("Gateway offline".into()));
        };
        // Refuse at once what the device could never take (its 1024-byte read buffer).
        let probe =
            ironmesh_proto::wifidog::command(handle.generation, &op, &params, "0123456789abcdef");
        let size = ironmesh_proto::wifidog::frame_size(probe.to_string().len());
        if size > ironmesh_proto::wifidog::MAX_FRAME {
            return Err(DomainError::Invalid(format!(
                "Command too large: a {size}-byte frame; gateways accept frames under {} bytes",
                ironmesh_proto::wifidog::MAX_FRAME
            )));
        }
        let (done, answer) = oneshot::channel();
        handle
            .tx
            .try_send(GatewayRequest::Command {
                op: op.clone(),
                params,
                timeout: Duration::from_secs(timeout.into()),
                done,
            })
            .map_err(|_| DomainError::Invalid("Gateway busy: too many commands queued".into()))?;
        let event = Event::new(
            "wifidog",
            "wifidogcmd",
            format!("{op} sent to gateway {}", gateway.device_id),
        )
        .by(&s.actor.user.id, &s.actor.user.name)
        .with("deviceid", gateway.device_id.clone())
        .with("op", op.clone());
        let event = match &gateway.group_id {
            Some(g) => event.group(g),
            None => event,
        };
        s.state.domain.publish(event).await;
        // The answer comes when the device replies (or not): deliver it to this session then,
        // without holding up its other requests.
        let reply = req
            .reply()
            .with("deviceid", gateway.device_id.clone())
            .with("op", op);
        let state = s.state.clone();
        let session = s.session_id.clone();
        tokio::spawn(async move {
            let reply = match answer
                .await
                .unwrap_or(Outcome::Refused("the gateway disconnected".into()))
            {
                Outcome::Reply { ok, body } => reply
                    .with("result", if ok { "ok" } else { "error" })
                    .with("reply", body),
                Outcome::Sent => reply.with("result", "sent"),
                Outcome::TimedOut => reply.with(
                    "result",
                    format!("Timed out after {timeout} s waiting for the gateway"),
                ),
                Outcome::Refused(why) => reply.with("result", why),
            };
            state
                .consoles
                .send_to_session(&session, &reply.into_value());
        });
        Ok(Vec::new())
    }
}

/// `wifidogauthmode`: open (0) or captive portal (1) for one of a device's gateway ids.
pub struct AuthMode {
    device_id: String,
    gw_id: String,
    mode: i64,
}

impl Action for AuthMode {
    type Need = GatewayNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        let device_id = required_str(req, "deviceid")?;
        let gw_id = required_str(req, "gwid")?;
        let mode = match optional_u32(req, "authmode")? {
            Some(m @ (0 | 1)) => m as i64,
            _ => {
                return Err(DomainError::Invalid(
                    "Field authmode must be 0 (open) or 1 (captive portal)".into(),
                ))
            }
        };
        Ok(AuthMode {
            device_id,
            gw_id,
            mode,
        })
    }

    async fn need(&self, s: &ControlSession) -> DomainResult<GatewayNeed> {
        gateway_need(s, &self.device_id)
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: GatewayGrant,
    ) -> DomainResult<Replies> {
        let gateway = g.gateway;
        // (gw_id, auth mode the device last reported)
        let known: Vec<(String, i64)> = parsed(&gateway.gateways)
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| {
                Some((
                    g["gw_id"].as_str()?.to_string(),
                    g["auth_mode"].as_i64().unwrap_or(0),
                ))
            })
            .collect();
        if !known.iter().any(|(id, _)| id == &self.gw_id) {
            return Err(DomainError::NotFound("Unknown gateway id on this device"));
        }
        let wanted = s
            .state
            .domain
            .set_wanted_auth_mode(&gateway, &self.gw_id, self.mode)
            .await?;
        let pushed = match s.state.gateways.get(&gateway.device_id) {
            Some(h) => {
                let modes: Vec<(String, i64)> = known
                    .iter()
                    .map(|(id, reported)| (id.clone(), *wanted.get(id).unwrap_or(reported)))
                    .collect();
                h.tx.try_send(GatewayRequest::PushAuthModes(modes)).is_ok()
            }
            None => false,
        };
        Ok(vec![ok(req).with("pushed", pushed).into_value()])
    }
}
