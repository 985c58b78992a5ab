//! One agent connection on `/agent.ashx`: handshake, registration, core check, then the
//! JSON exchange, until the socket ends or a newer connection of the same node replaces it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use ironmesh_proto::agent::{self, cmd};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::endpoint::{CLOSE_GOING_AWAY, SHUTTING_DOWN};
use crate::live::agents::{AgentHandle, ToAgent};
use crate::metrics::METRICS;
use crate::state::SharedState;
use ironmesh_core::devices::LiveState;
use ironmesh_core::model::now_ms;
use ironmesh_core::model::DeviceReport;
use ironmesh_core::{random_bytes, DomainError};
use ironmesh_proto::agent_handshake::{AgentHandshake, AuthenticatedAgent, Step, TlsHashes};

/// Longest time from upgrade to authentication.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// An agent silent this long is dropped (agents ping after 120 s of silence).
const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
/// Commands queued for one agent by user sessions.
const AGENT_INBOX: usize = 64;
/// Most core pushes per connection before giving up on an agent that will not take it.
const MAX_CORE_PUSHES: u32 = 5;

const CLOSE_POLICY: u16 = 1008;

pub async fn run(state: SharedState, mut socket: WebSocket, peer: SocketAddr) {
    let agent = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&state, &mut socket)).await
    {
        Ok(Ok(agent)) => agent,
        Ok(Err(reason)) => {
            METRICS.agent_handshake(None, "refused");
            tracing::info!(%peer, %reason, "agent refused");
            close(&mut socket, &reason).await;
            return;
        }
        Err(_) => {
            METRICS.agent_handshake(None, "timeout");
            tracing::info!(%peer, "agent handshake timed out");
            close(&mut socket, "handshake timed out").await;
            return;
        }
    };
    let registration = match state
        .domain
        .register_agent(
            &agent.node_id,
            &agent.info,
            agent.agent_name.as_deref(),
            &peer.to_string(),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            METRICS.agent_handshake(Some(agent.used_skip_path), "registration_refused");
            let reason = format!("registration refused: {e}");
            if matches!(e, DomainError::Unavailable(_)) {
                // Logged once by the store, not once per agent retrying.
                tracing::debug!(%peer, node = %agent.node_id, %reason, "agent refused");
            } else {
                tracing::warn!(%peer, node = %agent.node_id, %reason, "agent refused");
            }
            close(&mut socket, &reason).await;
            return;
        }
    };
    METRICS.agent_handshake(Some(agent.used_skip_path), "ok");
    let device = registration.device;
    let (tx, mut inbox) = mpsc::channel(AGENT_INBOX);
    let conn_id = state.agents.next_conn_id();
    let connected_ms = now_ms();
    let handle = AgentHandle {
        conn_id,
        group_id: device.group_id.clone(),
        agent_id: agent.info.agent_id,
        connected_ms,
        addr: peer,
        tx,
    };
    // "Online" starts here, before command 4, as in MeshCentral (docs/protocol/agent.md §12).
    if let Some(old) = state.agents.insert(&device.id, handle) {
        let _ = old.tx.try_send(ToAgent::Close(
            "replaced by a newer connection of the same agent".into(),
        ));
    }
    let live = LiveState {
        conn: 1,
        pwr: 1,
        connected_ms,
    };
    state.domain.announce_connection(&device, live).await;
    tracing::info!(%peer, node = %device.id, name = %device.name, skip = agent.used_skip_path, new = registration.is_new, "agent online");

    let mut session = AgentSession {
        state: state.clone(),
        node_id: device.id.clone(),
        agent_id: agent.info.agent_id,
        core_pushes: 0,
        access: None,
        live,
    };
    let outcome = session.serve(&mut socket, &mut inbox).await;
    if let Err(reason) = &outcome {
        let code = if reason == SHUTTING_DOWN {
            CLOSE_GOING_AWAY
        } else {
            CLOSE_POLICY
        };
        close_with(&mut socket, code, reason).await;
    }
    if let Some(handle) = state.agents.remove(&device.id, conn_id) {
        // The group it belongs to now (it may have been moved while connected).
        let device = ironmesh_core::model::DeviceRecord {
            group_id: handle.group_id,
            ..device.clone()
        };
        state
            .domain
            .announce_connection(&device, LiveState::default())
            .await;
    }
    tracing::info!(%peer, node = %device.id, reason = ?outcome.err(), "agent offline");
}

async fn close(socket: &mut WebSocket, reason: &str) {
    close_with(socket, CLOSE_POLICY, reason).await;
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: crate::endpoint::close_reason(reason).into(),
        })))
        .await;
}

/// Runs the handshake to completion; `Err` is the close reason.
async fn handshake(
    state: &SharedState,
    socket: &mut WebSocket,
) -> Result<AuthenticatedAgent, String> {
    let expected = TlsHashes {
        cert_hash: state.identity.web.cert_hash,
        key_hash: state.identity.web.key_hash,
    };
    let mut hs = AgentHandshake::new(expected, random_bytes());
    loop {
        let frame = match socket.recv().await {
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Text(t))) => {
                // Only `agentName` is meaningful before authentication (docs/protocol/agent.md
                // §3.1).
                if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(t.as_str()) {
                    if obj.get("action").and_then(Value::as_str) == Some("agentName") {
                        if let Some(name) = obj.get("value").and_then(Value::as_str) {
                            hs.on_agent_name(name);
                        }
                    }
                }
                continue;
            }
            Some(Ok(Message::Close(_))) | None => return Err("closed during handshake".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read error during handshake: {e}")),
        };
        if frame.first() == Some(&b'{') {
            if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&frame) {
                if obj.get("action").and_then(Value::as_str) == Some("agentName") {
                    if let Some(name) = obj.get("value").and_then(Value::as_str) {
                        hs.on_agent_name(name);
                    }
                }
            }
            continue;
        }
        for step in hs.on_frame(&frame).map_err(|e| e.to_string())? {
            match step {
                Step::Send(bytes) => send(socket, bytes).await?,
                Step::SendServerProof { message } => {
                    let signature = state
                        .agent_signer
                        .sign(message)
                        .await
                        .map_err(|e| e.to_string())?;
                    let proof = agent::AuthVerify {
                        cert_der: state.identity.agent_server.cert_der.clone(),
                        signature,
                    };
                    send(socket, proof.encode()).await?;
                }
                Step::Authenticated(agent) => return Ok(agent),
            }
        }
    }
}

async fn send(socket: &mut WebSocket, bytes: Vec<u8>) -> Result<(), String> {
    socket
        .send(Message::Binary(bytes.into()))
        .await
        .map_err(|e| format!("write error: {e}"))
}

/// The authenticated part of a connection.
struct AgentSession {
    state: SharedState,
    node_id: String,
    agent_id: u32,
    core_pushes: u32,
    /// Who may receive this agent's answers, and when that was looked up.
    access: Option<(std::time::Instant, Vec<String>)>,
    live: LiveState,
}

impl AgentSession {
    /// Serves until the agent leaves (`Ok`) or must be dropped (`Err(reason)`).
    async fn serve(
        &mut self,
        socket: &mut WebSocket,
        inbox: &mut mpsc::Receiver<ToAgent>,
    ) -> Result<(), String> {
        send(socket, agent::bare(cmd::AUTH_CONFIRM)).await?;
        send(socket, agent::with_request_id(cmd::CORE_MODULE_HASH, &[])).await?;
        loop {
            tokio::select! {
                _ = self.state.shutdown.cancelled() => return Err(SHUTTING_DOWN.into()),
                incoming = tokio::time::timeout(IDLE_TIMEOUT, socket.recv()) => {
                    let msg = match incoming {
                        Err(_) => return Err("idle timeout".into()),
                        Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return Ok(()),
                        Ok(Some(Err(e))) => {
                            if let Some(reason) = crate::endpoint::too_big_reason(&e) {
                                let _ = socket
                                    .send(Message::Close(Some(CloseFrame {
                                        code: crate::endpoint::CLOSE_TOO_BIG,
                                        reason: reason.clone().into(),
                                    })))
                                    .await;
                                return Err(reason);
                            }
                            return Err(format!("read error: {e}"));
                        }
                        Ok(Some(Ok(m))) => m,
                    };
                    match msg {
                        Message::Binary(b) => self.on_binary(socket, &b).await?,
                        Message::Text(t) => self.on_json(socket, t.as_bytes()).await?,
                        _ => {}
                    }
                }
                out = inbox.recv() => match out {
                    Some(ToAgent::Json(text)) => send(socket, text.into_bytes()).await?,
                    Some(ToAgent::Close(reason)) => return Err(reason),
                    None => return Err("server shutting down".into()),
                }
            }
        }
    }

    async fn on_binary(&mut self, socket: &mut WebSocket, frame: &[u8]) -> Result<(), String> {
        let command = match agent::command_of(frame) {
            Ok(None) => return self.on_json(socket, frame).await,
            Ok(Some(c)) => c,
            Err(e) => return Err(format!("malformed command: {e}")),
        };
        match command {
            cmd::CORE_MODULE_HASH => {
                let have =
                    agent::parse_core_hash(frame).map_err(|e| format!("malformed command: {e}"))?;
                let wanted = self.state.cores.core_for(self.agent_id);
                let custom = have == Some([0u8; 48]);
                match wanted {
                    Some(core) if !custom && have != Some(core.hash) => {
                        if self.core_pushes >= MAX_CORE_PUSHES {
                            return Err("agent does not accept the core".into());
                        }
                        self.core_pushes += 1;
                        send(socket, core.frame.to_vec()).await?;
                    }
                    _ => {
                        send(socket, agent::with_request_id(cmd::CORE_OK, &[])).await?;
                        for request in ["{\"action\":\"serverInfo\"}", "{\"action\":\"sysinfo\"}"] {
                            send(socket, request.as_bytes().to_vec()).await?;
                        }
                    }
                }
            }
            // Tag (15), agent-hash reply (12), and anything a custom core sends: no action.
            cmd::AGENT_TAG | cmd::AGENT_HASH => {}
            c if c < 10 => return Err(format!("handshake command {c} after authentication")),
            _ => {}
        }
        Ok(())
    }

    async fn on_json(&mut self, socket: &mut WebSocket, bytes: &[u8]) -> Result<(), String> {
        let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(bytes) else {
            tracing::debug!(node = %self.node_id, "agent sent something that is not a JSON object");
            return Ok(());
        };
        let Some(action) = obj
            .get("action")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Ok(());
        };
        let domain = &self.state.domain;
        let report = |kind| (kind, Value::Object(obj.clone()).to_string());
        let result = match action.as_str() {
            "coreinfo" => {
                let (kind, json) = report(DeviceReport::CoreInfo);
                let os = obj
                    .get("osdesc")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                domain
                    .store_agent_report(&self.node_id, kind, &json, os.as_deref(), self.live)
                    .await
            }
            "netinfo" => {
                let (kind, json) = report(DeviceReport::NetInfo);
                domain
                    .store_agent_report(&self.node_id, kind, &json, None, self.live)
                    .await
            }
            "sysinfo" => {
                let (kind, json) = report(DeviceReport::SysInfo);
                domain
                    .store_agent_report(&self.node_id, kind, &json, None, self.live)
                    .await
            }
            "sessions" => {
                let (kind, json) = report(DeviceReport::Sessions);
                domain
                    .store_agent_report(&self.node_id, kind, &json, None, self.live)
                    .await
            }
            "ping" => {
                send(socket, b"{\"action\":\"pong\"}".to_vec()).await?;
                Ok(())
            }
            "msg" => {
                self.route_to_users(&mut obj).await;
                Ok(())
            }
            other => {
                tracing::debug!(node = %self.node_id, action = ?other, "agent action ignored");
                Ok(())
            }
        };
        match result {
            Ok(()) | Err(DomainError::Unavailable(_)) => {}
            Err(e) => {
                tracing::warn!(node = %self.node_id, action = ?action, error = %e, "could not store agent report")
            }
        }
        Ok(())
    }

    /// An agent's answer to a user (docs/protocol/agent.md §5.3): to the session named by
    /// `sessionid`, else to the sessions of `userid`, else to everyone with rights on the
    /// device. Anyone holding a group's `.msh` can run an "agent", so whatever it names, a
    /// session gets its message only if it asked this device something, and only users
    /// with rights on the device get anything.
    async fn route_to_users(&mut self, obj: &mut Map<String, Value>) {
        obj.insert("nodeid".into(), self.node_id.clone().into());
        let session = obj
            .remove("sessionid")
            .and_then(|v| v.as_str().map(str::to_string));
        let allowed = match self.users_with_access().await {
            Ok(users) => users,
            Err(e) => {
                tracing::warn!(error = %e, "could not route agent message");
                return;
            }
        };
        let message = Value::Object(obj.clone());
        let consoles = &self.state.consoles;
        if let Some(session) = session {
            match consoles.user_of_asking(&session, &self.node_id) {
                Some(user) if allowed.contains(&user) => {
                    consoles.send_to_session(&session, &message);
                }
                _ => {
                    tracing::info!(node = %self.node_id, "agent message for a session that did not ask this device dropped")
                }
            }
            return;
        }
        match obj.get("userid").and_then(Value::as_str) {
            // A user's sessions that asked this device.
            Some(user) => {
                let users: Vec<String> = allowed.into_iter().filter(|u| u == user).collect();
                consoles.send_to_users(&users, Some(&self.node_id), &message);
            }
            // Everyone with rights on the device.
            None => {
                consoles.send_to_users(&allowed, None, &message);
            }
        }
    }

    /// Users with rights on this device, looked up at most every few seconds (an agent
    /// may send many answers in a row; a revoked right takes effect within that time).
    async fn users_with_access(&mut self) -> Result<Vec<String>, DomainError> {
        const FRESH_FOR: Duration = Duration::from_secs(5);
        if let Some((at, users)) = &self.access {
            if at.elapsed() < FRESH_FOR {
                return Ok(users.clone());
            }
        }
        let users = self.state.domain.users_with_access(&self.node_id).await?;
        self.access = Some((std::time::Instant::now(), users.clone()));
        Ok(users)
    }
}
