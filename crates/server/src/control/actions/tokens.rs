//! `authcookie` (relay tokens), `createLoginToken`, `loginTokens`.

use ironmesh_core::access::SignedIn;
use ironmesh_core::model::now_ms;
use ironmesh_core::{hex, random_bytes, DomainResult};
use ironmesh_proto::control::Request;
use serde_json::{json, Value};

use super::{optional_str_list, optional_u32, required_str, Action, Replies};
use crate::control::session::ControlSession;

/// `authcookie`: `cookie` goes into the user's relay URL as `auth=`, `rcookie` into the
/// agent's as `rauth=` (docs/protocol/control.md §1.4). Both are opaque sealed tokens.
pub struct AuthCookie;

impl Action for AuthCookie {
    type Need = SignedIn;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(AuthCookie)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let auth = &s.state.auth;
        let cookie = auth.issue_auth_token(&s.actor.user, s.peer.ip());
        let relay = json!({ "ruserid": s.actor.user.id, "x": hex(&random_bytes::<6>()) });
        let rcookie = auth.tokens.seal(
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

/// `createLoginToken`: a user name and password pair that signs in as the caller.
pub struct CreateLoginToken {
    name: String,
    /// Minutes; 0 = never expires.
    expire: u32,
}

impl Action for CreateLoginToken {
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(CreateLoginToken {
            name: required_str(req, "name")?,
            expire: optional_u32(req, "expire")?.unwrap_or(0),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let (token, password) = s
            .state
            .domain
            .create_login_token(&s.actor, &self.name, self.expire as u64)
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

/// `loginTokens`: lists the caller's tokens, after removing those named in `remove`.
pub struct LoginTokens {
    remove: Vec<String>,
}

impl Action for LoginTokens {
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(LoginTokens {
            remove: optional_str_list(req, "remove", "token names")?.unwrap_or_default(),
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let remove: Vec<&str> = self.remove.iter().map(String::as_str).collect();
        let tokens: Vec<Value> = s
            .state
            .domain
            .login_tokens(&s.actor, &remove)
            .await?
            .into_iter()
            .map(|t| {
                json!({ "name": t.name, "tokenUser": t.token_user, "created": t.created_ms, "expire": t.expires_ms })
            })
            .collect();
        Ok(vec![req.reply().with("loginTokens", tokens).into_value()])
    }
}
