//! A relay connection's first words: the `/meshrelay.ashx` URL query
//! (`ironmesh_proto::relay::RelayQuery`, control spec §3.1) and the text frames that start
//! a session (`StartFrame`, §3.4), read as the agent reads them.
//!
//! Input: the query on the first line, then one frame per line.
//!
//! Checked: a query re-built from the parsed fields (every value percent-encoded) parses to
//! the same fields, and device ids in it normalize stably; a start frame read as options
//! or a protocol number reads the same after serializing it, options are `type: options`
//! objects, and anything refused is not a number.

#![no_main]

use ironmesh_fuzz::{assert_id_normalization_is_stable, assert_json_round_trips};
use ironmesh_proto::relay::{is_paired_signal, NotAProtocol, RelayQuery, StartFrame};
use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let query = RelayQuery::parse(lines.next().unwrap_or(""));
    assert_eq!(RelayQuery::parse(&encode(&query)), query);
    for id in [&query.nodeid, &query.id].into_iter().flatten() {
        assert_id_normalization_is_stable(id);
    }

    // The agent's loop: frames before the paired signal are ignored, then control JSON
    // until the protocol number (or a refusal) ends the start.
    let mut paired = false;
    for frame in lines {
        if !paired {
            paired = is_paired_signal(frame);
            continue;
        }
        match StartFrame::parse(frame) {
            Ok(StartFrame::Options(options)) => {
                assert_eq!(options.get("type"), Some(&Value::from("options")));
                let again = assert_json_round_trips(&Value::Object(options.clone()));
                assert_eq!(StartFrame::parse(&again), Ok(StartFrame::Options(options)));
            }
            Ok(StartFrame::Control) => assert!(frame.len() > 3 && frame.starts_with('{')),
            Ok(StartFrame::Protocol(p)) => {
                assert_eq!(frame.trim().parse::<u32>(), Ok(p));
                assert_eq!(
                    StartFrame::parse(&p.to_string()),
                    Ok(StartFrame::Protocol(p))
                );
                break;
            }
            Err(NotAProtocol(refused)) => {
                assert_eq!(refused, frame);
                assert!(frame.trim().parse::<u32>().is_err());
                break;
            }
        }
    }
});

/// The query a client would send for these fields, every value percent-encoded.
fn encode(q: &RelayQuery) -> String {
    let mut pairs = Vec::new();
    let texts = [
        ("id", &q.id),
        ("nodeid", &q.nodeid),
        ("auth", &q.auth),
        ("rauth", &q.rauth),
        ("user", &q.user),
        ("pass", &q.pass),
    ];
    for (key, value) in texts {
        if let Some(value) = value {
            pairs.push(format!(
                "{key}={}",
                utf8_percent_encode(value, NON_ALPHANUMERIC)
            ));
        }
    }
    if let Some(p) = q.p {
        pairs.push(format!("p={p}"));
    }
    for (key, on) in [("browser", q.browser), ("rtc", q.rtc)] {
        if on {
            pairs.push(format!("{key}=1"));
        }
    }
    pairs.join("&")
}
