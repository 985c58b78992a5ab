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

/// What `meshctrl serverinfo` prints. `domain` must be present (meshctrl builds node ids
/// from it); `agentCertHash` is the ServerID agents pin; `tlshash` the web certificate hash.
pub fn serverinfo_push(session: &ControlSession) -> Value {
    let state = &session.state;
    let id = &state.identity;
    json!({
        "action": "serverinfo",
        "serverinfo": {
            "domain": "",
            "name": state.config.server_name,
            "port": state.config.bind.port(),
            "https": true,
            "product": "ironmesh",
            "version": env!("CARGO_PKG_VERSION"),
            "serverTime": now_ms(),
            "startTime": state.started_ms,
            "tlshash": hex_upper(&id.web.cert_hash),
            "agentCertHash": b64_at_dollar(&id.agent_server.server_id),
            "features": 0,
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
