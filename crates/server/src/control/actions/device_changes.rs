//! A device's life after enrolment: `changedevice` (name, description, tags, icon, consent),
//! `changeDeviceMesh` (move to another group), `removedevices`, and `adddeviceuser` (rights
//! of one user on one device, or with `remove: true` their removal).
//!
//! Replies carry MeshCentral 1.1.55's `result` texts, which differ from action to action
//! (`Access Denied`, `Denied`, `Permission denied`, `Device not found`, …) and which
//! meshctrl prints as they are. Where MeshCentral's text is the same for an unknown device,
//! an invisible one and one the caller may not change, so is ironmesh's; where MeshCentral
//! would tell them apart or send nothing, ironmesh answers "not found" for both unknown and
//! invisible ids (docs/protocol/control.md §2.4).

use ironmesh_core::access::{DeviceGrant, DeviceNeed, GroupGrant, GroupNeed, SignedIn};
use ironmesh_core::device_changes::{normalize_tags, DeviceChanges, GROUP_ONLY_RIGHTS};
use ironmesh_core::devices::is_ironmesh_agent;
use ironmesh_core::model::DeviceRecord;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::Value;

use super::{failure, ok, optional_str, Action, Replies};
use crate::control::session::ControlSession;
use crate::live::agents::ToAgent;

/// Longest id string MeshCentral looks at (`validateString(…, 1, 1024)`).
const MAX_ID_TEXT: usize = 1024;

/// A device id as MeshCentral's device actions take it (full `node//…` or bare). An id of a
/// named domain is `Err("Invalid domain")` (ironmesh serves the default domain only);
/// anything else malformed is `Err(invalid)`.
fn node_id(value: Option<&Value>, invalid: &'static str) -> Result<String, &'static str> {
    let text = match value {
        Some(Value::String(t)) if !t.is_empty() && t.len() <= MAX_ID_TEXT => t,
        _ => return Err(invalid),
    };
    if text.split('/').count() == 3 && text.starts_with("node/") && !text.starts_with("node//") {
        return Err("Invalid domain");
    }
    normalize_id(IdKind::Node, text).map_err(|_| invalid)
}

/// The device `id` with `rights` on it. Unknown and invisible devices are `unknown`; a
/// device seen without the rights is `denied` (both texts are MeshCentral's for the action).
async fn device_grant(
    s: &ControlSession,
    id: &str,
    rights: u32,
    unknown: &'static str,
    denied: &'static str,
) -> DomainResult<DeviceGrant> {
    let need = DeviceNeed {
        id: id.to_string(),
        rights,
    };
    s.state
        .domain
        .authorize(&s.actor, &need)
        .await
        .map_err(|e| match e {
            DomainError::NotFound(_) => DomainError::NotFound(unknown),
            DomainError::Denied => DomainError::NotFound(denied),
            other => other,
        })
}

/// The reply for one device of a request naming several: `ok` or the refusal. An internal
/// error fails the whole request.
fn per_device(req: &Request, outcome: DomainResult<()>) -> DomainResult<Value> {
    match outcome {
        Ok(()) => Ok(ok(req).into_value()),
        Err(e @ DomainError::Internal(_)) => Err(e),
        Err(e) => Ok(failure(req, &e.to_string())),
    }
}

/// `changedevice` (meshctrl `editdevice`): needs MANAGE_COMPUTERS on the device. Unknown,
/// invisible and forbidden devices all read `Access Denied`, as in MeshCentral.
pub struct Change {
    device_id: String,
    changes: DeviceChanges,
}

/// A number field that fits in 32 bits (MeshCentral takes any number; larger ones are no
/// icon or consent bits it knows).
fn number(req: &Request, key: &str) -> DomainResult<Option<i64>> {
    match req.body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= u32::MAX as u64)
            .map(|n| Some(n as i64))
            .ok_or_else(|| {
                DomainError::Invalid(format!("Field {key} must be a number from 0 to 4294967295"))
            }),
    }
}

/// `tags`: a comma-separated string or a list of strings; `""` removes them (meshctrl
/// `--tags` with no value).
fn tags(req: &Request) -> DomainResult<Option<Vec<String>>> {
    let invalid = || DomainError::Invalid("Field tags must be a list of tags".into());
    match req.body.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Ok(Some(normalize_tags(&t.split(',').collect::<Vec<_>>())?)),
        Some(Value::Array(items)) => {
            let texts = items
                .iter()
                .map(|v| v.as_str().ok_or_else(invalid))
                .collect::<DomainResult<Vec<&str>>>()?;
            Ok(Some(normalize_tags(&texts)?))
        }
        Some(_) => Err(invalid()),
    }
}

impl Action for Change {
    /// The device is authorized in `run`, to word refusals as MeshCentral does.
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        // MeshCentral words a named domain's id "Invalid nodeid" here too.
        let device_id = node_id(req.body.get("nodeid"), "Invalid nodeid")
            .map_err(|_| DomainError::Invalid("Invalid nodeid".into()))?;
        Ok(Change {
            device_id,
            changes: DeviceChanges {
                name: optional_str(req, "name")?,
                description: optional_str(req, "desc")?,
                tags: tags(req)?,
                icon: number(req, "icon")?,
                consent: number(req, "consent")?,
            },
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let g = device_grant(
            s,
            &self.device_id,
            MeshRights::MANAGE_COMPUTERS,
            "Access Denied",
            "Access Denied",
        )
        .await?;
        let live = s.state.live_state(&g.device.id);
        s.state
            .domain
            .edit_device(&s.actor, g.device, &g.group, self.changes, live)
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// `removedevices` (meshctrl `removedevice`): needs UNINSTALL on each device; one reply per
/// id, in order. Unknown, invisible and forbidden devices all read `Denied`, as in
/// MeshCentral. A connected agent is disconnected; ironmesh-agent is first told to
/// uninstall itself (`uninstallagent`, docs/protocol/agent.md §5.2).
pub struct Remove {
    /// Each id as parsed, or the refusal its reply carries.
    ids: Vec<Result<String, &'static str>>,
}

impl Action for Remove {
    /// Each device is authorized in `run`.
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        // MeshCentral ignores a request without ids; meshctrl would wait forever.
        let ids = match req.body.get("nodeids") {
            Some(Value::Array(ids)) if !ids.is_empty() => ids,
            _ => return Err(DomainError::Invalid("Invalid nodeids".into())),
        };
        Ok(Remove {
            ids: ids
                .iter()
                .map(|id| node_id(Some(id), "Invalid nodeid"))
                .collect(),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let mut replies = Vec::with_capacity(self.ids.len());
        for id in self.ids {
            let outcome = match id {
                Ok(id) => remove_one(s, &id).await,
                Err(text) => Err(DomainError::Invalid(text.into())),
            };
            replies.push(per_device(req, outcome)?);
        }
        Ok(replies)
    }
}

async fn remove_one(s: &ControlSession, id: &str) -> DomainResult<()> {
    let g = device_grant(s, id, MeshRights::UNINSTALL, "Denied", "Denied").await?;
    s.state
        .domain
        .remove_device(&s.actor, &g.device, &g.group)
        .await?;
    disconnect_removed(s, &g.device);
    Ok(())
}

/// Ends a removed device's agent connection. MeshCentral only closes it, and the agent,
/// reconnecting, enrols again as a new device of the group its settings name (if that group
/// still exists); ironmesh does the same for the stock agent. ironmesh-agent is told first
/// to uninstall itself: it stops reconnecting and removes its state.
fn disconnect_removed(s: &ControlSession, device: &DeviceRecord) {
    let Some(agent) = s.state.agents.get(&device.id) else {
        return;
    };
    if is_ironmesh_agent(device) {
        let _ = agent
            .tx
            .try_send(ToAgent::Json(r#"{"action":"uninstallagent"}"#.into()));
    }
    let _ = agent
        .tx
        .try_send(ToAgent::Close("device removed from the server".into()));
}

/// `changeDeviceMesh` (meshctrl `movetodevicegroup`): moves devices to the group `meshid`
/// (or `meshname`). Needs MANAGE_COMPUTERS and EDIT_MESH on the target group and EDIT_MESH
/// on each device; one reply per device, in order.
pub struct Move {
    target: Target,
    device_ids: Vec<String>,
}

/// The target group as the request names it.
enum Target {
    Id(String),
    Name(String),
}

impl Action for Move {
    /// The groups and each device are authorized in `run`.
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        let invalid_ids = || DomainError::Invalid("Invalid nodeids".into());
        let device_ids = match req.body.get("nodeids") {
            Some(Value::Array(ids)) if !ids.is_empty() => ids
                .iter()
                .map(|v| match v {
                    Value::String(t) if !t.is_empty() && t.len() <= 256 => Ok(t.clone()),
                    _ => Err(invalid_ids()),
                })
                .collect::<DomainResult<Vec<_>>>()?,
            _ => return Err(invalid_ids()),
        };
        let target = match (req.body.get("meshid"), req.body.get("meshname")) {
            (Some(Value::String(id)), _) if (8..=134).contains(&id.len()) => {
                if id.split('/').count() == 3 && !id.starts_with("mesh//") {
                    return Err(DomainError::Invalid("Invalid domain".into()));
                }
                Target::Id(
                    normalize_id(IdKind::Mesh, id)
                        .map_err(|_| DomainError::NotFound("Unknown device group"))?,
                )
            }
            (None | Some(Value::Null), Some(Value::String(name))) => Target::Name(name.clone()),
            _ => return Err(DomainError::Invalid("Invalid groupid".into())),
        };
        Ok(Move { target, device_ids })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let group_id = match self.target {
            Target::Id(id) => id,
            Target::Name(name) => {
                let mut matches = s
                    .state
                    .domain
                    .visible_groups(&s.actor)
                    .await?
                    .into_iter()
                    .filter(|(g, _)| g.name == name);
                match (matches.next(), matches.next()) {
                    (Some((g, _)), None) => g.id,
                    (Some(_), Some(_)) => {
                        return Err(DomainError::Invalid("Duplicate device groups found".into()))
                    }
                    (None, _) => return Err(DomainError::Invalid("Invalid groupid".into())),
                }
            }
        };
        let need = GroupNeed {
            id: group_id,
            rights: MeshRights::MANAGE_COMPUTERS,
        };
        let to = s
            .state
            .domain
            .authorize(&s.actor, &need)
            .await
            .map_err(|e| match e {
                DomainError::NotFound(_) => DomainError::NotFound("Unknown device group"),
                DomainError::Denied => DomainError::NotFound("Permission denied"),
                other => other,
            })?;
        let mut replies = Vec::with_capacity(self.device_ids.len());
        for id in &self.device_ids {
            let outcome = match normalize_id(IdKind::Node, id) {
                Ok(id) => move_one(s, &id, &to).await,
                Err(_) => Err(DomainError::NotFound("Device not found")),
            };
            replies.push(per_device(req, outcome)?);
        }
        Ok(replies)
    }
}

async fn move_one(s: &ControlSession, id: &str, to: &GroupGrant) -> DomainResult<()> {
    let g = device_grant(s, id, 0, "Device not found", "Permission denied").await?;
    if g.device.group_id == to.group.id {
        return Err(DomainError::Invalid(
            "Device already in correct group".into(),
        ));
    }
    if g.group.mtype != to.group.mtype {
        return Err(DomainError::Invalid(
            "Device groups are of different types".into(),
        ));
    }
    if !g.rights.has(MeshRights::EDIT_MESH) || !to.rights.has(MeshRights::EDIT_MESH) {
        return Err(DomainError::NotFound("Permission denied"));
    }
    let live = s.state.live_state(&g.device.id);
    let device = s
        .state
        .domain
        .move_device(&s.actor, g.device, &to.group, live)
        .await?;
    // A connected agent keeps its connection; it now belongs to the new group.
    s.state.agents.set_group(&device.id, &device.group_id);
    Ok(())
}

/// `adddeviceuser` (meshctrl `addusertodevice`, and with `remove: true`
/// `removeuserfromdevice`): `rights` of users named by `usernames` or `userids` (or one
/// `userid`) on one device itself. Needs MANAGE_USERS on the device. MeshCentral sends
/// nothing when the device is unknown or forbidden; ironmesh answers `Invalid nodeid` and
/// `Access denied`.
pub struct AddUsers {
    device_id: String,
    user_ids: Vec<String>,
    rights: u32,
    remove: bool,
}

impl Action for AddUsers {
    /// The device is authorized in `run`.
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        let invalid = |text: &str| DomainError::Invalid(text.into());
        // MeshCentral's order of checks: nodeid, rights, names, then the nodeid's domain.
        let node = match req.body.get("nodeid") {
            Some(v @ Value::String(t)) if !t.is_empty() && t.len() <= MAX_ID_TEXT => v,
            _ => return Err(invalid("Invalid nodeid")),
        };
        let rights = req
            .body
            .get("rights")
            .and_then(Value::as_u64)
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| r & GROUP_ONLY_RIGHTS == 0)
            .ok_or_else(|| invalid("Invalid rights"))?;
        let names = |key: &str| match req.body.get(key) {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .filter(|t| !t.is_empty() && t.len() <= 128)
                        .map(str::to_string)
                })
                .collect::<Option<Vec<_>>>(),
            _ => None,
        };
        let user_ids = match req.body.get("userid") {
            Some(Value::String(id)) if !id.is_empty() && id.len() <= 128 => Some(vec![id.clone()]),
            _ => names("userids"),
        }
        .or_else(|| names("usernames"))
        .ok_or_else(|| invalid("Invalid usernames"))?;
        let device_id = node_id(Some(node), "Invalid nodeid").map_err(invalid)?;
        // Names and ids alike: `bob`, `user//bob`. Ids that cannot be an account are skipped,
        // as MeshCentral skips names of no account.
        let user_ids = user_ids
            .iter()
            .filter_map(|u| normalize_id(IdKind::User, u).ok())
            .collect();
        Ok(AddUsers {
            device_id,
            user_ids,
            rights,
            remove: req.bool_field("remove") == Some(true),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let g = device_grant(
            s,
            &self.device_id,
            MeshRights::MANAGE_USERS,
            "Invalid nodeid",
            "Access denied",
        )
        .await?;
        let live = s.state.live_state(&g.device.id);
        let rights = if self.remove { 0 } else { self.rights };
        s.state
            .domain
            .set_device_users(
                &s.actor,
                &g.device,
                g.rights,
                &self.user_ids,
                rights,
                self.remove,
                live,
            )
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}
