//! What users change on devices: name, description, tags, icon and consent
//! (`changedevice`), their group (`changeDeviceMesh`), their removal (`removedevices`) and the
//! users who hold rights on one device itself (`adddeviceuser`). The caller has checked the
//! rights each needs; the events are MeshCentral's (action, fields, `msgid`, `msg`), so
//! meshctrl `listevents` shows them as it shows MeshCentral's (docs/protocol/control.md §2.4).

use ironmesh_proto::rights::MeshRights;
use serde_json::json;

use crate::access::Actor;
use crate::devices::{node_json, LiveState, MAX_DEVICE_TEXT};
use crate::events::Event;
use crate::store::{DeviceGroup, DeviceRecord, User};
use crate::{Domain, DomainError, DomainResult};

/// Longest description kept, in characters (as for groups).
pub const MAX_DESCRIPTION: usize = 1024;
/// Most tags on one device.
pub const MAX_TAGS: usize = 64;
/// A tag is 1 to this many characters (MeshCentral drops longer ones).
pub const MAX_TAG_LEN: usize = 63;
/// Rights a device link cannot hold: editing the group, managing its users or its devices
/// belong to groups (MeshCentral refuses them with "Invalid rights").
pub const GROUP_ONLY_RIGHTS: u32 =
    MeshRights::EDIT_MESH | MeshRights::MANAGE_USERS | MeshRights::MANAGE_COMPUTERS;

/// What a `changedevice` request sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Already normalized by [`normalize_tags`]; empty removes them.
    pub tags: Option<Vec<String>>,
    pub icon: Option<i64>,
    pub consent: Option<i64>,
}

impl DeviceChanges {
    /// Refuses what ironmesh does not store: empty or overlong names, overlong descriptions,
    /// icons MeshCentral's consoles do not draw.
    pub fn check(mut self) -> DomainResult<DeviceChanges> {
        if let Some(name) = &self.name {
            let name = name.trim();
            if name.is_empty()
                || name.chars().count() > MAX_DEVICE_TEXT
                || name.chars().any(char::is_control)
            {
                return Err(DomainError::Invalid(format!(
                    "Invalid device name: 1-{MAX_DEVICE_TEXT} printable characters"
                )));
            }
            self.name = Some(name.to_string());
        }
        if let Some(desc) = &self.description {
            if desc.chars().count() > MAX_DESCRIPTION {
                return Err(DomainError::Invalid(format!(
                    "Description too long: at most {MAX_DESCRIPTION} characters"
                )));
            }
        }
        if let Some(icon) = self.icon {
            if !(1..=8).contains(&icon) {
                return Err(DomainError::Invalid("Invalid icon: 1 to 8".into()));
            }
        }
        Ok(self)
    }
}

/// Tags as MeshCentral keeps them: each trimmed, empty and overlong ones dropped, each once,
/// sorted. More than [`MAX_TAGS`] is refused.
pub fn normalize_tags<S: AsRef<str>>(raw: &[S]) -> DomainResult<Vec<String>> {
    let mut tags: Vec<String> = raw
        .iter()
        .map(|t| t.as_ref().trim())
        .filter(|t| !t.is_empty() && t.chars().count() <= MAX_TAG_LEN)
        .map(str::to_string)
        .collect();
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        return Err(DomainError::Invalid(format!(
            "Too many tags: at most {MAX_TAGS}"
        )));
    }
    Ok(tags)
}

impl Domain {
    /// Applies `changes` to `device` (of `group`) and announces what changed with a
    /// `changenode` event. Returns the device as stored; nothing changed, nothing announced.
    pub async fn edit_device(
        &self,
        actor: &Actor,
        mut device: DeviceRecord,
        group: &DeviceGroup,
        changes: DeviceChanges,
        live: LiveState,
    ) -> DomainResult<DeviceRecord> {
        let changes = changes.check()?;
        // In MeshCentral's order (meshuser.js `changedevice`), so the message reads the same.
        let mut changed: Vec<&str> = Vec::new();
        if let Some(icon) = changes.icon.filter(|i| *i != device.icon) {
            device.icon = icon;
            changed.push("icon");
        }
        if let Some(name) = changes.name.filter(|n| *n != device.name) {
            device.name = name;
            changed.push("name");
        }
        if let Some(consent) = changes.consent.filter(|c| *c != device.consent) {
            device.consent = consent;
            changed.push("consent");
        }
        if let Some(desc) = changes.description.filter(|d| *d != device.description) {
            device.description = desc;
            changed.push("description");
        }
        // MeshCentral changes tags without naming them in the message; ironmesh names them.
        if let Some(tags) = changes.tags.filter(|t| *t != device.tags) {
            device.tags = tags;
            changed.push("tags");
        }
        if changed.is_empty() {
            return Ok(device);
        }
        if !self.store.set_device_fields(&device).await? {
            return Err(DomainError::NotFound("Invalid device id"));
        }
        let list = changed.join(", ");
        let event = Event::new(
            "node",
            "changenode",
            format!(
                "Changed device {} from group {}: {list}",
                device.name, group.name
            ),
        )
        .by_actor(actor)
        .group(&device.group_id)
        .node(&device.id)
        .target(&actor.user.id)
        .with("node", node_json(&device, live))
        .with("msgid", 140)
        .with("msgArgs", json!([device.name, group.name, list]))
        .with("domain", "");
        self.publish(event).await;
        Ok(device)
    }

    /// Moves `device` to group `to` (the caller checked its rights on both groups) and
    /// announces it to both (`nodemeshchange`). Returns the moved device.
    pub async fn move_device(
        &self,
        actor: &Actor,
        mut device: DeviceRecord,
        to: &DeviceGroup,
        live: LiveState,
    ) -> DomainResult<DeviceRecord> {
        let old_group = device.group_id.clone();
        if !self.store.set_device_group(&device.id, &to.id).await? {
            return Err(DomainError::NotFound("Device not found"));
        }
        device.group_id = to.id.clone();
        let event = Event::new(
            "node",
            "nodemeshchange",
            format!("Moved device {} to group {}", device.name, to.name),
        )
        .by_actor(actor)
        .group(&to.id)
        .target(&old_group)
        .node(&device.id)
        .with("node", node_json(&device, live))
        .with("oldMeshId", old_group)
        .with("newMeshId", to.id.clone())
        .with("msgid", 85)
        .with("msgArgs", json!([device.name, to.name]))
        .with("domain", "");
        self.publish(event).await;
        Ok(device)
    }

    /// Removes `device` (of `group`) with its links, and announces it (`removenode`, and
    /// for each linked user the loss of their rights). The event log keeps its history.
    pub async fn remove_device(
        &self,
        actor: &Actor,
        device: &DeviceRecord,
        group: &DeviceGroup,
    ) -> DomainResult<()> {
        if !self.store.delete_device(&device.id).await? {
            return Err(DomainError::NotFound("Invalid device id"));
        }
        for link in &device.links {
            if let Some(user) = self.store.user(&link.user_id).await? {
                let event = Event::new(
                    "user",
                    "accountchange",
                    format!("Removed user device rights for {}", user.name),
                )
                .with("msgid", 86)
                .with("msgArgs", json!([user.name]))
                .with("domain", "");
                self.publish_account_event(Some(actor), &user, event).await;
            }
        }
        let mut event = Event::new(
            "node",
            "removenode",
            format!(
                "Removed device {} from device group {}",
                device.name, group.name
            ),
        )
        .by_actor(actor)
        .group(&device.group_id)
        .node(&device.id)
        .with("msgid", 87)
        .with("msgArgs", json!([device.name, group.name]))
        .with("domain", "");
        for link in &device.links {
            event = event.target(&link.user_id);
        }
        self.publish(event).await;
        Ok(())
    }

    /// Gives each existing user of `user_ids` `rights` on `device` itself, or (`remove`)
    /// takes their link away, and announces it: per user an `accountchange`, then one
    /// `changenode` with the device's new links. Ids of no account are skipped, as
    /// MeshCentral skips them; none existing is "Invalid usernames". Nobody grants rights on
    /// the device they do not hold there (`actor_rights`), nor takes away a link holding
    /// such rights. Returns the device.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_device_users(
        &self,
        actor: &Actor,
        device: &DeviceRecord,
        actor_rights: MeshRights,
        user_ids: &[String],
        rights: u32,
        remove: bool,
        live: LiveState,
    ) -> DomainResult<DeviceRecord> {
        if rights & GROUP_ONLY_RIGHTS != 0 {
            return Err(DomainError::Invalid("Invalid rights".into()));
        }
        let mut users: Vec<User> = Vec::new();
        for id in user_ids {
            if let Some(user) = self.store.user(id).await? {
                if !users.iter().any(|u| u.id == user.id) {
                    users.push(user);
                }
            }
        }
        if users.is_empty() {
            return Err(DomainError::Invalid("Invalid usernames".into()));
        }
        let held = |r: u32| MeshRights(r).covered_by(actor_rights);
        let takes_more = users.iter().any(|u| {
            device
                .links
                .iter()
                .any(|l| l.user_id == u.id && !held(l.rights))
        });
        if !held(rights) || takes_more {
            return Err(DomainError::Denied);
        }
        // MeshCentral words it by the rights given: 0 reads as a removal.
        let (msgid, verb) = if rights == 0 || remove {
            (81, "Removed")
        } else {
            (82, "Changed")
        };
        for user in &users {
            if remove {
                self.store.remove_device_link(&device.id, &user.id).await?;
            } else {
                self.store
                    .set_device_link(&device.id, &user.id, rights)
                    .await?;
            }
            let event = Event::new(
                "user",
                "accountchange",
                format!("{verb} user device rights for {}", user.name),
            )
            .with("nodeListChange", user.id.clone())
            .with("msgid", msgid)
            .with("msgArgs", json!([user.name]))
            .with("domain", "");
            self.publish_account_event(Some(actor), user, event).await;
        }
        let device = self
            .store
            .device(&device.id)
            .await?
            .ok_or(DomainError::NotFound("Invalid nodeid"))?;
        let mut event = Event::new(
            "node",
            "changenode",
            format!("{verb} user device rights for {}", device.name),
        )
        .by_actor(actor)
        .group(&device.group_id)
        .node(&device.id)
        .with("node", node_json(&device, live))
        .with("msgid", msgid)
        .with("msgArgs", json!([device.name]))
        .with("domain", "");
        for user in &users {
            event = event.target(&user.id);
        }
        self.publish(event).await;
        Ok(device)
    }
}
