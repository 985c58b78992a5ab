//! Rights checks, in one place. Every control action declares a [`Need`]; the dispatcher
//! calls [`authorize`] before the action runs and hands it the [`Granted`] objects.
//!
//! Rules: a full site administrator (site rights all ones) holds full rights on every
//! group. Anyone else holds on a group exactly the rights of their membership. An object the
//! caller may not see is reported as "not found", never as "denied", so ids cannot be probed.

use std::collections::HashMap;

use ironmesh_proto::rights::{MeshRights, SiteRights};

use super::{DomainError, DomainResult};
use crate::store::gateways::GatewayRecord;
use crate::store::{DeviceGroup, DeviceRecord, Store, User};

/// The authenticated user on whose behalf something runs, with their memberships as of
/// the moment it was loaded.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    /// Group id → rights.
    pub memberships: HashMap<String, u32>,
}

impl Actor {
    /// Loads the user and their memberships; `None` if the account no longer exists.
    pub async fn load(store: &Store, user_id: &str) -> DomainResult<Option<Actor>> {
        let Some(user) = store.user(user_id).await? else {
            return Ok(None);
        };
        let memberships = store.memberships(user_id).await?.into_iter().collect();
        Ok(Some(Actor { user, memberships }))
    }

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

    /// Whether an event addressed to `targets` (user ids, group ids, or `*users` for user
    /// managers) may be shown to this actor.
    pub fn may_see(&self, targets: &[String]) -> bool {
        self.is_full_admin()
            || targets.iter().any(|t| {
                t == &self.user.id
                    || self.memberships.contains_key(t)
                    || (t == TARGET_USER_MANAGERS && self.site().has(SiteRights::MANAGE_USERS))
            })
    }
}

/// Event target meaning "users who manage accounts".
pub const TARGET_USER_MANAGERS: &str = "*users";

/// What an action requires.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// Any authenticated user.
    Login,
    /// These site-rights bits.
    Site(u32),
    /// These rights on the group (0 = merely able to see it).
    Group { id: String, rights: u32 },
    /// These rights on the device's group (0 = merely able to see the device).
    Device { id: String, rights: u32 },
    /// These rights on the WiFiDogX gateway's group. A gateway in no group (not yet
    /// approved) is visible to full site administrators only.
    Gateway { device_id: String, rights: u32 },
}

/// What [`authorize`] found and checked, handed to the action.
#[derive(Debug, Clone)]
pub enum Granted {
    Login,
    Site,
    Group {
        group: DeviceGroup,
        rights: MeshRights,
    },
    Device {
        device: Box<DeviceRecord>,
        group: DeviceGroup,
        rights: MeshRights,
    },
    Gateway {
        gateway: Box<GatewayRecord>,
        rights: MeshRights,
    },
}

pub async fn authorize(store: &Store, actor: &Actor, need: &Need) -> DomainResult<Granted> {
    match need {
        Need::Login => Ok(Granted::Login),
        Need::Site(bits) => {
            if actor.site().has(*bits) {
                Ok(Granted::Site)
            } else {
                Err(DomainError::Denied)
            }
        }
        Need::Group { id, rights } => {
            let (Some(have), Some(group)) = (actor.group_rights(id), store.group(id).await?) else {
                return Err(DomainError::NotFound("Invalid group id"));
            };
            check(have, *rights)?;
            Ok(Granted::Group {
                group,
                rights: have,
            })
        }
        Need::Device { id, rights } => {
            let not_found = DomainError::NotFound("Invalid device id");
            let Some(device) = store.device(id).await? else {
                return Err(not_found);
            };
            let (Some(have), Some(group)) = (
                actor.group_rights(&device.group_id),
                store.group(&device.group_id).await?,
            ) else {
                return Err(not_found);
            };
            check(have, *rights)?;
            Ok(Granted::Device {
                device: Box::new(device),
                group,
                rights: have,
            })
        }
        Need::Gateway { device_id, rights } => {
            let not_found = DomainError::NotFound("Unknown gateway");
            let Some(gateway) = store.gateway(device_id).await? else {
                return Err(not_found);
            };
            let have = match &gateway.group_id {
                Some(g) => actor.group_rights(g),
                None if actor.is_full_admin() => Some(MeshRights(MeshRights::FULL)),
                None => None,
            }
            .ok_or(not_found)?;
            check(have, *rights)?;
            Ok(Granted::Gateway {
                gateway: Box::new(gateway),
                rights: have,
            })
        }
    }
}

fn check(have: MeshRights, need: u32) -> DomainResult<()> {
    if have.has(need) {
        Ok(())
    } else {
        Err(DomainError::Denied)
    }
}
