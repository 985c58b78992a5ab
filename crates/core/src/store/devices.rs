//! Devices (agents' records). Live state (online, connection time) is kept in memory by the
//! agent registry; this table holds what survives a restart.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreResult};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceRecord {
    /// `node//<b64@$ of SHA-384 of the agent's PKCS#1 key>`.
    pub id: String,
    pub group_id: String,
    pub name: String,
    /// Host name the agent reported.
    pub host: String,
    pub os_desc: String,
    pub icon: i64,
    /// Architecture number from handshake command 3 (6 = Linux x86-64).
    pub agent_id: i64,
    pub agent_version: i64,
    pub agent_caps: i64,
    pub platform_type: i64,
    /// JSON text of the agent's last `coreinfo`, `netinfo`, `sysinfo`, `sessions`.
    pub core_info: Option<String>,
    pub net_info: Option<String>,
    pub sys_info: Option<String>,
    pub sessions: Option<String>,
    pub first_connect_ms: i64,
    pub last_connect_ms: i64,
    /// `ip:port` of the last agent connection.
    pub last_addr: String,
    /// What its users wrote about it (`changedevice` `desc`).
    pub description: String,
    /// Its tags: sorted, distinct (`changedevice` `tags`).
    pub tags: Vec<String>,
    /// Consent bits set on the device itself (0: none).
    pub consent: i64,
    /// Users with rights on this device itself, besides its group's members, by user id.
    pub links: Vec<DeviceLink>,
}

/// One user's rights on one device (`adddeviceuser`), held besides any group membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLink {
    pub user_id: String,
    pub rights: u32,
}

/// The columns an agent's connection writes.
const CONNECT_COLUMNS: &str = "id, group_id, name, host, os_desc, icon, agent_id, \
    agent_version, agent_caps, platform_type, core_info, net_info, sys_info, sessions, \
    first_connect_ms, last_connect_ms, last_addr";

const COLUMNS: &str = "id, group_id, name, host, os_desc, icon, agent_id, agent_version, \
    agent_caps, platform_type, core_info, net_info, sys_info, sessions, first_connect_ms, \
    last_connect_ms, last_addr, description, tags, consent";

fn from_row(row: &AnyRow) -> Result<DeviceRecord, sqlx::Error> {
    Ok(DeviceRecord {
        id: row.try_get("id")?,
        group_id: row.try_get("group_id")?,
        name: row.try_get("name")?,
        host: row.try_get("host")?,
        os_desc: row.try_get("os_desc")?,
        icon: row.try_get("icon")?,
        agent_id: row.try_get("agent_id")?,
        agent_version: row.try_get("agent_version")?,
        agent_caps: row.try_get("agent_caps")?,
        platform_type: row.try_get("platform_type")?,
        core_info: row.try_get("core_info")?,
        net_info: row.try_get("net_info")?,
        sys_info: row.try_get("sys_info")?,
        sessions: row.try_get("sessions")?,
        first_connect_ms: row.try_get("first_connect_ms")?,
        last_connect_ms: row.try_get("last_connect_ms")?,
        last_addr: row.try_get("last_addr")?,
        description: row.try_get("description")?,
        // Written only by `set_device_fields`, as a JSON list of strings.
        tags: serde_json::from_str(&row.try_get::<String, _>("tags")?).unwrap_or_default(),
        consent: row.try_get("consent")?,
        links: Vec::new(),
    })
}

fn link_from_row(row: &AnyRow) -> Result<DeviceLink, sqlx::Error> {
    Ok(DeviceLink {
        user_id: row.try_get("user_id")?,
        rights: row.try_get::<i64, _>("rights")? as u32,
    })
}

/// Rows to devices, each with its links (one more query, for all of them).
async fn with_links(store: &Store, rows: &[AnyRow]) -> StoreResult<Vec<DeviceRecord>> {
    let mut devices: Vec<DeviceRecord> = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    if devices.is_empty() {
        return Ok(devices);
    }
    let links = sqlx::query("SELECT node_id, user_id, rights FROM device_members ORDER BY user_id")
        .fetch_all(&store.pool)
        .await?;
    let mut by_node: HashMap<String, Vec<DeviceLink>> = HashMap::new();
    for row in &links {
        by_node
            .entry(row.try_get("node_id")?)
            .or_default()
            .push(link_from_row(row)?);
    }
    for d in &mut devices {
        d.links = by_node.remove(&d.id).unwrap_or_default();
    }
    Ok(devices)
}

/// Which of the JSON report columns to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceReport {
    CoreInfo,
    NetInfo,
    SysInfo,
    Sessions,
}

impl DeviceReport {
    /// Largest report of this kind kept, in bytes of JSON: generous for real agents (a
    /// Windows `sysinfo` with its hardware inventory is tens of KiB), small enough that
    /// device lists and change events stay light.
    pub fn max_len(self) -> usize {
        match self {
            DeviceReport::CoreInfo => 16 * 1024,
            DeviceReport::NetInfo => 64 * 1024,
            DeviceReport::SysInfo => 256 * 1024,
            DeviceReport::Sessions => 16 * 1024,
        }
    }

    fn column(self) -> &'static str {
        match self {
            DeviceReport::CoreInfo => "core_info",
            DeviceReport::NetInfo => "net_info",
            DeviceReport::SysInfo => "sys_info",
            DeviceReport::Sessions => "sessions",
        }
    }
}

impl Store {
    /// A device with its links.
    pub async fn device(&self, id: &str) -> StoreResult<Option<DeviceRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM devices WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(mut device) = row.as_ref().map(from_row).transpose()? else {
            return Ok(None);
        };
        let links = sqlx::query(
            "SELECT user_id, rights FROM device_members WHERE node_id = $1 ORDER BY user_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        device.links = links.iter().map(link_from_row).collect::<Result<_, _>>()?;
        Ok(Some(device))
    }

    pub async fn devices(&self) -> StoreResult<Vec<DeviceRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM devices ORDER BY name, id"))
            .fetch_all(&self.pool)
            .await?;
        with_links(self, &rows).await
    }

    /// Devices in the groups a user is a member of (directly or through a user group), and
    /// those linked to the user directly.
    pub async fn devices_of_user(&self, user_id: &str) -> StoreResult<Vec<DeviceRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices \
             WHERE group_id IN (SELECT group_id FROM group_members WHERE user_id = $1 \
              UNION SELECT l.group_id FROM group_user_groups l \
              JOIN user_group_members u ON u.ugrp_id = l.ugrp_id WHERE u.user_id = $2) \
             OR id IN (SELECT node_id FROM device_members WHERE user_id = $1) \
             ORDER BY name, id"
        ))
        .bind(user_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        with_links(self, &rows).await
    }

    pub async fn devices_in_group(&self, group_id: &str) -> StoreResult<Vec<DeviceRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices WHERE group_id = $1 ORDER BY name, id"
        ))
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        with_links(self, &rows).await
    }

    /// Stores what users set on a device: name, description, tags, icon, consent.
    pub async fn set_device_fields(&self, d: &DeviceRecord) -> StoreResult<bool> {
        let tags = serde_json::to_string(&d.tags).unwrap_or_else(|_| "[]".into());
        let done = sqlx::query(
            "UPDATE devices SET name = $2, description = $3, tags = $4, icon = $5, consent = $6 \
             WHERE id = $1",
        )
        .bind(&d.id)
        .bind(&d.name)
        .bind(&d.description)
        .bind(tags)
        .bind(d.icon)
        .bind(d.consent)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Moves a device to another group; its links stay.
    pub async fn set_device_group(&self, id: &str, group_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE devices SET group_id = $2 WHERE id = $1")
            .bind(id)
            .bind(group_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a device and its links (the event log keeps what happened to it).
    pub async fn delete_device(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM devices WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives a user rights on one device, or replaces them.
    pub async fn set_device_link(
        &self,
        node_id: &str,
        user_id: &str,
        rights: u32,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO device_members (node_id, user_id, rights) VALUES ($1, $2, $3) \
             ON CONFLICT (node_id, user_id) DO UPDATE SET rights = excluded.rights",
        )
        .bind(node_id)
        .bind(user_id)
        .bind(rights as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Returns false when the user had no rights of their own on the device.
    pub async fn remove_device_link(&self, node_id: &str, user_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM device_members WHERE node_id = $1 AND user_id = $2")
            .bind(node_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every device link of a user: (device id, rights).
    pub async fn device_links_of_user(&self, user_id: &str) -> StoreResult<Vec<(String, u32)>> {
        let rows = sqlx::query("SELECT node_id, rights FROM device_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("node_id")?, r.try_get::<i64, _>("rights")? as u32)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Creates the device or refreshes what the agent reported on connection. The stored group and
    /// name win over the agent's (docs/protocol/agent.md §3.3), so they are only written for a new
    /// device.
    pub async fn upsert_device_on_connect(&self, d: &DeviceRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO devices ({CONNECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (id) DO UPDATE SET \
             host = excluded.host, agent_id = excluded.agent_id, \
             agent_version = excluded.agent_version, agent_caps = excluded.agent_caps, \
             platform_type = excluded.platform_type, last_connect_ms = excluded.last_connect_ms, \
             last_addr = excluded.last_addr"
        ))
        .bind(&d.id)
        .bind(&d.group_id)
        .bind(&d.name)
        .bind(&d.host)
        .bind(&d.os_desc)
        .bind(d.icon)
        .bind(d.agent_id)
        .bind(d.agent_version)
        .bind(d.agent_caps)
        .bind(d.platform_type)
        .bind(&d.core_info)
        .bind(&d.net_info)
        .bind(&d.sys_info)
        .bind(&d.sessions)
        .bind(d.first_connect_ms)
        .bind(d.last_connect_ms)
        .bind(&d.last_addr)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores one JSON report; `os_desc` is updated alongside `coreinfo` when given.
    pub async fn set_device_report(
        &self,
        id: &str,
        report: DeviceReport,
        json: &str,
        os_desc: Option<&str>,
    ) -> StoreResult<bool> {
        let col = report.column();
        let done = match os_desc {
            Some(os) => {
                sqlx::query(&format!(
                    "UPDATE devices SET {col} = $2, os_desc = $3 WHERE id = $1"
                ))
                .bind(id)
                .bind(json)
                .bind(os)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("UPDATE devices SET {col} = $2 WHERE id = $1"))
                    .bind(id)
                    .bind(json)
                    .execute(&self.pool)
                    .await?
            }
        };
        super::health::wrote();
        Ok(done.rows_affected() > 0)
    }
}
