//! User accounts: argon2id passwords, creation and removal rules, login checks, login
//! tokens.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ironmesh_proto::ids::{is_valid_username, normalize_id, IdKind};
use ironmesh_proto::rights::SiteRights;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::access::{Actor, TARGET_USER_MANAGERS};
use crate::events::{EndSessions, Event};
use crate::store::{now_ms, LoginToken, StoreError, User};
use crate::{hex, random_bytes, Domain, DomainError, DomainResult};

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 256;

/// argon2id with the library's defaults (19 MiB, 2 passes, 1 lane: OWASP's recommendation).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// argon2 runs at most this many at once: each takes tens of milliseconds of CPU and
/// 19 MiB of memory, so a burst of logins must queue instead of exhausting memory.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        tokio::sync::Semaphore::new(cores)
    })
}

/// Hashing off the async workers, a bounded number at a time.
pub async fn hash_password_async(password: String) -> anyhow::Result<String> {
    let _slot = hashing_slots().acquire().await?;
    tokio::task::spawn_blocking(move || hash_password(&password)).await?
}

pub async fn verify_password_async(hash: String, password: String) -> bool {
    let Ok(_slot) = hashing_slots().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false)
}

pub fn check_password_policy(password: &str) -> DomainResult<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(DomainError::Invalid(format!(
            "Password too short: at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(DomainError::Invalid(format!(
            "Password too long: at most {MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// A plausible e-mail address: something@host.tld, no spaces.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == ',')
}

/// The session a request came from: a self-change of password keeps it open.
#[derive(Debug, Clone, Default)]
pub struct CurrentSession {
    /// The control session's id (`user//name/<hex>`).
    pub control_session: String,
    /// The browser session cookie it was opened with, if any.
    pub web_cookie: Option<String>,
}

/// What `adduser` (or `account add`) asks for.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub realname: Option<String>,
    pub site_rights: u32,
    pub reset_next_login: bool,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct UserEdit {
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub realname: Option<String>,
    pub site_rights: Option<u32>,
    pub reset_next_login: Option<bool>,
}

/// Why a password login failed. Deliberately coarse: a client learns "bad credentials",
/// never whether the user exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    BadCredentials,
    /// The account has the LOCKED site right.
    AccountLocked,
    /// The password was right, and the account has a second factor: a code is needed.
    SecondFactorRequired {
        user_id: String,
    },
    /// The password was right, the second-factor code was not.
    SecondFactorWrong {
        user_id: String,
    },
}

/// A deliberately valid hash used when the user does not exist, so both paths cost one
/// argon2 verification.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl Domain {
    /// Every account with its links (for user managers), oldest first: its own device
    /// group memberships with their rights, and its user groups (rights 1, as MeshCentral
    /// records them).
    pub async fn users_with_memberships(&self) -> DomainResult<Vec<(User, Vec<(String, u32)>)>> {
        let mut out = Vec::new();
        for user in self.store.users().await? {
            let mut links = self.store.memberships(&user.id).await?;
            links.extend(
                self.store
                    .user_groups_of(&user.id)
                    .await?
                    .into_iter()
                    .map(|g| (g.id, 1)),
            );
            out.push((user, links));
        }
        Ok(out)
    }

    pub async fn user_count(&self) -> DomainResult<i64> {
        Ok(self.store.user_count().await?)
    }

    /// The actor's login tokens, after removing those named in `remove`.
    pub async fn login_tokens(
        &self,
        actor: &Actor,
        remove: &[&str],
    ) -> DomainResult<Vec<LoginToken>> {
        for name in remove {
            self.store.delete_login_token(&actor.user.id, name).await?;
        }
        Ok(self.store.login_tokens_of(&actor.user.id).await?)
    }

    /// Creates an account. `actor` is `None` for the server's own CLI, which may do
    /// anything; otherwise the actor may not grant site rights they do not hold.
    pub async fn add_user(&self, actor: Option<&Actor>, new: NewUser) -> DomainResult<User> {
        if !is_valid_username(&new.username) {
            return Err(DomainError::Invalid(
                "Invalid username: 1-64 characters, no spaces, quotes, commas or slashes, not \
                 starting with ~"
                    .into(),
            ));
        }
        if let Some(email) = &new.email {
            if !is_valid_email(email) {
                return Err(DomainError::Invalid("Invalid email".into()));
            }
        }
        check_password_policy(&new.password)?;
        if let Some(actor) = actor {
            // Restrictions (locked, no new groups, …) may be handed out by any user
            // manager; rights only by who holds them.
            if !SiteRights(new.site_rights).covered_by(actor.site()) {
                return Err(DomainError::Denied);
            }
        }
        let id = normalize_id(IdKind::User, &new.username)
            .map_err(|_| DomainError::Invalid("Invalid username".into()))?;
        let mut site_rights = new.site_rights;
        if !SiteRights(site_rights).is_full() && !self.policy.new_users_create_groups {
            site_rights |= SiteRights::NO_NEW_GROUPS;
        }
        let now = now_ms();
        let user = User {
            id,
            name: new.username.clone(),
            email: new.email.filter(|e| !e.is_empty()),
            email_verified: new.email_verified,
            realname: new.realname.filter(|r| !r.is_empty()),
            password_hash: hash_password_async(new.password).await?,
            site_rights,
            reset_next_login: new.reset_next_login,
            created_ms: now,
            password_changed_ms: now,
        };
        match self.store.insert_user(&user).await {
            Err(StoreError::Conflict) => return Err(DomainError::Conflict("User already exists")),
            other => other?,
        }
        let event = Event::new(
            "user",
            "accountcreate",
            format!("Account {} created", user.name),
        )
        .with("account", user_json(&user, &[]));
        self.publish_account_event(actor, &user, event).await;
        Ok(user)
    }

    /// Removes an account. Nobody removes themselves, and only full administrators remove
    /// full administrators.
    pub async fn remove_user(&self, actor: Option<&Actor>, user_id: &str) -> DomainResult<User> {
        let not_found = DomainError::NotFound("User does not exists");
        let Some(user) = self.store.user(user_id).await? else {
            return Err(not_found);
        };
        if let Some(actor) = actor {
            if actor.user.id == user.id {
                return Err(DomainError::Invalid(
                    "You cannot remove your own account".into(),
                ));
            }
            if SiteRights(user.site_rights).is_full() && !actor.is_full_admin() {
                return Err(DomainError::Denied);
            }
        }
        if !self.store.delete_user(&user.id).await? {
            return Err(not_found);
        }
        let mut event = Event::new(
            "user",
            "accountremove",
            format!("Account {} removed", user.name),
        )
        .with("userid", user.id.clone());
        event.ends_sessions = Some(EndSessions {
            user_id: user.id.clone(),
            keep: None,
            reason: "account removed",
        });
        self.publish_account_event(actor, &user, event).await;
        Ok(user)
    }

    /// Sets an account's password (an administrator's reset, or a self-change). Either way
    /// every way into the account that the old password opened ends: browser sessions,
    /// login tokens, sealed `auth=` tokens issued before now, and open sessions (the event
    /// carries [`Event::ends_sessions`] for the server to close them). A self-change keeps
    /// the session it came from (`from`).
    pub async fn set_password(
        &self,
        actor: Option<&Actor>,
        user_id: &str,
        password: String,
        from: Option<&CurrentSession>,
    ) -> DomainResult<()> {
        check_password_policy(&password)?;
        let Some(user) = self.store.user(user_id).await? else {
            return Err(DomainError::NotFound("User does not exists"));
        };
        if let Some(actor) = actor {
            if SiteRights(user.site_rights).is_full() && !actor.is_full_admin() {
                return Err(DomainError::Denied);
            }
        }
        let keep = from.filter(|_| actor.is_some_and(|a| a.user.id == user.id));
        let hash = hash_password_async(password).await?;
        self.store.set_password(&user.id, &hash, now_ms()).await?;
        let keep_cookie = keep.and_then(|k| k.web_cookie.as_deref()).map(sha256_hex);
        self.store
            .delete_web_sessions_of(&user.id, keep_cookie.as_deref())
            .await?;
        self.store.delete_login_tokens_of(&user.id).await?;
        let mut event = Event::new(
            "user",
            "accountchange",
            format!("Password of {} changed", user.name),
        );
        event.ends_sessions = Some(EndSessions {
            user_id: user.id.clone(),
            keep: keep.map(|k| k.control_session.clone()),
            reason: "password changed: sign in again",
        });
        self.publish_account_event(actor, &user, event).await;
        Ok(())
    }

    /// A user changes their own password, proving they know the current one.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        old_password: &str,
        new_password: String,
        from: &CurrentSession,
    ) -> DomainResult<()> {
        let Some(user) = self.store.user(&actor.user.id).await? else {
            return Err(DomainError::NotFound("User does not exists"));
        };
        if !verify_password_async(user.password_hash.clone(), old_password.to_string()).await {
            return Err(DomainError::Invalid("Incorrect current password".into()));
        }
        if old_password == new_password {
            return Err(DomainError::Invalid(
                "The new password must differ from the current one".into(),
            ));
        }
        self.set_password(Some(actor), &user.id, new_password, Some(from))
            .await
    }

    /// Edits an account's profile and site rights. Only full administrators edit full
    /// administrators; nobody grants site rights they do not hold, nor changes their own.
    pub async fn edit_user(
        &self,
        actor: Option<&Actor>,
        user_id: &str,
        edit: UserEdit,
    ) -> DomainResult<User> {
        let Some(mut user) = self.store.user(user_id).await? else {
            return Err(DomainError::NotFound("User does not exists"));
        };
        if let Some(email) = edit.email.as_deref().filter(|e| !e.is_empty()) {
            if !is_valid_email(email) {
                return Err(DomainError::Invalid("Invalid email".into()));
            }
        }
        if let Some(actor) = actor {
            if SiteRights(user.site_rights).is_full() && !actor.is_full_admin() {
                return Err(DomainError::Denied);
            }
            if let Some(rights) = edit.site_rights {
                if rights != user.site_rights && actor.user.id == user.id {
                    return Err(DomainError::Invalid(
                        "You cannot change your own site rights".into(),
                    ));
                }
                if !SiteRights(rights).covered_by(actor.site()) {
                    return Err(DomainError::Denied);
                }
            }
        }
        if let Some(email) = edit.email {
            user.email = Some(email).filter(|e| !e.is_empty());
        }
        if let Some(v) = edit.email_verified {
            user.email_verified = v;
        }
        if let Some(realname) = edit.realname {
            user.realname = Some(realname).filter(|r| !r.is_empty());
        }
        let was_locked = SiteRights(user.site_rights).restricted(SiteRights::LOCKED);
        if let Some(rights) = edit.site_rights {
            user.site_rights = rights;
        }
        let now_locked = SiteRights(user.site_rights).restricted(SiteRights::LOCKED);
        if let Some(v) = edit.reset_next_login {
            user.reset_next_login = v;
        }
        if !self.store.update_user(&user).await? {
            return Err(DomainError::NotFound("User does not exists"));
        }
        let mut event = Event::new(
            "user",
            "accountchange",
            format!("Account {} changed", user.name),
        )
        .with("account", user_json(&user, &[]));
        if now_locked && !was_locked {
            self.store.delete_web_sessions_of(&user.id, None).await?;
            event.ends_sessions = Some(EndSessions {
                user_id: user.id.clone(),
                keep: None,
                reason: "account locked",
            });
        }
        self.publish_account_event(actor, &user, event).await;
        Ok(user)
    }

    /// Publishes an event about `user`'s account: seen by user managers and by the account
    /// itself, attributed to `actor` (none for the server's own CLI).
    pub(crate) async fn publish_account_event(
        &self,
        actor: Option<&Actor>,
        user: &User,
        event: Event,
    ) {
        let mut event = event.target(TARGET_USER_MANAGERS).target(&user.id);
        if let Some(a) = actor {
            event = event.by_actor(a);
        }
        self.publish(event).await;
    }

    /// Checks a user name (or login-token user `~t:…`) and password. Always costs about
    /// one argon2 verification, whether or not the user exists.
    pub async fn check_login(
        &self,
        username: &str,
        password: &str,
        token: Option<&str>,
    ) -> DomainResult<Result<User, LoginFailure>> {
        if username.starts_with("~t:") {
            return self.check_login_token(username, password).await;
        }
        let user = match normalize_id(IdKind::User, username) {
            Ok(id) => self.store.user(&id).await?,
            Err(_) => None,
        };
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => DUMMY_HASH
                .get_or_init(|| hash_password("ironmesh-dummy-password").unwrap_or_default())
                .clone(),
        };
        let ok = verify_password_async(hash, password.to_string()).await;
        let user = match user {
            Some(user) if ok => user,
            _ => return Ok(Err(LoginFailure::BadCredentials)),
        };
        if SiteRights(user.site_rights).restricted(SiteRights::LOCKED) {
            return Ok(Err(LoginFailure::AccountLocked));
        }
        self.second_factor(user, token).await
    }

    /// After a right password: the account itself if it has no second factor, otherwise
    /// only with a right code (a TOTP code, or an unused recovery code).
    pub async fn second_factor(
        &self,
        user: User,
        code: Option<&str>,
    ) -> DomainResult<Result<User, LoginFailure>> {
        if !self.factors(&user.id).await?.any() {
            return Ok(Ok(user));
        }
        let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
            return Ok(Err(LoginFailure::SecondFactorRequired { user_id: user.id }));
        };
        Ok(match self.check_second_factor(&user.id, code).await? {
            crate::twofactor::CodeCheck::Wrong => {
                Err(LoginFailure::SecondFactorWrong { user_id: user.id })
            }
            _ => Ok(user),
        })
    }

    async fn check_login_token(
        &self,
        token_user: &str,
        password: &str,
    ) -> DomainResult<Result<User, LoginFailure>> {
        let Some(token) = self.store.login_token(token_user).await? else {
            return Ok(Err(LoginFailure::BadCredentials));
        };
        let expired = token.expires_ms != 0 && token.expires_ms <= now_ms();
        let matches = constant_time_eq(
            sha256_hex(password).as_bytes(),
            token.secret_hash.as_bytes(),
        );
        if expired || !matches {
            return Ok(Err(LoginFailure::BadCredentials));
        }
        match self.store.user(&token.user_id).await? {
            Some(user) if SiteRights(user.site_rights).restricted(SiteRights::LOCKED) => {
                Ok(Err(LoginFailure::AccountLocked))
            }
            Some(user) => Ok(Ok(user)),
            None => Ok(Err(LoginFailure::BadCredentials)),
        }
    }

    /// Creates a login token for the actor: returns it and its one-time-shown password.
    /// `expire_minutes` 0 = never expires.
    pub async fn create_login_token(
        &self,
        actor: &Actor,
        name: &str,
        expire_minutes: u64,
    ) -> DomainResult<(LoginToken, String)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(DomainError::Invalid(
                "Invalid token name: 1-64 characters".into(),
            ));
        }
        let token_user = format!(
            "~t:{}",
            &ironmesh_proto::ids::b64_at_dollar(&random_bytes::<12>()).replace(['@', '$'], "x")
        );
        let password =
            ironmesh_proto::ids::b64_at_dollar(&random_bytes::<24>()).replace(['@', '$'], "x");
        let now = now_ms();
        let token = LoginToken {
            token_user,
            user_id: actor.user.id.clone(),
            name: name.to_string(),
            secret_hash: sha256_hex(&password),
            created_ms: now,
            expires_ms: if expire_minutes == 0 {
                0
            } else {
                now + (expire_minutes.min(60 * 24 * 3650) as i64) * 60_000
            },
        };
        self.store.insert_login_token(&token).await?;
        let event = Event::new(
            "user",
            "loginTokenAdded",
            format!("Login token {} created", token.name),
        )
        .by_actor(actor)
        .target(&actor.user.id);
        self.publish(event).await;
        Ok((token, password))
    }
}

/// The user record as MeshCentral clients read it (docs/protocol/control.md §2.3); never includes
/// the password hash. `links` maps group ids to `{rights}`.
pub fn user_json(user: &User, memberships: &[(String, u32)]) -> Value {
    let mut links = Map::new();
    for (group, rights) in memberships {
        links.insert(group.clone(), json!({ "rights": rights }));
    }
    // MeshCentral's key order; `links` and `siteadmin` only when there are any, as
    // MeshCentral stores them (meshctrl prints what arrives, in order).
    let mut map = Map::new();
    map.insert("_id".into(), user.id.clone().into());
    map.insert("name".into(), user.name.clone().into());
    if let Some(email) = &user.email {
        map.insert("email".into(), email.clone().into());
        map.insert("emailVerified".into(), user.email_verified.into());
    }
    map.insert("creation".into(), (user.created_ms / 1000).into());
    map.insert(
        "passchange".into(),
        (user.password_changed_ms / 1000).into(),
    );
    if let Some(realname) = &user.realname {
        map.insert("realname".into(), realname.clone().into());
    }
    if !links.is_empty() {
        map.insert("links".into(), Value::Object(links));
    }
    if user.site_rights != 0 {
        map.insert("siteadmin".into(), user.site_rights.into());
    }
    if user.reset_next_login {
        map.insert("resetNextLogin".into(), true.into());
    }
    Value::Object(map)
}

pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Equality whose timing does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong horse"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn email_and_password_rules() {
        assert!(is_valid_email("bob@example.com"));
        assert!(!is_valid_email("bob@localhost"));
        assert!(!is_valid_email("bob example.com"));
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy("long enough").is_ok());
    }
}
