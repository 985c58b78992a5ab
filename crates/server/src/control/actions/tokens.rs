//! `authcookie` (relay tokens), `createLoginToken`, `loginTokens`.

use ironmesh_proto::control::Request;
use serde_json::{json, Value};

use super::{optional_u32, required_str, Replies};
use crate::auth::issue_auth_token;
use crate::control::session::ControlSession;
use crate::domain::access::{Granted, Need};
use crate::domain::{hex, random_bytes, DomainResult};
use crate::store::now_ms;

pub mod authcookie {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Login)
    }

    /// `cookie` goes into the user's relay URL as `auth=`, `rcookie` into the agent's as
    /// `rauth=` (control spec §1.4). Both are opaque sealed tokens.
    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let cookie = issue_auth_token(&s.state, &s.actor.user, s.peer.ip());
        let relay = json!({ "ruserid": s.actor.user.id, "x": hex(&random_bytes::<6>()) });
        let rcookie = s.state.tokens.seal(
            relay.as_object().cloned().unwrap_or_default(),
            now_ms() / 1000,
        );
        Ok(vec![req
            .reply()
            .with("cookie", cookie)
            .with("rcookie", rcookie)
            .into_value()])
    }
}

pub mod create_login_token {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Login)
    }

    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let name = required_str(req, "name")?;
        let expire = optional_u32(req, "expire")?.unwrap_or(0);
        let (token, password) = s
            .state
            .domain
            .create_login_token(&s.actor, name, expire as u64)
            .await?;
        Ok(vec![req
            .reply()
            .with("name", token.name)
            .with("tokenUser", token.token_user)
            .with("tokenPass", password)
            .with("created", token.created_ms)
            .with("expire", token.expires_ms)
            .into_value()])
    }
}

pub mod login_tokens {
    use super::*;

    pub async fn need(_: &ControlSession, _: &Request) -> DomainResult<Need> {
        Ok(Need::Login)
    }

    /// Lists the caller's tokens, after removing those named in `remove`.
    pub async fn run(s: &mut ControlSession, req: &Request, _: Granted) -> DomainResult<Replies> {
        let store = &s.state.domain.store;
        if let Some(Value::Array(names)) = req.body.get("remove") {
            for name in names.iter().filter_map(Value::as_str) {
                store.delete_login_token(&s.actor.user.id, name).await?;
            }
        }
        let tokens: Vec<Value> = store
            .login_tokens_of(&s.actor.user.id)
            .await?
            .into_iter()
            .map(|t| {
                json!({ "name": t.name, "tokenUser": t.token_user, "created": t.created_ms, "expire": t.expires_ms })
            })
            .collect();
        Ok(vec![req.reply().with("loginTokens", tokens).into_value()])
    }
}
