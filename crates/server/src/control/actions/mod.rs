//! Control actions, dispatched by name. Each action module provides
//! `need(session, request) -> Need` (what the action requires, possibly after resolving
//! ids) and `run(session, request, granted) -> replies`. [`dispatch`] checks the need with
//! [`authorize`] — the one place rights are checked — before `run` is called.

mod devices;
mod events;
mod gateways;
mod groups;
mod info;
mod remote;
mod tokens;
mod users;

use ironmesh_proto::control::{Reply, Request};
use serde_json::Value;

use super::session::ControlSession;
use crate::domain::access::authorize;
use crate::domain::{DomainError, DomainResult};

pub use info::{serverinfo_push, userinfo_push};

/// Replies to send, in order.
pub type Replies = Vec<Value>;

/// Declares the action table once: generates [`ACTION_NAMES`] and the routing `match`,
/// in which every action's need is authorized before it runs.
macro_rules! control_actions {
    ($($name:literal => $module:ident :: $action:ident),* $(,)?) => {
        /// Every action name the control channel serves.
        pub const ACTION_NAMES: &[&str] = &[$($name),*];

        async fn route(session: &mut ControlSession, req: &Request) -> Option<DomainResult<Replies>> {
            Some(match req.action.as_str() {
                $($name => match $module::$action::need(session, req).await {
                    Ok(need) => match authorize(&session.state.domain.store, &session.actor, &need).await {
                        Ok(granted) => $module::$action::run(session, req, granted).await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                },)*
                _ => return None,
            })
        }
    };
}

control_actions! {
    "serverinfo" => info::serverinfo,
    "userinfo" => info::userinfo,
    "ping" => info::ping,
    "users" => users::list,
    "adduser" => users::add,
    "deleteuser" => users::remove,
    "edituser" => users::edit,
    "changeuserpass" => users::change_password,
    "meshes" => groups::list,
    "createmesh" => groups::create,
    "deletemesh" => groups::remove,
    "editmesh" => groups::edit,
    "addmeshuser" => groups::add_member,
    "removemeshuser" => groups::remove_member,
    "nodes" => devices::list,
    "getnetworkinfo" => devices::network_info,
    "lastconnect" => devices::last_connect,
    "getsysinfo" => devices::sys_info,
    "msg" => remote::msg,
    "runcommands" => remote::runcommands,
    "wifidogs" => gateways::list,
    "wifidogapprove" => gateways::approve,
    "wifidogcmd" => gateways::command,
    "wifidogauthmode" => gateways::auth_mode,
    "events" => events::list,
    "authcookie" => tokens::authcookie,
    "createLoginToken" => tokens::create_login_token,
    "loginTokens" => tokens::login_tokens,
}

pub async fn dispatch(session: &mut ControlSession, req: &Request) -> Replies {
    match route(session, req).await {
        None => vec![unknown_action(req)],
        Some(Ok(replies)) => replies,
        Some(Err(e)) => {
            // Outages (`DomainError::Unavailable`) are logged once by the store, not per request.
            if let DomainError::Internal(inner) = &e {
                tracing::error!(action = %req.action, error = %inner, "action failed");
            }
            vec![failure(req, &e.to_string())]
        }
    }
}

/// An error reply: MeshCentral's `result` text, plus `failed: true`, since some successful
/// replies also carry free text in `result` ("Added user …").
pub fn failure(req: &Request, reason: &str) -> Value {
    req.reply()
        .with("result", reason)
        .with("failed", true)
        .into_value()
}

fn unknown_action(req: &Request) -> Value {
    req.reply()
        .with("failed", true)
        .with("cause", "unknownaction")
        .with("result", format!("Unknown action: {}", req.action))
        .into_value()
}

/// A required string field, or a clear error naming it.
pub fn required_str<'a>(req: &'a Request, key: &str) -> DomainResult<&'a str> {
    match req.body.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(DomainError::Invalid(format!("Missing field: {key}"))),
        Some(_) => Err(DomainError::Invalid(format!(
            "Field {key} must be a string"
        ))),
    }
}

/// An optional string field; present but not a string is an error.
pub fn optional_str<'a>(req: &'a Request, key: &str) -> DomainResult<Option<&'a str>> {
    match req.body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DomainError::Invalid(format!(
            "Field {key} must be a string"
        ))),
    }
}

/// An optional non-negative integer field that fits in 32 bits.
pub fn optional_u32(req: &Request, key: &str) -> DomainResult<Option<u32>> {
    match req.body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                DomainError::Invalid(format!("Field {key} must be a number from 0 to 4294967295"))
            }),
    }
}

/// The standard success reply: `result: "ok"`.
pub fn ok(req: &Request) -> Reply {
    req.reply().with("result", "ok")
}

#[cfg(test)]
mod tests {
    #[test]
    fn action_names_are_unique() {
        let mut names = super::ACTION_NAMES.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), super::ACTION_NAMES.len());
    }
}
