//! Device groups ("meshes"): creation, removal, membership.

use ironmesh_proto::ids::b64_at_dollar;
use ironmesh_proto::rights::{MeshRights, SiteRights};
use serde_json::{json, Map, Value};

use crate::access::Actor;
use crate::events::Event;
use crate::store::{now_ms, DeviceGroup, GroupMember, StoreError, UserGroupLink};
use crate::{random_bytes, Domain, DomainError, DomainResult};

/// Why one member named in `add_group_members` was not added (the others still are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRefusal {
    /// No account or user group has this id (its key is kept for the reply).
    Unknown(String),
    /// The member holds rights the caller does not, so the caller may not change theirs.
    HoldsMoreRights(String),
}

impl std::fmt::Display for MemberRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberRefusal::Unknown(who) => write!(f, "Unknown user {who}"),
            MemberRefusal::HoldsMoreRights(who) => write!(
                f,
                "Cannot change the rights of {who}: they hold rights you do not hold"
            ),
        }
    }
}

/// Agent-based group, the only kind ironmesh hosts (docs/protocol/control.md §4.3).
pub const MTYPE_AGENT: i64 = 2;

pub fn new_group_id() -> String {
    format!("mesh//{}", b64_at_dollar(&random_bytes::<48>()))
}

pub fn check_group_name(name: &str) -> DomainResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(DomainError::Invalid(
            "Invalid group name: 1-128 printable characters".into(),
        ));
    }
    Ok(name.to_string())
}

impl Domain {
    /// Groups the actor may see, with their rights on each, oldest first. A full site
    /// administrator sees every group.
    pub async fn visible_groups(
        &self,
        actor: &Actor,
    ) -> DomainResult<Vec<(DeviceGroup, MeshRights)>> {
        Ok(self
            .store
            .groups()
            .await?
            .into_iter()
            .filter_map(|g| actor.group_rights(&g.id).map(|r| (g, r)))
            .collect())
    }

    /// Groups the actor is a member of, directly or through a user group, with their
    /// rights, oldest first: what MeshCentral's `meshes` lists (a site administrator does
    /// not see groups they are not a member of there).
    pub async fn member_groups(
        &self,
        actor: &Actor,
    ) -> DomainResult<Vec<(DeviceGroup, MeshRights)>> {
        Ok(self
            .store
            .groups()
            .await?
            .into_iter()
            .filter_map(|g| {
                let rights = actor.memberships.get(&g.id)?;
                let rights = if actor.is_full_admin() {
                    MeshRights::FULL
                } else {
                    *rights
                };
                Some((g, MeshRights(rights)))
            })
            .collect())
    }

    /// A group's members (on which the caller's rights were checked).
    pub async fn group_members(&self, group_id: &str) -> DomainResult<Vec<GroupMember>> {
        Ok(self.store.group_members(group_id).await?)
    }

    /// A group by id, without a rights check: for what anyone holding the id may fetch
    /// (the `.msh` file an agent installs with).
    pub async fn group_by_id(&self, group_id: &str) -> DomainResult<Option<DeviceGroup>> {
        Ok(self.store.group(group_id).await?)
    }

    /// Every group, for the server's own command line.
    pub async fn all_groups(&self) -> DomainResult<Vec<DeviceGroup>> {
        Ok(self.store.groups().await?)
    }

    pub async fn create_group(
        &self,
        actor: &Actor,
        name: &str,
        mtype: i64,
        description: &str,
    ) -> DomainResult<DeviceGroup> {
        if actor.site().restricted(SiteRights::NO_NEW_GROUPS) {
            return Err(DomainError::Denied);
        }
        let name = check_group_name(name)?;
        if mtype != MTYPE_AGENT {
            return Err(DomainError::Invalid(
                "Unsupported group type: ironmesh hosts agent groups (meshtype 2)".into(),
            ));
        }
        if description.chars().count() > 1024 {
            return Err(DomainError::Invalid(
                "Description too long: at most 1024 characters".into(),
            ));
        }
        let group = DeviceGroup {
            id: new_group_id(),
            name,
            mtype,
            description: description.to_string(),
            flags: 0,
            consent: 0,
            creator_id: Some(actor.user.id.clone()),
            creator_name: Some(actor.user.name.clone()),
            created_ms: now_ms(),
        };
        match self
            .store
            .insert_group(&group, Some((&actor.user.id, MeshRights::FULL)))
            .await
        {
            Err(StoreError::Conflict) => return Err(DomainError::Conflict("Group already exists")),
            other => other?,
        }
        let members = self.store.group_members(&group.id).await?;
        let event = Event::new(
            "mesh",
            "createmesh",
            format!("Device group {} created", group.name),
        )
        .by_actor(actor)
        .group(&group.id)
        .with("mesh", group_json(&group, &members));
        self.publish(event).await;
        Ok(group)
    }

    /// Removes a group with its devices and memberships. The caller has checked rights.
    pub async fn delete_group(&self, actor: &Actor, group: &DeviceGroup) -> DomainResult<()> {
        let members = self.store.group_members(&group.id).await?;
        if !self.store.delete_group(&group.id).await? {
            return Err(DomainError::NotFound("Invalid group id"));
        }
        let mut event = Event::new(
            "mesh",
            "deletemesh",
            format!("Device group {} removed", group.name),
        )
        .by_actor(actor)
        .group(&group.id)
        .with("name", group.name.clone());
        for m in &members {
            event = event.target(&m.user_id);
        }
        self.publish(event).await;
        Ok(())
    }

    /// Grants `rights` on `group` to each named user. Returns, per name, Ok(user id) or
    /// the reason it was not added. Nobody grants rights they do not hold themselves.
    pub async fn add_group_members(
        &self,
        actor: &Actor,
        group: &DeviceGroup,
        actor_rights: MeshRights,
        user_ids: &[String],
        rights: u32,
    ) -> DomainResult<Vec<Result<String, MemberRefusal>>> {
        // Restrictions (no terminal, only own events, …) take away; anyone managing
        // members may hand them out. Rights are granted only by who holds them.
        if !MeshRights(rights).covered_by(actor_rights) {
            return Err(DomainError::Denied);
        }
        let members = self.store.group_members(&group.id).await?;
        let mut outcome = Vec::new();
        let user_groups = self.store.group_user_groups(&group.id).await?;
        for user_id in user_ids {
            if user_id.starts_with("ugrp/") {
                let current = user_groups.iter().find(|l| &l.id == user_id);
                outcome.push(
                    self.add_user_group_to_group(
                        actor,
                        group,
                        actor_rights,
                        user_id,
                        current,
                        rights,
                    )
                    .await?,
                );
                continue;
            }
            let current = members.iter().find(|m| &m.user_id == user_id);
            if current.is_some_and(|m| !MeshRights(m.rights).covered_by(actor_rights)) {
                outcome.push(Err(MemberRefusal::HoldsMoreRights(user_id.clone())));
                continue;
            }
            match self.store.user(user_id).await? {
                None => outcome.push(Err(MemberRefusal::Unknown(user_id.clone()))),
                Some(user) => {
                    self.store
                        .set_group_member(&group.id, &user.id, rights)
                        .await?;
                    let event = Event::new(
                        "mesh",
                        "addmeshuser",
                        format!("Added user {} to device group {}", user.name, group.name),
                    )
                    .by_actor(actor)
                    .group(&group.id)
                    .target(&user.id)
                    .with("targetuserid", user.id.clone())
                    .with("rights", rights);
                    self.publish(event).await;
                    outcome.push(Ok(user.name));
                }
            }
        }
        Ok(outcome)
    }

    /// Links a user group to a device group with `rights` (or changes them): each of its
    /// users then holds them there too.
    async fn add_user_group_to_group(
        &self,
        actor: &Actor,
        group: &DeviceGroup,
        actor_rights: MeshRights,
        ugrp_id: &str,
        current: Option<&UserGroupLink>,
        rights: u32,
    ) -> DomainResult<Result<String, MemberRefusal>> {
        let key = crate::usergroups::user_group_key(ugrp_id).to_string();
        if current.is_some_and(|l| !MeshRights(l.rights).covered_by(actor_rights)) {
            return Ok(Err(MemberRefusal::HoldsMoreRights(ugrp_id.to_string())));
        }
        let Some(ugrp) = self.store.user_group(ugrp_id).await? else {
            return Ok(Err(MemberRefusal::Unknown(key)));
        };
        self.store
            .set_group_user_group(&group.id, &ugrp.id, rights)
            .await?;
        let mut event = Event::new(
            "mesh",
            "addmeshuser",
            format!(
                "Added user group {} to device group {}",
                ugrp.name, group.name
            ),
        )
        .by_actor(actor)
        .group(&group.id)
        .with("targetuserid", ugrp.id.clone())
        .with("rights", rights);
        // Its users' rights changed: their sessions reload them.
        for user in self.store.user_group_members(&ugrp.id).await? {
            event = event.target(&user.id);
        }
        self.publish(event).await;
        Ok(Ok(key))
    }

    /// Every link of a group: its users and its user groups.
    pub async fn group_links(
        &self,
        group_id: &str,
    ) -> DomainResult<(Vec<GroupMember>, Vec<UserGroupLink>)> {
        Ok((
            self.store.group_members(group_id).await?,
            self.store.group_user_groups(group_id).await?,
        ))
    }

    /// Removes a member. Nobody removes a member who holds rights they do not hold
    /// themselves (a group manager cannot remove the group's owner).
    pub async fn remove_group_member(
        &self,
        actor: &Actor,
        group: &DeviceGroup,
        actor_rights: MeshRights,
        user_id: &str,
    ) -> DomainResult<()> {
        if user_id.starts_with("ugrp/") {
            return self
                .remove_user_group_from_group(actor, group, actor_rights, user_id)
                .await;
        }
        let members = self.store.group_members(&group.id).await?;
        if members
            .iter()
            .find(|m| m.user_id == user_id)
            .is_some_and(|m| !MeshRights(m.rights).covered_by(actor_rights))
        {
            return Err(DomainError::Invalid(
                "Cannot remove a member who holds rights you do not hold".into(),
            ));
        }
        if !self.store.remove_group_member(&group.id, user_id).await? {
            return Err(DomainError::NotFound("User not in group"));
        }
        let event = Event::new(
            "mesh",
            "removemeshuser",
            format!("Removed user {user_id} from device group {}", group.name),
        )
        .by_actor(actor)
        .group(&group.id)
        .target(user_id)
        .with("targetuserid", user_id.to_string());
        self.publish(event).await;
        Ok(())
    }

    async fn remove_user_group_from_group(
        &self,
        actor: &Actor,
        group: &DeviceGroup,
        actor_rights: MeshRights,
        ugrp_id: &str,
    ) -> DomainResult<()> {
        let links = self.store.group_user_groups(&group.id).await?;
        let Some(link) = links.iter().find(|l| l.id == ugrp_id) else {
            return Err(DomainError::NotFound("User not in group"));
        };
        if !MeshRights(link.rights).covered_by(actor_rights) {
            return Err(DomainError::Invalid(
                "Cannot remove a member who holds rights you do not hold".into(),
            ));
        }
        if !self
            .store
            .remove_group_user_group(&group.id, ugrp_id)
            .await?
        {
            return Err(DomainError::NotFound("User not in group"));
        }
        let mut event = Event::new(
            "mesh",
            "removemeshuser",
            format!(
                "Removed user group {} from device group {}",
                link.name, group.name
            ),
        )
        .by_actor(actor)
        .group(&group.id)
        .with("targetuserid", ugrp_id.to_string());
        for user in self.store.user_group_members(ugrp_id).await? {
            event = event.target(&user.id);
        }
        self.publish(event).await;
        Ok(())
    }

    pub async fn edit_group(
        &self,
        actor: &Actor,
        mut group: DeviceGroup,
        name: Option<&str>,
        description: Option<&str>,
        flags: Option<i64>,
    ) -> DomainResult<DeviceGroup> {
        if let Some(flags) = flags {
            group.flags = flags;
        }
        if let Some(name) = name {
            group.name = check_group_name(name)?;
        }
        if let Some(desc) = description {
            if desc.chars().count() > 1024 {
                return Err(DomainError::Invalid(
                    "Description too long: at most 1024 characters".into(),
                ));
            }
            group.description = desc.to_string();
        }
        self.store.update_group(&group).await?;
        let members = self.store.group_members(&group.id).await?;
        let event = Event::new(
            "mesh",
            "meshchange",
            format!("Device group {} changed", group.name),
        )
        .by_actor(actor)
        .group(&group.id)
        .with("mesh", group_json(&group, &members));
        self.publish(event).await;
        Ok(group)
    }
}

/// The group record as MeshCentral clients read it (docs/protocol/control.md §2.3).
pub fn group_json(group: &DeviceGroup, members: &[GroupMember]) -> Value {
    group_json_with(group, members, &[])
}

/// The group record with its user groups among its `links` (`{name, rights}` each).
pub fn group_json_with(
    group: &DeviceGroup,
    members: &[GroupMember],
    user_groups: &[UserGroupLink],
) -> Value {
    let mut links = Map::new();
    for m in members {
        links.insert(
            m.user_id.clone(),
            json!({ "name": m.user_name, "rights": m.rights }),
        );
    }
    for l in user_groups {
        links.insert(l.id.clone(), json!({ "name": l.name, "rights": l.rights }));
    }
    // MeshCentral's key order (meshctrl prints keys in the order they arrive); `desc`,
    // `flags` and `consent` only when set, as MeshCentral stores them.
    let mut g = Map::new();
    g.insert("type".into(), "mesh".into());
    g.insert("_id".into(), group.id.clone().into());
    g.insert("name".into(), group.name.clone().into());
    g.insert("mtype".into(), group.mtype.into());
    if !group.description.is_empty() {
        g.insert("desc".into(), group.description.clone().into());
    }
    g.insert("domain".into(), "".into());
    g.insert("links".into(), Value::Object(links));
    g.insert("creation".into(), group.created_ms.into());
    g.insert("creatorid".into(), group.creator_id.clone().into());
    g.insert("creatorname".into(), group.creator_name.clone().into());
    if group.flags != 0 {
        g.insert("flags".into(), group.flags.into());
    }
    if group.consent != 0 {
        g.insert("consent".into(), group.consent.into());
    }
    Value::Object(g)
}
