//! Browser sign-in sessions: a random cookie value, of which only the SHA-256 is stored.

use ironmesh_proto::rights::SiteRights;

use crate::accounts::sha256_hex;
use crate::store::{now_ms, User, WebSession};
use crate::{random_bytes, Domain, DomainResult};

impl Domain {
    /// An account by id if it exists and may sign in (not locked).
    pub async fn active_user(&self, user_id: &str) -> DomainResult<Option<User>> {
        Ok(self
            .store
            .user(user_id)
            .await?
            .filter(|u| !SiteRights(u.site_rights).restricted(SiteRights::LOCKED)))
    }

    /// Starts a browser session for `user` lasting `ttl_ms`; returns the cookie value.
    pub async fn start_web_session(&self, user: &User, ttl_ms: i64) -> DomainResult<String> {
        let token =
            ironmesh_proto::ids::b64_at_dollar(&random_bytes::<32>()).replace(['@', '$', '='], "");
        let now = now_ms();
        self.store
            .insert_web_session(&WebSession {
                token_hash: sha256_hex(&token),
                user_id: user.id.clone(),
                created_ms: now,
                expires_ms: now + ttl_ms,
            })
            .await?;
        Ok(token)
    }

    /// The user of a live (unexpired) browser session, if the account may still sign in.
    pub async fn web_session_user(&self, cookie: &str) -> DomainResult<Option<User>> {
        match self
            .store
            .web_session(&sha256_hex(cookie), now_ms())
            .await?
        {
            Some(session) => self.active_user(&session.user_id).await,
            None => Ok(None),
        }
    }

    pub async fn end_web_session(&self, cookie: &str) -> DomainResult<()> {
        Ok(self.store.delete_web_session(&sha256_hex(cookie)).await?)
    }

    /// Deletes expired browser sessions; returns how many.
    pub async fn sweep_web_sessions(&self) -> DomainResult<u64> {
        Ok(self.store.delete_expired_sessions(now_ms()).await?)
    }
}
