//! `/control.ashx` text frames into `ironmesh_proto::control::Request::parse` (control spec
//! §2.1), and the same text into the other parsers a control connection meets: the
//! `x-meshauth` header and the id forms of request fields.
//!
//! Checked: an accepted request re-parses to itself from its serialized body, its `action`
//! is the body's 3-to-32-character string, replies echo `responseid` and `tag`; refusals
//! name one of the four causes; `x-meshauth` headers re-encode to the same credentials; id
//! normalization is stable.

#![no_main]

use ironmesh_fuzz::{assert_id_normalization_is_stable, assert_json_round_trips};
use ironmesh_proto::control::{EnvelopeError, Request};
use ironmesh_proto::meshauth;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8; lossy conversion keeps every input useful.
    let text = String::from_utf8_lossy(data);
    match Request::parse(&text) {
        Ok(req) => request_holds_up(&req),
        Err(e) => {
            assert!(["badjson", "notobject", "noaction", "badaction"].contains(&e.cause()));
            let is_json = serde_json::from_str::<Value>(&text).is_ok();
            assert_eq!(matches!(e, EnvelopeError::BadJson(_)), !is_json);
        }
    }
    header_round_trips(&text);
    assert_id_normalization_is_stable(&text);
});

fn request_holds_up(req: &Request) {
    assert_eq!(
        req.body.get("action"),
        Some(&Value::String(req.action.clone()))
    );
    assert!((3..=32).contains(&req.action.chars().count()));
    let body = Value::Object(req.body.clone());
    let text = assert_json_round_trips(&body);
    assert_eq!(Request::parse(&text).as_ref(), Ok(req));

    // Replies carry the request's action and correlation fields, and nothing else yet.
    let reply = req.reply().into_value();
    let reply = reply.as_object().unwrap();
    assert_eq!(reply.get("action"), req.body.get("action"));
    for key in ["responseid", "tag"] {
        assert_eq!(reply.get(key), req.body.get(key));
    }
    assert!(reply
        .keys()
        .all(|k| ["action", "responseid", "tag"].contains(&k.as_str())));
    let error = req.error("Access denied");
    assert_eq!(error.get("result"), Some(&Value::from("Access denied")));
    assert_json_round_trips(&error);

    // The typed field readers agree with the raw values; ids in fields stay stable.
    for (key, value) in &req.body {
        assert_eq!(req.str_field(key), value.as_str());
        assert_eq!(req.bool_field(key), value.as_bool());
        assert_eq!(
            req.u32_field(key).map(u64::from),
            value.as_u64().filter(|v| *v <= u64::from(u32::MAX))
        );
        if let Some(s) = value.as_str() {
            assert_id_normalization_is_stable(s);
        }
    }
}

/// `base64(user),base64(pass)[,base64(token)]`: what parses re-encodes to the same values.
fn header_round_trips(text: &str) {
    let Ok(auth) = meshauth::parse(text) else {
        return;
    };
    let mut header = meshauth::encode(&auth.username, &auth.password);
    if let Some(token) = &auth.token {
        use base64::Engine;
        header.push(',');
        header.push_str(&base64::engine::general_purpose::STANDARD.encode(token));
    }
    assert_eq!(meshauth::parse(&header), Ok(auth));
}
