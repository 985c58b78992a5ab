//! The apfree-wifidog ("WiFiDogX") gateway WebSocket protocol, both generations
//! (docs/protocol/wifidogx.md): 8.x messages keyed by `type`, 9.x by `op` with `req_id` and
//! enveloped replies. Pure parsing and building; the frame-size rule lives here too because
//! it is a property of the device's wire handling.

use serde_json::{json, Map, Value};

/// Which protocol generation a device speaks (decided by its first frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// ≤ 8.11: `type`, flat replies, no correlation id.
    Legacy,
    /// ≥ 9.04: `op`, `req_id` on every server frame, replies in an envelope.
    Current,
}

impl Generation {
    pub fn name(self) -> &'static str {
        match self {
            Generation::Legacy => "8.x",
            Generation::Current => "9.x",
        }
    }
}

/// One gateway (SSID/interface) of a device, as reported in `connect`/`heartbeat`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayInfo {
    pub gw_id: String,
    pub channel: Option<String>,
    pub address_v4: Option<String>,
    pub address_v6: Option<String>,
    pub interface: Option<String>,
    /// 1 = captive portal active, 0 = open.
    pub auth_mode: i64,
}

impl GatewayInfo {
    pub fn to_json(&self) -> Value {
        json!({
            "gw_id": self.gw_id,
            "gw_channel": self.channel,
            "gw_address_v4": self.address_v4,
            "gw_address_v6": self.address_v6,
            "gw_interface": self.interface,
            "auth_mode": self.auth_mode,
        })
    }
}

/// `connect` or `heartbeat` from a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub generation: Generation,
    pub heartbeat: bool,
    pub device_id: String,
    /// 9.x only: 0 cloud, 1 bypass, 2 local.
    pub mode: Option<i64>,
    pub req_id: Option<Value>,
    pub device_info: Option<Value>,
    pub gateways: Vec<GatewayInfo>,
    pub sys_info: Option<Value>,
}

/// A device's answer to a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub generation: Generation,
    /// 9.x: the echoed `req_id`.
    pub req_id: Option<String>,
    /// e.g. `kickoff_response`, `firmware_info_error`.
    pub reply_type: String,
    /// Whether the device reports success.
    pub ok: bool,
    /// The whole message (8.x) or the envelope's `data` (9.x).
    pub body: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeviceFrame {
    Report(Report),
    Reply(Reply),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WifidogError {
    #[error("malformed JSON: {0}")]
    BadJson(String),
    #[error("message is not a JSON object")]
    NotAnObject,
    #[error("message has neither \"type\" nor \"op\"")]
    NoKind,
    #[error("unknown message kind {0:?}")]
    Unknown(String),
    #[error("device_id longer than {MAX_DEVICE_ID} characters, or with control characters")]
    BadDeviceId,
    #[error("{0} without device_id")]
    NoDeviceId(&'static str),
}

fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Longest device id accepted (real ones are MAC-like or short serials).
pub const MAX_DEVICE_ID: usize = 64;
/// Most gateway entries kept from one report (a device has a handful of interfaces).
pub const MAX_GATEWAYS: usize = 16;
/// Longest text field of a gateway entry kept.
pub const MAX_GATEWAY_FIELD: usize = 64;
/// Largest `device_info` or `sys_info` object kept, in bytes of JSON; larger ones are
/// dropped (a real device reports a few hundred bytes).
pub const MAX_INFO_LEN: usize = 4096;

fn short(v: Option<&Value>) -> Option<String> {
    string(v).filter(|s| s.chars().count() <= MAX_GATEWAY_FIELD)
}

fn gateways(v: Option<&Value>) -> Vec<GatewayInfo> {
    v.and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|g| {
                    Some(GatewayInfo {
                        gw_id: short(g.get("gw_id"))?,
                        channel: short(g.get("gw_channel")),
                        address_v4: short(g.get("gw_address_v4")),
                        address_v6: short(g.get("gw_address_v6")),
                        interface: short(g.get("gw_interface")),
                        auth_mode: int(g.get("auth_mode")).unwrap_or(0),
                    })
                })
                .take(MAX_GATEWAYS)
                .collect()
        })
        .unwrap_or_default()
}

/// An info object, unless it is too large to keep.
fn info(v: Option<&Value>) -> Option<Value> {
    v.filter(|v| v.to_string().len() <= MAX_INFO_LEN).cloned()
}

/// Parses one text frame from a device.
pub fn parse_device_frame(text: &str) -> Result<DeviceFrame, WifidogError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| WifidogError::BadJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(WifidogError::NotAnObject);
    };
    // 9.x envelope: {req_id, response, data:{type, status, …}}.
    if obj.contains_key("response") {
        let data = obj.get("data").cloned().unwrap_or(Value::Null);
        let reply_type = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("generic_response")
            .to_string();
        let ok = data.get("status").and_then(Value::as_str) != Some("error");
        return Ok(DeviceFrame::Reply(Reply {
            generation: Generation::Current,
            req_id: string(obj.get("req_id")).or_else(|| string(data.get("req_id"))),
            reply_type,
            ok,
            body: data,
        }));
    }
    let (generation, kind) = match (obj.get("op"), obj.get("type")) {
        (Some(Value::String(op)), _) => (Generation::Current, op.clone()),
        (_, Some(Value::String(t))) => (Generation::Legacy, t.clone()),
        _ => return Err(WifidogError::NoKind),
    };
    match kind.as_str() {
        "connect" | "heartbeat" => {
            let heartbeat = kind == "heartbeat";
            let device_id = string(obj.get("device_id"))
                .filter(|d| !d.is_empty())
                .ok_or(WifidogError::NoDeviceId(if heartbeat {
                    "heartbeat"
                } else {
                    "connect"
                }))?;
            if device_id.chars().count() > MAX_DEVICE_ID || device_id.chars().any(char::is_control)
            {
                return Err(WifidogError::BadDeviceId);
            }
            Ok(DeviceFrame::Report(Report {
                generation,
                heartbeat,
                device_id,
                mode: int(obj.get("mode")),
                req_id: obj.get("req_id").cloned(),
                device_info: info(obj.get("device_info")),
                gateways: gateways(obj.get("gateway")),
                sys_info: info(obj.get("sys_info")),
            }))
        }
        other
            if generation == Generation::Legacy
                && (other.ends_with("_response") || other.ends_with("_error")) =>
        {
            Ok(DeviceFrame::Reply(Reply {
                generation,
                req_id: None,
                reply_type: other.to_string(),
                ok: other.ends_with("_response")
                    && obj.get("status").and_then(Value::as_str) != Some("error"),
                body: Value::Object(obj.clone()),
            }))
        }
        other => Err(WifidogError::Unknown(other.to_string())),
    }
}

/// The server's acknowledgement of `connect`/`heartbeat`, carrying the wanted auth mode of
/// each gateway (docs/protocol/wifidogx.md §6.1).
pub fn ack(report: &Report, auth_modes: &[(String, i64)]) -> Value {
    let gw: Vec<Value> = auth_modes
        .iter()
        .map(|(id, mode)| json!({"gw_id": id, "auth_mode": mode}))
        .collect();
    let kind = if report.heartbeat {
        "heartbeat"
    } else {
        "connect"
    };
    match report.generation {
        Generation::Legacy => json!({"type": kind, "gateway": gw}),
        Generation::Current => {
            let req_id = report.req_id.clone().unwrap_or(Value::String("0".into()));
            json!({"req_id": req_id, "response": "200", "data": {"type": kind, "gateway": gw}})
        }
    }
}

/// A command to a device. 9.x carries `op` and `req_id`; 8.x `type`.
pub fn command(
    generation: Generation,
    op: &str,
    params: &Map<String, Value>,
    req_id: &str,
) -> Value {
    let mut obj = params.clone();
    obj.remove("type");
    obj.remove("op");
    obj.remove("req_id");
    match generation {
        Generation::Legacy => {
            obj.insert("type".into(), op.into());
        }
        Generation::Current => {
            obj.insert("op".into(), op.into());
            obj.insert("req_id".into(), req_id.into());
        }
    }
    Value::Object(obj)
}

/// Pushes wanted auth modes: 9.x `gateway_heartbeat`; 8.x a `heartbeat`-typed message,
/// which 8.x applies (docs/protocol/wifidogx.md §4, §5).
pub fn auth_mode_push(generation: Generation, auth_modes: &[(String, i64)], req_id: &str) -> Value {
    let gw: Vec<Value> = auth_modes
        .iter()
        .map(|(id, mode)| json!({"gw_id": id, "auth_mode": mode}))
        .collect();
    match generation {
        Generation::Legacy => json!({"type": "heartbeat", "gateway": gw}),
        Generation::Current => json!({"op": "gateway_heartbeat", "req_id": req_id, "gateway": gw}),
    }
}

/// What answer a command gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// No reply ever comes (8.x `auth`, `tmp_pass`; `reboot_device`; `gateway_heartbeat`).
    Nothing,
    /// 9.x: the envelope with this `req_id`.
    ReqId,
    /// 8.x: a flat reply whose type starts with one of these prefixes.
    Types(Vec<String>),
}

/// The commands ironmesh sends, per generation (docs/protocol/wifidogx.md §4, §5).
pub fn expectation(generation: Generation, op: &str) -> Option<Expect> {
    let legacy_reply = |base: &str| {
        Some(Expect::Types(vec![
            format!("{base}_response"),
            format!("{base}_error"),
        ]))
    };
    match generation {
        Generation::Current => match op {
            "auth"
            | "kickoff"
            | "tmp_pass"
            | "get_firmware_info"
            | "firmware_upgrade"
            | "get_client_info"
            | "get_clients"
            | "shell"
            | "update_device_info"
            | "sync_trusted_domain"
            | "get_trusted_domains"
            | "sync_trusted_wildcard_domains"
            | "get_trusted_wildcard_domains"
            | "get_sys_info"
            | "get_status"
            | "get_device_info" => Some(Expect::ReqId),
            "reboot_device" | "gateway_heartbeat" => Some(Expect::Nothing),
            _ => None,
        },
        Generation::Legacy => match op {
            "auth" | "tmp_pass" | "reboot_device" => Some(Expect::Nothing),
            "kickoff" | "firmware_upgrade" | "update_device_info" | "get_client_info"
            | "get_sys_info" => legacy_reply(op),
            "get_firmware_info" => legacy_reply("firmware_info"),
            "sync_trusted_domain"
            | "get_trusted_domains"
            | "sync_trusted_wildcard_domains"
            | "get_trusted_wildcard_domains" => legacy_reply(op),
            _ => None,
        },
    }
}

/// The WebSocket frame size of a text message sent by a server (unmasked): the device reads into a
/// 1024-byte buffer and wedges for good on anything that does not fit (docs/protocol/wifidogx.md
/// §2).
pub fn frame_size(payload_len: usize) -> usize {
    payload_len
        + match payload_len {
            0..=125 => 2,
            126..=65535 => 4,
            _ => 10,
        }
}

/// Largest frame ironmesh sends to a gateway: comfortably below the 1024-byte read buffer.
pub const MAX_FRAME: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_generations_and_parses_reports() {
        let legacy = r#"{ "type": "connect", "device_id": "DEV1", "gateway": [ { "gw_id": "AA", "gw_channel": "c", "gw_address_v4": "192.168.1.1", "auth_mode": 1, "gw_interface": "br-lan" } ] }"#;
        let DeviceFrame::Report(r) = parse_device_frame(legacy).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.generation, r.heartbeat, r.device_id.as_str()),
            (Generation::Legacy, false, "DEV1")
        );
        assert_eq!(r.gateways[0].auth_mode, 1);
        let current = r#"{"op":"heartbeat","device_id":"DEV2","mode":0,"gateway":[{"gw_id":"BB","auth_mode":"0"}],"sys_info":{"sys_uptime":5},"req_id":"6b8b4567327b23c6"}"#;
        let DeviceFrame::Report(r) = parse_device_frame(current).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.generation, r.heartbeat, r.mode),
            (Generation::Current, true, Some(0))
        );
        assert_eq!(
            ack(&r, &[("BB".into(), 1)]),
            json!({"req_id":"6b8b4567327b23c6","response":"200","data":{"type":"heartbeat","gateway":[{"gw_id":"BB","auth_mode":1}]}})
        );
    }

    #[test]
    fn parses_replies_of_both_generations() {
        let DeviceFrame::Reply(r) =
            parse_device_frame(r#"{"type":"kickoff_error","error":"Client not found"}"#).unwrap()
        else {
            panic!()
        };
        assert!(!r.ok && r.reply_type == "kickoff_error");
        let env = r#"{"req_id":"a1","response":"200","data":{"type":"kickoff_response","status":"error","code":2000,"message":"x","req_id":"a1"}}"#;
        let DeviceFrame::Reply(r) = parse_device_frame(env).unwrap() else {
            panic!()
        };
        assert_eq!((r.req_id.as_deref(), r.ok), (Some("a1"), false));
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(
            parse_device_frame("{"),
            Err(WifidogError::BadJson(_))
        ));
        assert_eq!(parse_device_frame("[]"), Err(WifidogError::NotAnObject));
        assert_eq!(parse_device_frame("{}"), Err(WifidogError::NoKind));
        assert_eq!(
            parse_device_frame(r#"{"type":"connect"}"#),
            Err(WifidogError::NoDeviceId("connect"))
        );
        assert_eq!(
            parse_device_frame(r#"{"type":"dance"}"#),
            Err(WifidogError::Unknown("dance".into()))
        );
    }

    #[test]
    fn commands_and_sizes() {
        let mut p = Map::new();
        p.insert("client_mac".into(), "aa:bb".into());
        assert_eq!(
            command(Generation::Legacy, "tmp_pass", &p, "x"),
            json!({"type":"tmp_pass","client_mac":"aa:bb"})
        );
        assert_eq!(
            command(Generation::Current, "tmp_pass", &p, "r1"),
            json!({"op":"tmp_pass","req_id":"r1","client_mac":"aa:bb"})
        );
        assert_eq!(
            expectation(Generation::Legacy, "auth"),
            Some(Expect::Nothing)
        );
        assert_eq!(
            expectation(Generation::Current, "auth"),
            Some(Expect::ReqId)
        );
        assert_eq!(expectation(Generation::Legacy, "shell"), None);
        assert_eq!(frame_size(125), 127);
        assert_eq!(frame_size(126), 130);
    }
}
