//! Device groups: `meshes` (listdevicegroups), `createmesh`, `deletemesh`, `editmesh`,
//! `addmeshuser`, `removemeshuser`.

use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::Value;

use super::{ok, optional_str, optional_u32, required_str, Replies};
use crate::control::session::ControlSession;
use crate::domain::access::{Granted, Need};
use crate::domain::groups::{group_json, MTYPE_AGENT};
use crate::domain::{DomainError, DomainResult};
use crate::store::DeviceGroup;

/// The group a request names by `meshid` (full or bare) or by `meshname` (unique among the
/// groups the caller can see).
pub async fn resolve_group(s: &ControlSession, req: &Request) -> DomainResult<String> {
    if let Some(id) = optional_str(req, "meshid")? {
        return normalize_id(IdKind::Mesh, id)
            .map_err(|_| DomainError::NotFound("Invalid group id"));
    }
    let Some(name) = optional_str(req, "meshname")? else {
        return Err(DomainError::Invalid(
            "Missing field: meshid or meshname".into(),
        ));
    };
    let matches: Vec<DeviceGroup> = visible_groups(s)
        .await?
        .into_iter()
        .map(|(g, _)| g)
        .filter(|g| g.name == name)
        .collect();
    match matches.len() {
        0 => Err(DomainError::NotFound("Unknown device group")),
        1 => Ok(matches[0].id.clone()),
        _ => Err(DomainError::Invalid(
            "Several device groups have this name; use the group id".into(),
        )),
    }
}

/// Groups the caller may see, with their rights on each.
pub async fn visible_groups(s: &ControlSession) -> DomainResult<Vec<(DeviceGroup, MeshRights)>> {
    let store = &s.state.domain.store;
    Ok(if s.actor.is_full_admin() {
        store
            .groups()
            .await?
            .into_iter()
            .map(|g| (g, MeshRights(MeshRights::FULL)))
            .collect()
    } else {
        store
            .groups_of_user(&s.actor.user.id)
            .await?
            .into_iter()
            .map(|(g, r)| (g, MeshRights(r)))
            .collect()
    })
}

fn granted_group(granted: Granted) -> DomainResult<(DeviceGroup, MeshRights)> {
    match granted {
        Granted::Group { group, rights } => Ok((group, rights)),
        _ => Err(DomainError::Internal(anyhow::anyhow!(
            "expected a group grant"
        ))),
    }
}

pub mod list {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Login)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let mut meshes = Vec::new();
        for (group, _) in visible_groups(s).await? {
            let members = s.state.domain.store.group_members(&group.id).await?;
            meshes.push(group_json(&group, &members));
        }
        Ok(vec![req
            .reply()
            .with("meshes", Value::Array(meshes))
            .into_value()])
    }
}

pub mod create {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Login)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let name = required_str(req, "meshname")?;
        let mtype = optional_u32(req, "meshtype")?
            .map(i64::from)
            .unwrap_or(MTYPE_AGENT);
        let desc = optional_str(req, "desc")?.unwrap_or("");
        let group = s
            .state
            .domain
            .create_group(&s.actor, name, mtype, desc)
            .await?;
        let members = s.state.domain.store.group_members(&group.id).await?;
        let links = group_json(&group, &members)["links"].clone();
        Ok(vec![ok(req)
            .with("meshid", group.id)
            .with("links", links)
            .into_value()])
    }
}

pub mod remove {
    use super::*;

    pub async fn need(s: &ControlSession, req: &Request) -> DomainResult<Need> {
        Ok(Need::Group {
            id: resolve_group(s, req).await?,
            rights: MeshRights::FULL,
        })
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let (group, _) = granted_group(g)?;
        s.state.domain.delete_group(&s.actor, &group).await?;
        Ok(vec![ok(req).into_value()])
    }
}

pub mod edit {
    use super::*;

    pub async fn need(s: &ControlSession, req: &Request) -> DomainResult<Need> {
        Ok(Need::Group {
            id: resolve_group(s, req).await?,
            rights: MeshRights::EDIT_MESH,
        })
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let (group, _) = granted_group(g)?;
        // `meshname` names the group when no id is given, so the new name is `newname`
        // there; with an id, `meshname` is the new name (MeshCentral's editmesh).
        let new_name = match optional_str(req, "meshid")? {
            Some(_) => optional_str(req, "meshname")?,
            None => optional_str(req, "newname")?,
        };
        let desc = optional_str(req, "desc")?;
        s.state
            .domain
            .edit_group(&s.actor, group, new_name, desc)
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}

pub mod add_member {
    use super::*;

    pub async fn need(s: &ControlSession, req: &Request) -> DomainResult<Need> {
        Ok(Need::Group {
            id: resolve_group(s, req).await?,
            rights: MeshRights::MANAGE_USERS,
        })
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let (group, my_rights) = granted_group(g)?;
        let names: Vec<String> = match req.body.get("usernames") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    DomainError::Invalid("Field usernames must be a list of names".into())
                })?,
            Some(_) => {
                return Err(DomainError::Invalid(
                    "Field usernames must be a list of names".into(),
                ))
            }
            None => vec![required_str(req, "userid")?.to_string()],
        };
        if names.is_empty() {
            return Err(DomainError::Invalid("Missing field: usernames".into()));
        }
        let mut ids = Vec::new();
        let mut failed = Vec::new();
        for name in &names {
            match normalize_id(IdKind::User, name) {
                Ok(id) => ids.push(id),
                Err(_) => failed.push(format!("Invalid user name {name}")),
            }
        }
        let rights = optional_u32(req, "meshadmin")?.unwrap_or(0);
        let outcome = s
            .state
            .domain
            .add_group_members(&s.actor, &group, my_rights, &ids, rights)
            .await?;
        let mut added = Vec::new();
        for o in outcome {
            match o {
                Ok(name) => added.push(name),
                Err(reason) => failed.push(reason),
            }
        }
        let result = match (added.len(), failed.is_empty()) {
            (0, _) => format!("Nothing done: {}", failed.join("; ")),
            (1, true) => format!("Added user {}", added[0]),
            (_, true) => format!("Added users {}", added.join(", ")),
            (_, false) => format!("Added users {}; {}", added.join(", "), failed.join("; ")),
        };
        Ok(vec![req
            .reply()
            .with("result", result)
            .with("success", added.len())
            .with("failed", failed.len())
            .into_value()])
    }
}

pub mod remove_member {
    use super::*;

    pub async fn need(s: &ControlSession, req: &Request) -> DomainResult<Need> {
        Ok(Need::Group {
            id: resolve_group(s, req).await?,
            rights: MeshRights::MANAGE_USERS,
        })
    }

    pub async fn run(s: &mut ControlSession, req: &Request, g: Granted) -> DomainResult<Replies> {
        let (group, _) = granted_group(g)?;
        let user = normalize_id(IdKind::User, required_str(req, "userid")?)
            .map_err(|_| DomainError::NotFound("User does not exists"))?;
        s.state
            .domain
            .remove_group_member(&s.actor, &group, &user)
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}
