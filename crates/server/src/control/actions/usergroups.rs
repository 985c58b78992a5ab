//! User groups: `usergroups` (listusergroups), `createusergroup` (addusergroup),
//! `deleteusergroup` (removeusergroup), `addusertousergroup` (addtousergroup),
//! `removeuserfromusergroup` (removefromusergroup); and who is signed in:
//! `wssessioncount` (listusersessions), `userbroadcast` (broadcast).
//! docs/protocol/control.md §2.6.

use ironmesh_core::access::{Actor, Requirement, SignedIn, SiteNeed};
use ironmesh_core::usergroups::{user_group_json, user_group_name_json};
use ironmesh_core::{hex, random_bytes, Domain, DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::SiteRights;
use serde_json::{json, Map, Value};

use super::{ok, optional_str, optional_str_list, optional_u32, Action, Replies};
use crate::control::session::ControlSession;

/// A site right whose absence MeshCentral answers with "Permission denied" (its user
/// group and broadcast commands) where other commands say "Access denied".
pub struct SitePermission(pub u32);

impl Requirement for SitePermission {
    type Grant = ();

    async fn check(&self, domain: &Domain, actor: &Actor) -> DomainResult<()> {
        SiteNeed(self.0)
            .check(domain, actor)
            .await
            .map_err(|e| match e {
                DomainError::Denied => DomainError::Invalid("Permission denied".into()),
                other => other,
            })
    }
}

const USER_GROUPS: SitePermission = SitePermission(SiteRights::USER_GROUPS);

/// A user group id field: missing or not a string is `missing`; an id of another kind
/// or a malformed one is `malformed` (MeshCentral's texts differ per command).
fn ugrp_id(req: &Request, missing: &str, malformed: &str) -> DomainResult<String> {
    match req.body.get("ugrpid") {
        Some(Value::String(s)) if !s.is_empty() => normalize_id(IdKind::UserGroup, s)
            .ok()
            .filter(|_| s.starts_with("ugrp/"))
            .ok_or_else(|| DomainError::Invalid(malformed.into())),
        _ => Err(DomainError::Invalid(missing.into())),
    }
}

/// `usergroups`: every user group by id; user group administrators get the whole record,
/// others the name only; `null` when there are none.
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
        let full = s.actor.site().has(SiteRights::USER_GROUPS);
        let mut groups = Map::new();
        for view in s.state.domain.user_groups().await? {
            let record = if full {
                user_group_json(&view)
            } else {
                user_group_name_json(&view)
            };
            groups.insert(view.group.id.clone(), record);
        }
        let ugroups = if groups.is_empty() {
            Value::Null
        } else {
            Value::Object(groups)
        };
        Ok(vec![req.reply().with("ugroups", ugroups).into_value()])
    }
}

/// `createusergroup`.
pub struct Create {
    name: String,
    description: String,
}

impl Action for Create {
    type Need = SitePermission;

    fn parse(req: &Request) -> DomainResult<Self> {
        let name = match req.body.get("name") {
            Some(Value::String(n)) => n.clone(),
            _ => return Err(DomainError::Invalid("Invalid group name".into())),
        };
        let description = match req.body.get("desc") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(d)) => d.clone(),
            Some(_) => return Err(DomainError::Invalid("Invalid group description".into())),
        };
        Ok(Create { name, description })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SitePermission> {
        Ok(USER_GROUPS)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let group = s
            .state
            .domain
            .create_user_group(&s.actor, &self.name, &self.description)
            .await?;
        Ok(vec![ok(req)
            .with("ugrpid", group.id)
            .with("links", json!({}))
            .into_value()])
    }
}

/// `deleteusergroup`.
pub struct Remove {
    id: String,
}

impl Action for Remove {
    type Need = SitePermission;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(Remove {
            id: ugrp_id(req, "Invalid group id", "Invalid domain id")?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SitePermission> {
        Ok(USER_GROUPS)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let group = s.state.domain.delete_user_group(&s.actor, &self.id).await?;
        Ok(vec![ok(req).with("ugrpid", group.id).into_value()])
    }
}

/// `addusertousergroup`: users by name (meshctrl sends the name part of the id).
pub struct AddUsers {
    id: String,
    names: Vec<String>,
}

impl Action for AddUsers {
    type Need = SitePermission;

    fn parse(req: &Request) -> DomainResult<Self> {
        let id = ugrp_id(req, "Invalid groupid", "Invalid groupid")?;
        let names = optional_str_list(req, "usernames", "names")
            .ok()
            .flatten()
            .filter(|n| !n.is_empty() && n.iter().all(|n| (1..=128).contains(&n.len())))
            .ok_or_else(|| DomainError::Invalid("Invalid usernames".into()))?;
        Ok(AddUsers { id, names })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SitePermission> {
        Ok(USER_GROUPS)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let outcome = s
            .state
            .domain
            .add_to_user_group(&s.actor, &self.id, &self.names)
            .await?;
        Ok(vec![ok(req)
            .with("added", outcome.added.len())
            .with("failed", outcome.unknown.len())
            .into_value()])
    }
}

/// `removeuserfromusergroup`.
pub struct RemoveUser {
    id: String,
    user_id: String,
}

impl Action for RemoveUser {
    type Need = SitePermission;

    fn parse(req: &Request) -> DomainResult<Self> {
        let id = ugrp_id(req, "Invalid groupid", "Invalid groupid")?;
        let user_id = optional_str(req, "userid")
            .ok()
            .flatten()
            .and_then(|u| normalize_id(IdKind::User, &u).ok())
            .ok_or_else(|| DomainError::Invalid("Invalid userid".into()))?;
        Ok(RemoveUser { id, user_id })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SitePermission> {
        Ok(USER_GROUPS)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        s.state
            .domain
            .remove_from_user_group(&s.actor, &self.id, &self.user_id)
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// `wssessioncount`: open control sessions per user id, for user managers; others get an
/// empty map, as from MeshCentral.
pub struct SessionCount;

impl Action for SessionCount {
    type Need = SignedIn;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(SessionCount)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let mut sessions = Map::new();
        if s.actor.site().has(SiteRights::MANAGE_USERS) {
            for (user, count) in s.state.consoles.session_counts() {
                sessions.insert(user, count.into());
            }
        }
        Ok(vec![req
            .reply()
            .with("wssessions", Value::Object(sessions))
            .into_value()])
    }
}

/// Longest broadcast message, in characters.
const MAX_BROADCAST: usize = 512;

/// `userbroadcast`: a notification to every signed-in user, or to one (`userid`).
pub struct Broadcast {
    message: String,
    user_id: Option<String>,
    max_time: Option<u32>,
}

impl Action for Broadcast {
    type Need = SitePermission;

    fn parse(req: &Request) -> DomainResult<Self> {
        let message = match req.body.get("msg") {
            Some(Value::String(m)) if (1..=MAX_BROADCAST).contains(&m.chars().count()) => m.clone(),
            _ => return Err(DomainError::Invalid("Message is too long".into())),
        };
        let user_id = match optional_str(req, "userid")? {
            Some(u) => Some(
                normalize_id(IdKind::User, &u)
                    .map_err(|_| DomainError::NotFound("User does not exists"))?,
            ),
            None => None,
        };
        Ok(Broadcast {
            message,
            user_id,
            max_time: optional_u32(req, "maxtime")?.filter(|t| *t > 0),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SitePermission> {
        Ok(SitePermission(SiteRights::MANAGE_USERS))
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let mut notification = json!({
            "action": "msg",
            "type": "notify",
            "domain": "",
            "value": self.message,
            "title": s.actor.user.name,
            "icon": 0,
            "tag": "broadcast",
            "id": hex(&random_bytes::<8>()),
        });
        if let Some(t) = self.max_time {
            notification["maxtime"] = t.into();
        }
        let users = match self.user_id {
            Some(id) => vec![id],
            None => s.state.consoles.connected_users(),
        };
        s.state.consoles.send_to_users(&users, None, &notification);
        Ok(vec![ok(req).into_value()])
    }
}
