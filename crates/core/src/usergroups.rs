//! User groups: named sets of users. A user group can be a member of a device group with
//! rights, and then each of its users holds those rights there on top of their own
//! (`Domain::actor` merges them; docs/protocol/control.md §2.6).

use ironmesh_proto::ids::{b64_at_dollar, id_key};
use serde_json::{json, Map, Value};

use crate::access::{Actor, TARGET_USER_MANAGERS};
use crate::events::Event;
use crate::store::{now_ms, StoreError, UserGroup, UserGroupLink};
use crate::{random_bytes, Domain, DomainError, DomainResult};

/// A user group with its users and the device groups it belongs to.
#[derive(Debug, Clone)]
pub struct UserGroupView {
    pub group: UserGroup,
    pub users: Vec<UserGroupLink>,
    pub device_groups: Vec<UserGroupLink>,
}

/// What adding users to a user group did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Added {
    /// Names of the users added (or already in it).
    pub added: Vec<String>,
    /// Names given that match no account.
    pub unknown: Vec<String>,
}

pub fn new_user_group_id() -> String {
    format!("ugrp//{}", b64_at_dollar(&random_bytes::<48>()))
}

/// MeshCentral's limits: a name of 1–64 characters, a description of at most 1024.
fn check_name(name: &str) -> DomainResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(DomainError::Invalid("Invalid group name".into()));
    }
    Ok(name.to_string())
}

impl Domain {
    /// Every user group with its links, oldest first.
    pub async fn user_groups(&self) -> DomainResult<Vec<UserGroupView>> {
        let mut out = Vec::new();
        for group in self.store.user_groups().await? {
            out.push(self.user_group_view(group).await?);
        }
        Ok(out)
    }

    /// One user group with its links; `None` if there is no such group.
    pub async fn user_group(&self, id: &str) -> DomainResult<Option<UserGroupView>> {
        match self.store.user_group(id).await? {
            Some(group) => Ok(Some(self.user_group_view(group).await?)),
            None => Ok(None),
        }
    }

    async fn user_group_view(&self, group: UserGroup) -> DomainResult<UserGroupView> {
        Ok(UserGroupView {
            users: self.store.user_group_members(&group.id).await?,
            device_groups: self.store.user_group_device_groups(&group.id).await?,
            group,
        })
    }

    /// The user groups a user is in.
    pub async fn user_groups_of(&self, user_id: &str) -> DomainResult<Vec<UserGroupLink>> {
        Ok(self.store.user_groups_of(user_id).await?)
    }

    /// The user groups that are members of a device group, with their rights.
    pub async fn group_user_groups(&self, group_id: &str) -> DomainResult<Vec<UserGroupLink>> {
        Ok(self.store.group_user_groups(group_id).await?)
    }

    /// Creates an empty user group. The caller has checked the USERGROUPS site right.
    pub async fn create_user_group(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
    ) -> DomainResult<UserGroup> {
        let name = check_name(name)?;
        if description.chars().count() > 1024 {
            return Err(DomainError::Invalid("Invalid group description".into()));
        }
        let group = UserGroup {
            id: new_user_group_id(),
            name,
            description: description.to_string(),
            created_ms: now_ms(),
        };
        match self.store.insert_user_group(&group).await {
            Err(StoreError::Conflict) => return Err(DomainError::Conflict("Group already exists")),
            other => other?,
        }
        let view = self.user_group_view(group.clone()).await?;
        let event = Event::new(
            "ugrp",
            "createusergroup",
            format!("User group created: {}", group.name),
        )
        .by_actor(actor)
        .target(TARGET_USER_MANAGERS)
        .with("ugrpid", group.id.clone())
        .with("name", group.name.clone())
        .with("desc", group.description.clone())
        .with("links", links_json(&view));
        self.publish(event).await;
        Ok(group)
    }

    /// Removes a user group: its users lose what it granted them.
    pub async fn delete_user_group(&self, actor: &Actor, id: &str) -> DomainResult<UserGroup> {
        let Some(view) = self.user_group(id).await? else {
            return Err(DomainError::NotFound("Unknown device group"));
        };
        if !self.store.delete_user_group(id).await? {
            return Err(DomainError::NotFound("Unknown device group"));
        }
        let mut event = Event::new(
            "ugrp",
            "deleteusergroup",
            format!("User group removed: {}", view.group.name),
        )
        .by_actor(actor)
        .target(TARGET_USER_MANAGERS)
        .with("ugrpid", view.group.id.clone());
        // Its users see the world as it now is (their rights may have shrunk).
        for user in &view.users {
            event = event.target(&user.id);
        }
        self.publish(event).await;
        Ok(view.group)
    }

    /// Adds users, by name or id, to a user group.
    pub async fn add_to_user_group(
        &self,
        actor: &Actor,
        ugrp_id: &str,
        names: &[String],
    ) -> DomainResult<Added> {
        let Some(group) = self.store.user_group(ugrp_id).await? else {
            return Err(DomainError::NotFound("Invalid groupid"));
        };
        let mut outcome = Added::default();
        let mut event_targets = Vec::new();
        for name in names {
            let user =
                match ironmesh_proto::ids::normalize_id(ironmesh_proto::ids::IdKind::User, name) {
                    Ok(id) => self.store.user(&id).await?,
                    Err(_) => None,
                };
            match user {
                Some(user) => {
                    self.store
                        .add_user_group_member(&group.id, &user.id)
                        .await?;
                    event_targets.push(user.id.clone());
                    outcome.added.push(user.name);
                }
                None => outcome.unknown.push(name.clone()),
            }
        }
        if !outcome.added.is_empty() {
            let view = self.user_group_view(group.clone()).await?;
            let mut event = Event::new(
                "ugrp",
                "usergroupchange",
                format!(
                    "Added user(s) {} to user group {}",
                    outcome.added.join(","),
                    group.name
                ),
            )
            .by_actor(actor)
            .target(TARGET_USER_MANAGERS)
            .with("ugrpid", group.id.clone())
            .with("name", group.name.clone())
            .with("desc", group.description.clone())
            .with("links", links_json(&view));
            for t in &event_targets {
                event = event.target(t);
            }
            self.publish(event).await;
        }
        Ok(outcome)
    }

    /// Takes a user out of a user group (nothing to do if they are not in it).
    pub async fn remove_from_user_group(
        &self,
        actor: &Actor,
        ugrp_id: &str,
        user_id: &str,
    ) -> DomainResult<()> {
        let Some(group) = self.store.user_group(ugrp_id).await? else {
            return Err(DomainError::NotFound("Invalid groupid"));
        };
        let Some(user) = self.store.user(user_id).await? else {
            return Err(DomainError::NotFound("Invalid userid"));
        };
        if !self
            .store
            .remove_user_group_member(&group.id, &user.id)
            .await?
        {
            return Ok(());
        }
        let view = self.user_group_view(group.clone()).await?;
        let event = Event::new(
            "ugrp",
            "usergroupchange",
            format!("Removed user {} from user group {}", user.name, group.name),
        )
        .by_actor(actor)
        .target(TARGET_USER_MANAGERS)
        .target(&user.id)
        .with("ugrpid", group.id.clone())
        .with("name", group.name.clone())
        .with("desc", group.description.clone())
        .with("links", links_json(&view));
        self.publish(event).await;
        Ok(())
    }
}

/// `links` of a user group as MeshCentral keeps them: users as `{userid, name, rights: 1}`,
/// device groups as `{name, rights}`.
pub fn links_json(view: &UserGroupView) -> Value {
    let mut links = Map::new();
    for u in &view.users {
        links.insert(
            u.id.clone(),
            json!({ "userid": u.id, "name": u.name, "rights": 1 }),
        );
    }
    for g in &view.device_groups {
        links.insert(g.id.clone(), json!({ "name": g.name, "rights": g.rights }));
    }
    Value::Object(links)
}

/// The user group record as `usergroups` lists it (docs/protocol/control.md §2.6).
pub fn user_group_json(view: &UserGroupView) -> Value {
    let mut g = serde_json::Map::new();
    g.insert("type".into(), "ugrp".into());
    g.insert("_id".into(), view.group.id.clone().into());
    g.insert("name".into(), view.group.name.clone().into());
    // Only when set, as MeshCentral stores it.
    if !view.group.description.is_empty() {
        g.insert("desc".into(), view.group.description.clone().into());
    }
    g.insert("domain".into(), "".into());
    g.insert("links".into(), links_json(view));
    Value::Object(g)
}

/// The short form users without the USERGROUPS site right get: the name only.
pub fn user_group_name_json(view: &UserGroupView) -> Value {
    json!({ "name": view.group.name })
}

/// The key part of a user group id, as MeshCentral names one in reply texts.
pub fn user_group_key(id: &str) -> &str {
    id_key(id)
}
