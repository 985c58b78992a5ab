//! Device groups ("meshes") and their members' rights.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceGroup {
    /// `mesh//<b64@$ of 48 random bytes>`.
    pub id: String,
    pub name: String,
    /// 2 = agent group (the only kind ironmesh hosts today).
    pub mtype: i64,
    pub description: String,
    /// 1 auto-remove, 2 hostname sync, 4 record sessions.
    pub flags: i64,
    /// Consent bits OR-ed into tunnels.
    pub consent: i64,
    pub creator_id: Option<String>,
    pub creator_name: Option<String>,
    pub created_ms: i64,
}

/// One user's rights on one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMember {
    pub group_id: String,
    pub user_id: String,
    pub user_name: String,
    pub rights: u32,
}

const COLUMNS: &str =
    "id, name, mtype, description, flags, consent, creator_id, creator_name, created_ms";

fn from_row(row: &AnyRow) -> Result<DeviceGroup, sqlx::Error> {
    Ok(DeviceGroup {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        mtype: row.try_get("mtype")?,
        description: row.try_get("description")?,
        flags: row.try_get("flags")?,
        consent: row.try_get("consent")?,
        creator_id: row.try_get("creator_id")?,
        creator_name: row.try_get("creator_name")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn member_from_row(row: &AnyRow) -> Result<GroupMember, sqlx::Error> {
    Ok(GroupMember {
        group_id: row.try_get("group_id")?,
        user_id: row.try_get("user_id")?,
        user_name: row.try_get("name")?,
        rights: row.try_get::<i64, _>("rights")? as u32,
    })
}

impl Store {
    /// Creates the group and, in the same transaction, its creator's membership.
    pub async fn insert_group(
        &self,
        group: &DeviceGroup,
        creator: Option<(&str, u32)>,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        let result = insert_group_in(&mut conn, group, creator).await;
        if result.is_err() {
            // When SQLite rolls a transaction back by itself (a COMMIT that fails for lack of
            // space or an I/O error), sqlx still counts it as open: the connection would start
            // its next transaction as a savepoint inside nothing, which a failed release then
            // leaves open for good, holding the write lock. Such a connection is not reused.
            conn.close_on_drop();
        }
        result
    }

    pub async fn group(&self, id: &str) -> StoreResult<Option<DeviceGroup>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM device_groups WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Every group, oldest first (as MeshCentral lists them).
    pub async fn groups(&self) -> StoreResult<Vec<DeviceGroup>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM device_groups ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Returns false when no such group existed. Members and devices go with it.
    pub async fn delete_group(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM device_groups WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn update_group(&self, group: &DeviceGroup) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE device_groups SET name = $2, description = $3, flags = $4, consent = $5 \
             WHERE id = $1",
        )
        .bind(&group.id)
        .bind(&group.name)
        .bind(&group.description)
        .bind(group.flags)
        .bind(group.consent)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds a member or replaces its rights.
    pub async fn set_group_member(
        &self,
        group_id: &str,
        user_id: &str,
        rights: u32,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO group_members (group_id, user_id, rights) VALUES ($1, $2, $3) \
             ON CONFLICT (group_id, user_id) DO UPDATE SET rights = excluded.rights",
        )
        .bind(group_id)
        .bind(user_id)
        .bind(rights as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_group_member(&self, group_id: &str, user_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn group_members(&self, group_id: &str) -> StoreResult<Vec<GroupMember>> {
        let rows = sqlx::query(
            "SELECT m.group_id, m.user_id, u.name, m.rights FROM group_members m \
             JOIN users u ON u.id = m.user_id WHERE m.group_id = $1 ORDER BY m.user_id",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(member_from_row).collect::<Result<_, _>>()?)
    }

    /// Every membership of a user: (group id, rights).
    pub async fn memberships(&self, user_id: &str) -> StoreResult<Vec<(String, u32)>> {
        let rows = sqlx::query("SELECT group_id, rights FROM group_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("group_id")?,
                    r.try_get::<i64, _>("rights")? as u32,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// The statements of [`Store::insert_group`], in one transaction on `conn`.
async fn insert_group_in(
    conn: &mut sqlx::AnyConnection,
    group: &DeviceGroup,
    creator: Option<(&str, u32)>,
) -> StoreResult<()> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query(&format!(
        "INSERT INTO device_groups ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(&group.id)
    .bind(&group.name)
    .bind(group.mtype)
    .bind(&group.description)
    .bind(group.flags)
    .bind(group.consent)
    .bind(&group.creator_id)
    .bind(&group.creator_name)
    .bind(group.created_ms)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::from_insert)?;
    if let Some((user_id, rights)) = creator {
        sqlx::query("INSERT INTO group_members (group_id, user_id, rights) VALUES ($1, $2, $3)")
            .bind(&group.id)
            .bind(user_id)
            .bind(rights as i64)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
