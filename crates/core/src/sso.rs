//! Accounts of single sign-on: created on a person's first sign-in through the identity
//! provider, linked to its stable identity (issuer and subject), and kept in step with the
//! groups the provider says they belong to.

use ironmesh_proto::ids::{is_valid_username, normalize_id, IdKind};
use ironmesh_proto::rights::SiteRights;

use crate::access::TARGET_USER_MANAGERS;
use crate::accounts::{hash_password_async, user_json};
use crate::events::Event;
use crate::store::{now_ms, StoreError, User};
use crate::{hex, random_bytes, Domain, DomainError, DomainResult};

/// What the identity provider says about who signed in, mapped to ironmesh.
#[derive(Debug, Clone)]
pub struct SsoAccount {
    /// `issuer|subject`.
    pub identity: String,
    pub username: String,
    pub email: Option<String>,
    pub realname: Option<String>,
    /// Site rights to set, when the mapping decides them (administrator groups).
    pub site_rights: Option<u32>,
    /// Device groups (ids) and rights the provider's groups map to.
    pub memberships: Vec<(String, u32)>,
    /// Every device group the mapping covers: memberships there follow the provider.
    pub mapped_groups: Vec<String>,
}

impl Domain {
    /// The account of a single sign-on: found by its linked identity, or created (with an
    /// unusable password) on the first sign-in. Group memberships the mapping covers are
    /// set to what the provider says.
    pub async fn sso_sign_in(&self, a: SsoAccount) -> DomainResult<User> {
        let mut user = match self.store.oidc_user(&a.identity).await? {
            Some(user_id) => self
                .store
                .user(&user_id)
                .await?
                .ok_or(DomainError::NotFound("User does not exists"))?,
            None => self.create_sso_user(&a).await?,
        };
        if SiteRights(user.site_rights).restricted(SiteRights::LOCKED) {
            return Err(DomainError::Invalid("This account is locked".into()));
        }
        if let Some(rights) = a.site_rights {
            if rights != user.site_rights {
                user.site_rights = rights;
                self.store.update_user(&user).await?;
            }
        }
        let current = self.store.memberships(&user.id).await?;
        for group in &a.mapped_groups {
            let wanted = a
                .memberships
                .iter()
                .find(|(g, _)| g == group)
                .map(|(_, r)| *r);
            let had = current.iter().find(|(g, _)| g == group).map(|(_, r)| *r);
            match (wanted, had) {
                (Some(w), h) if Some(w) != h => {
                    self.store.set_group_member(group, &user.id, w).await?;
                }
                (None, Some(_)) => {
                    self.store.remove_group_member(group, &user.id).await?;
                }
                _ => {}
            }
        }
        Ok(user)
    }

    async fn create_sso_user(&self, a: &SsoAccount) -> DomainResult<User> {
        if !is_valid_username(&a.username) {
            return Err(DomainError::Invalid(format!(
                "The identity provider's user name {:?} is not a valid ironmesh user name",
                a.username
            )));
        }
        let id = normalize_id(IdKind::User, &a.username)
            .map_err(|_| DomainError::Invalid("Invalid username".into()))?;
        if self.store.user(&id).await?.is_some() {
            return Err(DomainError::Conflict(
                "An account with this name exists and is not linked to single sign-on; an \
                 administrator must rename or remove it first",
            ));
        }
        let now = now_ms();
        let mut site_rights = a.site_rights.unwrap_or(0);
        if !SiteRights(site_rights).is_full() && !self.policy.new_users_create_groups {
            site_rights |= SiteRights::NO_NEW_GROUPS;
        }
        let user = User {
            id,
            name: a.username.clone(),
            email: a.email.clone(),
            email_verified: a.email.is_some(),
            realname: a.realname.clone(),
            // Nobody knows this password: the account signs in through the provider.
            password_hash: hash_password_async(hex(&random_bytes::<32>())).await?,
            site_rights,
            reset_next_login: false,
            created_ms: now,
            password_changed_ms: now,
        };
        match self.store.insert_user(&user).await {
            Err(StoreError::Conflict) => return Err(DomainError::Conflict("User already exists")),
            other => other?,
        }
        self.store.link_oidc_identity(&a.identity, &user.id).await?;
        let event = Event::new(
            "user",
            "accountcreate",
            format!("Account {} created by single sign-on", user.name),
        )
        .with("account", user_json(&user, &[]))
        .target(TARGET_USER_MANAGERS)
        .target(&user.id);
        self.publish(event).await;
        Ok(user)
    }
}
