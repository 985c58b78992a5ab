//! Devices (agents' records). Live state (online, connection time) is kept in memory by the
//! agent registry; this table holds what survives a restart.

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
}

const COLUMNS: &str = "id, group_id, name, host, os_desc, icon, agent_id, agent_version, \
    agent_caps, platform_type, core_info, net_info, sys_info, sessions, first_connect_ms, \
    last_connect_ms, last_addr";

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
    })
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
    pub async fn device(&self, id: &str) -> StoreResult<Option<DeviceRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM devices WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn devices(&self) -> StoreResult<Vec<DeviceRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM devices ORDER BY name, id"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Devices in the groups a user is a member of.
    pub async fn devices_of_user(&self, user_id: &str) -> StoreResult<Vec<DeviceRecord>> {
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("d.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {cols} FROM devices d WHERE d.group_id IN \
             (SELECT group_id FROM group_members WHERE user_id = $1 \
              UNION SELECT l.group_id FROM group_user_groups l \
              JOIN user_group_members u ON u.ugrp_id = l.ugrp_id WHERE u.user_id = $2) \
             ORDER BY d.name, d.id"
        ))
        .bind(user_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn devices_in_group(&self, group_id: &str) -> StoreResult<Vec<DeviceRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices WHERE group_id = $1 ORDER BY name, id"
        ))
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Creates the device or refreshes what the agent reported on connection. The stored group and
    /// name win over the agent's (docs/protocol/agent.md §3.3), so they are only written for a new
    /// device.
    pub async fn upsert_device_on_connect(&self, d: &DeviceRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO devices ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
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
