//! Messages to the person at a device: `toast` (a notification) here, and the checks and
//! audit record of `msg` type `messagebox` (routed by `remote::Msg`).
//! docs/protocol/control.md §2.4 (devicetoast, devicemessage); agent.md §5.2.

use ironmesh_core::access::{Actor, SignedIn};
use ironmesh_core::events::Event;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::rights::MeshRights;
use serde_json::{json, Value};

use super::power::{authorize_each, device_ids, reserve_online};
use super::{ok, Action, Replies};
use crate::control::session::ControlSession;
use crate::live::agents::ToAgent;

/// Longest message text (MeshCentral's limit).
const MAX_TEXT: usize = 4096;
/// Longest title (MeshCentral's limit).
const MAX_TITLE: usize = 512;
/// The title when the request has none (or an unusable one).
const DEFAULT_TITLE: &str = "ironmesh";

/// The message text: a string of 1 to 4096 characters, else "Invalid message".
fn text(req: &Request) -> DomainResult<String> {
    match req.body.get("msg") {
        Some(Value::String(m)) if !m.is_empty() && m.chars().count() <= MAX_TEXT => Ok(m.clone()),
        _ => Err(DomainError::Invalid("Invalid message".into())),
    }
}

/// The title; a missing, empty, non-string or over-long title becomes the default, as in
/// MeshCentral.
fn title(req: &Request) -> String {
    match req.body.get("title") {
        Some(Value::String(t)) if !t.is_empty() && t.chars().count() <= MAX_TITLE => t.clone(),
        _ => DEFAULT_TITLE.to_string(),
    }
}

/// `msg` type `messagebox`: the title and text the agent needs, checked before routing.
/// Returns the (possibly defaulted) title to put in the message.
pub(super) fn check_messagebox(req: &Request) -> DomainResult<String> {
    text(req)?;
    match req.body.get("timeout") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some() => {}
        Some(_) => {
            return Err(DomainError::Invalid(
                "Field timeout must be a number of milliseconds".into(),
            ))
        }
    }
    Ok(title(req))
}

/// The audit record of a message shown at a device, as MeshCentral's agents log it
/// (message 18 for a message box, 26 for a notification).
pub(super) fn shown_event(
    actor: &Actor,
    group_id: &str,
    node_id: &str,
    toast: bool,
    title: &str,
    msg: &str,
) -> Event {
    let (msgid, what) = if toast {
        (26, "toast message")
    } else {
        (18, "message box")
    };
    Event::new(
        "node",
        "agentlog",
        format!("Displaying {what}, title={title}, message={msg}"),
    )
    .by_actor(actor)
    .group(group_id)
    .node(node_id)
    .with("msgid", msgid)
    .with("msgArgs", json!([title, msg]))
    .with("domain", "")
}

/// `toast`: a notification on each device; needs the chat/notify right (16384) on every
/// one of them.
pub struct Toast {
    device_ids: Vec<String>,
    title: String,
    msg: String,
}

impl Action for Toast {
    /// Each device is authorized in `run`, through `Domain::authorize`.
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(Toast {
            device_ids: device_ids(req, "Invalid nodeids")?,
            msg: text(req)?,
            title: title(req),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        // MeshCentral answers both an unknown device and a missing right "Access Denied".
        let grants = authorize_each(
            s,
            &self.device_ids,
            MeshRights::CHAT_NOTIFY,
            "Access Denied",
            true,
        )
        .await?;
        for (grant, slot) in reserve_online(s, grants)? {
            let message = json!({
                "action": "toast",
                "title": self.title,
                "msg": self.msg,
                "sessionid": s.session_id,
                "username": s.actor.user.name,
                "userid": s.actor.user.id,
            });
            slot.send(ToAgent::Json(message.to_string()));
            let event = shown_event(
                &s.actor,
                &grant.device.group_id,
                &grant.device.id,
                true,
                &self.title,
                &self.msg,
            );
            s.state.domain.publish(event).await;
        }
        Ok(vec![ok(req).into_value()])
    }
}
