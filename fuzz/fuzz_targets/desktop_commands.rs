//! Remote desktop command streams (docs/protocol/desktop.md §2–§4) through
//! `ironmesh_proto::desktop`: cut into frames at arbitrary points, deframed, decoded in both
//! directions.
//!
//! Checked: the deframer never panics and never returns more bytes than it was given; every
//! command that decodes encodes to bytes that deframe and decode to the same command (the
//! round trip), and input is told apart consistently.

#![no_main]

use ironmesh_fuzz as _;
use ironmesh_proto::desktop::{Deframer, ToAgent, ToViewer};
use libfuzzer_sys::fuzz_target;

fn once(bytes: &[u8]) -> ironmesh_proto::desktop::RawCommand {
    let mut d = Deframer::default();
    d.push(bytes);
    let raw = d.next_command().expect("re-encoded bytes deframe").expect("a whole command");
    assert_eq!(d.pending(), 0, "one command, nothing left over");
    raw
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let chunk = (split as usize % 7) + 1;
    let mut deframer = Deframer::new(1 << 20);
    let mut taken = 0usize;
    for piece in stream.chunks(chunk) {
        deframer.push(piece);
        loop {
            match deframer.next_command() {
                Ok(Some(raw)) => {
                    taken += raw.body.len();
                    assert!(taken <= stream.len());
                    if let Ok(cmd) = ToAgent::decode(&raw) {
                        let again = ToAgent::decode(&once(&cmd.to_bytes())).expect("round trip");
                        assert_eq!(again, cmd);
                        assert_eq!(again.is_input(), cmd.is_input());
                    }
                    if let Ok(cmd) = ToViewer::decode(&raw) {
                        let again = ToViewer::decode(&once(&cmd.to_bytes())).expect("round trip");
                        assert_eq!(again, cmd);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
