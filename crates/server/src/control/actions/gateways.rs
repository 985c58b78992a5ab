//! WiFiDogX gateways: `wifidogs` (list), `wifidogapprove`, `wifidogcmd` (any device
//! command, answered when the device replies or the command times out), `wifidogauthmode`.

use std::time::Duration;

use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use super::{ok, optional_u32, required_str, Replies};
use crate::control::session::ControlSession;
use crate::domain::access::{Granted, Need};
use crate::domain::events::Event;
use crate::domain::{DomainError, DomainResult};
use crate::store::gateways::GatewayRecord;
use crate::wifidog::connection::wanted_modes;
use crate::wifidog::registry::{Outcome, Request as GatewayRequest};

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

fn granted_gateway(g: Granted) -> DomainResult<(GatewayRecord, MeshRights)> {
    match g {
        Granted::Gateway { gateway, rights } => Ok((*gateway, rights)),
        _ => Err(DomainError::Internal(anyhow::anyhow!(
            "expected a gateway grant"
        ))),
    }
}

pub mod list {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Login)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let all = s.state.domain.store.gateways().await?;
        let visible: Vec<Value> = all
            .iter()
            .filter(|g| match &g.group_id {
                Some(group) => s.actor.group_rights(group).is_some(),
                None => s.actor.is_full_admin(),
            })
            .map(|g| gateway_json(s, g))
            .collect();
        Ok(vec![req
            .reply()
            .with("gateways", Value::Array(visible))
            .into_value()])
    }
}

pub mod approve {
    use super::*;

    pub async fn need(_: &ControlSession, req: &Request) -> DomainResult<Need> {
        Ok(Need::Group {
            id: normalize_id(IdKind::Mesh, required_str(req, "meshid")?)
                .map_err(|_| DomainError::NotFound("Invalid group id"))?,
            rights: MeshRights::MANAGE_COMPUTERS,
        })
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let Granted::Group { group, .. } = g else {
            return Err(DomainError::Internal(anyhow::anyhow!(
                "expected a group grant"
            )));
        };
        let device_id = required_str(req, "deviceid")?;
        let store = &s.state.domain.store;
        let Some(gateway) = store.gateway(device_id).await? else {
            return Err(DomainError::NotFound("Unknown gateway"));
        };
        // A gateway already in a group moves only with rights there too.
        if let Some(current) = &gateway.group_id {
            if current != &group.id
                && !s
                    .actor
                    .group_rights(current)
                    .is_some_and(|r| r.has(MeshRights::MANAGE_COMPUTERS))
            {
                return Err(DomainError::Denied);
            }
        }
        store.approve_gateway(device_id, Some(&group.id)).await?;
        let event = Event::new(
            "wifidog",
            "gatewayapprove",
            format!("Gateway {device_id} admitted into {}", group.name),
        )
        .by(&s.actor.user.id, &s.actor.user.name)
        .group(&group.id)
        .with("deviceid", device_id.to_string());
        s.state
            .domain
            .events
            .publish(&s.state.domain.store, event)
            .await;
        Ok(vec![ok(req).into_value()])
    }
}

fn gateway_need(req: &Request) -> DomainResult<Need> {
    Ok(Need::Gateway {
        device_id: required_str(req, "deviceid")?.to_string(),
        rights: MeshRights::REMOTE_CONTROL,
    })
}

pub mod command {
    use super::*;

    pub async fn need(_: &ControlSession, req: &Request) -> DomainResult<Need> {
        gateway_need(req)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let (gateway, _) = granted_gateway(g)?;
        let op = required_str(req, "op")?.to_string();
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
        s.state
            .domain
            .events
            .publish(&s.state.domain.store, event)
            .await;
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
            state.consoles.send_to_session(&session, reply.into_value());
        });
        Ok(Vec::new())
    }
}

pub mod auth_mode {
    use super::*;

    pub async fn need(_: &ControlSession, req: &Request) -> DomainResult<Need> {
        gateway_need(req)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let (gateway, _) = granted_gateway(g)?;
        let gw_id = required_str(req, "gwid")?.to_string();
        let mode = match optional_u32(req, "authmode")? {
            Some(m @ (0 | 1)) => m as i64,
            _ => {
                return Err(DomainError::Invalid(
                    "Field authmode must be 0 (open) or 1 (captive portal)".into(),
                ))
            }
        };
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
        if !known.iter().any(|(id, _)| id == &gw_id) {
            return Err(DomainError::NotFound("Unknown gateway id on this device"));
        }
        let mut wanted = wanted_modes(&gateway);
        wanted.insert(gw_id.clone(), mode);
        let json = Value::Object(
            wanted
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(*v)))
                .collect(),
        )
        .to_string();
        s.state
            .domain
            .store
            .set_wanted_auth_modes(&gateway.device_id, &json)
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
