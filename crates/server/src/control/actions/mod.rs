//! Control actions, dispatched by name. Each action is a struct implementing [`Action`]:
//! `parse` reads the request's fields into it once (errors name the field), `need` says
//! what the caller must hold, and `run` does the work with the grant that need yields.
//! [`perform`] checks the need through `Domain::authorize` — the one place rights are
//! checked — before `run` is called; the grant's type follows from the need's, so the
//! compiler checks that every action gets what it asked for.

mod details;
mod device_changes;
mod devices;
mod events;
mod gateways;
mod groups;
mod info;
mod messages;
mod power;
mod recordings;
mod remote;
mod tokens;
mod twofactor;
mod usergroups;
mod users;

use std::future::Future;

use ironmesh_core::access::Requirement;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::{Reply, Request};
use serde_json::Value;

use super::session::ControlSession;

pub use info::{serverinfo_push, userinfo_push};

/// Replies to send, in order.
pub type Replies = Vec<Value>;

/// The grant an action's need yields.
pub type Grant<A> = <<A as Action>::Need as Requirement>::Grant;

/// One control action (docs/protocol/control.md §2.4).
pub trait Action: Sized + Send {
    /// What the caller must hold.
    type Need: Requirement;

    /// The request's fields, typed.
    fn parse(req: &Request) -> DomainResult<Self>;

    /// What this request needs (may resolve a group name to its id).
    fn need(&self, s: &ControlSession) -> impl Future<Output = DomainResult<Self::Need>> + Send;

    /// The refusal of `need` or of the rights check, reworded where MeshCentral words it
    /// differently for this action (docs/protocol/control.md §9). Default: unchanged.
    fn refusal(&self, e: DomainError) -> DomainError {
        e
    }

    /// The work, with what the check found.
    fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        grant: Grant<Self>,
    ) -> impl Future<Output = DomainResult<Replies>> + Send;
}

/// Parses, authorizes and runs one action.
async fn perform<A: Action>(s: &mut ControlSession, req: &Request) -> DomainResult<Replies> {
    let action = A::parse(req)?;
    let need = action.need(s).await.map_err(|e| action.refusal(e))?;
    let grant = s
        .state
        .domain
        .authorize(&s.actor, &need)
        .await
        .map_err(|e| action.refusal(e))?;
    action.run(s, req, grant).await
}

/// Declares the action table once: generates [`ACTION_NAMES`] and the routing `match`.
macro_rules! control_actions {
    ($($name:literal => $module:ident :: $action:ident),* $(,)?) => {
        /// Every action name the control channel serves.
        pub const ACTION_NAMES: &[&str] = &[$($name),*];

        async fn route(session: &mut ControlSession, req: &Request) -> Option<DomainResult<Replies>> {
            Some(match req.action.as_str() {
                $($name => perform::<$module::$action>(session, req).await,)*
                _ => return None,
            })
        }
    };
}

control_actions! {
    "serverinfo" => info::ServerInfo,
    "userinfo" => info::UserInfo,
    "ping" => info::Ping,
    "users" => users::List,
    "adduser" => users::Add,
    "deleteuser" => users::Remove,
    "edituser" => users::Edit,
    "changeuserpass" => users::ChangePassword,
    "changepassword" => users::ChangeOwnPassword,
    "meshes" => groups::List,
    "createmesh" => groups::Create,
    "deletemesh" => groups::Remove,
    "editmesh" => groups::Edit,
    "addmeshuser" => groups::AddMembers,
    "removemeshuser" => groups::RemoveMember,
    "nodes" => devices::List,
    "getnetworkinfo" => devices::NetworkInfo,
    "lastconnect" => devices::LastConnect,
    "getsysinfo" => devices::SysInfo,
    "getDeviceDetails" => details::DeviceDetails,
    "changedevice" => device_changes::Change,
    "removedevices" => device_changes::Remove,
    "changeDeviceMesh" => device_changes::Move,
    "adddeviceuser" => device_changes::AddUsers,
    "msg" => remote::Msg,
    "runcommands" => remote::RunCommands,
    "wifidogs" => gateways::List,
    "wifidogapprove" => gateways::Approve,
    "wifidogcmd" => gateways::Command,
    "wifidogauthmode" => gateways::AuthMode,
    "events" => events::List,
    "authcookie" => tokens::AuthCookie,
    "createLoginToken" => tokens::CreateLoginToken,
    "loginTokens" => tokens::LoginTokens,
    "otpauth-request" => twofactor::TotpRequest,
    "otpauth-setup" => twofactor::TotpSetup,
    "otpauth-getpasswords" => twofactor::NewRecoveryCodes,
    "otpauth-clear" => twofactor::RemoveFactors,
    "otp-status" => twofactor::FactorStatus,
    "webauthn-startregister" => twofactor::PasskeyStart,
    "webauthn-endregister" => twofactor::PasskeyFinish,
    "otp-hkey-remove" => twofactor::PasskeyRemove,
    "recordings" => recordings::List,
    "usergroups" => usergroups::List,
    "createusergroup" => usergroups::Create,
    "deleteusergroup" => usergroups::Remove,
    "addusertousergroup" => usergroups::AddUsers,
    "removeuserfromusergroup" => usergroups::RemoveUser,
    "wssessioncount" => usergroups::SessionCount,
    "userbroadcast" => usergroups::Broadcast,
    "poweraction" => power::PowerAction,
    "wakedevices" => power::WakeDevices,
    "powertimeline" => power::PowerTimeline,
    "toast" => messages::Toast,
}

pub async fn dispatch(session: &mut ControlSession, req: &Request) -> Replies {
    match route(session, req).await {
        None => vec![unknown_action(req)],
        Some(Ok(replies)) => replies,
        Some(Err(e)) => {
            // Outages (`DomainError::Unavailable`) are logged once by the store, not per request.
            if let DomainError::Internal(inner) = &e {
                tracing::error!(action = ?req.action, error = %inner, "action failed");
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
pub fn required_str(req: &Request, key: &str) -> DomainResult<String> {
    match req.body.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None => Err(DomainError::Invalid(format!("Missing field: {key}"))),
        Some(_) => Err(DomainError::Invalid(format!(
            "Field {key} must be a string"
        ))),
    }
}

/// An optional string field; present but not a string is an error.
pub fn optional_str(req: &Request, key: &str) -> DomainResult<Option<String>> {
    match req.body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
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

/// A list of strings (`what` names it in the error), or `None` when absent.
pub fn optional_str_list(
    req: &Request,
    key: &str,
    what: &str,
) -> DomainResult<Option<Vec<String>>> {
    let invalid = || DomainError::Invalid(format!("Field {key} must be a list of {what}"));
    match req.body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(invalid),
        Some(_) => Err(invalid()),
    }
}

/// A refusal for a missing right (`Denied`) reworded as `text`.
pub fn denied_as(e: DomainError, text: &'static str) -> DomainError {
    match e {
        DomainError::Denied => DomainError::Refused(text),
        other => other,
    }
}

/// A refusal for an unknown id (`NotFound`) reworded as `text`.
pub fn not_found_as(e: DomainError, text: &'static str) -> DomainError {
    match e {
        DomainError::NotFound(_) => DomainError::Refused(text),
        other => other,
    }
}

/// The standard success reply: `result: "ok"`.
pub fn ok(req: &Request) -> Reply {
    req.reply().with("result", "ok")
}

#[cfg(test)]
mod tests;
