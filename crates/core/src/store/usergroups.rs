//! User groups ("ugrp"): named sets of users that can be members of device groups, so
//! their members hold the rights of the link on top of their own.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct UserGroup {
    /// `ugrp//<b64@$ of 48 random bytes>`.
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_ms: i64,
}

/// A link between a user group and something else: a member (user id and name) or a
/// device group it belongs to (group id and name, with the rights it grants).
#[derive(Debug, Clone, PartialEq)]
pub struct UserGroupLink {
    pub id: String,
    pub name: String,
    pub rights: u32,
}

const COLUMNS: &str = "id, name, description, created_ms";

fn from_row(row: &AnyRow) -> Result<UserGroup, sqlx::Error> {
    Ok(UserGroup {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn link_from_row(row: &AnyRow) -> Result<UserGroupLink, sqlx::Error> {
    Ok(UserGroupLink {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        rights: row.try_get::<i64, _>("rights")? as u32,
    })
}

fn links(rows: &[AnyRow]) -> StoreResult<Vec<UserGroupLink>> {
    Ok(rows.iter().map(link_from_row).collect::<Result<_, _>>()?)
}

impl Store {
    pub async fn insert_user_group(&self, group: &UserGroup) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO user_groups ({COLUMNS}) VALUES ($1, $2, $3, $4)"
        ))
        .bind(&group.id)
        .bind(&group.name)
        .bind(&group.description)
        .bind(group.created_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    pub async fn user_group(&self, id: &str) -> StoreResult<Option<UserGroup>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM user_groups WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Every user group, oldest first (as MeshCentral lists them).
    pub async fn user_groups(&self) -> StoreResult<Vec<UserGroup>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM user_groups ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Returns false when no such group existed. Its memberships and links go with it.
    pub async fn delete_user_group(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM user_groups WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds a user to a user group (nothing happens if they are in it already).
    pub async fn add_user_group_member(&self, ugrp_id: &str, user_id: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_group_members (ugrp_id, user_id) VALUES ($1, $2) \
             ON CONFLICT (ugrp_id, user_id) DO NOTHING",
        )
        .bind(ugrp_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_user_group_member(
        &self,
        ugrp_id: &str,
        user_id: &str,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM user_group_members WHERE ugrp_id = $1 AND user_id = $2")
                .bind(ugrp_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The users of a user group (rights are always 1, as MeshCentral records them).
    pub async fn user_group_members(&self, ugrp_id: &str) -> StoreResult<Vec<UserGroupLink>> {
        let rows = sqlx::query(
            "SELECT u.id, u.name, CAST(1 AS BIGINT) AS rights FROM user_group_members m \
             JOIN users u ON u.id = m.user_id WHERE m.ugrp_id = $1 ORDER BY u.created_ms, u.id",
        )
        .bind(ugrp_id)
        .fetch_all(&self.pool)
        .await?;
        links(&rows)
    }

    /// The user groups a user is in.
    pub async fn user_groups_of(&self, user_id: &str) -> StoreResult<Vec<UserGroupLink>> {
        let rows = sqlx::query(
            "SELECT g.id, g.name, CAST(1 AS BIGINT) AS rights FROM user_group_members m \
             JOIN user_groups g ON g.id = m.ugrp_id WHERE m.user_id = $1 \
             ORDER BY g.created_ms, g.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        links(&rows)
    }

    /// Makes a user group a member of a device group, or changes the rights it grants.
    pub async fn set_group_user_group(
        &self,
        group_id: &str,
        ugrp_id: &str,
        rights: u32,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO group_user_groups (group_id, ugrp_id, rights) VALUES ($1, $2, $3) \
             ON CONFLICT (group_id, ugrp_id) DO UPDATE SET rights = excluded.rights",
        )
        .bind(group_id)
        .bind(ugrp_id)
        .bind(rights as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_group_user_group(
        &self,
        group_id: &str,
        ugrp_id: &str,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM group_user_groups WHERE group_id = $1 AND ugrp_id = $2")
                .bind(group_id)
                .bind(ugrp_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The user groups that are members of a device group, with their rights.
    pub async fn group_user_groups(&self, group_id: &str) -> StoreResult<Vec<UserGroupLink>> {
        let rows = sqlx::query(
            "SELECT g.id, g.name, l.rights FROM group_user_groups l \
             JOIN user_groups g ON g.id = l.ugrp_id WHERE l.group_id = $1 \
             ORDER BY g.created_ms, g.id",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        links(&rows)
    }

    /// The device groups a user group is a member of, with the rights it holds there.
    pub async fn user_group_device_groups(&self, ugrp_id: &str) -> StoreResult<Vec<UserGroupLink>> {
        let rows = sqlx::query(
            "SELECT g.id, g.name, l.rights FROM group_user_groups l \
             JOIN device_groups g ON g.id = l.group_id WHERE l.ugrp_id = $1 \
             ORDER BY g.created_ms, g.id",
        )
        .bind(ugrp_id)
        .fetch_all(&self.pool)
        .await?;
        links(&rows)
    }

    /// What a user holds through their user groups: (device group id, rights), one row per
    /// link (a group reached through two user groups appears twice).
    pub async fn memberships_via_user_groups(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<(String, u32)>> {
        let rows = sqlx::query(
            "SELECT l.group_id, l.rights FROM group_user_groups l \
             JOIN user_group_members m ON m.ugrp_id = l.ugrp_id WHERE m.user_id = $1",
        )
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

    /// Users who reach a device group through a user group.
    pub async fn user_ids_via_user_groups(&self, group_id: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT m.user_id FROM user_group_members m \
             JOIN group_user_groups l ON l.ugrp_id = m.ugrp_id WHERE l.group_id = $1",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
