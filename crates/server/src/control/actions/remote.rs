//! Requests that go to agents: `msg` (tunnels, console commands and other agent
//! messages) and `runcommands`.

use ironmesh_core::access::{check_session_rights, DeviceGrant, DeviceNeed, SignedIn};
use ironmesh_core::events::Event;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::relay::{RelayQuery, SessionKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::{Map, Value};

use super::devices::device_id;
use super::{optional_str_list, required_str, Action, Replies};
use crate::control::session::ControlSession;
use crate::live::agents::ToAgent;
use crate::tunnel::{tunnel_message, TunnelRequest};

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

/// Fields a user may not set on a message to an agent: the server fills them in.
const SERVER_FILLED: [&str; 9] = [
    "action",
    "type",
    "nodeid",
    "sessionid",
    "rights",
    "userid",
    "username",
    "remoteaddr",
    "consent",
];

/// `msg`: a message for the device's agent (docs/protocol/agent.md §5.2). `tunnel` asks
/// the agent to join a relay session; anything else is passed on with who sent it.
pub struct Msg {
    device_id: String,
    kind: String,
    /// For `tunnel`: the relay URL (`*/meshrelay.ashx?…`) and its query.
    tunnel: Option<(String, RelayQuery)>,
    /// The request's other fields, passed on.
    extra: Map<String, Value>,
}

impl Action for Msg {
    type Need = DeviceNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        let device_id = device_id(req)?;
        let kind = required_str(req, "type")?;
        let mut extra = req.body.clone();
        for key in SERVER_FILLED {
            extra.remove(key);
        }
        let tunnel = if kind == "tunnel" {
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
                if normalize_id(IdKind::Node, url_node).ok().as_deref() != Some(device_id.as_str())
                {
                    return Err(DomainError::Invalid(
                        "Invalid nodeid: the tunnel URL names another device".into(),
                    ));
                }
            }
            extra.remove("value");
            Some((value, query))
        } else {
            None
        };
        if kind == "messagebox" {
            let title = super::messages::check_messagebox(req)?;
            extra.insert("title".into(), title.into());
        }
        Ok(Msg {
            device_id,
            kind,
            tunnel,
            extra,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<DeviceNeed> {
        let rights = match self.kind.as_str() {
            "console" => MeshRights::REMOTE_CONTROL | MeshRights::AGENT_CONSOLE,
            // A tunnel's rights depend on its kind (the relay right is enough for port
            // forwarding): `run` checks them with `check_session_rights`.
            _ if self.tunnel.is_some() => 0,
            _ => MeshRights::REMOTE_CONTROL,
        };
        Ok(DeviceNeed {
            id: self.device_id.clone(),
            rights,
        })
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: DeviceGrant,
    ) -> DomainResult<Replies> {
        let device = g.device;
        s.state.consoles.note_asked(&s.session_id, &device.id);
        if let Some((value, query)) = self.tunnel {
            check_session_rights(g.rights, SessionKind::of(query.p))
                .map_err(|_| DomainError::Denied)?;
            if let Some(relay_id) = query.id.as_deref().filter(|id| !id.is_empty()) {
                s.state
                    .relays
                    .expect(relay_id, &device.id, &s.actor.user.id, g.rights);
            }
            let message = tunnel_message(
                &s.state,
                TunnelRequest {
                    value,
                    user_id: &s.actor.user.id,
                    username: &s.actor.user.name,
                    session_id: s.session_id.clone(),
                    rights: g.rights.0,
                    remote_addr: s.peer.ip().to_string(),
                    extra: self.extra,
                },
            );
            send_to_agent(s, &device.id, &message)?;
            return Ok(vec![req.reply().with("result", "OK").into_value()]);
        }
        let mut message = self.extra;
        message.insert("action".into(), "msg".into());
        message.insert("type".into(), self.kind.into());
        message.insert("sessionid".into(), s.session_id.clone().into());
        message.insert("rights".into(), g.rights.0.into());
        message.insert("userid".into(), s.actor.user.id.clone().into());
        message.insert("username".into(), s.actor.user.name.clone().into());
        message.insert("remoteaddr".into(), s.peer.ip().to_string().into());
        let shown =
            (message.get("type").and_then(Value::as_str) == Some("messagebox")).then(|| {
                super::messages::shown_event(
                    &s.actor,
                    &device.group_id,
                    &device.id,
                    false,
                    message.get("title").and_then(Value::as_str).unwrap_or(""),
                    message.get("msg").and_then(Value::as_str).unwrap_or(""),
                )
            });
        send_to_agent(s, &device.id, &Value::Object(message))?;
        if let Some(event) = shown {
            s.state.domain.publish(event).await;
        }
        Ok(if req.body.contains_key("responseid") {
            vec![req.reply().with("result", "OK").into_value()]
        } else {
            Vec::new()
        })
    }
}

/// `runcommands`: a command line on one or more devices, each needing the remote-command
/// right. Every device is checked (rights, online) before the command runs on any of them.
pub struct RunCommands {
    device_ids: Vec<String>,
    cmds: String,
    /// 0 = the device's shell, 1 cmd, 2 PowerShell, 3 sh, 4 agent console.
    kind: u32,
    reply: bool,
    run_as: u32,
}

impl Action for RunCommands {
    /// Each device is authorized in `run`, through the same `Domain::authorize`.
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        let ids = match optional_str_list(req, "nodeids", "device ids")? {
            Some(ids) if !ids.is_empty() => ids,
            Some(_) => {
                return Err(DomainError::Invalid(
                    "Field nodeids must be a list of device ids".into(),
                ))
            }
            None => vec![required_str(req, "nodeid")?],
        };
        let device_ids = ids
            .iter()
            .map(|id| normalize_id(IdKind::Node, id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| DomainError::NotFound("Invalid nodeid"))?;
        let cmds = match req.body.get("cmds") {
            Some(Value::String(c)) if c.len() <= MAX_CMDS => c.clone(),
            Some(Value::String(_)) => {
                return Err(DomainError::Invalid(format!(
                    "Command too long: at most {MAX_CMDS} characters"
                )))
            }
            _ => return Err(DomainError::Invalid("Field cmds must be a string".into())),
        };
        let kind = req.u32_field("type").unwrap_or(0);
        if kind > 4 {
            return Err(DomainError::Invalid("Invalid command type".into()));
        }
        Ok(RunCommands {
            device_ids,
            cmds,
            kind,
            reply: req.bool_field("reply").unwrap_or(false),
            run_as: req.u32_field("runAsUser").unwrap_or(0).min(2),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        // First every device: a refusal of any one means the command runs on none.
        let mut targets = Vec::with_capacity(self.device_ids.len());
        for id in &self.device_ids {
            let need = DeviceNeed {
                id: id.clone(),
                rights: MeshRights::REMOTE_COMMAND,
            };
            let grant = s
                .state
                .domain
                .authorize(&s.actor, &need)
                .await
                .map_err(|e| match e {
                    DomainError::NotFound(_) => DomainError::NotFound("Invalid nodeid"),
                    other => other,
                })?;
            let Some(agent) = s.state.agents.get(&grant.device.id) else {
                return Err(DomainError::Invalid("Agent not connected".into()));
            };
            // PowerShell (type 2) exists only on Windows agents (ids 1-4), as MeshCentral
            // answers for any other.
            if self.kind == 2 && !(1..=4).contains(&agent.agent_id) {
                return Err(DomainError::Invalid("Invalid command type".into()));
            }
            // A place in each agent's queue is taken before anything is sent, so a busy
            // device refuses the whole request too.
            let slot = agent.tx.clone().try_reserve_owned().map_err(|_| {
                DomainError::Invalid("Unable to route: device is busy, try again".into())
            })?;
            targets.push((grant.device.id, grant.device.group_id, agent.agent_id, slot));
        }
        for (node_id, group_id, agent_id, slot) in targets {
            s.state.consoles.note_asked(&s.session_id, &node_id);
            // Type 0 means "the device's shell": cmd on Windows agents (ids 1-4), sh elsewhere.
            let kind = match self.kind {
                0 if (1..=4).contains(&agent_id) => 1,
                0 => 3,
                t => t,
            };
            let mut message = Map::new();
            message.insert("action".into(), "runcommands".into());
            message.insert("type".into(), kind.into());
            message.insert("cmds".into(), self.cmds.clone().into());
            message.insert("runAsUser".into(), self.run_as.into());
            message.insert("reply".into(), self.reply.into());
            // Routing by session: only the asking session receives the output.
            message.insert("sessionid".into(), s.session_id.clone().into());
            if let Some(rid) = req.body.get("responseid") {
                message.insert("responseid".into(), rid.clone());
            }
            slot.send(ToAgent::Json(Value::Object(message).to_string()));
            // In the audit trail as MeshCentral records it (meshctrl `listevents --id` shows
            // it), `msgid` from the type asked for (meshuser.js `runcommands`).
            let msgid = match self.kind {
                1 => 99,
                2 => 100,
                _ => 24,
            };
            let event = Event::new("node", "runcommands", "Running commands")
                .by_actor(&s.actor)
                .group(&group_id)
                .node(&node_id)
                .target(&s.actor.user.id)
                .with("cmds", self.cmds.clone())
                .with("cmdType", kind)
                .with("runAsUser", self.run_as)
                .with("msgid", msgid)
                .with("domain", "");
            s.state.domain.publish(event).await;
        }
        Ok(if self.reply {
            Vec::new()
        } else {
            vec![req.reply().with("result", "OK").into_value()]
        })
    }
}
