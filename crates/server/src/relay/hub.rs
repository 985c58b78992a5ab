//! Pairing by relay id (control spec §3.3): the first socket waits (bounded), the second
//! completes the pair if it is compatible, a third is refused. Ids and single-use tokens
//! are remembered for a while so they cannot be replayed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use tokio::sync::oneshot;

use super::admission::{Party, Refusal};
use super::close;
use crate::state::SharedState;

/// How long used ids and tokens are remembered (longer than a relay token lives).
const REMEMBER: Duration = Duration::from_secs(5 * 3600);

struct Waiter {
    party: Party,
    handoff: oneshot::Sender<(WebSocket, Party)>,
}

#[derive(Default)]
pub struct RelayHub {
    waiting: Mutex<HashMap<String, Waiter>>,
    /// Relay ids that have been paired: a later socket with the same id is refused.
    used_ids: Mutex<HashMap<String, Instant>>,
    /// Single-use agent tokens already presented (by relay id).
    used_tokens: Mutex<HashMap<String, Instant>>,
    /// Sessions currently piping.
    active: std::sync::atomic::AtomicUsize,
}

fn remember(map: &Mutex<HashMap<String, Instant>>, key: &str) -> bool {
    let mut map = map.lock().expect("relay lock");
    let now = Instant::now();
    if map.len() > 10_000 {
        map.retain(|_, at| now.duration_since(*at) < REMEMBER);
    }
    match map.get(key) {
        Some(at) if now.duration_since(*at) < REMEMBER => false,
        _ => {
            map.insert(key.to_string(), now);
            true
        }
    }
}

impl RelayHub {
    /// Marks a single-use token as used; false if it already was.
    pub fn claim_token(&self, relay_id: &str) -> bool {
        remember(&self.used_tokens, relay_id)
    }

    pub fn active_sessions(&self) -> usize {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn id_used(&self, relay_id: &str) -> bool {
        let map = self.used_ids.lock().expect("relay lock");
        map.get(relay_id).is_some_and(|at| at.elapsed() < REMEMBER)
    }
}

/// Why two sockets with the same id may not be joined.
fn incompatible(a: &Party, b: &Party) -> Option<&'static str> {
    if !a.is_user() && !b.is_user() {
        return Some("at least one side of a relay must be a signed-in user");
    }
    if a.user_id() != b.user_id() {
        return Some("the other side of this relay belongs to another user");
    }
    if let (Some(x), Some(y)) = (&a.node_id, &b.node_id) {
        if x != y {
            return Some("the two sides of this relay name different devices");
        }
    }
    None
}

pub async fn join(state: SharedState, party: Party, socket: WebSocket) {
    let hub = &state.relays;
    let id = party.relay_id.clone();
    if hub.id_used(&id) {
        return Refusal::new(close::CONFLICT, "relay id already used")
            .send(socket)
            .await;
    }
    /// What the hub decided for this socket.
    enum Outcome {
        Wait(oneshot::Receiver<(WebSocket, Party)>),
        Refuse(&'static str),
        Pair(oneshot::Sender<(WebSocket, Party)>),
    }
    let outcome = {
        let mut waiting = hub.waiting.lock().expect("relay lock");
        match waiting.remove(&id) {
            Some(waiter) => match incompatible(&waiter.party, &party) {
                Some(why) => {
                    waiting.insert(id.clone(), waiter);
                    Outcome::Refuse(why)
                }
                None => {
                    remember(&hub.used_ids, &id);
                    Outcome::Pair(waiter.handoff)
                }
            },
            None => {
                let (tx, rx) = oneshot::channel();
                waiting.insert(
                    id.clone(),
                    Waiter {
                        party: party.clone(),
                        handoff: tx,
                    },
                );
                Outcome::Wait(rx)
            }
        }
    };
    let receiver = match outcome {
        Outcome::Refuse(why) => return Refusal::new(close::FORBIDDEN, why).send(socket).await,
        Outcome::Pair(handoff) => {
            if let Err((socket, _)) = handoff.send((socket, party)) {
                // The waiting side gave up in the same instant.
                Refusal::new(close::TIMEOUT, "the other side left before pairing")
                    .send(socket)
                    .await;
            }
            return;
        }
        Outcome::Wait(rx) => rx,
    };
    if party.ask_agent {
        if let Err(reason) = super::tunnel::ask_agent(&state, &party) {
            hub.waiting.lock().expect("relay lock").remove(&id);
            return Refusal::new(close::OFFLINE, reason).send(socket).await;
        }
    }
    match tokio::time::timeout(state.config.relay_peer_timeout, receiver).await {
        Ok(Ok((other_socket, other))) => {
            hub.active
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(relay = %id, user = party.user_id(), node = ?party.node_id.as_ref().or(other.node_id.as_ref()), protocol = ?party.protocol.or(other.protocol), "relay session started");
            super::pipe::run(socket, other_socket).await;
            hub.active
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(relay = %id, "relay session ended");
        }
        _ => {
            hub.waiting.lock().expect("relay lock").remove(&id);
            let reason = if party.is_user() && party.node_id.is_some() {
                "peer never arrived: the device did not connect to the relay"
            } else {
                "peer never arrived"
            };
            Refusal::new(close::TIMEOUT, reason).send(socket).await;
        }
    }
}
