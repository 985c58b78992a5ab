//! Connected gateways and the requests that reach them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ironmesh_proto::wifidog::Generation;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

/// How a command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The device answered (`ok` = it reports success).
    Reply { ok: bool, body: Value },
    /// Sent; this command gets no answer from this generation of device.
    Sent,
    /// No answer within the timeout.
    TimedOut,
    /// Not sent: the reason.
    Refused(String),
}

/// Something for one gateway's connection to do.
#[derive(Debug)]
pub enum Request {
    Command {
        op: String,
        params: Map<String, Value>,
        timeout: Duration,
        done: oneshot::Sender<Outcome>,
    },
    /// Push the wanted auth modes now.
    PushAuthModes(Vec<(String, i64)>),
    /// The gateway was just approved: acknowledge its connection now rather than at its
    /// next heartbeat, up to a heartbeat interval later.
    Approved,
    /// Close the TCP connection (never a Close frame: 8.x would not reconnect).
    Drop(String),
}

#[derive(Debug, Clone)]
pub struct GatewayHandle {
    pub conn_id: u64,
    pub generation: Generation,
    pub connected_ms: i64,
    pub addr: SocketAddr,
    pub tx: mpsc::Sender<Request>,
}

/// Counters of bad input from gateways (logged, never fatal).
#[derive(Default)]
pub struct Counters {
    pub malformed: AtomicU64,
    pub rate_limited: AtomicU64,
}

#[derive(Default)]
pub struct GatewayRegistry {
    gateways: Mutex<HashMap<String, GatewayHandle>>,
    next_conn: AtomicU64,
    pub counters: Counters,
    /// Unknown gateways waiting for approval: kept here, not in the database, so that
    /// strangers connecting cost bounded memory and no storage.
    pending: Mutex<HashMap<String, PendingGateway>>,
}

/// Most unknown gateways waiting for approval at once; more are refused until some are
/// approved or expire.
pub const MAX_PENDING: usize = 64;
/// How long an unknown gateway stays on the pending list after it was last heard.
pub const PENDING_FOR: Duration = Duration::from_secs(15 * 60);

/// An unknown gateway waiting for an administrator, as it last reported.
#[derive(Debug, Clone)]
pub struct PendingGateway {
    pub report: ironmesh_core::gateways::GatewayReport,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    last_seen: std::time::Instant,
}

impl GatewayRegistry {
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn insert(&self, device_id: &str, handle: GatewayHandle) -> Option<GatewayHandle> {
        crate::locks::lock(&self.gateways).insert(device_id.to_string(), handle)
    }

    pub fn remove(&self, device_id: &str, conn_id: u64) -> bool {
        let mut map = crate::locks::lock(&self.gateways);
        match map.get(device_id) {
            Some(h) if h.conn_id == conn_id => {
                map.remove(device_id);
                true
            }
            _ => false,
        }
    }

    pub fn get(&self, device_id: &str) -> Option<GatewayHandle> {
        crate::locks::lock(&self.gateways).get(device_id).cloned()
    }

    pub fn len(&self) -> usize {
        crate::locks::lock(&self.gateways).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notes (or refreshes) an unknown gateway on the pending list; false when the list is
    /// full of others (expired entries are swept first).
    pub fn note_pending(
        &self,
        device_id: &str,
        report: ironmesh_core::gateways::GatewayReport,
        now_ms: i64,
    ) -> bool {
        let mut pending = crate::locks::lock(&self.pending);
        pending.retain(|_, p| p.last_seen.elapsed() < PENDING_FOR);
        if let Some(p) = pending.get_mut(device_id) {
            p.report = report;
            p.last_seen_ms = now_ms;
            p.last_seen = std::time::Instant::now();
            return true;
        }
        if pending.len() >= MAX_PENDING {
            return false;
        }
        pending.insert(
            device_id.to_string(),
            PendingGateway {
                report,
                first_seen_ms: now_ms,
                last_seen_ms: now_ms,
                last_seen: std::time::Instant::now(),
            },
        );
        true
    }

    /// The pending gateways still within [`PENDING_FOR`], by device id.
    pub fn pending(&self) -> Vec<(String, PendingGateway)> {
        let mut pending = crate::locks::lock(&self.pending);
        pending.retain(|_, p| p.last_seen.elapsed() < PENDING_FOR);
        let mut list: Vec<_> = pending
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    pub fn is_pending(&self, device_id: &str) -> bool {
        crate::locks::lock(&self.pending)
            .get(device_id)
            .is_some_and(|p| p.last_seen.elapsed() < PENDING_FOR)
    }

    /// Takes a gateway off the pending list (it was approved): its last report.
    pub fn take_pending(&self, device_id: &str) -> Option<PendingGateway> {
        crate::locks::lock(&self.pending).remove(device_id)
    }
}
