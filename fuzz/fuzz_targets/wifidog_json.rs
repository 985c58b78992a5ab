//! WiFiDogX device frames into `ironmesh_proto::wifidog::parse_device_frame`, both
//! generations (`shared/spec/wifidogx.md`): 8.x keyed by `type`, 9.x by `op` with `req_id`,
//! 9.x replies in a `{req_id, response, data}` envelope.
//!
//! Checked: a report or reply re-built as the device would send it parses to the same
//! value; the generation follows `op`/`type`/`response`; a 9.x report's acknowledgement is
//! an envelope that parses as the reply to it.

#![no_main]

use ironmesh_fuzz::assert_json_round_trips;
use ironmesh_proto::wifidog::{self, DeviceFrame, Generation, Reply, Report, WifidogError};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = wifidog::parse_device_frame(&text);
    let object = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return assert_eq!(parsed, Err(WifidogError::NotAnObject)),
        Err(_) => return assert!(matches!(parsed, Err(WifidogError::BadJson(_)))),
    };
    match parsed {
        Ok(DeviceFrame::Report(report)) => report_holds_up(&object, &report),
        Ok(DeviceFrame::Reply(reply)) => reply_holds_up(&object, &reply),
        Err(WifidogError::NoKind) => {
            assert!(!object.contains_key("response"));
            assert!(!object.get("op").is_some_and(Value::is_string));
            assert!(!object.get("type").is_some_and(Value::is_string));
        }
        Err(_) => assert!(!object.contains_key("response")),
    }
});

fn generation_of(object: &Map<String, Value>) -> Generation {
    if object.contains_key("response") || object.get("op").is_some_and(Value::is_string) {
        Generation::Current
    } else {
        Generation::Legacy
    }
}

fn report_holds_up(object: &Map<String, Value>, report: &Report) {
    assert_eq!(report.generation, generation_of(object));
    assert!(!report.device_id.is_empty());
    // The same report as the device would send it.
    let kind = if report.heartbeat {
        "heartbeat"
    } else {
        "connect"
    };
    let mut sent = Map::new();
    let kind_key = match report.generation {
        Generation::Legacy => "type",
        Generation::Current => "op",
    };
    sent.insert(kind_key.into(), kind.into());
    sent.insert("device_id".into(), report.device_id.clone().into());
    if let Some(mode) = report.mode {
        sent.insert("mode".into(), mode.into());
    }
    for (key, value) in [
        ("req_id", &report.req_id),
        ("device_info", &report.device_info),
        ("sys_info", &report.sys_info),
    ] {
        if let Some(value) = value {
            sent.insert(key.into(), value.clone());
        }
    }
    let gateways: Vec<Value> = report.gateways.iter().map(|g| g.to_json()).collect();
    sent.insert("gateway".into(), gateways.into());
    let text = assert_json_round_trips(&Value::Object(sent));
    assert_eq!(
        wifidog::parse_device_frame(&text),
        Ok(DeviceFrame::Report(report.clone()))
    );

    // Our acknowledgement: 8.x a flat `type` message, 9.x an envelope echoing `req_id`,
    // which reads as a reply of the same kind.
    let modes: Vec<(String, i64)> = report
        .gateways
        .iter()
        .map(|g| (g.gw_id.clone(), 1 - g.auth_mode.clamp(0, 1)))
        .collect();
    let ack = wifidog::ack(report, &modes);
    let text = assert_json_round_trips(&ack);
    match report.generation {
        Generation::Legacy => {
            assert_eq!(ack.get("type"), Some(&Value::from(kind)));
            assert_eq!(ack["gateway"].as_array().map(Vec::len), Some(modes.len()));
        }
        Generation::Current => {
            let Ok(DeviceFrame::Reply(reply)) = wifidog::parse_device_frame(&text) else {
                panic!("9.x ack is not an envelope: {text}");
            };
            assert_eq!((reply.reply_type.as_str(), reply.ok), (kind, true));
            assert_eq!(
                ack["data"]["gateway"],
                json!(modes
                    .iter()
                    .map(|(id, mode)| json!({"gw_id": id, "auth_mode": mode}))
                    .collect::<Vec<_>>())
            );
        }
    }
}

fn reply_holds_up(object: &Map<String, Value>, reply: &Reply) {
    assert_eq!(reply.generation, generation_of(object));
    let resent = match reply.generation {
        // 8.x: the whole message is the reply.
        Generation::Legacy => {
            assert_eq!(reply.body, Value::Object(object.clone()));
            assert!(
                reply.reply_type.ends_with("_response") || reply.reply_type.ends_with("_error")
            );
            reply.body.clone()
        }
        // 9.x: the envelope around `data`, with the `req_id` it was matched by.
        Generation::Current => {
            let mut envelope = json!({"response": "200", "data": reply.body});
            if let Some(req_id) = &reply.req_id {
                envelope["req_id"] = req_id.clone().into();
            }
            envelope
        }
    };
    if reply.reply_type.ends_with("_error") && reply.generation == Generation::Legacy {
        assert!(!reply.ok);
    }
    let text = assert_json_round_trips(&resent);
    assert_eq!(
        wifidog::parse_device_frame(&text),
        Ok(DeviceFrame::Reply(reply.clone()))
    );
}
