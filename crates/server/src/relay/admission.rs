//! Who a relay socket is, and whether it may join (control spec §3.2): the user side
//! authenticates like the control channel (plus base64 `user:password` in `auth=`, as the
//! relay guide describes); the agent side carries a relay token (`rauth=`).

use std::net::SocketAddr;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::HeaderMap;
use base64::Engine;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::Value;

use super::close;
use super::query::RelayQuery;
use crate::auth::cookie::TokenError;
use crate::auth::{self, Credentials};
use crate::domain::access::{authorize, Actor, Granted, Need};
use crate::domain::DomainError;
use crate::state::SharedState;
use crate::store::{now_ms, DeviceRecord, User};

/// Window of agent relay tokens (MeshCentral: 240 minutes).
pub const RELAY_TOKEN_MAX_AGE_SECS: i64 = 240 * 60;

/// One admitted socket.
#[derive(Debug, Clone)]
pub struct Party {
    pub relay_id: String,
    pub side: Side,
    /// The device the session is with, when known.
    pub node_id: Option<String>,
    pub protocol: Option<u32>,
    pub peer: SocketAddr,
    /// The server must ask the agent to connect (the user addressed a device, not a
    /// pairing id).
    pub ask_agent: bool,
}

#[derive(Debug, Clone)]
pub enum Side {
    User {
        user: User,
        rights: Option<MeshRights>,
    },
    /// An agent (or anything holding a relay token) acting for `ruserid`.
    Agent { ruserid: String },
}

impl Party {
    /// The user this socket acts for.
    pub fn user_id(&self) -> &str {
        match &self.side {
            Side::User { user, .. } => &user.id,
            Side::Agent { ruserid } => ruserid,
        }
    }

    pub fn is_user(&self) -> bool {
        matches!(self.side, Side::User { .. })
    }
}

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
        tracing::info!(code = self.code, reason = %self.reason, "relay refused");
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: self.code,
                reason: crate::control::truncate_reason(&self.reason).into(),
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
    let actor = Actor::load(&state.domain.store, &user.id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| Refusal::new(close::UNAUTHORIZED, "account no longer exists"))?;

    // Which device: `nodeid`, or an `id` that names a device (relay guide) rather than a
    // pairing key.
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
            let device = device_for_user(state, &actor, &text, q.p).await?;
            if let Some(Granted::Device { rights: r, .. }) = device.1 {
                rights = Some(r);
            }
            if state.agents.get(&device.0.id).is_none() {
                return Err(Refusal::new(
                    close::OFFLINE,
                    format!("device {} is offline", device.0.name),
                ));
            }
            Some(device.0.id)
        }
    };
    if node_id.is_some() && relay_id.is_none() {
        ask_agent = true;
    }
    let relay_id = match relay_id {
        Some(id) => id,
        None if ask_agent => crate::domain::hex(&crate::domain::random_bytes::<8>()),
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
    let node_id = q
        .nodeid
        .as_deref()
        .and_then(|n| normalize_id(IdKind::Node, n).ok())
        .or_else(|| {
            payload
                .get("nid")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    Ok(Party {
        relay_id,
        side: Side::Agent {
            ruserid: ruserid.to_string(),
        },
        node_id,
        protocol: q.p,
        peer,
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
    match auth::authenticate(state, &creds, peer.ip()).await {
        Ok(user) => Ok(user),
        Err(failure) => {
            // The relay guide's third method: auth=base64("user:password").
            if let Some((name, pass)) = q.auth.as_deref().and_then(basic_pair) {
                return auth::password_login(state, &name, &pass, None, peer.ip())
                    .await
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

/// Every form of device id the relay guide lists: `node//ID`, `@ID`, `ID`,
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
        if matches!(state.domain.store.device(&id).await, Ok(Some(_))) {
            return true;
        }
    }
    false
}

/// The device and the user's grant on it, with the protocol's rights checked.
async fn device_for_user(
    state: &SharedState,
    actor: &Actor,
    text: &str,
    protocol: Option<u32>,
) -> Result<(DeviceRecord, Option<Granted>), Refusal> {
    for id in device_id_candidates(text) {
        match authorize(&state.domain.store, actor, &Need::Device { id, rights: 0 }).await {
            Ok(granted) => {
                let Granted::Device { device, rights, .. } = &granted else {
                    continue;
                };
                check_protocol_rights(*rights, protocol)?;
                return Ok(((**device).clone(), Some(granted)));
            }
            Err(DomainError::NotFound(_)) => continue,
            Err(e) => return Err(Refusal::new(close::FORBIDDEN, e.to_string())),
        }
    }
    Err(Refusal::new(close::NOT_FOUND, "unknown device"))
}

/// Remote control (or relay) rights, and the protocol's own restriction bit.
pub fn check_protocol_rights(rights: MeshRights, protocol: Option<u32>) -> Result<(), Refusal> {
    if !(rights.has(MeshRights::REMOTE_CONTROL) || rights.has(MeshRights::RELAY)) {
        return Err(Refusal::new(
            close::FORBIDDEN,
            "no remote control rights on this device",
        ));
    }
    let blocked = match protocol {
        Some(1) | Some(6) | Some(8) | Some(9) => rights
            .restricted(MeshRights::NO_TERMINAL)
            .then_some("terminal"),
        Some(5) | Some(10) => rights
            .restricted(MeshRights::NO_FILES)
            .then_some("file access"),
        Some(2) => rights
            .restricted(MeshRights::NO_DESKTOP)
            .then_some("remote desktop"),
        _ => None,
    };
    match blocked {
        Some(what) => Err(Refusal::new(
            close::FORBIDDEN,
            format!("{what} is not allowed for this user on this device"),
        )),
        None => Ok(()),
    }
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
    fn protocol_rights() {
        let rc = MeshRights(MeshRights::REMOTE_CONTROL);
        assert!(check_protocol_rights(rc, Some(1)).is_ok());
        assert!(check_protocol_rights(
            MeshRights(MeshRights::REMOTE_CONTROL | MeshRights::NO_TERMINAL),
            Some(1)
        )
        .is_err());
        assert!(check_protocol_rights(
            MeshRights(MeshRights::REMOTE_CONTROL | MeshRights::NO_TERMINAL),
            Some(5)
        )
        .is_ok());
        assert!(check_protocol_rights(MeshRights(MeshRights::AGENT_CONSOLE), Some(5)).is_err());
        assert!(check_protocol_rights(MeshRights(MeshRights::FULL), Some(1)).is_ok());
        assert_eq!(
            basic_pair("YWRtaW46cHc6eA==").unwrap(),
            ("admin".into(), "pw:x".into())
        );
    }
}
