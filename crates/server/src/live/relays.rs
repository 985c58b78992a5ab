//! Relay sockets waiting for their peer, paired by relay id (docs/protocol/control.md §3.3):
//! the first socket waits, the second completes the pair if it is compatible, a third is
//! refused. Ids and single-use tokens are remembered for a while so they cannot be
//! replayed. The relay endpoint (`crate::relay`) admits sockets and pipes the pairs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use ironmesh_core::model::User;
use ironmesh_proto::rights::MeshRights;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::locks::lock;

/// How long used ids and tokens are remembered (longer than a relay token lives).
const REMEMBER: Duration = Duration::from_secs(5 * 3600);
/// Above this many remembered ids, expired ones are swept on insert.
const SWEEP_AT: usize = 10_000;

/// One admitted relay socket.
#[derive(Debug, Clone)]
pub struct Party {
    pub relay_id: String,
    pub side: Side,
    /// The device the session is with, when known.
    pub node_id: Option<String>,
    pub protocol: Option<u32>,
    pub peer: SocketAddr,
    /// The client program (`User-Agent`), for the audit trail.
    pub user_agent: Option<String>,
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

/// The second socket of a pair, handed to the first one's task.
pub type Handoff = (WebSocket, Party);

struct Waiter {
    party: Party,
    handoff: oneshot::Sender<Handoff>,
}

/// What the hub decided for a socket that offered itself.
pub enum Offer {
    /// First of its id: wait for the peer on this receiver (and call [`RelayHub::give_up`]
    /// when no longer waiting).
    Wait(oneshot::Receiver<Handoff>),
    /// The id is waiting for a peer this socket cannot be (the reason says why).
    Refuse(&'static str),
    /// The id was already paired or used.
    Used,
    /// This socket completes the pair: send it (with its party) to the waiting side.
    Pair(oneshot::Sender<Handoff>),
}

/// A relay id a user asked a device to join.
struct Expected {
    node_id: String,
    user_id: String,
    /// The user's rights on the device when they asked: the session is held to them.
    rights: MeshRights,
    at: Instant,
}

#[derive(Default)]
pub struct RelayHub {
    waiting: Mutex<HashMap<String, Waiter>>,
    /// Relay ids that have been paired: a later socket with the same id is refused.
    used_ids: Mutex<HashMap<String, Instant>>,
    /// Single-use agent tokens already presented (by relay id).
    used_tokens: Mutex<HashMap<String, Instant>>,
    /// Sessions currently piping, by a number of their own: the user they act for, when
    /// they started (Unix ms), and how to stop them.
    active: Mutex<HashMap<u64, (String, i64, Stop)>>,
    /// Relay ids a user asked a device to join (`msg` tunnel, rights checked there): which
    /// device, for whom, since when.
    expected: Mutex<HashMap<String, Expected>>,
    next_session: AtomicUsize,
}

/// Stops one piping session, with the reason its sockets are closed with.
#[derive(Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    reason: Arc<Mutex<Option<&'static str>>>,
}

impl Stop {
    pub fn stop(&self, reason: &'static str) {
        lock(&self.reason).get_or_insert(reason);
        self.token.cancel();
    }

    /// Resolves with the reason once the session is stopped.
    pub async fn stopped(&self) -> &'static str {
        self.token.cancelled().await;
        lock(&self.reason).unwrap_or("session ended")
    }
}

/// Remembers `key`; false if it was already remembered (and not yet forgotten).
fn remember(map: &Mutex<HashMap<String, Instant>>, key: &str) -> bool {
    let mut map = lock(map);
    let now = Instant::now();
    if map.len() > SWEEP_AT {
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

impl RelayHub {
    /// Marks a single-use token as used; false if it already was.
    pub fn claim_token(&self, relay_id: &str) -> bool {
        remember(&self.used_tokens, relay_id)
    }

    pub fn active_sessions(&self) -> usize {
        lock(&self.active).len()
    }

    /// Records a session acting for `user_id` as piping until the returned guard is
    /// dropped; the guard's [`Stop`] ends it early.
    pub fn session_started(&self, user_id: &str) -> ActiveSession<'_> {
        let number = self.next_session.fetch_add(1, Ordering::Relaxed) as u64;
        let stop = Stop::default();
        lock(&self.active).insert(
            number,
            (
                user_id.to_string(),
                ironmesh_core::model::now_ms(),
                stop.clone(),
            ),
        );
        ActiveSession {
            hub: self,
            number,
            stop,
        }
    }

    /// Stops every piping session of a user (their credentials changed, or the account
    /// is gone); returns how many.
    pub fn end_user_sessions(&self, user_id: &str, reason: &'static str) -> usize {
        self.end_user_sessions_started_before(user_id, i64::MAX, reason)
    }

    /// Stops the piping sessions of a user that started before `ms` (Unix ms); returns
    /// how many.
    pub fn end_user_sessions_started_before(
        &self,
        user_id: &str,
        ms: i64,
        reason: &'static str,
    ) -> usize {
        let active = lock(&self.active);
        active
            .values()
            .filter(|(user, started, _)| user == user_id && *started < ms)
            .map(|(_, _, stop)| stop.stop(reason))
            .count()
    }

    /// The users with sessions piping, each with when their oldest one started.
    pub fn users_piping(&self) -> Vec<(String, i64)> {
        let mut oldest: HashMap<String, i64> = HashMap::new();
        for (user, started, _) in lock(&self.active).values() {
            let at = oldest.entry(user.clone()).or_insert(*started);
            *at = (*at).min(*started);
        }
        oldest.into_iter().collect()
    }

    fn id_used(&self, relay_id: &str) -> bool {
        lock(&self.used_ids)
            .get(relay_id)
            .is_some_and(|at| at.elapsed() < REMEMBER)
    }

    /// Pairs `party` with the socket waiting under its id, or makes it the waiting one.
    pub fn offer(&self, party: &Party) -> Offer {
        let id = &party.relay_id;
        if self.id_used(id) {
            return Offer::Used;
        }
        let mut waiting = lock(&self.waiting);
        match waiting.remove(id) {
            Some(waiter) => match incompatible(&waiter.party, party) {
                Some(why) => {
                    waiting.insert(id.clone(), waiter);
                    Offer::Refuse(why)
                }
                None => {
                    remember(&self.used_ids, id);
                    Offer::Pair(waiter.handoff)
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
                Offer::Wait(rx)
            }
        }
    }

    /// Remembers that `user_id`, holding `rights` on device `node_id`, asked it to join
    /// relay `relay_id`, so the session is known to be with that device when it pairs.
    pub fn expect(&self, relay_id: &str, node_id: &str, user_id: &str, rights: MeshRights) {
        let mut expected = lock(&self.expected);
        if expected.len() > SWEEP_AT {
            expected.retain(|_, e| e.at.elapsed() < REMEMBER);
        }
        expected.insert(
            relay_id.to_string(),
            Expected {
                node_id: node_id.to_string(),
                user_id: user_id.to_string(),
                rights,
                at: Instant::now(),
            },
        );
    }

    /// The device a paired session is with: as the sides know it, or as the user asked.
    pub fn device_of(&self, a: &Party, b: &Party) -> Option<String> {
        if let Some(node) = a.node_id.clone().or_else(|| b.node_id.clone()) {
            return Some(node);
        }
        self.asked(a, |e| e.node_id.clone())
    }

    /// The user's rights on the device a paired session is with: as admission found them
    /// (the user named the device), or as they were when the user asked the device to join.
    pub fn rights_of(&self, a: &Party, b: &Party) -> Option<MeshRights> {
        for side in [a, b] {
            if let Side::User {
                rights: Some(r), ..
            } = &side.side
            {
                return Some(*r);
            }
        }
        self.asked(a, |e| e.rights)
    }

    fn asked<T>(&self, a: &Party, pick: impl FnOnce(&Expected) -> T) -> Option<T> {
        let expected = lock(&self.expected);
        let e = expected.get(&a.relay_id)?;
        (e.user_id == a.user_id() && e.at.elapsed() < REMEMBER).then(|| pick(e))
    }

    /// The waiting socket of `relay_id` stopped waiting (timed out, or its agent could not
    /// be asked).
    pub fn give_up(&self, relay_id: &str) {
        lock(&self.waiting).remove(relay_id);
    }
}

/// A session counted in [`RelayHub::active_sessions`] while alive.
pub struct ActiveSession<'a> {
    hub: &'a RelayHub,
    number: u64,
    /// Ends the session early.
    pub stop: Stop,
}

impl Drop for ActiveSession<'_> {
    fn drop(&mut self) {
        lock(&self.hub.active).remove(&self.number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_side(relay_id: &str, user: &str) -> Party {
        Party {
            relay_id: relay_id.into(),
            side: Side::Agent {
                ruserid: user.into(),
            },
            node_id: None,
            protocol: Some(2),
            peer: "127.0.0.1:1".parse().unwrap(),
            user_agent: None,
            ask_agent: false,
        }
    }

    /// A session the user set up with a `tunnel` message (the relay URL names no device) is
    /// still held to the rights the user had when asking.
    #[test]
    fn asked_sessions_keep_the_askers_rights() {
        let hub = RelayHub::default();
        let view_only = MeshRights(MeshRights::REMOTE_CONTROL | MeshRights::REMOTE_VIEW_ONLY);
        hub.expect("r1", "node//n", "user//v", view_only);
        let (a, b) = (agent_side("r1", "user//v"), agent_side("r1", "user//v"));
        assert_eq!(hub.rights_of(&a, &b), Some(view_only));
        assert_eq!(hub.device_of(&a, &b).as_deref(), Some("node//n"));
        // Another user's socket with the same id learns nothing from the request.
        let other = agent_side("r1", "user//eve");
        assert_eq!(hub.rights_of(&other, &b), None);
        assert_eq!(hub.rights_of(&agent_side("r2", "user//v"), &b), None);
    }
}
