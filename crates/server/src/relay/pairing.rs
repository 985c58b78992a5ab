//! A socket's way through the hub (`crate::live::relays`): wait for the peer (asking the
//! agent to connect when the user named a device), or complete a waiting pair, then pipe
//! the session under a [`Tap`] that keeps its audit records (and recording).

use axum::extract::ws::WebSocket;
use ironmesh_core::access::Origin;
use ironmesh_core::recordings::RECORD_SESSIONS;

use super::admission::Refusal;
use super::close;
use super::tap::{Parties, Tap};
use crate::live::relays::{Offer, Party, Side};
use crate::state::SharedState;

pub async fn join(state: SharedState, party: Party, socket: WebSocket) {
    let hub = &state.relays;
    let id = party.relay_id.clone();
    let receiver = match hub.offer(&party) {
        Offer::Used => {
            return Refusal::new(close::CONFLICT, "relay id already used")
                .send(socket)
                .await
        }
        Offer::Refuse(why) => return Refusal::new(close::FORBIDDEN, why).send(socket).await,
        Offer::Pair(handoff) => {
            if let Err((socket, _)) = handoff.send((socket, party)) {
                // The waiting side gave up in the same instant.
                Refusal::new(close::TIMEOUT, "the other side left before pairing")
                    .send(socket)
                    .await;
            }
            return;
        }
        Offer::Wait(rx) => rx,
    };
    if party.ask_agent {
        if let Err(reason) = crate::tunnel::ask_agent(&state, &party) {
            hub.give_up(&id);
            return Refusal::new(close::OFFLINE, reason).send(socket).await;
        }
    }
    match tokio::time::timeout(state.config.relay_peer_timeout, receiver).await {
        Ok(Ok((other_socket, other))) => {
            let active = hub.session_started(party.user_id());
            let node_id = hub.device_of(&party, &other);
            tracing::info!(relay = ?id, user = party.user_id(), node = ?node_id, protocol = ?party.protocol.or(other.protocol), "relay session started");
            let (tap, mut events) = Tap::new(
                parties(&state, &party, &other, node_id.clone()).await,
                recording_folder(&state, node_id.as_deref()).await,
            );
            // Audit records made while the session runs.
            let publisher = {
                let state = state.clone();
                let node_id = node_id.clone();
                tokio::spawn(async move {
                    while let Some(event) = events.recv().await {
                        state
                            .domain
                            .publish_about_device(node_id.as_deref(), event)
                            .await;
                    }
                })
            };
            let shutdown = state.shutdown.clone();
            let stop = active.stop.clone();
            let stopped = async move {
                tokio::select! {
                    _ = shutdown.cancelled() => (crate::endpoint::CLOSE_GOING_AWAY, crate::endpoint::SHUTTING_DOWN),
                    reason = stop.stopped() => (close::UNAUTHORIZED, reason),
                }
            };
            let guard = super::guard::SessionGuard::new(hub.rights_of(&party, &other));
            super::pipe::run(
                socket,
                other_socket,
                party.is_user(),
                (&tap, guard),
                stopped,
            )
            .await;
            let summary = tap.finish();
            crate::metrics::METRICS.relay_session_ended(summary.protocol);
            let mut end = tap.end_event(&summary);
            if let Some(recording) = &summary.recording {
                let mut recording = recording.clone();
                recording.event_id = Some(end.id.clone());
                if let Err(e) = state.domain.save_recording(&recording).await {
                    tracing::error!(error = %e, "could not record a session recording");
                    end = end.with("recordingerror", e.to_string());
                }
            }
            drop(tap);
            let _ = publisher.await;
            state
                .domain
                .publish_about_device(node_id.as_deref(), end)
                .await;
            tracing::info!(relay = ?id, "relay session ended");
        }
        _ => {
            hub.give_up(&id);
            let reason = if party.is_user() && party.node_id.is_some() {
                "peer never arrived: the device did not connect to the relay"
            } else {
                "peer never arrived"
            };
            Refusal::new(close::TIMEOUT, reason).send(socket).await;
        }
    }
}

/// Who the session acts for (the user side), with which device.
async fn parties(state: &SharedState, a: &Party, b: &Party, node_id: Option<String>) -> Parties {
    let user_side = if a.is_user() { a } else { b };
    let username = match &user_side.side {
        Side::User { user, .. } => user.name.clone(),
        Side::Agent { ruserid } => ruserid.clone(),
    };
    let device = match &node_id {
        Some(node) => state.domain.device_and_group(node).await.ok().flatten(),
        None => None,
    };
    Parties {
        user_id: user_side.user_id().to_string(),
        username,
        origin: Origin::new(user_side.peer.ip(), user_side.user_agent.as_deref()),
        group_id: device.as_ref().map(|(d, _)| d.group_id.clone()),
        device_name: device.map(|(d, _)| d.name),
        node_id,
    }
}

/// Where this session's recording goes, when the device's group records sessions.
async fn recording_folder(
    state: &SharedState,
    node_id: Option<&str>,
) -> Option<std::path::PathBuf> {
    let (_, group) = state.domain.device_and_group(node_id?).await.ok()??;
    (group.flags & RECORD_SESSIONS != 0).then(|| state.config.recordings_dir())
}
