//! `users` (listusers), `adduser`, `deleteuser` (removeuser), `edituser`, `changeuserpass`.

use ironmesh_core::access::{Enrolling, SiteNeed};
use ironmesh_core::accounts::{user_json, NewUser, UserEdit};
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::SiteRights;
use serde_json::Value;

use super::{denied_as, ok, optional_str, optional_u32, required_str, Action, Replies};
use crate::control::session::ControlSession;

/// What every action here needs: the right to manage accounts.
const MANAGE_USERS: SiteNeed = SiteNeed(SiteRights::MANAGE_USERS);

/// A user id from a name or id field; unknown forms read as an unknown user.
fn user_id(raw: &str) -> DomainResult<String> {
    normalize_id(IdKind::User, raw).map_err(|_| DomainError::NotFound("User does not exists"))
}

/// The account a request names: `userid`, or `id` as MeshCentral's own console sends.
fn target_user(req: &Request) -> DomainResult<String> {
    let raw = match optional_str(req, "userid")? {
        Some(id) => id,
        None => required_str(req, "id")
            .map_err(|_| DomainError::Invalid("Missing field: userid".into()))?,
    };
    user_id(&raw)
}

/// `users`: every account with its memberships.
pub struct List;

impl Action for List {
    type Need = SiteNeed;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(List)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SiteNeed> {
        Ok(MANAGE_USERS)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let users: Vec<Value> = s
            .state
            .domain
            .users_with_memberships()
            .await?
            .iter()
            .map(|(user, memberships)| user_json(user, memberships))
            .collect();
        Ok(vec![req
            .reply()
            .with("users", Value::Array(users))
            .into_value()])
    }
}

/// `adduser`.
pub struct Add(NewUser);

impl Action for Add {
    type Need = SiteNeed;

    fn refusal(&self, e: DomainError) -> DomainError {
        denied_as(e, "Permission denied")
    }

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(Add(NewUser {
            username: required_str(req, "username")?,
            password: required_str(req, "pass")?,
            email: optional_str(req, "email")?,
            email_verified: req.bool_field("emailVerified").unwrap_or(false),
            realname: optional_str(req, "realname")?,
            site_rights: optional_u32(req, "siteadmin")?.unwrap_or(0),
            reset_next_login: req.bool_field("resetNextLogin").unwrap_or(false),
        }))
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SiteNeed> {
        Ok(MANAGE_USERS)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        // MeshCentral's reply is a bare `ok` (meshctrl prints it as is); the new account's
        // id is `user//` + the lower-cased name.
        s.state.domain.add_user(Some(&s.actor), self.0).await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// `deleteuser`.
pub struct Remove {
    user_id: String,
}

impl Action for Remove {
    type Need = SiteNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(Remove {
            user_id: user_id(&required_str(req, "userid")?)?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SiteNeed> {
        Ok(MANAGE_USERS)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        s.state
            .domain
            .remove_user(Some(&s.actor), &self.user_id)
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// `edituser`.
pub struct Edit {
    user_id: String,
    edit: UserEdit,
}

impl Action for Edit {
    type Need = SiteNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(Edit {
            user_id: target_user(req)?,
            edit: UserEdit {
                email: optional_str(req, "email")?,
                email_verified: req.bool_field("emailVerified"),
                realname: optional_str(req, "realname")?,
                site_rights: optional_u32(req, "siteadmin")?,
                reset_next_login: req.bool_field("resetNextLogin"),
            },
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SiteNeed> {
        Ok(MANAGE_USERS)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        s.state
            .domain
            .edit_user(Some(&s.actor), &self.user_id, self.edit)
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// `changeuserpass`: an administrator sets another account's password.
pub struct ChangePassword {
    user_id: String,
    password: String,
}

impl Action for ChangePassword {
    type Need = SiteNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(ChangePassword {
            user_id: target_user(req)?,
            password: required_str(req, "pass")?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SiteNeed> {
        Ok(MANAGE_USERS)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        s.state
            .domain
            .set_password(
                Some(&s.actor),
                &self.user_id,
                self.password,
                Some(&s.current()),
            )
            .await?;
        if self.user_id == s.actor.user.id {
            keep_own_session(s).await?;
        }
        Ok(vec![ok(req).into_value()])
    }
}

/// `changepassword`: a user changes their own password, giving the current one. Every
/// other session of the account ends; this one stays.
pub struct ChangeOwnPassword {
    old_password: String,
    new_password: String,
}

impl Action for ChangeOwnPassword {
    type Need = Enrolling;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(ChangeOwnPassword {
            old_password: required_str(req, "oldpass")?,
            new_password: required_str(req, "newpass")?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Enrolling> {
        Ok(Enrolling)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let current = s.current();
        s.state
            .domain
            .change_own_password(&s.actor, &self.old_password, self.new_password, &current)
            .await?;
        keep_own_session(s).await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// After a self-change of password: this session knows the new credentials.
async fn keep_own_session(s: &mut ControlSession) -> DomainResult<()> {
    if let Some(actor) = s.state.domain.actor(&s.actor.user.id).await? {
        s.keep_credentials(actor.user.password_changed_ms);
    }
    Ok(())
}
