//! User accounts.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// `user//<lower-case name>`.
    pub id: String,
    /// Name as typed at creation (case kept for display).
    pub name: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub realname: Option<String>,
    /// argon2id PHC string; never leaves the server.
    pub password_hash: String,
    /// Site rights bits (`SiteRights`).
    pub site_rights: u32,
    /// Ask for a new password at next interactive login.
    pub reset_next_login: bool,
    pub created_ms: i64,
    pub password_changed_ms: i64,
}

const COLUMNS: &str = "id, name, email, email_verified, realname, password_hash, site_rights, \
                       reset_next_login, created_ms, password_changed_ms";

fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        realname: row.try_get("realname")?,
        password_hash: row.try_get("password_hash")?,
        site_rights: row.try_get::<i64, _>("site_rights")? as u32,
        reset_next_login: row.try_get::<i64, _>("reset_next_login")? != 0,
        created_ms: row.try_get("created_ms")?,
        password_changed_ms: row.try_get("password_changed_ms")?,
    })
}

impl Store {
    pub async fn insert_user(&self, user: &User) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO users ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.email)
        .bind(user.email_verified as i64)
        .bind(&user.realname)
        .bind(&user.password_hash)
        .bind(user.site_rights as i64)
        .bind(user.reset_next_login as i64)
        .bind(user.created_ms)
        .bind(user.password_changed_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    pub async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Every account, oldest first (as MeshCentral lists them).
    pub async fn users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Ids of the accounts whose site rights are all ones (full administrators).
    pub async fn full_admin_ids(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM users WHERE site_rights = $1")
            .bind(u32::MAX as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn user_count(&self) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Returns false when no such user existed.
    pub async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_password(&self, id: &str, hash: &str, now_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $2, password_changed_ms = $3, reset_next_login = 0 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(hash)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Updates the editable profile fields and site rights.
    pub async fn update_user(&self, user: &User) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET email = $2, email_verified = $3, realname = $4, site_rights = $5, \
             reset_next_login = $6 WHERE id = $1",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(user.email_verified as i64)
        .bind(&user.realname)
        .bind(user.site_rights as i64)
        .bind(user.reset_next_login as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
