//! WiFiDogX gateways: what they report, their admission into a device group, the auth
//! modes wanted for them, and captive-portal sessions (docs/protocol/wifidogx.md).

use std::collections::HashMap;

use ironmesh_proto::rights::MeshRights;
use serde_json::{Map, Value};

use crate::access::Actor;
use crate::events::Event;
use crate::store::gateways::{GatewayRecord, PortalSession};
use crate::store::{now_ms, DeviceGroup};
use crate::{Domain, DomainError, DomainResult};

/// A portal session's states.
pub const PORTAL_ISSUED: i64 = 0;
pub const PORTAL_ACTIVE: i64 = 1;
pub const PORTAL_ENDED: i64 = 2;

/// What one `connect`/`heartbeat` said, ready to store.
#[derive(Debug, Clone)]
pub struct GatewayReport {
    /// `8.x` or `9.x`.
    pub generation: String,
    pub mode: Option<i64>,
    /// JSON texts; `None` keeps what is stored.
    pub device_info: Option<String>,
    pub gateways: String,
    pub sys_info: Option<String>,
    pub remote_addr: String,
}

/// How unknown gateways are admitted, from the server's configuration.
#[derive(Debug, Clone, Default)]
pub struct AdmissionRule {
    /// Admit this device without an administrator (approval not required, or the device
    /// is allow-listed).
    pub auto_admit: bool,
    /// The group automatically admitted devices join.
    pub default_group: Option<String>,
}

/// A report's effect.
#[derive(Debug, Clone)]
pub struct RecordedReport {
    /// The gateway as the database now holds it.
    pub record: GatewayRecord,
    /// The device had never reported before.
    pub first_seen: bool,
}

/// The wanted auth mode per gateway id, as stored.
pub fn wanted_modes(record: &GatewayRecord) -> HashMap<String, i64> {
    record
        .wanted_auth_modes
        .as_deref()
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| v.as_i64().map(|v| (k, v)))
                .collect()
        })
        .unwrap_or_default()
}

impl Domain {
    /// Records what a gateway reported. Approval, group and wanted auth modes are kept; a
    /// device that became allow-listed since it was first seen is admitted here. An
    /// unknown device that is not admitted automatically is not stored (`Ok(None)`): it
    /// waits for approval outside the database.
    pub async fn record_gateway_report(
        &self,
        device_id: &str,
        report: GatewayReport,
        rule: &AdmissionRule,
    ) -> DomainResult<Option<RecordedReport>> {
        let now = now_ms();
        let existing = self.store.gateway(device_id).await?;
        if existing.is_none() && !rule.auto_admit {
            return Ok(None);
        }
        let record = GatewayRecord {
            device_id: device_id.to_string(),
            group_id: existing
                .as_ref()
                .and_then(|e| e.group_id.clone())
                .or_else(|| {
                    rule.auto_admit
                        .then(|| rule.default_group.clone())
                        .flatten()
                }),
            approved: existing.as_ref().map(|e| e.approved).unwrap_or(false) || rule.auto_admit,
            generation: report.generation,
            mode: report.mode,
            device_info: report.device_info,
            gateways: Some(report.gateways),
            sys_info: report.sys_info,
            wanted_auth_modes: existing.as_ref().and_then(|e| e.wanted_auth_modes.clone()),
            remote_addr: report.remote_addr,
            first_seen_ms: existing.as_ref().map(|e| e.first_seen_ms).unwrap_or(now),
            last_seen_ms: now,
        };
        self.store.record_gateway_report(&record).await?;
        if rule.auto_admit && existing.as_ref().is_some_and(|e| !e.approved) {
            self.store
                .approve_gateway(device_id, record.group_id.as_deref())
                .await?;
        }
        Ok(Some(RecordedReport {
            record,
            first_seen: existing.is_none(),
        }))
    }

    /// A gateway as stored (for its own connection, which needs no rights).
    pub async fn gateway(&self, device_id: &str) -> DomainResult<Option<GatewayRecord>> {
        Ok(self.store.gateway(device_id).await?)
    }

    /// The gateways `actor` may see: those of groups they belong to, and (for full site
    /// administrators) those not yet in any group.
    pub async fn visible_gateways(&self, actor: &Actor) -> DomainResult<Vec<GatewayRecord>> {
        Ok(self
            .store
            .gateways()
            .await?
            .into_iter()
            .filter(|g| match &g.group_id {
                Some(group) => actor.group_rights(group).is_some(),
                None => actor.is_full_admin(),
            })
            .collect())
    }

    /// Admits a gateway into `group` (on which the caller's rights were checked). A gateway
    /// already in another group moves only with the same rights there too.
    pub async fn approve_gateway(
        &self,
        actor: &Actor,
        group: &DeviceGroup,
        device_id: &str,
        pending: Option<(GatewayReport, i64, i64)>,
    ) -> DomainResult<()> {
        let gateway = match (self.store.gateway(device_id).await?, pending) {
            (Some(gateway), _) => gateway,
            // A gateway waiting outside the database (with when it was first and last
            // heard): stored now, admitted below.
            (None, Some((report, first_seen_ms, last_seen_ms))) => {
                let record = GatewayRecord {
                    device_id: device_id.to_string(),
                    group_id: None,
                    approved: false,
                    generation: report.generation,
                    mode: report.mode,
                    device_info: report.device_info,
                    gateways: Some(report.gateways),
                    sys_info: report.sys_info,
                    wanted_auth_modes: None,
                    remote_addr: report.remote_addr,
                    first_seen_ms,
                    last_seen_ms,
                };
                self.store.record_gateway_report(&record).await?;
                record
            }
            (None, None) => return Err(DomainError::NotFound("Unknown gateway")),
        };
        if let Some(current) = &gateway.group_id {
            if current != &group.id
                && !actor
                    .group_rights(current)
                    .is_some_and(|r| r.has(MeshRights::MANAGE_COMPUTERS))
            {
                return Err(DomainError::Denied);
            }
        }
        self.store
            .approve_gateway(device_id, Some(&group.id))
            .await?;
        let event = Event::new(
            "wifidog",
            "gatewayapprove",
            format!("Gateway {device_id} admitted into {}", group.name),
        )
        .by_actor(actor)
        .group(&group.id)
        .with("deviceid", device_id.to_string());
        self.publish(event).await;
        Ok(())
    }

    /// Stores the auth mode wanted for one of a device's gateway ids; returns every wanted
    /// mode of the device.
    pub async fn set_wanted_auth_mode(
        &self,
        gateway: &GatewayRecord,
        gw_id: &str,
        mode: i64,
    ) -> DomainResult<HashMap<String, i64>> {
        let mut wanted = wanted_modes(gateway);
        wanted.insert(gw_id.to_string(), mode);
        let json = Value::Object(
            wanted
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(*v)))
                .collect(),
        )
        .to_string();
        self.store
            .set_wanted_auth_modes(&gateway.device_id, &json)
            .await?;
        Ok(wanted)
    }

    /// Issues a captive-portal session for a browser.
    pub async fn start_portal_session(
        &self,
        token: &str,
        gw_id: &str,
        client_mac: &str,
    ) -> DomainResult<()> {
        let now = now_ms();
        Ok(self
            .store
            .insert_portal_session(&PortalSession {
                token: token.to_string(),
                gw_id: gw_id.to_string(),
                client_mac: client_mac.to_string(),
                client_ip: String::new(),
                state: PORTAL_ISSUED,
                created_ms: now,
                updated_ms: now,
            })
            .await?)
    }

    pub async fn portal_session(&self, token: &str) -> DomainResult<Option<PortalSession>> {
        Ok(self.store.portal_session(token).await?)
    }

    /// Moves a portal session to `state`, recording the client the gateway saw (empty
    /// strings keep what is stored).
    pub async fn update_portal_session(
        &self,
        token: &str,
        state: i64,
        mac: &str,
        ip: &str,
    ) -> DomainResult<bool> {
        Ok(self
            .store
            .update_portal_session(token, state, mac, ip, now_ms())
            .await?)
    }
}
