//! WiFiDogX gateways (devices running apfree-wifidog) and captive-portal sessions.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreResult};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GatewayRecord {
    /// The device's own `device_id`.
    pub device_id: String,
    /// The device group whose members may see and command it (set on approval).
    pub group_id: Option<String>,
    /// Admitted by an administrator (or an auto-approval rule).
    pub approved: bool,
    /// `8.x` or `9.x`.
    pub generation: String,
    pub mode: Option<i64>,
    /// JSON texts as last reported.
    pub device_info: Option<String>,
    pub gateways: Option<String>,
    pub sys_info: Option<String>,
    /// JSON object gw_id → wanted auth_mode.
    pub wanted_auth_modes: Option<String>,
    pub remote_addr: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

const COLUMNS: &str =
    "device_id, group_id, approved, generation, mode, device_info, gateways, sys_info, \
     wanted_auth_modes, remote_addr, first_seen_ms, last_seen_ms";

fn from_row(row: &AnyRow) -> Result<GatewayRecord, sqlx::Error> {
    Ok(GatewayRecord {
        device_id: row.try_get("device_id")?,
        group_id: row.try_get("group_id")?,
        approved: row.try_get::<i64, _>("approved")? != 0,
        generation: row.try_get("generation")?,
        mode: row.try_get("mode")?,
        device_info: row.try_get("device_info")?,
        gateways: row.try_get("gateways")?,
        sys_info: row.try_get("sys_info")?,
        wanted_auth_modes: row.try_get("wanted_auth_modes")?,
        remote_addr: row.try_get("remote_addr")?,
        first_seen_ms: row.try_get("first_seen_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
    })
}

/// A captive-portal login: issued to a browser, checked by the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalSession {
    pub token: String,
    pub gw_id: String,
    pub client_mac: String,
    pub client_ip: String,
    /// 0 issued, 1 active, 2 ended.
    pub state: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Store {
    /// Records what a device reported; approval, group and wanted auth modes are kept.
    /// A report with no `device_info`/`sys_info` keeps the stored ones.
    pub async fn record_gateway_report(&self, g: &GatewayRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO gateways ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (device_id) DO UPDATE SET generation = excluded.generation, mode = excluded.mode, \
             device_info = COALESCE(excluded.device_info, gateways.device_info), gateways = excluded.gateways, \
             sys_info = COALESCE(excluded.sys_info, gateways.sys_info), remote_addr = excluded.remote_addr, \
             last_seen_ms = excluded.last_seen_ms"
        ))
        .bind(&g.device_id)
        .bind(&g.group_id)
        .bind(g.approved as i64)
        .bind(&g.generation)
        .bind(g.mode)
        .bind(&g.device_info)
        .bind(&g.gateways)
        .bind(&g.sys_info)
        .bind(&g.wanted_auth_modes)
        .bind(&g.remote_addr)
        .bind(g.first_seen_ms)
        .bind(g.last_seen_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn gateway(&self, device_id: &str) -> StoreResult<Option<GatewayRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM gateways WHERE device_id = $1"
        ))
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn gateways(&self) -> StoreResult<Vec<GatewayRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM gateways ORDER BY device_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Admits a gateway into a group (or into none: visible to site administrators only).
    pub async fn approve_gateway(
        &self,
        device_id: &str,
        group_id: Option<&str>,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE gateways SET approved = 1, group_id = $2 WHERE device_id = $1")
                .bind(device_id)
                .bind(group_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_wanted_auth_modes(&self, device_id: &str, json: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE gateways SET wanted_auth_modes = $2 WHERE device_id = $1")
            .bind(device_id)
            .bind(json)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn insert_portal_session(&self, p: &PortalSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO portal_sessions (token, gw_id, client_mac, client_ip, state, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&p.token)
        .bind(&p.gw_id)
        .bind(&p.client_mac)
        .bind(&p.client_ip)
        .bind(p.state)
        .bind(p.created_ms)
        .bind(p.updated_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn portal_session(&self, token: &str) -> StoreResult<Option<PortalSession>> {
        let row = sqlx::query(
            "SELECT token, gw_id, client_mac, client_ip, state, created_ms, updated_ms FROM portal_sessions WHERE token = $1",
        )
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<PortalSession, sqlx::Error> {
            Ok(PortalSession {
                token: r.try_get("token")?,
                gw_id: r.try_get("gw_id")?,
                client_mac: r.try_get("client_mac")?,
                client_ip: r.try_get("client_ip")?,
                state: r.try_get("state")?,
                created_ms: r.try_get("created_ms")?,
                updated_ms: r.try_get("updated_ms")?,
            })
        })
        .transpose()
        .map_err(Into::into)
    }

    /// Moves a session to `state` (and records the client seen by the gateway).
    pub async fn update_portal_session(
        &self,
        token: &str,
        state: i64,
        mac: &str,
        ip: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE portal_sessions SET state = $2, client_mac = CASE WHEN $3 = '' THEN client_mac ELSE $3 END, \
             client_ip = CASE WHEN $4 = '' THEN client_ip ELSE $4 END, updated_ms = $5 WHERE token = $1",
        )
        .bind(token)
        .bind(state)
        .bind(mac)
        .bind(ip)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
