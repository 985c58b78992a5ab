//! `users` (listusers), `adduser`, `deleteuser` (removeuser), `edituser`, `changeuserpass`.

use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::SiteRights;
use serde_json::Value;

use super::{ok, optional_str, optional_u32, required_str, Replies};
use crate::control::session::ControlSession;
use crate::domain::access::{Granted, Need};
use crate::domain::accounts::{user_json, NewUser, UserEdit};
use crate::domain::{DomainError, DomainResult};

pub mod list {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Site(SiteRights::MANAGE_USERS))
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let store = &s.state.domain.store;
        let mut users = Vec::new();
        for user in store.users().await? {
            let memberships = store.memberships(&user.id).await?;
            users.push(user_json(&user, &memberships));
        }
        Ok(vec![req
            .reply()
            .with("users", Value::Array(users))
            .into_value()])
    }
}

pub mod add {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Site(SiteRights::MANAGE_USERS))
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let new = NewUser {
            username: required_str(req, "username")?.to_string(),
            password: required_str(req, "pass")?.to_string(),
            email: optional_str(req, "email")?.map(str::to_string),
            email_verified: req.bool_field("emailVerified").unwrap_or(false),
            realname: optional_str(req, "realname")?.map(str::to_string),
            site_rights: optional_u32(req, "siteadmin")?.unwrap_or(0),
            reset_next_login: req.bool_field("resetNextLogin").unwrap_or(false),
        };
        let user = s.state.domain.add_user(Some(&s.actor), new).await?;
        Ok(vec![ok(req).with("userid", user.id).into_value()])
    }
}

pub mod remove {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Site(SiteRights::MANAGE_USERS))
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let id = normalize_id(IdKind::User, required_str(req, "userid")?)
            .map_err(|_| DomainError::NotFound("User does not exists"))?;
        s.state.domain.remove_user(Some(&s.actor), &id).await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// The account a request names: `userid`, or `id` as MeshCentral's own console sends.
fn target_user(req: &Request) -> DomainResult<String> {
    let raw = match optional_str(req, "userid")? {
        Some(id) => id,
        None => required_str(req, "id")
            .map_err(|_| DomainError::Invalid("Missing field: userid".into()))?,
    };
    normalize_id(IdKind::User, raw).map_err(|_| DomainError::NotFound("User does not exists"))
}

pub mod edit {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Site(SiteRights::MANAGE_USERS))
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let id = target_user(req)?;
        let edit = UserEdit {
            email: optional_str(req, "email")?.map(str::to_string),
            email_verified: req.bool_field("emailVerified"),
            realname: optional_str(req, "realname")?.map(str::to_string),
            site_rights: optional_u32(req, "siteadmin")?,
            reset_next_login: req.bool_field("resetNextLogin"),
        };
        s.state.domain.edit_user(Some(&s.actor), &id, edit).await?;
        Ok(vec![ok(req).into_value()])
    }
}

pub mod change_password {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Site(SiteRights::MANAGE_USERS))
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let id = target_user(req)?;
        let password = required_str(req, "pass")?.to_string();
        s.state
            .domain
            .set_password(Some(&s.actor), &id, password)
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}
