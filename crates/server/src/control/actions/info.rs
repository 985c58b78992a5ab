//! `serverinfo`, `userinfo` (pushed on connect, also answered on request) and `ping`.

use ironmesh_proto::control::{Reply, Request};
use ironmesh_proto::ids::{b64_at_dollar, hex_upper};
use serde_json::{json, Value};

use super::Replies;
use crate::control::session::ControlSession;
use crate::domain::access::{Granted, Need};
use crate::domain::accounts::user_json;
use crate::domain::DomainResult;
use crate::store::now_ms;

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
    json!({
        "action": "userinfo",
        "userinfo": user_json(&session.actor.user, &memberships),
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

pub mod serverinfo {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Login)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        Ok(vec![correlate(req, serverinfo_push(s))])
    }
}

pub mod userinfo {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Login)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        Ok(vec![correlate(req, userinfo_push(s).await)])
    }
}

pub mod ping {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Login)
    }

    pub async fn run(_: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        Ok(vec![correlate(req, Reply::new("pong").into_value())])
    }
}
