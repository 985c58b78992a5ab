//! Web login sessions and login tokens. Only hashes of the secrets are stored.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct WebSession {
    /// SHA-256 (hex) of the cookie value.
    pub token_hash: String,
    pub user_id: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// A generated `~t:…` user name and password pair that logs in as its owner
/// (`meshctrl logintokens`; docs/protocol/control.md §1.2).
#[derive(Debug, Clone, PartialEq)]
pub struct LoginToken {
    pub token_user: String,
    pub user_id: String,
    pub name: String,
    /// SHA-256 (hex) of the generated password (high entropy, so no slow hash needed).
    pub secret_hash: String,
    pub created_ms: i64,
    /// 0 = never.
    pub expires_ms: i64,
}

fn token_from_row(row: &AnyRow) -> Result<LoginToken, sqlx::Error> {
    Ok(LoginToken {
        token_user: row.try_get("token_user")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
    })
}

impl Store {
    pub async fn insert_web_session(&self, s: &WebSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, user_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&s.token_hash)
        .bind(&s.user_id)
        .bind(s.created_ms)
        .bind(s.expires_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    /// The session, if it exists and has not expired at `now_ms`.
    pub async fn web_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<WebSession>> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, created_ms, expires_ms FROM web_sessions \
             WHERE token_hash = $1 AND expires_ms > $2",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| -> Result<WebSession, sqlx::Error> {
                Ok(WebSession {
                    token_hash: r.try_get("token_hash")?,
                    user_id: r.try_get("user_id")?,
                    created_ms: r.try_get("created_ms")?,
                    expires_ms: r.try_get("expires_ms")?,
                })
            })
            .transpose()?)
    }

    pub async fn delete_web_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every browser session of a user but `keep` (a token hash).
    pub async fn delete_web_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn delete_login_tokens_of(&self, user_id: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM login_tokens WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn insert_login_token(&self, t: &LoginToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO login_tokens (token_user, user_id, name, secret_hash, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.token_user)
        .bind(&t.user_id)
        .bind(&t.name)
        .bind(&t.secret_hash)
        .bind(t.created_ms)
        .bind(t.expires_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    pub async fn login_token(&self, token_user: &str) -> StoreResult<Option<LoginToken>> {
        let row = sqlx::query(
            "SELECT token_user, user_id, name, secret_hash, created_ms, expires_ms FROM login_tokens \
             WHERE token_user = $1",
        )
        .bind(token_user)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(token_from_row).transpose()?)
    }

    pub async fn login_tokens_of(&self, user_id: &str) -> StoreResult<Vec<LoginToken>> {
        let rows = sqlx::query(
            "SELECT token_user, user_id, name, secret_hash, created_ms, expires_ms FROM login_tokens \
             WHERE user_id = $1 ORDER BY created_ms",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn delete_login_token(&self, user_id: &str, token_user: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM login_tokens WHERE user_id = $1 AND token_user = $2")
            .bind(user_id)
            .bind(token_user)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
