//! Second factors of the signed-in account, under MeshCentral's action names where it has
//! them: `otpauth-request`/`otpauth-setup` (add an authenticator app), `otpauth-clear`
//! (remove every factor; user managers may do it for another account),
//! `otpauth-getpasswords` (new recovery codes), `webauthn-startregister`/
//! `webauthn-endregister` (add a passkey), `otp-hkey-remove` (remove one), and `otp-status`.

use ironmesh_core::access::{Enrolling, SignedIn};
use ironmesh_core::{DomainError, DomainResult};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{normalize_id, IdKind};
use serde_json::{json, Value};

use super::{ok, optional_str, required_str, Action, Replies};
use crate::control::session::ControlSession;

/// The issuer name authenticator apps show.
const ISSUER: &str = "ironmesh";

/// `otpauth-request`: a fresh TOTP secret and its `otpauth://` URI.
pub struct TotpRequest;

impl Action for TotpRequest {
    type Need = Enrolling;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(TotpRequest)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Enrolling> {
        Ok(Enrolling)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let offer = s.state.domain.offer_totp(&s.actor, ISSUER);
        Ok(vec![req
            .reply()
            .with("secret", offer.secret)
            .with("url", offer.uri)
            .into_value()])
    }
}

/// `otpauth-setup`: turns TOTP on once a code from the app matches the secret.
pub struct TotpSetup {
    secret: String,
    code: String,
}

impl Action for TotpSetup {
    type Need = Enrolling;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(TotpSetup {
            secret: required_str(req, "secret")?,
            code: required_str(req, "token")?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Enrolling> {
        Ok(Enrolling)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let codes = s
            .state
            .domain
            .confirm_totp(&s.actor, &self.secret, &self.code)
            .await?;
        Ok(vec![req
            .reply()
            .with("success", true)
            .with("recoverycodes", codes)
            .into_value()])
    }
}

/// `otpauth-getpasswords`: new recovery codes (the old ones stop working).
pub struct NewRecoveryCodes;

impl Action for NewRecoveryCodes {
    type Need = SignedIn;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(NewRecoveryCodes)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let domain = &s.state.domain;
        if !domain.factors(&s.actor.user.id).await?.any() {
            return Err(DomainError::Invalid(
                "Recovery codes come with a second factor: add one first".into(),
            ));
        }
        let codes = domain.new_recovery_codes(&s.actor.user.id).await?;
        Ok(vec![req.reply().with("passwords", codes).into_value()])
    }
}

/// `otpauth-clear`: removes every second factor of the caller, or (`userid`, for user
/// managers) of another account.
pub struct RemoveFactors {
    user_id: Option<String>,
}

impl Action for RemoveFactors {
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        let user_id = match optional_str(req, "userid")? {
            Some(id) => Some(
                normalize_id(IdKind::User, &id)
                    .map_err(|_| DomainError::NotFound("User does not exists"))?,
            ),
            None => None,
        };
        Ok(RemoveFactors { user_id })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let target = self.user_id.unwrap_or_else(|| s.actor.user.id.clone());
        s.state
            .domain
            .remove_second_factors(&s.actor, &target)
            .await?;
        Ok(vec![ok(req).into_value()])
    }
}

/// `otp-status`: which factors the caller has.
pub struct FactorStatus;

impl Action for FactorStatus {
    type Need = Enrolling;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(FactorStatus)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Enrolling> {
        Ok(Enrolling)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let domain = &s.state.domain;
        let factors = domain.factors(&s.actor.user.id).await?;
        let passkeys: Vec<Value> = domain
            .passkeys(&s.actor.user.id)
            .await?
            .into_iter()
            .map(|p| json!({ "id": p.id, "name": p.name, "created": p.created_ms, "lastused": p.last_used_ms }))
            .collect();
        Ok(vec![req
            .reply()
            .with("totp", factors.totp)
            .with("passkeys", passkeys)
            .with("recoverycodes", factors.recovery_codes)
            .with("passkeysavailable", s.state.auth.passkeys.is_some())
            .into_value()])
    }
}

fn passkeys_of(s: &ControlSession) -> DomainResult<&crate::auth::passkeys::Passkeys> {
    s.state.auth.passkeys.as_ref().ok_or_else(|| {
        DomainError::Invalid(
            "Passkeys need the server to be reached by a host name (set server_name)".into(),
        )
    })
}

/// `webauthn-startregister`: the options for the browser's `navigator.credentials.create`.
pub struct PasskeyStart;

impl Action for PasskeyStart {
    type Need = Enrolling;

    fn parse(_: &Request) -> DomainResult<Self> {
        Ok(PasskeyStart)
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Enrolling> {
        Ok(Enrolling)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let existing: Vec<String> = s
            .state
            .domain
            .passkeys(&s.actor.user.id)
            .await?
            .into_iter()
            .map(|p| p.credential)
            .collect();
        let options = passkeys_of(s)?
            .start_registration(
                &s.session_id,
                &s.actor.user.id,
                &s.actor.user.name,
                &existing,
            )
            .map_err(|e| DomainError::Invalid(e.to_string()))?;
        Ok(vec![req.reply().with("request", options).into_value()])
    }
}

/// `webauthn-endregister`: checks the browser's answer and stores the passkey.
pub struct PasskeyFinish {
    name: String,
    response: Value,
}

impl Action for PasskeyFinish {
    type Need = Enrolling;

    fn parse(req: &Request) -> DomainResult<Self> {
        let response = req
            .body
            .get("response")
            .filter(|v| v.is_object())
            .cloned()
            .ok_or_else(|| DomainError::Invalid("Missing field: response".into()))?;
        Ok(PasskeyFinish {
            name: optional_str(req, "name")?.unwrap_or_default(),
            response,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<Enrolling> {
        Ok(Enrolling)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        let new = passkeys_of(s)?
            .finish_registration(&s.session_id, self.response)
            .map_err(|e| DomainError::Invalid(e.to_string()))?;
        let codes = s
            .state
            .domain
            .add_passkey(&s.actor, &new.id, &self.name, &new.credential)
            .await?;
        let mut reply = ok(req).with("id", new.id);
        if let Some(codes) = codes {
            reply = reply.with("recoverycodes", codes);
        }
        Ok(vec![reply.into_value()])
    }
}

/// `otp-hkey-remove`: removes one of the caller's passkeys.
pub struct PasskeyRemove {
    id: String,
}

impl Action for PasskeyRemove {
    type Need = SignedIn;

    fn parse(req: &Request) -> DomainResult<Self> {
        Ok(PasskeyRemove {
            id: required_str(req, "id")?,
        })
    }

    async fn need(&self, _: &ControlSession) -> DomainResult<SignedIn> {
        Ok(SignedIn)
    }

    async fn run(self, s: &mut ControlSession, req: &Request, _: ()) -> DomainResult<Replies> {
        s.state.domain.remove_passkey(&s.actor, &self.id).await?;
        Ok(vec![ok(req).into_value()])
    }
}
