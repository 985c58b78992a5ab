//! Connected agents, by node id. The registry is the source of live state (online,
//! since when) and the way user sessions reach an agent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;

use ironmesh_core::devices::LiveState;

/// Something to send to a connected agent.
#[derive(Debug)]
pub enum ToAgent {
    /// A JSON object (serialised), sent as a binary frame like MeshCentral does.
    Json(String),
    /// Close the connection with this reason.
    Close(String),
}

/// One live agent connection.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    /// Distinguishes a connection from a newer one of the same node.
    pub conn_id: u64,
    pub group_id: String,
    pub agent_id: u32,
    pub connected_ms: i64,
    pub addr: SocketAddr,
    pub tx: mpsc::Sender<ToAgent>,
}

#[derive(Default)]
pub struct AgentRegistry {
    agents: Mutex<HashMap<String, AgentHandle>>,
    next_conn: AtomicU64,
    /// Every device group an agent was connected in since the start: `online_by_group`
    /// reports them at 0 once their last agent leaves, so a monitoring rule sees the drop
    /// instead of a series that vanished.
    groups_seen: Mutex<BTreeSet<String>>,
}

impl AgentRegistry {
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a connection; returns the one it replaces (same node id), which the
    /// caller closes.
    pub fn insert(&self, node_id: &str, handle: AgentHandle) -> Option<AgentHandle> {
        self.saw_group(&handle.group_id);
        crate::locks::lock(&self.agents).insert(node_id.to_string(), handle)
    }

    fn saw_group(&self, group_id: &str) {
        let mut seen = crate::locks::lock(&self.groups_seen);
        if !seen.contains(group_id) {
            seen.insert(group_id.to_string());
        }
    }

    /// Removes the entry only if it is still this connection's (a newer one may have
    /// replaced it). Returns the entry removed.
    pub fn remove(&self, node_id: &str, conn_id: u64) -> Option<AgentHandle> {
        let mut agents = crate::locks::lock(&self.agents);
        match agents.get(node_id) {
            Some(h) if h.conn_id == conn_id => agents.remove(node_id),
            _ => None,
        }
    }

    /// The device moved to another group while connected: its connection stays.
    pub fn set_group(&self, node_id: &str, group_id: &str) {
        self.saw_group(group_id);
        if let Some(h) = crate::locks::lock(&self.agents).get_mut(node_id) {
            h.group_id = group_id.to_string();
        }
    }

    pub fn get(&self, node_id: &str) -> Option<AgentHandle> {
        crate::locks::lock(&self.agents).get(node_id).cloned()
    }

    /// The connected agents whose device is in one of the groups `in_group` accepts.
    pub fn in_groups(&self, in_group: impl Fn(&str) -> bool) -> Vec<(String, AgentHandle)> {
        crate::locks::lock(&self.agents)
            .iter()
            .filter(|(_, h)| in_group(&h.group_id))
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect()
    }

    pub fn live_state(&self, node_id: &str) -> LiveState {
        match crate::locks::lock(&self.agents).get(node_id) {
            Some(h) => LiveState {
                conn: 1,
                pwr: 1,
                connected_ms: h.connected_ms,
            },
            None => LiveState::default(),
        }
    }

    pub fn len(&self) -> usize {
        crate::locks::lock(&self.agents).len()
    }

    /// How many agents are connected in each device group (by group id).
    /// Groups that had agents since the start and have none now count 0.
    pub fn online_by_group(&self) -> BTreeMap<String, usize> {
        let mut groups: BTreeMap<String, usize> = crate::locks::lock(&self.groups_seen)
            .iter()
            .map(|g| (g.clone(), 0))
            .collect();
        for handle in crate::locks::lock(&self.agents).values() {
            *groups.entry(handle.group_id.clone()).or_insert(0) += 1;
        }
        groups
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
