//! Second factors: TOTP secrets, recovery code hashes, passkeys; and accounts linked to an
//! OpenID Connect identity.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError, StoreResult};

/// A registered passkey.
#[derive(Debug, Clone, PartialEq)]
pub struct Passkey {
    /// The credential id (base64url).
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The server's serialized credential (public key, counter).
    pub credential: String,
    pub created_ms: i64,
    pub last_used_ms: i64,
}

fn passkey_from_row(row: &AnyRow) -> Result<Passkey, sqlx::Error> {
    Ok(Passkey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        credential: row.try_get("credential")?,
        created_ms: row.try_get("created_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
    })
}

impl Store {
    /// The TOTP secret (base32) and last accepted step of a user, if TOTP is on.
    pub async fn totp(&self, user_id: &str) -> StoreResult<Option<(String, i64)>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT secret, last_step FROM totp WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row)
    }

    pub async fn set_totp(&self, user_id: &str, secret: &str, last_step: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO totp (user_id, secret, last_step) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = excluded.last_step",
        )
        .bind(user_id)
        .bind(secret)
        .bind(last_step)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records `step` as used; false if it (or a later one) already was.
    pub async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE totp SET last_step = $2 WHERE user_id = $1 AND last_step < $2")
                .bind(user_id)
                .bind(step)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[String],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn recovery_code_count(&self, user_id: &str) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Uses up a recovery code; false if it is not one of the user's unused codes.
    pub async fn use_recovery_code(&self, user_id: &str, hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2")
            .bind(user_id)
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes every second factor of a user (TOTP, recovery codes, passkeys).
    pub async fn remove_second_factors(&self, user_id: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for table in ["totp", "recovery_codes", "passkeys"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_passkey(&self, p: &Passkey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO passkeys (id, user_id, name, credential, created_ms, last_used_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&p.id)
        .bind(&p.user_id)
        .bind(&p.name)
        .bind(&p.credential)
        .bind(p.created_ms)
        .bind(p.last_used_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    pub async fn passkeys_of(&self, user_id: &str) -> StoreResult<Vec<Passkey>> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, credential, created_ms, last_used_ms FROM passkeys \
             WHERE user_id = $1 ORDER BY created_ms",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(passkey_from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn update_passkey(
        &self,
        id: &str,
        credential: &str,
        used_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE passkeys SET credential = $2, last_used_ms = $3 WHERE id = $1")
            .bind(id)
            .bind(credential)
            .bind(used_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_passkey(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM passkeys WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The account linked to an OpenID Connect identity (`issuer` + subject).
    pub async fn oidc_user(&self, identity: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT user_id FROM oidc_identities WHERE identity = $1")
                .bind(identity)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// Whether the account signs in through single sign-on (has a linked identity).
    pub async fn has_oidc_identity(&self, user_id: &str) -> StoreResult<bool> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT identity FROM oidc_identities WHERE user_id = $1 LIMIT 1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    pub async fn link_oidc_identity(&self, identity: &str, user_id: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO oidc_identities (identity, user_id) VALUES ($1, $2)")
            .bind(identity)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_insert)?;
        Ok(())
    }
}
