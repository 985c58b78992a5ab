//! `serverinfo`, `userinfo` (pushed on connect, also answered on request) and `ping`.

use ironmesh_proto::control::{Reply, Request};
use ironmesh_proto::ids::{b64_at_dollar, hex_upper};
use serde_json::{json, Value};

use ironmesh_core::access::Enrolling;
use ironmesh_core::accounts::user_json;
use ironmesh_core::model::now_ms;
use ironmesh_core::DomainResult;

use super::{Action, Replies};
use crate::control::session::ControlSession;

/// MeshCentral's `features` bits that describe ironmesh (docs/protocol/control.md §2.1).
mod feature {
    /// No LAN-only discovery: devices reach the server over the network.
    pub const WAN_ONLY: u32 = 0x0000_0001;
    pub const HIGH_QUALITY_DESKTOP: u32 = 0x0000_0200;
    /// No Intel AMT CIRA (MPS) port.
    pub const NO_CIRA: u32 = 0x0000_0400;
    /// Second factors may be added (TOTP, recovery codes).
    pub const TWO_FACTOR: u32 = 0x0000_1000;
    pub const WEBAUTHN: u32 = 0x0002_0000;
    /// Every account must have a second factor.
    pub const FORCE_TWO_FACTOR: u32 = 0x0004_0000;
    /// The web certificate is the server's own, not one a public CA issued.
    pub const UNTRUSTED_CERT: u32 = 0x8000_0000;
    /// `features2`: login tokens may be made.
    pub const LOGIN_TOKENS: u32 = 0x0000_0080;
}

/// What `meshctrl serverinfo` prints, with MeshCentral's keys in MeshCentral's order
/// (meshctrl prints them as they arrive). `domain` must be present (meshctrl builds node
/// ids from it); `agentCertHash` is the ServerID agents pin; `tlshash` the web certificate
/// hash. `product`, `version` and `startTime` are ironmesh's additions, last.
pub fn serverinfo_push(session: &ControlSession) -> Value {
    let state = &session.state;
    let config = &state.config;
    let id = &state.identity;
    let mut features = feature::WAN_ONLY
        | feature::HIGH_QUALITY_DESKTOP
        | feature::NO_CIRA
        | feature::TWO_FACTOR
        | feature::WEBAUTHN;
    if config.require_second_factor {
        features |= feature::FORCE_TWO_FACTOR;
    }
    if config.web_cert.is_none() {
        features |= feature::UNTRUSTED_CERT;
    }
    let port = config.bind.port();
    let agent_url = if port == 443 {
        format!("mc://{}", config.server_name)
    } else {
        format!("mc://{}:{port}", config.server_name)
    };
    json!({
        "action": "serverinfo",
        "serverinfo": {
            "domain": "",
            "name": config.server_name,
            "mpsname": config.server_name,
            "mpsport": 0,
            "port": port,
            "emailcheck": false,
            "domainauth": false,
            "serverTime": now_ms(),
            "features": features,
            "features2": feature::LOGIN_TOKENS,
            // The console speaks English only.
            "languages": ["en"],
            "tlshash": hex_upper(&id.web.cert_hash),
            "agentCertHash": b64_at_dollar(&id.agent_server.server_id),
            "https": true,
            "redirport": 0,
            "magenturl": agent_url,
            "domainsuffix": "",
            "certExpire": id.web.not_after_ms,
            "product": "ironmesh",
            "version": env!("CARGO_PKG_VERSION"),
            "startTime": state.started_ms,
        }
    })
}

pub async fn userinfo_push(session: &ControlSession) -> Value {
    let memberships: Vec<(String, u32)> = session
        .actor
        .memberships
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let mut userinfo = user_json(&session.actor.user, &memberships);
    if session.actor.second_factor_pending {
        // The console then shows only the account page, to add one.
        userinfo["secondfactorpending"] = true.into();
    }
    json!({
        "action": "userinfo",
        "userinfo": userinfo,
    })
}

/// Copies `responseid` and `tag` of a request onto an answer whose action differs from it.
fn correlate(req: &Request, mut answer: Value) -> Value {
    for key in ["responseid", "tag"] {
        if let Some(v) = req.body.get(key) {
            answer[key] = v.clone();
        }
    }
    answer
}

/// `serverinfo`: answered on request as it is pushed on connect.
pub struct ServerInfo;

impl Action for ServerInfo {
    type Need = Enrolling;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(ServerInfo)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Enrolling> {
        Ok(Enrolling)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        Ok(vec![correlate(req, serverinfo_push(s))])
    }
}

/// `userinfo`: the caller's own account.
pub struct UserInfo;

impl Action for UserInfo {
    type Need = Enrolling;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(UserInfo)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Enrolling> {
        Ok(Enrolling)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        Ok(vec![correlate(req, userinfo_push(s).await)])
    }
}

/// `ping`, answered with `pong`.
pub struct Ping;

impl Action for Ping {
    type Need = Enrolling;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(Ping)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Enrolling> {
        Ok(Enrolling)
    }

    async fn run(self, _: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        Ok(vec![correlate(req, Reply::new("pong").into_value())])
    }
}
