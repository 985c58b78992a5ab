//! Asking an agent to open its side of a relay session (docs/protocol/agent.md §6).

use ironmesh_proto::ids::hex_upper;
use serde_json::{json, Map, Value};

use crate::endpoint::escape_query;
use crate::live::agents::ToAgent;
use crate::live::relays::{Party, Side};
use crate::state::{AppState, SharedState};
use ironmesh_core::model::now_ms;

/// What the agent needs besides the relay URL: who asks, with which rights, and the
/// certificate hash the relay connection must present.
pub struct TunnelRequest<'a> {
    /// `*/meshrelay.ashx?…` (same host and port as the agent's control channel).
    pub value: String,
    pub user_id: &'a str,
    pub username: &'a str,
    pub session_id: String,
    pub rights: u32,
    pub remote_addr: String,
    /// Extra fields from the user's request (e.g. `usage`, `responseid`), kept.
    pub extra: Map<String, Value>,
}

/// The `msg`/`tunnel` JSON sent to the agent.
pub fn tunnel_message(state: &AppState, req: TunnelRequest) -> Value {
    let mut msg = req.extra;
    msg.insert("action".into(), "msg".into());
    msg.insert("type".into(), "tunnel".into());
    msg.insert("value".into(), req.value.into());
    msg.insert(
        "servertlshash".into(),
        hex_upper(&state.identity.web.cert_hash).into(),
    );
    msg.insert("soptions".into(), json!({}));
    msg.insert("userid".into(), req.user_id.into());
    msg.insert("username".into(), req.username.into());
    msg.insert("sessionid".into(), req.session_id.into());
    msg.insert("rights".into(), req.rights.into());
    msg.insert("consent".into(), 0.into());
    msg.insert("remoteaddr".into(), req.remote_addr.into());
    msg.remove("nodeid");
    Value::Object(msg)
}

/// A single-use relay token for the agent side of session `relay_id`.
pub fn agent_token(
    state: &AppState,
    user_id: &str,
    relay_id: &str,
    node_id: &str,
    protocol: u32,
) -> String {
    let payload = json!({ "ruserid": user_id, "rid": relay_id, "nid": node_id, "p": protocol });
    state.auth.tokens.seal(
        payload.as_object().cloned().unwrap_or_default(),
        now_ms() / 1000,
    )
}

/// For a user who addressed a device directly: mint a token and ask the agent.
pub fn ask_agent(state: &SharedState, party: &Party) -> Result<(), String> {
    let (Side::User { user, rights }, Some(node_id)) = (&party.side, &party.node_id) else {
        return Err("no device to ask".into());
    };
    let Some(agent) = state.agents.get(node_id) else {
        return Err("device is offline".into());
    };
    let protocol = party.protocol.unwrap_or(1);
    let token = agent_token(state, &user.id, &party.relay_id, node_id, protocol);
    let value = format!(
        "*/meshrelay.ashx?p={protocol}&nodeid={}&id={}&rauth={}",
        escape_query(node_id),
        escape_query(&party.relay_id),
        escape_query(&token)
    );
    let msg = tunnel_message(
        state,
        TunnelRequest {
            value,
            user_id: &user.id,
            username: &user.name,
            session_id: format!("{}/relay-{}", user.id, party.relay_id),
            rights: rights.map(|r| r.0).unwrap_or(0),
            remote_addr: party.peer.ip().to_string(),
            extra: {
                let mut m = Map::new();
                m.insert("usage".into(), 1.into());
                m
            },
        },
    );
    agent
        .tx
        .try_send(ToAgent::Json(msg.to_string()))
        .map_err(|_| "device is not accepting requests (busy or disconnecting)".to_string())
}
