//! Requests that go to agents: `msg` (tunnels, console commands and other agent
//! messages) and `runcommands`.

use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::{Map, Value};

use super::devices::device_need;
use super::{required_str, Replies};
use crate::agents::registry::ToAgent;
use crate::control::session::ControlSession;
use crate::domain::access::{authorize, Granted, Need};
use crate::domain::{DomainError, DomainResult};
use crate::relay::admission::check_protocol_rights;
use crate::relay::query::RelayQuery;
use crate::relay::tunnel::{tunnel_message, TunnelRequest};

/// Longest command text accepted (MeshCentral's limit).
const MAX_CMDS: usize = 65_535;

/// Sends JSON to a connected agent, or explains why not.
fn send_to_agent(s: &ControlSession, node_id: &str, msg: &Value) -> DomainResult<()> {
    let Some(agent) = s.state.agents.get(node_id) else {
        return Err(DomainError::Invalid(
            "Unable to route: device is offline".into(),
        ));
    };
    agent
        .tx
        .try_send(ToAgent::Json(msg.to_string()))
        .map_err(|_| DomainError::Invalid("Unable to route: device is busy, try again".into()))
}

pub mod msg {
    use super::*;

    pub async fn need(_: &ControlSession, req: &Request) -> DomainResult<Need> {
        let rights = match req.str_field("type") {
            Some("console") => MeshRights::REMOTE_CONTROL | MeshRights::AGENT_CONSOLE,
            _ => MeshRights::REMOTE_CONTROL,
        };
        device_need(req, rights)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let Granted::Device { device, rights, .. } = g else {
            return Err(DomainError::Internal(anyhow::anyhow!(
                "expected a device grant"
            )));
        };
        let kind = required_str(req, "type")?;
        let mut extra: Map<String, Value> = req.body.clone();
        for key in [
            "action",
            "type",
            "nodeid",
            "sessionid",
            "rights",
            "userid",
            "username",
            "remoteaddr",
            "consent",
        ] {
            extra.remove(key);
        }
        if kind == "tunnel" {
            let value = required_str(req, "value")?;
            let query = value
                .strip_prefix("*/")
                .and_then(|rest| rest.split_once('?'))
                .filter(|(path, _)| path.trim_end_matches("/.websocket") == "meshrelay.ashx")
                .map(|(_, q)| RelayQuery::parse(q))
                .ok_or_else(|| {
                    DomainError::Invalid("Invalid tunnel URL: expected */meshrelay.ashx?…".into())
                })?;
            if let Some(url_node) = &query.nodeid {
                if normalize_id(IdKind::Node, url_node).ok().as_deref() != Some(device.id.as_str())
                {
                    return Err(DomainError::Invalid(
                        "Invalid nodeid: the tunnel URL names another device".into(),
                    ));
                }
            }
            check_protocol_rights(rights, query.p).map_err(|_| DomainError::Denied)?;
            extra.remove("value");
            let message = tunnel_message(
                &s.state,
                TunnelRequest {
                    value: value.to_string(),
                    user_id: &s.actor.user.id,
                    username: &s.actor.user.name,
                    session_id: s.session_id.clone(),
                    rights: rights.0,
                    remote_addr: s.peer.ip().to_string(),
                    extra,
                },
            );
            send_to_agent(s, &device.id, &message)?;
            return Ok(vec![req.reply().with("result", "OK").into_value()]);
        }
        let mut message = extra;
        message.insert("action".into(), "msg".into());
        message.insert("type".into(), kind.into());
        message.insert("sessionid".into(), s.session_id.clone().into());
        message.insert("rights".into(), rights.0.into());
        message.insert("userid".into(), s.actor.user.id.clone().into());
        message.insert("username".into(), s.actor.user.name.clone().into());
        message.insert("remoteaddr".into(), s.peer.ip().to_string().into());
        send_to_agent(s, &device.id, &Value::Object(message))?;
        Ok(if req.body.contains_key("responseid") {
            vec![req.reply().with("result", "OK").into_value()]
        } else {
            Vec::new()
        })
    }
}

pub mod runcommands {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        // Each device is authorized below, through the same `authorize`.
        Ok(Need::Login)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let ids: Vec<String> = match req.body.get("nodeids") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    DomainError::Invalid("Field nodeids must be a list of device ids".into())
                })?,
            Some(_) => {
                return Err(DomainError::Invalid(
                    "Field nodeids must be a list of device ids".into(),
                ))
            }
            None => vec![required_str(req, "nodeid")?.to_string()],
        };
        let cmds = match req.body.get("cmds") {
            Some(Value::String(c)) if c.len() <= MAX_CMDS => c.clone(),
            Some(Value::String(_)) => {
                return Err(DomainError::Invalid(format!(
                    "Command too long: at most {MAX_CMDS} characters"
                )))
            }
            _ => return Err(DomainError::Invalid("Field cmds must be a string".into())),
        };
        let requested_type = req.u32_field("type").unwrap_or(0);
        if requested_type > 4 {
            return Err(DomainError::Invalid("Invalid command type".into()));
        }
        let reply = req.bool_field("reply").unwrap_or(false);
        let run_as = req.u32_field("runAsUser").unwrap_or(0).min(2);
        for id in &ids {
            let id = normalize_id(IdKind::Node, id)
                .map_err(|_| DomainError::NotFound("Invalid nodeid"))?;
            let granted = authorize(
                &s.state.domain.store,
                &s.actor,
                &Need::Device {
                    id,
                    rights: MeshRights::REMOTE_COMMAND,
                },
            )
            .await
            .map_err(|e| match e {
                DomainError::NotFound(_) => DomainError::NotFound("Invalid nodeid"),
                other => other,
            })?;
            let Granted::Device { device, .. } = granted else {
                continue;
            };
            let Some(agent) = s.state.agents.get(&device.id) else {
                return Err(DomainError::Invalid("Agent not connected".into()));
            };
            // Type 0 means "the device's shell": cmd on Windows agents (ids 1-4), sh elsewhere.
            let kind = match requested_type {
                0 if (1..=4).contains(&agent.agent_id) => 1,
                0 => 3,
                t => t,
            };
            let mut message = Map::new();
            message.insert("action".into(), "runcommands".into());
            message.insert("type".into(), kind.into());
            message.insert("cmds".into(), cmds.clone().into());
            message.insert("runAsUser".into(), run_as.into());
            message.insert("reply".into(), reply.into());
            // Routing by session: only the asking session receives the output.
            message.insert("sessionid".into(), s.session_id.clone().into());
            if let Some(rid) = req.body.get("responseid") {
                message.insert("responseid".into(), rid.clone());
            }
            send_to_agent(s, &device.id, &Value::Object(message))?;
        }
        Ok(if reply {
            Vec::new()
        } else {
            vec![req.reply().with("result", "OK").into_value()]
        })
    }
}
