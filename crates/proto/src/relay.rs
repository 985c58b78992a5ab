//! `/meshrelay.ashx` (docs/protocol/control.md §3): the URL query both sides connect with, and the
//! user side's first frames, which tell the agent what session to start (§3.4). The relay
//! itself forwards frames verbatim; only the agent reads them.

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

/// The relay URL's query (docs/protocol/control.md §3.1). Parsed by hand: values may hold base64
/// (`+`, `/`, `=`) and b64@$ ids, so `+` must stay `+` (form decoding would turn it into a space).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayQuery {
    /// Pairing key; or, when no `nodeid` is given, possibly a device id (docs/protocol/control.md
    /// §3.2).
    pub id: Option<String>,
    pub nodeid: Option<String>,
    /// Protocol number: 1 terminal, 2 desktop, 5 files, …
    pub p: Option<u32>,
    /// User credential: a sealed token, or base64 of `user:password`.
    pub auth: Option<String>,
    /// Agent credential: a relay token.
    pub rauth: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    /// `browser=1`: the user side (kept for logs).
    pub browser: bool,
    /// `rtc=1`: the client would like WebRTC; ironmesh relays only, so it is ignored.
    pub rtc: bool,
}

impl RelayQuery {
    pub fn parse(raw: &str) -> RelayQuery {
        let mut q = RelayQuery::default();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
            match key {
                "id" => q.id = Some(value),
                "nodeid" => q.nodeid = Some(value),
                "p" => q.p = value.parse().ok(),
                "auth" => q.auth = Some(value),
                "rauth" => q.rauth = Some(value),
                "user" => q.user = Some(value),
                "pass" => q.pass = Some(value),
                "browser" => q.browser = value == "1",
                "rtc" => q.rtc = value == "1",
                _ => {}
            }
        }
        q
    }
}

/// What a session on relay protocol number `p` gives access to, as far as rights go
/// (docs/protocol/control.md §3.1, §4.2): each kind has a "no …" right that forbids it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// 1 (terminal), 6 (PowerShell), 8 and 9 (terminal as the logged-in user).
    Terminal,
    /// 2.
    Desktop,
    /// 5 (files), 10 (file transfer).
    Files,
    /// Any other number, or none given.
    Other,
}

impl SessionKind {
    pub fn of(protocol: Option<u32>) -> SessionKind {
        match protocol {
            Some(1 | 6 | 8 | 9) => SessionKind::Terminal,
            Some(2) => SessionKind::Desktop,
            Some(5 | 10) => SessionKind::Files,
            _ => SessionKind::Other,
        }
    }
}

/// Whether a text frame from the relay is its "paired" signal: `c`, or `cr` when the
/// session is recorded (docs/protocol/control.md §3.3 step 3). Frames before it are ignored.
pub fn is_paired_signal(text: &str) -> bool {
    text == "c" || text == "cr"
}

/// One frame of the user side after the paired signal and before the session starts
/// (docs/protocol/control.md §3.4, `meshcore.js:2998-3012`).
#[derive(Debug, Clone, PartialEq)]
pub enum StartFrame {
    /// `{"type":"options",…}`: terminal size and other session options, kept whole.
    Options(Map<String, Value>),
    /// Other control JSON, or text that only looks like it (more than 3 bytes starting with
    /// `{`): ignored.
    Control,
    /// The protocol number (1 terminal, 5 files, …): the session starts.
    Protocol(u32),
}

/// A frame that is neither control JSON nor a protocol number: the agent ends the tunnel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a protocol number, got {0:?}")]
pub struct NotAProtocol(pub String);

impl StartFrame {
    /// Reads one frame's text (binary frames are read as lossy UTF-8 by the caller).
    pub fn parse(text: &str) -> Result<StartFrame, NotAProtocol> {
        if text.len() > 3 && text.starts_with('{') {
            return Ok(match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(o))
                    if o.get("type").and_then(Value::as_str) == Some("options") =>
                {
                    StartFrame::Options(o)
                }
                _ => StartFrame::Control,
            });
        }
        text.trim()
            .parse()
            .map(StartFrame::Protocol)
            .map_err(|_| NotAProtocol(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plus_and_decodes_percent() {
        let q = RelayQuery::parse(
            "id=abc&p=5&auth=YWJj+ZA==&nodeid=node%2F%2FAB%24CD%40E&browser=1&rtc=0",
        );
        assert_eq!(q.id.as_deref(), Some("abc"));
        assert_eq!(q.p, Some(5));
        assert_eq!(q.auth.as_deref(), Some("YWJj+ZA=="));
        assert_eq!(q.nodeid.as_deref(), Some("node//AB$CD@E"));
        assert!(q.browser && !q.rtc);
        // meshctrl appends an unescaped token with `=` padding.
        let q = RelayQuery::parse("id=x&auth=ab$c@d=");
        assert_eq!(q.auth.as_deref(), Some("ab$c@d="));
    }

    #[test]
    fn start_frames_as_meshctrl_sends_them() {
        assert!(is_paired_signal("c") && is_paired_signal("cr") && !is_paired_signal("c "));
        let StartFrame::Options(o) =
            StartFrame::parse(r#"{"ctrlChannel":"102938","type":"options","cols":80,"rows":24}"#)
                .unwrap()
        else {
            panic!("options expected")
        };
        assert_eq!(o.get("cols"), Some(&Value::from(80)));
        assert_eq!(
            StartFrame::parse(r#"{"ctrlChannel":"102938","type":"ping"}"#),
            Ok(StartFrame::Control)
        );
        assert_eq!(StartFrame::parse("{not json"), Ok(StartFrame::Control));
        assert_eq!(StartFrame::parse("1"), Ok(StartFrame::Protocol(1)));
        assert_eq!(StartFrame::parse(" 5\n"), Ok(StartFrame::Protocol(5)));
        // Short text starting with `{` is not JSON to the agent.
        assert_eq!(StartFrame::parse("{}"), Err(NotAProtocol("{}".into())));
        assert!(StartFrame::parse("terminal").is_err());
    }
}
