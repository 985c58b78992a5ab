//! Rights the server enforces inside a relayed session, on what the user side sends
//! (docs/protocol/desktop.md §5). Admission checked the protocol the URL named; the session
//! really runs the protocol of the user's start frame, so that one is checked again here.
//! A desktop session of a view-only user (`REMOTE_VIEW_ONLY`) gets pictures and no input:
//! the server drops its keyboard and mouse commands before the agent sees them (ironmesh-agent
//! and the stock agent drop them too, from the rights in the tunnel request).

use axum::extract::ws::Message;
use ironmesh_core::access::check_session_rights;
use ironmesh_proto::desktop::{encode_raw, Deframer, ToAgent};
use ironmesh_proto::relay::SessionKind;
use ironmesh_proto::rights::MeshRights;

use super::close;

/// Largest desktop command a viewer sends (settings, keys and mouse are a few bytes).
const MAX_VIEWER_COMMAND: usize = 4096;

/// What to do with one frame from the user side.
#[derive(Debug)]
pub enum Verdict {
    Forward(Message),
    /// Nothing is left to forward (only input, dropped).
    Drop,
    /// End the session: close code and reason for the user side.
    Refuse(u16, String),
}

/// Watches the user side of one session. Without rights (a session the agent's relay id
/// paired, not a user naming a device) it passes everything.
pub struct SessionGuard {
    rights: Option<MeshRights>,
    checked: bool,
    view_only: Option<ViewOnly>,
}

struct ViewOnly {
    stream: Deframer,
    dropped: u64,
}

impl SessionGuard {
    pub fn new(rights: Option<MeshRights>) -> SessionGuard {
        SessionGuard {
            rights,
            checked: false,
            view_only: None,
        }
    }

    /// Input commands dropped so far.
    pub fn dropped_input(&self) -> u64 {
        self.view_only.as_ref().map_or(0, |v| v.dropped)
    }

    /// Judges a frame the user sent; `protocol` is the session's protocol once its start
    /// frame has been seen (the tap reads it from this same frame first).
    pub fn judge(&mut self, protocol: Option<u32>, msg: Message) -> Verdict {
        let Some(rights) = self.rights else {
            return Verdict::Forward(msg);
        };
        if !self.checked {
            let Some(p) = protocol else {
                return Verdict::Forward(msg);
            };
            self.checked = true;
            let kind = SessionKind::of(Some(p));
            if let Err(denied) = check_session_rights(rights, kind) {
                return Verdict::Refuse(close::FORBIDDEN, denied.to_string());
            }
            if kind == SessionKind::Desktop && rights.restricted(MeshRights::REMOTE_VIEW_ONLY) {
                self.view_only = Some(ViewOnly {
                    stream: Deframer::new(MAX_VIEWER_COMMAND),
                    dropped: 0,
                });
            }
            // The start frame itself goes through.
            return Verdict::Forward(msg);
        }
        let Some(view) = self.view_only.as_mut() else {
            return Verdict::Forward(msg);
        };
        let bytes: &[u8] = match &msg {
            // JSON control messages (ping, clipboard requests) pass; anything else in text
            // would be commands.
            Message::Text(t) if t.as_str().starts_with('{') => return Verdict::Forward(msg),
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            _ => return Verdict::Forward(msg),
        };
        view.stream.push(bytes);
        let mut kept = Vec::new();
        loop {
            match view.stream.next_command() {
                Ok(None) => break,
                Ok(Some(raw)) => match ToAgent::decode(&raw) {
                    Ok(c) if c.is_input() => view.dropped += 1,
                    Ok(_) => encode_raw(raw.cmd, &raw.body, &mut kept),
                    Err(e) => return Verdict::Refuse(close::BAD_REQUEST, e.to_string()),
                },
                Err(e) => return Verdict::Refuse(close::BAD_REQUEST, e.to_string()),
            }
        }
        if kept.is_empty() {
            Verdict::Drop
        } else {
            Verdict::Forward(Message::Binary(kept.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironmesh_proto::desktop::KeyAction;

    fn bin(cmds: &[ToAgent]) -> Message {
        let mut out = Vec::new();
        for c in cmds {
            c.encode(&mut out);
        }
        Message::Binary(out.into())
    }

    const VIEW_ONLY: u32 = MeshRights::REMOTE_CONTROL | MeshRights::REMOTE_VIEW_ONLY;

    #[test]
    fn a_view_only_desktop_loses_its_input_and_keeps_the_rest() {
        let mut g = SessionGuard::new(Some(MeshRights(VIEW_ONLY)));
        assert!(matches!(
            g.judge(Some(2), Message::Text("2".into())),
            Verdict::Forward(_)
        ));
        let key = ToAgent::Key {
            action: KeyAction::Down,
            code: 65,
        };
        let refresh = ToAgent::Refresh;
        match g.judge(
            Some(2),
            bin(&[key.clone(), refresh.clone(), ToAgent::CtrlAltDel]),
        ) {
            Verdict::Forward(Message::Binary(b)) => assert_eq!(&b[..], &refresh.to_bytes()[..]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(g.judge(Some(2), bin(&[key])), Verdict::Drop));
        assert_eq!(g.dropped_input(), 3);
        assert!(matches!(
            g.judge(Some(2), Message::Text("{\"type\":\"ping\"}".into())),
            Verdict::Forward(_)
        ));
        assert!(matches!(
            g.judge(Some(2), Message::Binary(vec![0, 99, 0, 4].into())),
            Verdict::Refuse(close::BAD_REQUEST, _)
        ));
    }

    #[test]
    fn full_control_and_other_protocols_pass_untouched() {
        let mut g = SessionGuard::new(Some(MeshRights(MeshRights::REMOTE_CONTROL)));
        g.judge(Some(2), Message::Text("2".into()));
        let key = bin(&[ToAgent::Key {
            action: KeyAction::Down,
            code: 65,
        }]);
        assert!(matches!(g.judge(Some(2), key.clone()), Verdict::Forward(_)));
        let mut g = SessionGuard::new(Some(MeshRights(VIEW_ONLY)));
        g.judge(Some(1), Message::Text("1".into()));
        assert!(matches!(g.judge(Some(1), key), Verdict::Forward(_)));
    }

    #[test]
    fn the_started_protocol_is_checked_again() {
        // Admitted for a terminal (URL p=1), then starting a desktop it may not open.
        let rights = MeshRights(MeshRights::REMOTE_CONTROL | MeshRights::NO_DESKTOP);
        let mut g = SessionGuard::new(Some(rights));
        assert!(matches!(
            g.judge(Some(2), Message::Text("2".into())),
            Verdict::Refuse(close::FORBIDDEN, _)
        ));
    }
}
