//! Device groups: `meshes` (listdevicegroups), `createmesh`, `deletemesh`, `editmesh`,
//! `addmeshuser`, `removemeshuser`.

use ironmesh_core::access::{GroupGrant, GroupNeed, SignedIn};
use ironmesh_core::groups::{group_json, group_json_with, MemberRefusal, MTYPE_AGENT};
use ironmesh_core::model::DeviceGroup;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::Value;

use super::{
    not_found_as, ok, optional_str, optional_str_list, optional_u32, required_str, Action, Replies,
};
use crate::control::session::ControlSession;

/// How a request names a group: `meshid` (full or bare), or `meshname` (unique among the
/// groups the caller can see).
#[derive(Debug, Clone)]
pub enum GroupRef {
    Id(String),
    Name(String),
}

impl GroupRef {
    /// The group named by `meshid` or `meshname`; `Ok(None)` when neither is present.
    pub fn parse_optional(req: &Request) -> DomainResult<Option<GroupRef>> {
        if let Some(id) = optional_str(req, "meshid")? {
            return normalize_id(IdKind::Mesh, &id)
                .map(|id| Some(GroupRef::Id(id)))
                .map_err(|_| DomainError::NotFound("Invalid group id"));
        }
        Ok(optional_str(req, "meshname")?.map(GroupRef::Name))
    }

    pub fn parse(req: &Request) -> DomainResult<GroupRef> {
        GroupRef::parse_optional(req)?
            .ok_or_else(|| DomainError::Invalid("Missing field: meshid or meshname".into()))
    }

    /// The group's id, looking a name up among the groups the caller can see.
    pub async fn resolve(&self, s: &ControlSession) -> DomainResult<String> {
        let name = match self {
            GroupRef::Id(id) => return Ok(id.clone()),
            GroupRef::Name(name) => name,
        };
        let matches: Vec<DeviceGroup> = s
            .state
            .domain
            .visible_groups(&s.actor)
            .await?
            .into_iter()
            .map(|(g, _)| g)
            .filter(|g| &g.name == name)
            .collect();
        match matches.as_slice() {
            [] => Err(DomainError::NotFound("Unknown device group")),
            [one] => Ok(one.id.clone()),
            // MeshCentral's words: several groups have this name; the id names one.
            _ => Err(DomainError::Invalid("Duplicate device groups found".into())),
        }
    }

    /// `rights` on the named group.
    pub async fn need(&self, s: &ControlSession, rights: u32) -> DomainResult<GroupNeed> {
        Ok(GroupNeed {
            id: self.resolve(s).await?,
            rights,
        })
    }
}

/// `meshes`: the groups the caller is a member of, with their members.
pub struct List;

impl Action for List {
    type Need = SignedIn;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(List)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let domain = &s.state.domain;
        let mut meshes = Vec::new();
        // As MeshCentral: the groups the caller is a member of (directly or through a
        // user group), oldest first, with user groups among their links.
        for (group, _) in domain.member_groups(&s.actor).await? {
            let (members, user_groups) = domain.group_links(&group.id).await?;
            meshes.push(group_json_with(&group, &members, &user_groups));
        }
        Ok(vec![req
            .reply()
            .with("meshes", Value::Array(meshes))
            .into_value()])
    }
}

/// `createmesh`.
pub struct Create {
    name: String,
    mtype: i64,
    description: String,
}

impl Action for Create {
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(Create {
            name: required_str(req, "meshname")?,
            mtype: optional_u32(req, "meshtype")?
                .map(i64::from)
                .unwrap_or(MTYPE_AGENT),
            description: optional_str(req, "desc")?.unwrap_or_default(),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let domain = &s.state.domain;
        let group = domain
            .create_group(&s.actor, &self.name, self.mtype, &self.description)
            .await?;
        let members = domain.group_members(&group.id).await?;
        let links = group_json(&group, &members)["links"].clone();
        Ok(vec![ok(req)
            .with("meshid", group.id)
            .with("links", links)
            .into_value()])
    }
}

/// `deletemesh`: needs full rights on the group.
pub struct Remove(GroupRef);

impl Action for Remove {
    type Need = GroupNeed;

    fn refusal(&self, e: DomainError) -> DomainError {
        match self.0 {
            GroupRef::Id(_) => not_found_as(e, "Unknown device group"),
            GroupRef::Name(_) => not_found_as(e, "Invalid group identifier"),
        }
    }

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(Remove(GroupRef::parse(req)?))
    }

    async fn need(&self, s: &ControlSession) -> DomainResult<GroupNeed> {
        self.0.need(s, MeshRights::FULL).await
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: GroupGrant,
    ) -> DomainResult<Replies> {
        s.state.domain.delete_group(&s.actor, &g.group).await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// `editmesh`: new name and description.
pub struct Edit {
    group: GroupRef,
    new_name: Option<String>,
    description: Option<String>,
    /// MeshCentral's group flags (4 = record sessions).
    flags: Option<u32>,
}

impl Action for Edit {
    type Need = GroupNeed;

    fn refusal(&self, e: DomainError) -> DomainError {
        not_found_as(e, "Invalid group identifier")
    }

    fn parse(req: &Request) -> DomainResult<Self> {
        // MeshCentral's editmesh names the group by `meshid` or `meshidname`, and
        // `meshname` is then the new name. Older ironmesh clients name it by `meshname`
        // with the new name in `newname`.
        let (group, new_name) = match optional_str(req, "meshidname")? {
            Some(name) if optional_str(req, "meshid")?.is_none() => {
                (GroupRef::Name(name), optional_str(req, "meshname")?)
            }
            _ => {
                let group = GroupRef::parse(req)?;
                let new_name = match group {
                    GroupRef::Id(_) => optional_str(req, "meshname")?,
                    GroupRef::Name(_) => optional_str(req, "newname")?,
                };
                (group, new_name)
            }
        };
        Ok(Edit {
            group,
            new_name,
            description: optional_str(req, "desc")?,
            flags: optional_u32(req, "flags")?,
        })
    }

    async fn need(&self, s: &ControlSession) -> DomainResult<GroupNeed> {
        self.group.need(s, MeshRights::EDIT_MESH).await
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: GroupGrant,
    ) -> DomainResult<Replies> {
        s.state
            .domain
            .edit_group(
                &s.actor,
                g.group,
                self.new_name.as_deref(),
                self.description.as_deref(),
                self.flags.map(i64::from),
            )
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// `addmeshuser`: adds (or changes the rights of) members, by name or id.
pub struct AddMembers {
    group: GroupRef,
    names: Vec<String>,
    rights: u32,
}

impl Action for AddMembers {
    type Need = GroupNeed;

    fn refusal(&self, e: DomainError) -> DomainError {
        not_found_as(e, "Unknown group")
    }

    fn parse(req: &Request) -> DomainResult<Self> {
        let group = GroupRef::parse(req)?;
        // Names or ids in `usernames` (meshctrl), ids in `userids` (MeshCentral's console),
        // or one `userid` (meshctrl's addtousergroup, with a user group id).
        let names = match optional_str_list(req, "usernames", "names")? {
            Some(names) => names,
            None => match optional_str_list(req, "userids", "ids")? {
                Some(ids) => ids,
                None => vec![required_str(req, "userid")?],
            },
        };
        if names.is_empty() {
            return Err(DomainError::Invalid("Missing field: usernames".into()));
        }
        Ok(AddMembers {
            group,
            names,
            rights: optional_u32(req, "meshadmin")?.unwrap_or(0),
        })
    }

    async fn need(&self, s: &ControlSession) -> DomainResult<GroupNeed> {
        self.group.need(s, MeshRights::MANAGE_USERS).await
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: GroupGrant,
    ) -> DomainResult<Replies> {
        let mut ids = Vec::new();
        let mut failed = Vec::new();
        // MeshCentral answers a bare `Nothing done` when no name was an account (meshctrl
        // scripts compare it); ironmesh's other refusals keep their reason.
        let mut only_unknown = true;
        for name in &self.names {
            match member_id(name) {
                Ok(id) => ids.push(id),
                Err(_) => {
                    only_unknown = false;
                    failed.push(format!("Invalid user name {name}"));
                }
            }
        }
        let outcome = s
            .state
            .domain
            .add_group_members(&s.actor, &g.group, g.rights, &ids, self.rights)
            .await?;
        let mut added = Vec::new();
        for o in outcome {
            match o {
                Ok(name) => added.push(name),
                Err(reason) => {
                    only_unknown &= matches!(reason, MemberRefusal::Unknown(_));
                    failed.push(reason.to_string());
                }
            }
        }
        let result = match (added.len(), failed.is_empty()) {
            (0, _) if only_unknown => "Nothing done".to_string(),
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

/// `removemeshuser`.
pub struct RemoveMember {
    group: GroupRef,
    user_id: String,
}

impl Action for RemoveMember {
    type Need = GroupNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(RemoveMember {
            group: GroupRef::parse(req)?,
            user_id: member_id(&required_str(req, "userid")?)
                .map_err(|_| DomainError::NotFound("User does not exists"))?,
        })
    }

    async fn need(&self, s: &ControlSession) -> DomainResult<GroupNeed> {
        self.group.need(s, MeshRights::MANAGE_USERS).await
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: GroupGrant,
    ) -> DomainResult<Replies> {
        s.state
            .domain
            .remove_group_member(&s.actor, &g.group, g.rights, &self.user_id)
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// A member of a device group as a request names it: a user (name or id) or a user
/// group (`ugrp//…` id).
fn member_id(name: &str) -> Result<String, ironmesh_proto::ids::IdError> {
    if name.starts_with("ugrp/") {
        normalize_id(IdKind::UserGroup, name)
    } else {
        normalize_id(IdKind::User, name)
    }
}
