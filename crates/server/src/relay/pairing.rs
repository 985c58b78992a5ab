//! A socket's way through the hub (`crate::live::relays`): wait for the peer (asking the
//! agent to connect when the user named a device), or complete a waiting pair, then pipe.

use axum::extract::ws::WebSocket;

use super::admission::Refusal;
use super::close;
use crate::live::relays::{Offer, Party};
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
            let _active = hub.session_started();
            tracing::info!(relay = %id, user = party.user_id(), node = ?party.node_id.as_ref().or(other.node_id.as_ref()), protocol = ?party.protocol.or(other.protocol), "relay session started");
            super::pipe::run(socket, other_socket, state.shutdown.clone()).await;
            tracing::info!(relay = %id, "relay session ended");
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
