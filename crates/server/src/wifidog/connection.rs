//! One gateway connection. The device's limits shape everything here (docs/protocol/wifidogx.md
//! §2): it reads into a 1024-byte buffer and wedges on anything larger, and processes only the
//! first frame of each read. So: every frame is checked against [`MAX_FRAME`]; frames are spaced at
//! least [`MIN_GAP`] apart; one command is in flight at a time and the rest queue; replies are
//! matched by `req_id` (9.x) or by reply type (8.x). To drop a device the TCP connection is closed
//! without a Close frame (8.x never reconnects after one).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use ironmesh_proto::wifidog::{self, DeviceFrame, Expect, Generation, Report, MAX_FRAME};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::live::gateways::{GatewayHandle, Outcome, Request, MAX_PENDING};
use crate::state::SharedState;
use ironmesh_core::events::Event;
use ironmesh_core::gateways::{wanted_modes, AdmissionRule, GatewayReport};
use ironmesh_core::model::{now_ms, GatewayRecord};
use ironmesh_core::DomainError;
use ironmesh_core::{hex, random_bytes};

/// Least time between two frames to one device (it handles one frame per read).
pub const MIN_GAP: Duration = Duration::from_millis(300);
/// Commands waiting behind the one in flight.
const QUEUE_LIMIT: usize = 32;
/// Time a device gets to send its first frame (it sends `connect` right away).
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

struct InFlight {
    req_id: String,
    expect: Expect,
    deadline: Instant,
    done: oneshot::Sender<Outcome>,
}

struct Queued {
    op: String,
    params: Map<String, Value>,
    timeout: Duration,
    done: oneshot::Sender<Outcome>,
}

struct Gateway {
    state: SharedState,
    device_id: String,
    generation: Generation,
    peer: SocketAddr,
    approved: bool,
    group_id: Option<String>,
    /// The device's latest `connect`/`heartbeat`: the gateway ids an acknowledgement sent
    /// on approval must name.
    last_report: Report,
    /// Frames that go before queued commands (acks, auth-mode pushes).
    priority: VecDeque<Value>,
    queue: VecDeque<Queued>,
    in_flight: Option<InFlight>,
    next_send: Instant,
    /// Frames received in the current minute, for rate limiting.
    window: (Instant, u32),
}

/// Why a connection ended.
enum End {
    Gone,
    Drop(String),
}

pub async fn run(state: SharedState, mut socket: WebSocket, peer: SocketAddr) {
    let first = match tokio::time::timeout(FIRST_FRAME_TIMEOUT, next_text(&mut socket)).await {
        Ok(Some(text)) => text,
        _ => return,
    };
    let report = match wifidog::parse_device_frame(&first) {
        Ok(DeviceFrame::Report(r)) => r,
        Ok(_) | Err(_) => {
            state
                .gateways
                .counters
                .malformed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(%peer, "gateway refused: first frame is not connect/heartbeat");
            return;
        }
    };
    let (tx, mut requests) = mpsc::channel(QUEUE_LIMIT);
    let conn_id = state.gateways.next_conn_id();
    let handle = GatewayHandle {
        conn_id,
        generation: report.generation,
        connected_ms: now_ms(),
        addr: peer,
        tx,
    };
    if let Some(old) = state.gateways.insert(&report.device_id, handle) {
        let _ = old
            .tx
            .try_send(Request::Drop("replaced by a newer connection".into()));
    }
    let mut gw = Gateway {
        state: state.clone(),
        device_id: report.device_id.clone(),
        generation: report.generation,
        peer,
        approved: false,
        group_id: None,
        last_report: report.clone(),
        priority: VecDeque::new(),
        queue: VecDeque::new(),
        in_flight: None,
        next_send: Instant::now() + MIN_GAP,
        window: (Instant::now(), 0),
    };
    tracing::info!(device = ?gw.device_id, generation = gw.generation.name(), %peer, "gateway connected");
    let end = match gw.on_report(&report).await {
        Err(reason) => End::Drop(reason),
        Ok(()) => {
            gw.announce(true).await;
            gw.serve(&mut socket, &mut requests).await
        }
    };
    if let End::Drop(reason) = &end {
        tracing::info!(device = ?gw.device_id, reason = ?reason, "gateway dropped");
    }
    // Dropping the socket closes TCP without a Close frame.
    drop(socket);
    for pending in gw
        .in_flight
        .take()
        .map(|f| f.done)
        .into_iter()
        .chain(gw.queue.drain(..).map(|q| q.done))
    {
        let _ = pending.send(Outcome::Refused("the gateway disconnected".into()));
    }
    if state.gateways.remove(&gw.device_id, conn_id) {
        gw.announce(false).await;
    }
}

async fn next_text(socket: &mut WebSocket) -> Option<String> {
    loop {
        match socket.recv().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

impl Gateway {
    async fn serve(
        &mut self,
        socket: &mut WebSocket,
        requests: &mut mpsc::Receiver<Request>,
    ) -> End {
        let hb = self.state.config.wifidog.heartbeat_secs.max(1);
        // Two missed heartbeats (plus slack) and the device is offline.
        let silence_limit = Duration::from_secs(hb * 2) + Duration::from_secs(hb.min(30));
        let mut last_heard = Instant::now();
        loop {
            if let Err(e) = self.pump(socket).await {
                return End::Drop(e);
            }
            let can_send_at = self.next_send;
            let has_work =
                !self.priority.is_empty() || (self.in_flight.is_none() && !self.queue.is_empty());
            let deadline = self.in_flight.as_ref().map(|f| f.deadline);
            tokio::select! {
                // Gateways are dropped by closing TCP, never with a Close frame (8.x firmware
                // would not come back); on shutdown too.
                _ = self.state.shutdown.cancelled() => {
                    return End::Drop(crate::endpoint::SHUTTING_DOWN.into());
                }
                msg = tokio::time::timeout_at(last_heard + silence_limit, socket.recv()) => {
                    let msg = match msg {
                        Err(_) => return End::Drop("missed two heartbeats".into()),
                        Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return End::Gone,
                        Ok(Some(Ok(m))) => m,
                    };
                    last_heard = Instant::now();
                    if !self.within_rate() {
                        if self.window.1 > self.state.config.wifidog.max_frames_per_minute.saturating_mul(3) {
                            return End::Drop("flooding".into());
                        }
                        continue;
                    }
                    match msg {
                        Message::Text(text) => {
                            if let Err(reason) = self.on_text(text.as_str()).await {
                                return End::Drop(reason);
                            }
                        }
                        Message::Binary(_) => {
                            self.state.gateways.counters.malformed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
                req = requests.recv() => match req {
                    None => return End::Drop("server shutting down".into()),
                    Some(Request::Drop(reason)) => return End::Drop(reason),
                    Some(Request::PushAuthModes(modes)) => {
                        let req_id = new_req_id();
                        self.priority.push_back(wifidog::auth_mode_push(self.generation, &modes, &req_id));
                    }
                    Some(Request::Command { op, params, timeout, done }) => self.enqueue(op, params, timeout, done).await,
                    Some(Request::Approved) => self.on_approved().await,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                    if let Some(f) = self.in_flight.take() {
                        let _ = f.done.send(Outcome::TimedOut);
                    }
                }
                _ = tokio::time::sleep_until(can_send_at), if has_work && can_send_at > Instant::now() => {}
            }
        }
    }

    /// Counts a frame against the per-minute budget; false = drop it.
    fn within_rate(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window.0) >= Duration::from_secs(60) {
            self.window = (now, 0);
        }
        self.window.1 += 1;
        if self.window.1 > self.state.config.wifidog.max_frames_per_minute {
            self.state
                .gateways
                .counters
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if self.window.1 == self.state.config.wifidog.max_frames_per_minute + 1 {
                tracing::warn!(device = ?self.device_id, "gateway over its frame rate; dropping the excess");
            }
            return false;
        }
        true
    }

    /// `Err(reason)` when the gateway must be dropped.
    async fn on_text(&mut self, text: &str) -> Result<(), String> {
        match wifidog::parse_device_frame(text) {
            Ok(DeviceFrame::Report(r)) if r.device_id == self.device_id => {
                return self.on_report(&r).await
            }
            Ok(DeviceFrame::Report(r)) => {
                tracing::info!(device = ?self.device_id, other = ?r.device_id, "report for another device id ignored");
            }
            Ok(DeviceFrame::Reply(reply)) => {
                let matches = match (&self.in_flight, self.generation) {
                    (Some(f), Generation::Current) => {
                        reply.req_id.as_deref() == Some(f.req_id.as_str())
                    }
                    (
                        Some(InFlight {
                            expect: Expect::Types(types),
                            ..
                        }),
                        Generation::Legacy,
                    ) => types.contains(&reply.reply_type),
                    _ => false,
                };
                if matches {
                    let f = self.in_flight.take().expect("in flight");
                    let _ = f.done.send(Outcome::Reply {
                        ok: reply.ok,
                        body: reply.body,
                    });
                } else {
                    tracing::debug!(device = ?self.device_id, reply = ?reply.reply_type, "unmatched or late reply ignored");
                }
            }
            Err(e) => {
                self.state
                    .gateways
                    .counters
                    .malformed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(device = ?self.device_id, error = %e, "gateway frame ignored");
            }
        }
        Ok(())
    }

    /// Stores the report (an unknown device goes on the bounded pending list instead) and,
    /// for an admitted device, queues the acknowledgement carrying the wanted auth modes.
    /// `Err(reason)` when the device must be dropped (the pending list is full).
    async fn on_report(&mut self, r: &Report) -> Result<(), String> {
        self.last_report = r.clone();
        let wifidog_cfg = &self.state.config.wifidog;
        let rule = AdmissionRule {
            auto_admit: !wifidog_cfg.require_approval
                || wifidog_cfg.allow.iter().any(|d| d == &self.device_id),
            default_group: wifidog_cfg.default_group.clone(),
        };
        let report = GatewayReport {
            generation: r.generation.name().into(),
            mode: r.mode,
            device_info: r.device_info.as_ref().map(Value::to_string),
            gateways: Value::Array(r.gateways.iter().map(|g| g.to_json()).collect()).to_string(),
            sys_info: r.sys_info.as_ref().map(Value::to_string),
            remote_addr: self.peer.to_string(),
        };
        let recorded = match self
            .state
            .domain
            .record_gateway_report(&self.device_id, report.clone(), &rule)
            .await
        {
            Ok(Some(recorded)) => recorded,
            Ok(None) => {
                let first = self
                    .state
                    .gateways
                    .pending()
                    .iter()
                    .all(|(id, _)| id != &self.device_id);
                if !self
                    .state
                    .gateways
                    .note_pending(&self.device_id, report, now_ms())
                {
                    return Err(format!(
                        "{MAX_PENDING} unknown gateways already wait for approval"
                    ));
                }
                if first {
                    tracing::info!(device = ?self.device_id, "unknown gateway waits for approval");
                }
                self.approved = false;
                return Ok(());
            }
            Err(e) => {
                // An outage is logged once by the store, not once per heartbeat.
                if !matches!(e, DomainError::Unavailable(_)) {
                    tracing::warn!(device = ?self.device_id, error = %e, "could not store gateway report");
                }
                return Ok(());
            }
        };
        let current = recorded.record;
        if current.approved && !self.approved {
            tracing::info!(device = ?self.device_id, first_seen = recorded.first_seen, "gateway admitted");
        }
        self.approved = current.approved;
        self.group_id = current.group_id.clone();
        if self.approved {
            self.queue_ack(r, &current);
        }
        Ok(())
    }

    /// Queues the acknowledgement of report `r` with the auth modes `record` wants for its
    /// gateway ids (those not set keep the mode the device reported).
    fn queue_ack(&mut self, r: &Report, record: &GatewayRecord) {
        let wanted = wanted_modes(record);
        let modes: Vec<(String, i64)> = r
            .gateways
            .iter()
            .map(|g| {
                (
                    g.gw_id.clone(),
                    *wanted.get(&g.gw_id).unwrap_or(&g.auth_mode),
                )
            })
            .collect();
        // Keep only the newest ack: a device that sent several reports needs one answer.
        self.priority
            .retain(|f| f.get("gateway").is_none() || f.get("op").is_some());
        self.priority.push_back(wifidog::ack(r, &modes));
    }

    /// An administrator approved this device while it was connected: acknowledge its
    /// connection at once, as a `connect` ack (docs/protocol/wifidogx.md §5: 9.x applies
    /// auth modes from `connect` acks, not from `heartbeat` ones), and tell its group's
    /// consoles it is online.
    async fn on_approved(&mut self) {
        let record = match self.state.domain.gateway(&self.device_id).await {
            Ok(Some(record)) if record.approved => record,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(device = ?self.device_id, error = %e, "could not read the approved gateway");
                return;
            }
        };
        let newly = !self.approved;
        self.approved = true;
        self.group_id = record.group_id.clone();
        let mut connect = self.last_report.clone();
        connect.heartbeat = false;
        self.queue_ack(&connect, &record);
        if newly {
            tracing::info!(device = ?self.device_id, "gateway admitted while connected; acknowledged");
            self.announce(true).await;
        }
    }

    async fn enqueue(
        &mut self,
        op: String,
        params: Map<String, Value>,
        timeout: Duration,
        done: oneshot::Sender<Outcome>,
    ) {
        if !self.approved {
            // Approval may have been granted since the last report.
            if let Ok(Some(record)) = self.state.domain.gateway(&self.device_id).await {
                self.approved = record.approved;
                self.group_id = record.group_id;
            }
        }
        if !self.approved {
            let _ = done.send(Outcome::Refused(
                "the gateway is waiting for approval".into(),
            ));
            return;
        }
        if wifidog::expectation(self.generation, &op).is_none() {
            let _ = done.send(Outcome::Refused(format!(
                "{op} is not supported by {} gateways",
                self.generation.name()
            )));
            return;
        }
        if self.queue.len() >= QUEUE_LIMIT {
            let _ = done.send(Outcome::Refused(
                "too many commands queued for this gateway; try again later".into(),
            ));
            return;
        }
        self.queue.push_back(Queued {
            op,
            params,
            timeout,
            done,
        });
    }

    /// Sends at most one frame, when the gap since the last one has passed.
    async fn pump(&mut self, socket: &mut WebSocket) -> Result<(), String> {
        if Instant::now() < self.next_send {
            return Ok(());
        }
        if let Some(frame) = self.priority.pop_front() {
            return self.send(socket, &frame).await;
        }
        if self.in_flight.is_some() {
            return Ok(());
        }
        let Some(q) = self.queue.pop_front() else {
            return Ok(());
        };
        let req_id = new_req_id();
        let frame = wifidog::command(self.generation, &q.op, &q.params, &req_id);
        let size = wifidog::frame_size(frame.to_string().len());
        if size > MAX_FRAME {
            let _ = q.done.send(Outcome::Refused(format!(
                "the command would be a {size}-byte frame; gateways accept frames under {MAX_FRAME} bytes"
            )));
            return Ok(());
        }
        self.send(socket, &frame).await?;
        match wifidog::expectation(self.generation, &q.op).unwrap_or(Expect::Nothing) {
            Expect::Nothing => {
                let _ = q.done.send(Outcome::Sent);
            }
            expect => {
                self.in_flight = Some(InFlight {
                    req_id,
                    expect,
                    deadline: Instant::now() + q.timeout,
                    done: q.done,
                });
            }
        }
        Ok(())
    }

    async fn send(&mut self, socket: &mut WebSocket, frame: &Value) -> Result<(), String> {
        let text = frame.to_string();
        if wifidog::frame_size(text.len()) > MAX_FRAME {
            tracing::warn!(device = ?self.device_id, bytes = text.len(), "frame too large for the gateway; not sent");
            return Ok(());
        }
        socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        self.next_send = Instant::now() + MIN_GAP;
        Ok(())
    }

    async fn announce(&self, online: bool) {
        let mut event = Event::new("wifidog", "gatewayconnect", "")
            .with("deviceid", self.device_id.clone())
            .with("online", online)
            .with("generation", self.generation.name())
            .live_only();
        if let Some(g) = &self.group_id {
            event = event.group(g);
        }
        self.state.domain.publish(event).await;
    }
}

/// A 9.x request id: 16 hex characters.
pub fn new_req_id() -> String {
    hex(&random_bytes::<8>())
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 86400)
}
