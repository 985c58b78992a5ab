//! A simulated apfree-wifidog gateway that reproduces the real device's wire behaviour
//! (docs/protocol/wifidogx.md §2): its own WebSocket client over raw TCP, masked text
//! frames, a 1024-byte read buffer that wedges the device for good when a read fills it,
//! only the first frame of each read processed, JSON heartbeats, and the reconnect rules
//! (2 s after an error, 5 s after EOF; 8.x never returns after a server Close frame).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Which firmware generation to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// 8.11: `type` messages.
    V8,
    /// 9.x: `op` + `req_id`, enveloped replies.
    V9,
}

/// What the simulated device has seen and done, for assertions.
#[derive(Debug, Default)]
pub struct Observed {
    /// Every server message the device processed, in order.
    pub received: Vec<Value>,
    /// Frames that arrived in the same read as an earlier one and were dropped.
    pub dropped_frames: usize,
    /// A read filled the 1024-byte buffer: the device no longer processes anything.
    pub wedged: bool,
    /// Connections made (1 = never reconnected).
    pub connections: usize,
    /// Current auth mode per gateway id, as set by the server.
    pub auth_modes: Vec<(String, i64)>,
    /// The server sent a Close frame.
    pub got_close_frame: bool,
    /// Bytes that came with the 101 response in the same read (should be none).
    pub bytes_after_101: usize,
    /// Frames sent from [`SimGateway::inject`] so far.
    pub injected: usize,
}

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub firmware: Firmware,
    pub device_id: String,
    pub port: u16,
    pub path: String,
    pub heartbeat: Duration,
    /// Delay before replying to commands (to test timeouts and queueing).
    pub reply_delay: Duration,
    /// Gateway ids this device serves.
    pub gateways: Vec<String>,
}

impl GatewayOptions {
    pub fn new(firmware: Firmware, device_id: &str, port: u16) -> GatewayOptions {
        GatewayOptions {
            firmware,
            device_id: device_id.to_string(),
            port,
            path: "/ws/wifidogx".into(),
            heartbeat: Duration::from_secs(1),
            reply_delay: Duration::ZERO,
            gateways: vec!["GW0001".into()],
        }
    }
}

/// A running simulated gateway.
pub struct SimGateway {
    pub observed: Arc<Mutex<Observed>>,
    /// Raw text frames to send as if the device sent them (bad-input tests).
    pub inject: mpsc::UnboundedSender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl SimGateway {
    pub fn start(opts: GatewayOptions) -> SimGateway {
        let observed = Arc::new(Mutex::new(Observed {
            auth_modes: opts.gateways.iter().map(|g| (g.clone(), 1)).collect(),
            ..Default::default()
        }));
        let (inject, injected) = mpsc::unbounded_channel();
        let task = tokio::spawn(device_main(opts, observed.clone(), injected));
        SimGateway {
            observed,
            inject,
            task,
        }
    }

    pub fn snapshot<T>(&self, f: impl FnOnce(&Observed) -> T) -> T {
        f(&self.observed.lock().unwrap())
    }

    /// Waits until `pred` holds on what the device observed.
    pub async fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Observed) -> bool) {
        crate::wait_until(timeout, &format!("simulated gateway: {what}"), async || {
            let observed = self.observed.lock().unwrap();
            if pred(&observed) {
                Ok(())
            } else {
                Err(format!("{observed:?}"))
            }
        })
        .await
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for SimGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn device_main(
    opts: GatewayOptions,
    observed: Arc<Mutex<Observed>>,
    mut injected: mpsc::UnboundedReceiver<String>,
) {
    let mut state = DeviceState::new(&opts);
    loop {
        let outcome = session(&opts, &observed, &mut state, &mut injected).await;
        let delay = match outcome {
            SessionEnd::Error => Duration::from_secs(2),
            SessionEnd::Eof => Duration::from_secs(5),
            SessionEnd::CloseFrame if opts.firmware == Firmware::V8 => return, // 8.11 bug: never again
            SessionEnd::CloseFrame => Duration::from_secs(3),
        };
        // Paces the device as the firmware does (a fixed wait, not synchronization).
        tokio::time::sleep(delay).await;
    }
}

enum SessionEnd {
    Error,
    Eof,
    CloseFrame,
}

/// The device's own data (clients, trusted domains, req_id sequence).
struct DeviceState {
    clients: Vec<(String, String)>,
    domains: Vec<String>,
    next_req: u64,
}

impl DeviceState {
    fn new(_opts: &GatewayOptions) -> DeviceState {
        DeviceState {
            clients: vec![("192.168.1.10".into(), "aa:bb:cc:dd:ee:01".into())],
            domains: Vec::new(),
            next_req: 0x6b8b4567327b23c6,
        }
    }
}

async fn session(
    opts: &GatewayOptions,
    observed: &Arc<Mutex<Observed>>,
    state: &mut DeviceState,
    injected: &mut mpsc::UnboundedReceiver<String>,
) -> SessionEnd {
    let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", opts.port)).await else {
        return SessionEnd::Error;
    };
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: apfree-wifidog\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        opts.path, opts.port
    );
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return SessionEnd::Error;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return SessionEnd::Eof,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).to_string();
            // The accept value for the RFC 6455 sample key.
            if !text.starts_with("HTTP/1.1 101") || !text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
                return SessionEnd::Error;
            }
            observed.lock().unwrap().bytes_after_101 += head.len() - (end + 4);
            break;
        }
    }
    observed.lock().unwrap().connections += 1;
    if send_text(&mut tcp, &report(opts, state, false))
        .await
        .is_err()
    {
        return SessionEnd::Error;
    }
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + opts.heartbeat, opts.heartbeat);
    loop {
        tokio::select! {
            read = tcp.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return SessionEnd::Eof,
                    Err(_) => return SessionEnd::Error,
                    Ok(n) => n,
                };
                if observed.lock().unwrap().wedged {
                    continue;
                }
                if n == buf.len() {
                    // "Input buffer overflow": returns without draining — wedged for good.
                    observed.lock().unwrap().wedged = true;
                    continue;
                }
                let frames = split_frames(&buf[..n]);
                if frames.len() > 1 {
                    observed.lock().unwrap().dropped_frames += frames.len() - 1;
                }
                let Some((opcode, payload)) = frames.into_iter().next() else { continue };
                match opcode {
                    0x8 => {
                        observed.lock().unwrap().got_close_frame = true;
                        let _ = send_frame(&mut tcp, 0x8, &1000u16.to_be_bytes()).await;
                        return SessionEnd::CloseFrame;
                    }
                    0x9 => {
                        let _ = send_frame(&mut tcp, 0xA, &payload).await;
                    }
                    0x1 => {
                        let Ok(msg) = serde_json::from_slice::<Value>(&payload) else { continue };
                        observed.lock().unwrap().received.push(msg.clone());
                        if let Some(reply) = handle(opts, observed, state, &msg) {
                            if !opts.reply_delay.is_zero() {
                                // A slow device, for the server's command timeouts.
                                tokio::time::sleep(opts.reply_delay).await;
                            }
                            if send_text(&mut tcp, &reply).await.is_err() {
                                return SessionEnd::Error;
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ = heartbeat.tick() => {
                if send_text(&mut tcp, &report(opts, state, true)).await.is_err() {
                    return SessionEnd::Error;
                }
            }
            Some(raw) = injected.recv() => {
                if send_frame(&mut tcp, 0x1, raw.as_bytes()).await.is_err() {
                    return SessionEnd::Error;
                }
                observed.lock().unwrap().injected += 1;
            }
        }
    }
}

fn report(opts: &GatewayOptions, state: &mut DeviceState, heartbeat: bool) -> Value {
    let kind = if heartbeat { "heartbeat" } else { "connect" };
    let gateways: Vec<Value> = opts
        .gateways
        .iter()
        .map(|g| json!({"gw_id": g, "gw_channel": "chan", "gw_address_v4": "192.168.1.1", "auth_mode": 1, "gw_interface": "br-lan"}))
        .collect();
    let mut msg = json!({
        "device_id": opts.device_id,
        "device_info": {"ap_device_id": "ap1", "ap_mac_address": "00:11:22:33:44:55", "location_id": "lab"},
        "gateway": gateways,
    });
    if heartbeat {
        msg["sys_info"] = json!({"sys_uptime": 100, "sys_memfree": 2048, "sys_load": 0.05, "online_clients": state.clients.len(), "cpu_temp": -1});
    }
    match opts.firmware {
        Firmware::V8 => msg["type"] = kind.into(),
        Firmware::V9 => {
            msg["op"] = kind.into();
            msg["mode"] = 0.into();
            state.next_req = state
                .next_req
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1);
            msg["req_id"] = format!("{:016x}", state.next_req).into();
        }
    }
    msg
}

/// The device's answer to one server message, as the real firmware behaves
/// (docs/protocol/wifidogx.md §4, §5).
fn handle(
    opts: &GatewayOptions,
    observed: &Arc<Mutex<Observed>>,
    state: &mut DeviceState,
    msg: &Value,
) -> Option<Value> {
    let apply_modes = |gw: &Value| {
        let mut o = observed.lock().unwrap();
        for g in gw.as_array().into_iter().flatten() {
            let (Some(id), Some(mode)) = (g["gw_id"].as_str(), g["auth_mode"].as_i64()) else {
                continue;
            };
            if let Some(slot) = o.auth_modes.iter_mut().find(|(gid, _)| gid == id) {
                slot.1 = mode;
            }
        }
    };
    match opts.firmware {
        Firmware::V8 => {
            let kind = msg["type"].as_str()?;
            let data = |t: &str, d: Value| Some(json!({"type": t, "data": d}));
            match kind {
                "heartbeat" | "connect" => {
                    apply_modes(&msg["gateway"]);
                    None
                }
                "auth" | "tmp_pass" | "reboot_device" => None,
                "kickoff" => {
                    let ip = msg["client_ip"].as_str().unwrap_or("");
                    let mac = msg["client_mac"].as_str().unwrap_or("");
                    if msg["device_id"] != opts.device_id.as_str() {
                        return Some(
                            json!({"type": "kickoff_error", "error": "Device ID mismatch"}),
                        );
                    }
                    match state.clients.iter().position(|(i, m)| i == ip && m == mac) {
                        Some(p) => {
                            state.clients.remove(p);
                            Some(
                                json!({"type": "kickoff_response", "status": "success", "client_ip": ip, "client_mac": mac}),
                            )
                        }
                        None => Some(
                            json!({"type": "kickoff_error", "error": "Client not found", "client_ip": ip, "client_mac": mac}),
                        ),
                    }
                }
                "get_firmware_info" => {
                    data("firmware_info_response", json!({"DISTRIB_ID": "OpenWrt"}))
                }
                "firmware_upgrade" => match msg["url"].as_str() {
                    Some(u) if u.starts_with("http") => {
                        Some(json!({"type": "firmware_upgrade_response", "status": "success"}))
                    }
                    _ => Some(
                        json!({"type": "firmware_upgrade_error", "error": "Missing or invalid url"}),
                    ),
                },
                "update_device_info" => {
                    Some(json!({"type": "update_device_info_response", "status": "success"}))
                }
                "sync_trusted_domain" => {
                    state.domains = msg["domains"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|d| d.as_str().map(str::to_string))
                        .collect();
                    Some(json!({"type": "sync_trusted_domain_response", "status": "success"}))
                }
                "get_trusted_domains" => {
                    Some(json!({"type": "get_trusted_domains_response", "domains": state.domains}))
                }
                "get_client_info" => Some(
                    json!({"type": "get_client_info_response", "data": {"mac": msg["mac"], "is_online": true}}),
                ),
                _ => None,
            }
        }
        Firmware::V9 => {
            if msg.get("response").is_some() {
                let data = &msg["data"];
                if matches!(data["type"].as_str(), Some("connect") | Some("bootstrap")) {
                    apply_modes(&data["gateway"]);
                }
                return None;
            }
            let req_id = match msg.get("req_id") {
                Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
                _ => {
                    return Some(envelope(
                        Value::Null,
                        "generic_response",
                        "error",
                        400,
                        "Missing or invalid req_id",
                        Value::Null,
                    ))
                }
            };
            let op = msg["op"].as_str().unwrap_or("");
            let ok = |t: &str, d: Value| Some(envelope(req_id.clone(), t, "success", 0, "ok", d));
            match op {
                "gateway_heartbeat" => {
                    apply_modes(&msg["gateway"]);
                    None
                }
                "auth" => ok("auth_response", json!({"client_mac": msg["client_mac"]})),
                "tmp_pass" => ok(
                    "tmp_pass_response",
                    json!({"client_mac": msg["client_mac"], "timeout": msg["timeout"]}),
                ),
                "kickoff" => ok(
                    "kickoff_response",
                    json!({"client_ip": msg["client_ip"], "client_mac": msg["client_mac"]}),
                ),
                "get_firmware_info" => {
                    ok("firmware_info_response", json!({"DISTRIB_ID": "OpenWrt"}))
                }
                "firmware_upgrade" | "ota" => ok("firmware_upgrade_response", Value::Null),
                "reboot_device" => None,
                "get_client_info" => ok(
                    "get_client_info_response",
                    json!({"mac": msg["mac"], "is_online": true}),
                ),
                "get_clients" => ok(
                    "get_clients_response",
                    json!({"clients": state.clients.iter().map(|(i, m)| json!({"ip": i, "mac": m})).collect::<Vec<_>>()}),
                ),
                "shell" => ok(
                    "shell_response",
                    json!({"output": format!("ran: {}\n", msg["command"].as_str().unwrap_or("")), "exit_code": 0}),
                ),
                "update_device_info" => ok("update_device_info_response", Value::Null),
                "sync_trusted_domain" => {
                    state.domains = msg["domains"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|d| d.as_str().map(str::to_string))
                        .collect();
                    ok("sync_trusted_domain_response", Value::Null)
                }
                "get_trusted_domains" => ok(
                    "get_trusted_domains_response",
                    json!({"domains": state.domains}),
                ),
                _ => Some(envelope(
                    req_id.clone(),
                    "generic_response",
                    "error",
                    400,
                    "Unknown operation",
                    json!({"requested_op": op}),
                )),
            }
        }
    }
}

fn envelope(req_id: Value, t: &str, status: &str, code: i64, message: &str, data: Value) -> Value {
    let mut inner = Map::new();
    inner.insert("type".into(), t.into());
    inner.insert("data".into(), data);
    inner.insert("status".into(), status.into());
    inner.insert("code".into(), code.into());
    inner.insert("message".into(), message.into());
    inner.insert("req_id".into(), req_id.clone());
    json!({"req_id": req_id, "response": "200", "data": inner})
}

/// Complete frames in a buffer: (opcode, unmasked payload).
fn split_frames(mut data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let opcode = data[0] & 0x0f;
        let masked = data[1] & 0x80 != 0;
        let (len, mut at) = match data[1] & 0x7f {
            126 if data.len() >= 4 => (u16::from_be_bytes([data[2], data[3]]) as usize, 4),
            127 => break,
            126 => break,
            n => (n as usize, 2),
        };
        let mask = if masked {
            if data.len() < at + 4 {
                break;
            }
            let m = [data[at], data[at + 1], data[at + 2], data[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        if data.len() < at + len {
            break;
        }
        let mut payload = data[at..at + len].to_vec();
        if let Some(m) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= m[i % 4];
            }
        }
        out.push((opcode, payload));
        data = &data[at + len..];
    }
    out
}

async fn send_text(tcp: &mut TcpStream, v: &Value) -> std::io::Result<()> {
    send_frame(tcp, 0x1, v.to_string().as_bytes()).await
}

/// One FIN frame, masked as a client must.
async fn send_frame(tcp: &mut TcpStream, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    tcp.write_all(&crate::ws::client_frame(0x80 | opcode, payload))
        .await
}
