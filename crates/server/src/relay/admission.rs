//! Who a relay socket is, and whether it may join (docs/protocol/control.md §3.2): the user side
//! authenticates like the control channel (plus base64 `user:password` in `auth=`, as the
//! docs/protocol/control.md §3.2 describes); the agent side carries a relay token (`rauth=`).

use std::net::SocketAddr;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::HeaderMap;
use base64::Engine;
use ironmesh_proto::ids::{normalize_id, IdKind};
use serde_json::Value;

use ironmesh_core::access::{check_session_rights, Actor, DeviceGrant, DeviceNeed};
use ironmesh_core::model::{now_ms, User};
use ironmesh_core::DomainError;
use ironmesh_proto::relay::{RelayQuery, SessionKind};

use super::close;
use crate::auth::cookie::TokenError;
use crate::auth::{Client, Credentials};
use crate::live::relays::{Party, Side};
use crate::state::SharedState;

/// Window of agent relay tokens (MeshCentral: 240 minutes).
pub const RELAY_TOKEN_MAX_AGE_SECS: i64 = 240 * 60;

/// A refused socket: closed with a code and a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }

    pub async fn send(self, mut socket: WebSocket) {
        tracing::info!(code = self.code, reason = ?self.reason, "relay refused");
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: self.code,
                reason: crate::endpoint::close_reason(&self.reason).into(),
            })))
            .await;
    }
}

pub async fn admit(
    state: &SharedState,
    q: &RelayQuery,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Party, Refusal> {
    if let Some(token) = &q.rauth {
        return admit_agent(state, q, token, peer);
    }
    let user = authenticate_user(state, q, headers, peer).await?;
    let actor = state
        .domain
        .actor(&user.id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| Refusal::new(close::UNAUTHORIZED, "account no longer exists"))?;
    if actor.second_factor_pending {
        return Err(Refusal::new(
            close::FORBIDDEN,
            ironmesh_core::DomainError::SecondFactorRequired.to_string(),
        ));
    }

    // Which device: `nodeid`, or an `id` that names a device (docs/protocol/control.md §3.2) rather
    // than a pairing key.
    let mut ask_agent = false;
    let mut relay_id = q.id.clone().filter(|s| !s.is_empty());
    let node_text = match (&q.nodeid, relay_id.clone()) {
        (Some(n), _) => Some(n.clone()),
        (None, Some(id)) if names_a_device(state, &id).await => {
            ask_agent = true;
            relay_id = None;
            Some(id)
        }
        _ => None,
    };
    let mut rights = None;
    let node_id = match node_text {
        None => None,
        Some(text) => {
            let grant = device_for_user(state, &actor, &text, q.p).await?;
            rights = Some(grant.rights);
            if state.agents.get(&grant.device.id).is_none() {
                return Err(Refusal::new(
                    close::OFFLINE,
                    format!("device {} is offline", grant.device.name),
                ));
            }
            Some(grant.device.id)
        }
    };
    if node_id.is_some() && relay_id.is_none() {
        ask_agent = true;
    }
    let relay_id = match relay_id {
        Some(id) => id,
        None if ask_agent => ironmesh_core::hex(&ironmesh_core::random_bytes::<8>()),
        None => {
            return Err(Refusal::new(
                close::BAD_REQUEST,
                "missing relay id (id=) or device (nodeid=)",
            ))
        }
    };
    Ok(Party {
        relay_id,
        side: Side::User { user, rights },
        node_id,
        protocol: q.p,
        peer,
        user_agent: Client::new(peer.ip(), headers).user_agent,
        ask_agent,
    })
}

fn admit_agent(
    state: &SharedState,
    q: &RelayQuery,
    token: &str,
    peer: SocketAddr,
) -> Result<Party, Refusal> {
    let payload = state
        .auth
        .tokens
        .open(token, RELAY_TOKEN_MAX_AGE_SECS, now_ms() / 1000)
        .map_err(|e| match e {
            TokenError::Expired => Refusal::new(close::EXPIRED, "relay token expired"),
            TokenError::Invalid => Refusal::new(close::UNAUTHORIZED, "invalid relay token"),
        })?;
    let Some(ruserid) = payload.get("ruserid").and_then(Value::as_str) else {
        return Err(Refusal::new(
            close::UNAUTHORIZED,
            "relay token names no user",
        ));
    };
    let Some(relay_id) = q.id.clone().filter(|s| !s.is_empty()) else {
        return Err(Refusal::new(close::BAD_REQUEST, "missing relay id (id=)"));
    };
    // A token minted for one session works for that session only, once.
    if let Some(rid) = payload.get("rid").and_then(Value::as_str) {
        if rid != relay_id {
            return Err(Refusal::new(
                close::UNAUTHORIZED,
                "relay token belongs to another session",
            ));
        }
        if !state.relays.claim_token(rid) {
            return Err(Refusal::new(close::CONFLICT, "relay token already used"));
        }
    }
    // Only what the server sealed into the token names the device: a `nodeid` in the
    // agent's URL is the agent's own claim, checked by nobody.
    let node_id = payload
        .get("nid")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Party {
        relay_id,
        side: Side::Agent {
            ruserid: ruserid.to_string(),
        },
        node_id,
        protocol: q.p,
        peer,
        user_agent: None,
        ask_agent: false,
    })
}

async fn authenticate_user(
    state: &SharedState,
    q: &RelayQuery,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<User, Refusal> {
    let mut query = std::collections::HashMap::new();
    for (k, v) in [("auth", &q.auth), ("user", &q.user), ("pass", &q.pass)] {
        if let Some(v) = v {
            query.insert(k.to_string(), v.clone());
        }
    }
    let creds = Credentials::from_request(headers, &query);
    let client = Client::new(peer.ip(), headers);
    match state.auth.authenticate(&creds, &client).await {
        Ok(signed_in) => Ok(signed_in.user),
        Err(failure) => {
            // docs/protocol/control.md §3.2's third method: auth=base64("user:password").
            if let Some((name, pass)) = q.auth.as_deref().and_then(basic_pair) {
                return state
                    .auth
                    .password_login(&name, &pass, None, &client)
                    .await
                    .map(|signed_in| signed_in.user)
                    .map_err(|f| {
                        Refusal::new(
                            close::UNAUTHORIZED,
                            format!("authentication failed: {}", f.reason),
                        )
                    });
            }
            Err(Refusal::new(
                close::UNAUTHORIZED,
                format!("authentication failed: {}", failure.reason),
            ))
        }
    }
}

/// `user:password` from standard base64, if that is what the value holds.
fn basic_pair(value: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_string(), pass.to_string()))
}

/// Every form of device id docs/protocol/control.md §3.2 lists: `node//ID`, `@ID`, `ID`,
/// `node//@ID` (percent-decoding already done).
pub fn device_id_candidates(text: &str) -> Vec<String> {
    let text = text.trim();
    let bare = text.strip_prefix("node//").unwrap_or(text);
    let mut out = Vec::new();
    for key in [bare, bare.strip_prefix('@').unwrap_or(bare)] {
        if let Ok(id) = normalize_id(IdKind::Node, key) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

async fn names_a_device(state: &SharedState, text: &str) -> bool {
    for id in device_id_candidates(text) {
        if matches!(state.domain.device_exists(&id).await, Ok(true)) {
            return true;
        }
    }
    false
}

/// The user's grant on the device, with the protocol's rights checked.
async fn device_for_user(
    state: &SharedState,
    actor: &Actor,
    text: &str,
    protocol: Option<u32>,
) -> Result<DeviceGrant, Refusal> {
    for id in device_id_candidates(text) {
        match state
            .domain
            .authorize(actor, &DeviceNeed { id, rights: 0 })
            .await
        {
            Ok(grant) => {
                check_session_rights(grant.rights, SessionKind::of(protocol))
                    .map_err(|denied| Refusal::new(close::FORBIDDEN, denied.to_string()))?;
                return Ok(grant);
            }
            Err(DomainError::NotFound(_)) => continue,
            Err(e) => return Err(Refusal::new(close::FORBIDDEN, e.to_string())),
        }
    }
    Err(Refusal::new(close::NOT_FOUND, "unknown device"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_forms() {
        let key = "OW4Fp4gPtEyoVafsFkg@1aVS3HfYZtuGH9ylqCCD0S0veYfDbJmfVlxkQXPMEH0T";
        let full = format!("node//{key}");
        for form in [
            full.clone(),
            key.to_string(),
            format!("@{key}"),
            format!("node//@{key}"),
        ] {
            assert!(device_id_candidates(&form).contains(&full), "{form}");
        }
    }

    #[test]
    fn basic_credentials() {
        assert_eq!(
            basic_pair("YWRtaW46cHc6eA==").unwrap(),
            ("admin".into(), "pw:x".into())
        );
    }
}
