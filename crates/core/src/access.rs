//! Rights checks, in one place. Every control action declares what it needs as a
//! [`Requirement`]; the dispatcher calls [`Domain::authorize`] before the action runs and
//! hands it the requirement's grant. The grant's type follows from the requirement's, so an
//! action cannot ask for a device and be handed a group: the compiler checks the pairing.
//!
//! Rules: a full site administrator (site rights all ones) holds full rights on every
//! group. Anyone else holds on a group exactly the rights of their membership, and on a
//! device those of its group together with those of their own link to the device
//! (`adddeviceuser`), as MeshCentral adds them up. An object the
//! caller may not see is reported as "not found", never as "denied", so ids cannot be probed.

use std::collections::HashMap;

use ironmesh_proto::relay::SessionKind;
use ironmesh_proto::rights::{MeshRights, SiteRights};

use crate::events::Event;
use crate::store::gateways::GatewayRecord;
use crate::store::{DeviceGroup, DeviceRecord, User};
use crate::{Domain, DomainError, DomainResult};

/// Where a request comes from, for the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's IP address.
    pub addr: Option<String>,
    /// The client program (a browser's `User-Agent`, meshctrl, the ironmesh CLI).
    pub user_agent: Option<String>,
}

impl Origin {
    /// Longest user agent kept (they are attacker-chosen text).
    pub const MAX_USER_AGENT: usize = 256;

    pub fn new(addr: std::net::IpAddr, user_agent: Option<&str>) -> Origin {
        Origin {
            addr: Some(addr.to_string()),
            user_agent: user_agent
                .map(|ua| crate::devices::clip(ua, Origin::MAX_USER_AGENT).to_string()),
        }
    }
}

/// The authenticated user on whose behalf something runs, with their memberships as of
/// the moment it was loaded.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    /// Group id → rights.
    pub memberships: HashMap<String, u32>,
    /// Device id → rights the user holds on that device itself (besides its group's).
    pub device_links: HashMap<String, u32>,
    /// Where their requests come from (empty for the server's own command line).
    pub origin: Origin,
    /// The site requires a second factor and this account has none yet: it may only add
    /// one (requirements that allow it: [`Requirement::BEFORE_SECOND_FACTOR`]).
    pub second_factor_pending: bool,
}

impl Actor {
    pub fn site(&self) -> SiteRights {
        SiteRights(self.user.site_rights)
    }

    pub fn is_full_admin(&self) -> bool {
        self.site().is_full()
    }

    /// Rights on a group, `None` when the actor may not see it.
    pub fn group_rights(&self, group_id: &str) -> Option<MeshRights> {
        if self.is_full_admin() {
            return Some(MeshRights(MeshRights::FULL));
        }
        self.memberships.get(group_id).map(|r| MeshRights(*r))
    }

    /// Rights on a device: its group's and the user's own link to it together (either
    /// one full: full), `None` when the actor may not see it (docs/protocol/control.md §4.2).
    pub fn device_rights(&self, device: &DeviceRecord) -> Option<MeshRights> {
        let group = self.group_rights(&device.group_id);
        let link = self.device_links.get(&device.id).copied();
        match (group, link) {
            (None, None) => None,
            (Some(g), _) if g.is_full() => Some(g),
            (g, l) => Some(MeshRights(g.map_or(0, |g| g.0) | l.unwrap_or(0))),
        }
    }

    /// Whether `event` may be shown to this actor: it targets them, a group they belong to,
    /// a device linked to them, or (for user managers) `*users`. In a group (or on a linked
    /// device) where their rights limit them to their own events (LIMIT_EVENTS), only events
    /// they caused or no user caused. An account that must still add a second factor sees
    /// only events about itself.
    pub fn may_see(&self, event: &Event) -> bool {
        if self.second_factor_pending {
            return event.targets.iter().any(|t| t == &self.user.id);
        }
        if self.is_full_admin() {
            return true;
        }
        let others_act = event.user_id.as_ref().is_some_and(|u| u != &self.user.id);
        let shown = |rights: &u32| {
            !(others_act && MeshRights(*rights).restricted(MeshRights::LIMIT_EVENTS))
        };
        let linked = event
            .node_id
            .as_ref()
            .and_then(|n| self.device_links.get(n));
        linked.is_some_and(shown)
            || event.targets.iter().any(|t| {
                t == &self.user.id
                    || (t == TARGET_USER_MANAGERS && self.site().has(SiteRights::MANAGE_USERS))
                    || self.memberships.get(t).is_some_and(shown)
            })
    }
}

/// Event target meaning "users who manage accounts".
pub const TARGET_USER_MANAGERS: &str = "*users";

/// Something an action needs; checking it yields its [`Requirement::Grant`].
pub trait Requirement: Send + Sync {
    /// What the check found, handed to the action.
    type Grant: Send;

    fn check(
        &self,
        domain: &Domain,
        actor: &Actor,
    ) -> impl std::future::Future<Output = DomainResult<Self::Grant>> + Send;

    /// Whether an account that must still add a second factor (the site requires one) may
    /// act with this requirement. Only [`Enrolling`] may.
    const BEFORE_SECOND_FACTOR: bool = false;
}

/// Any authenticated user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedIn;

/// Any authenticated user, even one whose account must still add the second factor the
/// site requires: for adding it, and for the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enrolling;

/// These site-rights bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteNeed(pub u32);

/// These rights on a group (0 = merely able to see it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupNeed {
    pub id: String,
    pub rights: u32,
}

/// These rights on the device (0 = merely able to see it): its group's, with the caller's
/// own link to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNeed {
    pub id: String,
    pub rights: u32,
}

/// These rights on the WiFiDogX gateway's group. A gateway in no group (not yet approved)
/// is visible to full site administrators only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayNeed {
    pub device_id: String,
    pub rights: u32,
}

/// The group a [`GroupNeed`] found, and the caller's rights on it.
#[derive(Debug, Clone)]
pub struct GroupGrant {
    pub group: DeviceGroup,
    pub rights: MeshRights,
}

/// The device a [`DeviceNeed`] found, its group, and the caller's rights on it.
#[derive(Debug, Clone)]
pub struct DeviceGrant {
    pub device: DeviceRecord,
    pub group: DeviceGroup,
    pub rights: MeshRights,
}

/// The gateway a [`GatewayNeed`] found, and the caller's rights on it.
#[derive(Debug, Clone)]
pub struct GatewayGrant {
    pub gateway: GatewayRecord,
    pub rights: MeshRights,
}

impl Requirement for SignedIn {
    type Grant = ();

    async fn check(&self, _: &Domain, _: &Actor) -> DomainResult<()> {
        Ok(())
    }
}

impl Requirement for Enrolling {
    type Grant = ();
    const BEFORE_SECOND_FACTOR: bool = true;

    async fn check(&self, _: &Domain, _: &Actor) -> DomainResult<()> {
        Ok(())
    }
}

impl Requirement for SiteNeed {
    type Grant = ();

    async fn check(&self, _: &Domain, actor: &Actor) -> DomainResult<()> {
        if actor.site().has(self.0) {
            Ok(())
        } else {
            Err(DomainError::Denied)
        }
    }
}

impl Requirement for GroupNeed {
    type Grant = GroupGrant;

    async fn check(&self, domain: &Domain, actor: &Actor) -> DomainResult<GroupGrant> {
        let (Some(have), Some(group)) = (
            actor.group_rights(&self.id),
            domain.store.group(&self.id).await?,
        ) else {
            return Err(DomainError::NotFound("Invalid group id"));
        };
        holds(have, self.rights)?;
        Ok(GroupGrant {
            group,
            rights: have,
        })
    }
}

impl Requirement for DeviceNeed {
    type Grant = DeviceGrant;

    async fn check(&self, domain: &Domain, actor: &Actor) -> DomainResult<DeviceGrant> {
        let not_found = DomainError::NotFound("Invalid device id");
        let Some(device) = domain.store.device(&self.id).await? else {
            return Err(not_found);
        };
        let (Some(have), Some(group)) = (
            actor.device_rights(&device),
            domain.store.group(&device.group_id).await?,
        ) else {
            return Err(not_found);
        };
        holds(have, self.rights)?;
        Ok(DeviceGrant {
            device,
            group,
            rights: have,
        })
    }
}

impl Requirement for GatewayNeed {
    type Grant = GatewayGrant;

    async fn check(&self, domain: &Domain, actor: &Actor) -> DomainResult<GatewayGrant> {
        let not_found = DomainError::NotFound("Unknown gateway");
        let Some(gateway) = domain.store.gateway(&self.device_id).await? else {
            return Err(not_found);
        };
        let have = match &gateway.group_id {
            Some(g) => actor.group_rights(g),
            None if actor.is_full_admin() => Some(MeshRights(MeshRights::FULL)),
            None => None,
        }
        .ok_or(not_found)?;
        holds(have, self.rights)?;
        Ok(GatewayGrant {
            gateway,
            rights: have,
        })
    }
}

/// An optional requirement: checked when present.
impl<R: Requirement> Requirement for Option<R> {
    type Grant = Option<R::Grant>;

    async fn check(&self, domain: &Domain, actor: &Actor) -> DomainResult<Option<R::Grant>> {
        match self {
            Some(need) => Ok(Some(need.check(domain, actor).await?)),
            None => Ok(None),
        }
    }
}

fn holds(have: MeshRights, need: u32) -> DomainResult<()> {
    if have.has(need) {
        Ok(())
    } else {
        Err(DomainError::Denied)
    }
}

/// Why a relay session of some kind is refused; the text is for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionDenied {
    #[error("no remote control rights on this device")]
    NoRemoteControl,
    #[error("{0} is not allowed for this user on this device")]
    Restricted(&'static str),
}

/// Whether `rights` on a device allow a relay session of `kind`: terminal, files and
/// desktop need remote control rights (as the agent itself checks) and not the kind's own
/// "no …" bit; other relays (port forwarding through the device) need remote control or
/// the relay right.
pub fn check_session_rights(rights: MeshRights, kind: SessionKind) -> Result<(), SessionDenied> {
    let enough = match kind {
        SessionKind::Other => {
            rights.has(MeshRights::REMOTE_CONTROL) || rights.has(MeshRights::RELAY)
        }
        _ => rights.has(MeshRights::REMOTE_CONTROL),
    };
    if !enough {
        return Err(SessionDenied::NoRemoteControl);
    }
    let blocked = match kind {
        SessionKind::Terminal => rights
            .restricted(MeshRights::NO_TERMINAL)
            .then_some("terminal"),
        SessionKind::Files => rights
            .restricted(MeshRights::NO_FILES)
            .then_some("file access"),
        SessionKind::Desktop => rights
            .restricted(MeshRights::NO_DESKTOP)
            .then_some("remote desktop"),
        SessionKind::Other => None,
    };
    match blocked {
        Some(what) => Err(SessionDenied::Restricted(what)),
        None => Ok(()),
    }
}

impl Domain {
    /// Loads a user and their memberships; `None` if the account no longer exists.
    pub async fn actor(&self, user_id: &str) -> DomainResult<Option<Actor>> {
        let Some(user) = self.store.user(user_id).await? else {
            return Ok(None);
        };
        let mut memberships: HashMap<String, u32> =
            self.store.memberships(user_id).await?.into_iter().collect();
        // A user holds, on each group, the union of their own rights and those of their
        // user groups there (as MeshCentral's GetMeshRights ORs them).
        for (group, rights) in self.store.memberships_via_user_groups(user_id).await? {
            *memberships.entry(group).or_insert(0) |= rights;
        }
        let device_links = self
            .store
            .device_links_of_user(user_id)
            .await?
            .into_iter()
            .collect();
        let second_factor_pending = self.second_factor_pending(&user).await?;
        Ok(Some(Actor {
            user,
            memberships,
            device_links,
            origin: Origin::default(),
            second_factor_pending,
        }))
    }

    /// Checks `need` for `actor`: the one rights check every action goes through.
    pub async fn authorize<R: Requirement>(
        &self,
        actor: &Actor,
        need: &R,
    ) -> DomainResult<R::Grant> {
        if actor.second_factor_pending && !R::BEFORE_SECOND_FACTOR {
            return Err(DomainError::SecondFactorRequired);
        }
        need.check(self, actor).await
    }

    /// Users who may see a device: members of its group (directly or through a user
    /// group), users linked to it, and full site administrators.
    pub async fn users_with_access(&self, node_id: &str) -> DomainResult<Vec<String>> {
        let Some(device) = self.store.device(node_id).await? else {
            return Ok(Vec::new());
        };
        let mut users: Vec<String> = self
            .store
            .group_members(&device.group_id)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        users.extend(
            self.store
                .user_ids_via_user_groups(&device.group_id)
                .await?,
        );
        users.extend(device.links.into_iter().map(|l| l.user_id));
        users.extend(self.store.full_admin_ids().await?);
        users.sort();
        users.dedup();
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_rights() {
        let rc = MeshRights(MeshRights::REMOTE_CONTROL);
        assert!(check_session_rights(rc, SessionKind::Terminal).is_ok());
        let no_terminal = MeshRights(MeshRights::REMOTE_CONTROL | MeshRights::NO_TERMINAL);
        assert_eq!(
            check_session_rights(no_terminal, SessionKind::Terminal),
            Err(SessionDenied::Restricted("terminal"))
        );
        assert!(check_session_rights(no_terminal, SessionKind::Files).is_ok());
        assert_eq!(
            check_session_rights(MeshRights(MeshRights::AGENT_CONSOLE), SessionKind::Files),
            Err(SessionDenied::NoRemoteControl)
        );
        assert!(check_session_rights(MeshRights(MeshRights::RELAY), SessionKind::Other).is_ok());
        assert_eq!(
            check_session_rights(MeshRights(MeshRights::RELAY), SessionKind::Terminal),
            Err(SessionDenied::NoRemoteControl)
        );
        // Full rights ignore the "no …" bits.
        assert!(check_session_rights(MeshRights(MeshRights::FULL), SessionKind::Desktop).is_ok());
    }
}
