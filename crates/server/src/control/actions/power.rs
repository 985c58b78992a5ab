//! Power: `poweraction` (off, restart, sleep through the device's agent), `wakedevices`
//! (Wake-on-LAN sent by other agents) and `powertimeline` (the device's last week online
//! and offline). docs/protocol/control.md §2.4 (devicepower), §2.7; agent.md §5.2.

use ironmesh_core::access::{DeviceGrant, DeviceNeed, SignedIn};
use ironmesh_core::events::Event;
use ironmesh_core::power::PowerSpan;
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::{json, Value};
use tokio::sync::mpsc::OwnedPermit;

use super::devices::device_id;
use super::{ok, Action, Replies};
use crate::control::session::ControlSession;
use crate::live::agents::ToAgent;

/// The `nodeids` list (bare or full ids), or `invalid` when it is missing, empty or not a
/// list of strings.
pub(super) fn device_ids(req: &Request, invalid: &'static str) -> DomainResult<Vec<String>> {
    let ids = match req.body.get("nodeids") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    }
    .ok_or_else(|| DomainError::Invalid(invalid.into()))?;
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        let id =
            normalize_id(IdKind::Node, id).map_err(|_| DomainError::NotFound("Invalid nodeid"))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Authorizes every device for `rights` before anything is done, so one refusal means
/// nothing happens. A device the caller may not see answers `not_found`; with
/// `denied_as_not_found`, so does one they lack the rights on.
pub(super) async fn authorize_each(
    s: &ControlSession,
    ids: &[String],
    rights: u32,
    not_found: &'static str,
    denied_as_not_found: bool,
) -> DomainResult<Vec<DeviceGrant>> {
    let mut grants = Vec::with_capacity(ids.len());
    for id in ids {
        let need = DeviceNeed {
            id: id.clone(),
            rights,
        };
        let grant = s
            .state
            .domain
            .authorize(&s.actor, &need)
            .await
            .map_err(|e| match e {
                DomainError::NotFound(_) => DomainError::NotFound(not_found),
                DomainError::Denied if denied_as_not_found => DomainError::NotFound(not_found),
                other => other,
            })?;
        grants.push(grant);
    }
    Ok(grants)
}

/// A place in the queue of each connected device among `grants` (offline ones are left
/// out), taken before anything is sent so a busy device refuses the whole request; "Agent
/// not connected" when none is online.
pub(super) fn reserve_online(
    s: &ControlSession,
    grants: Vec<DeviceGrant>,
) -> DomainResult<Vec<(DeviceGrant, OwnedPermit<ToAgent>)>> {
    let mut out = Vec::with_capacity(grants.len());
    for grant in grants {
        let Some(agent) = s.state.agents.get(&grant.device.id) else {
            continue;
        };
        let slot = agent.tx.clone().try_reserve_owned().map_err(|_| {
            DomainError::Invalid("Unable to route: device is busy, try again".into())
        })?;
        out.push((grant, slot));
    }
    if out.is_empty() {
        return Err(DomainError::Invalid("Agent not connected".into()));
    }
    Ok(out)
}

/// What a `poweraction` asks of the device's agent (MeshCentral's action types; the agent
/// gets the same number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerKind {
    Off = 2,
    Restart = 3,
    Sleep = 4,
}

impl PowerKind {
    fn parse(actiontype: Option<&Value>) -> DomainResult<PowerKind> {
        match actiontype.and_then(Value::as_u64) {
            Some(2) => Ok(PowerKind::Off),
            Some(3) => Ok(PowerKind::Restart),
            Some(4) => Ok(PowerKind::Sleep),
            // 300–399 are Intel AMT operations (302 on, 308 off, 310 reset, …).
            Some(300..=399) => Err(DomainError::Invalid(
                "Intel AMT power actions are not supported".into(),
            )),
            _ => Err(DomainError::Invalid(
                "Invalid action type: expected 2 (power off), 3 (restart) or 4 (sleep)".into(),
            )),
        }
    }
}

/// `poweraction`: power off, restart or sleep, through each device's agent; needs the
/// "reset/off" right (262144) on every device.
pub struct PowerAction {
    device_ids: Vec<String>,
    kind: PowerKind,
}

impl Action for PowerAction {
    /// Each device is authorized in `run`, through `Domain::authorize`.
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(PowerAction {
            device_ids: device_ids(req, "Invalid nodeids")?,
            kind: PowerKind::parse(req.body.get("actiontype"))?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let grants = authorize_each(
            s,
            &self.device_ids,
            MeshRights::RESET_OFF,
            "Invalid nodeid",
            false,
        )
        .await?;
        let remote_addr = s.peer.ip().to_string();
        let actiontype = self.kind as u32;
        for (grant, slot) in reserve_online(s, grants)? {
            let message = json!({
                "action": "poweraction",
                "actiontype": actiontype,
                "userid": s.actor.user.id,
                "username": s.actor.user.name,
                "remoteaddr": remote_addr,
            });
            slot.send(ToAgent::Json(message.to_string()));
            // Recorded as MeshCentral's agents log it (message 25), here by the server that
            // sent the order rather than by the agent's say-so.
            let event = Event::new(
                "node",
                "agentlog",
                format!("Performing power action={actiontype}, forced=0"),
            )
            .by_actor(&s.actor)
            .group(&grant.device.group_id)
            .node(&grant.device.id)
            .with("msgid", 25)
            .with("msgArgs", json!([actiontype, 0]))
            .with("remoteaddr", remote_addr.clone())
            .with("domain", "");
            s.state.domain.publish(event).await;
        }
        Ok(vec![ok(req).into_value()])
    }
}

/// The MAC addresses in a stored `netinfo` report (`netif2`: interface name → addresses),
/// without duplicates and without the all-zero address of loopback interfaces.
fn macs_of(net_info: &str) -> Vec<String> {
    let Ok(report) = serde_json::from_str::<Value>(net_info) else {
        return Vec::new();
    };
    let mut macs: Vec<String> = Vec::new();
    let Some(interfaces) = report.get("netif2").and_then(Value::as_object) else {
        return macs;
    };
    for addresses in interfaces.values().filter_map(Value::as_array) {
        for mac in addresses.iter().filter_map(|a| a.get("mac")?.as_str()) {
            if mac != "00:00:00:00:00:00" && !macs.iter().any(|m| m == mac) {
                macs.push(mac.to_string());
            }
        }
    }
    macs
}

/// `wakedevices`: asks every connected agent in the groups where the caller holds the wake
/// right (64) to send Wake-on-LAN packets to each device's MAC addresses.
pub struct WakeDevices {
    device_ids: Vec<String>,
}

impl Action for WakeDevices {
    /// Each device is authorized in `run`, through `Domain::authorize`.
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(WakeDevices {
            device_ids: device_ids(req, "Invalid nodeids")?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let single = self.device_ids.len() == 1;
        let mut used = 0;
        for id in &self.device_ids {
            match wake_one(s, id).await {
                Ok(n) => used = n,
                // With several devices, one that cannot be woken is skipped (MeshCentral
                // answers only "ok" then).
                Err(e) if single => return Err(e),
                Err(_) => {}
            }
        }
        Ok(vec![if single {
            req.reply()
                .with(
                    "result",
                    format!("Used {used} device(s) to send wake packets"),
                )
                .into_value()
        } else {
            ok(req).into_value()
        }])
    }
}

/// Wakes one device; returns how many agents were asked to.
async fn wake_one(s: &ControlSession, id: &str) -> DomainResult<usize> {
    // Unknown, invisible or without the wake right: all the same answer.
    let grant = authorize_each(
        s,
        &[id.to_string()],
        MeshRights::WAKE_DEVICE,
        "Invalid nodeid",
        true,
    )
    .await?
    .remove(0);
    let Some(net_info) = grant.device.net_info.as_deref() else {
        return Err(DomainError::Invalid(
            "No network information for this device".into(),
        ));
    };
    let macs = macs_of(net_info);
    if macs.is_empty() {
        return Err(DomainError::Invalid(
            "No known MAC addresses for this device".into(),
        ));
    }
    let actor = &s.actor;
    let wakers = s.state.agents.in_groups(|group| {
        actor
            .group_rights(group)
            .is_some_and(|r| r.has(MeshRights::WAKE_DEVICE))
    });
    let message = json!({"action": "wakeonlan", "macs": macs}).to_string();
    let mut used = 0;
    for (_, agent) in wakers {
        if agent.tx.try_send(ToAgent::Json(message.clone())).is_ok() {
            used += 1;
        }
    }
    // Live only, as MeshCentral announces it (not kept in the audit trail).
    let event = Event::new("node", "wakedevices", "Wake devices")
        .by_actor(&s.actor)
        .group(&grant.device.group_id)
        .node(&grant.device.id)
        .with("nodeids", json!([grant.device.id]))
        .with("domain", "")
        .live_only();
    s.state.domain.publish(event).await;
    Ok(used)
}

/// `powertimeline`: the device's last week as MeshCentral's console reads it.
pub struct PowerTimeline {
    device_id: String,
}

/// MeshCentral's compact timeline: `[state before, start (s), state]`, then for each later
/// change `[seconds since the previous change, state]`.
pub fn compact_timeline(spans: &[PowerSpan]) -> Vec<Value> {
    let mut out = Vec::with_capacity(spans.len() * 2 + 1);
    let mut previous: Option<i64> = None;
    for span in spans {
        match previous {
            None => {
                out.push(Value::from(0));
                out.push(Value::from(span.from_ms as f64 / 1000.0));
            }
            Some(prev) => out.push(Value::from((span.from_ms - prev) as f64 / 1000.0)),
        }
        out.push(Value::from(span.power));
        previous = Some(span.from_ms);
    }
    out
}

impl Action for PowerTimeline {
    type Need = DeviceNeed;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(PowerTimeline {
            device_id: device_id(req)?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<DeviceNeed> {
        Ok(DeviceNeed {
            id: self.device_id.clone(),
            rights: 0,
        })
    }

    async fn run(
        self,
        s: &mut ControlSession,
        req: &Request,
        g: DeviceGrant,
    ) -> DomainResult<Replies> {
        let live = s.state.live_state(&g.device.id);
        let spans = s
            .state
            .domain
            .power_timeline(&g.device.id, i64::from(live.pwr))
            .await?;
        Ok(vec![req
            .reply()
            .with("nodeid", g.device.id)
            .with("timeline", compact_timeline(&spans))
            .into_value()])
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn macs_skip_loopback_and_repeats() {
        let info = r#"{"netif2":{"lo":[{"mac":"00:00:00:00:00:00"}],
            "eth0":[{"mac":"52:54:00:12:34:56","family":"IPv4"},{"mac":"52:54:00:12:34:56","family":"IPv6"}],
            "wlan0":[{"mac":"aa:bb:cc:dd:ee:ff"}]}}"#;
        assert_eq!(macs_of(info), ["52:54:00:12:34:56", "aa:bb:cc:dd:ee:ff"]);
        assert!(macs_of("{}").is_empty());
        assert!(macs_of("not json").is_empty());
    }

    #[test]
    fn compact_timeline_is_start_then_deltas_in_seconds() {
        let spans = [
            PowerSpan {
                from_ms: 10_000,
                power: 1,
            },
            PowerSpan {
                from_ms: 15_500,
                power: 0,
            },
        ];
        assert_eq!(
            Value::from(compact_timeline(&spans)),
            json!([0, 10.0, 1, 5.5, 0])
        );
    }
}
