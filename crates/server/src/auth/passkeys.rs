//! Passkeys (WebAuthn) as a second factor, through the `webauthn-rs` relying party: the
//! server hands the browser a challenge, the browser's authenticator signs it, the server
//! checks the signature against the public key registered earlier.
//!
//! Ceremonies in progress (a challenge handed out, its answer not back yet) are kept in
//! memory for a few minutes, by the control session that registers a key or by the pending
//! sign-in token that authenticates with one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::locks::lock;

/// How long a challenge may wait for its answer.
const CEREMONY_TTL: Duration = Duration::from_secs(300);
/// Most ceremonies in progress (older ones are dropped first).
const MAX_CEREMONIES: usize = 10_000;

/// A verified registration, ready to store.
pub struct NewPasskey {
    /// The credential id, base64url.
    pub id: String,
    /// The credential (public key, counter) as JSON.
    pub credential: String,
}

/// A verified sign-in.
pub struct UsedPasskey {
    pub user_id: String,
    pub id: String,
    /// The credential with its counter advanced, as JSON.
    pub credential: String,
}

pub struct Passkeys {
    webauthn: Webauthn,
    registrations: Mutex<HashMap<String, (PasskeyRegistration, Instant)>>,
    authentications: Mutex<HashMap<String, (String, PasskeyAuthentication, Instant)>>,
}

fn keep_fresh<V>(map: &mut HashMap<String, V>, at: impl Fn(&V) -> Instant) {
    map.retain(|_, v| at(v).elapsed() < CEREMONY_TTL);
    if map.len() >= MAX_CEREMONIES {
        map.clear();
    }
}

/// A stable WebAuthn user handle for an account id.
fn user_handle(user_id: &str) -> Uuid {
    let digest = ironmesh_proto::agent::sha384(user_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

impl Passkeys {
    /// The relying party `rp_id` (the host name browsers reach the server by) for the
    /// origin `https://rp_id:port` and any further allowed origins.
    pub fn new(rp_id: &str, port: u16, extra_origins: &[String]) -> anyhow::Result<Passkeys> {
        let origin = Url::parse(&format!("https://{rp_id}:{port}"))?;
        let mut builder = WebauthnBuilder::new(rp_id, &origin)
            .map_err(|e| anyhow::anyhow!("passkeys for {rp_id}: {e}"))?
            .rp_name("ironmesh");
        for extra in extra_origins {
            if let Ok(url) = Url::parse(extra) {
                builder = builder.append_allowed_origin(&url);
            }
        }
        Ok(Passkeys {
            webauthn: builder
                .build()
                .map_err(|e| anyhow::anyhow!("passkeys for {rp_id}: {e}"))?,
            registrations: Mutex::default(),
            authentications: Mutex::default(),
        })
    }

    /// Registration, step 1: the options for `navigator.credentials.create` (JSON).
    pub fn start_registration(
        &self,
        ceremony: &str,
        user_id: &str,
        user_name: &str,
        existing: &[String],
    ) -> anyhow::Result<Value> {
        let exclude: Vec<_> = existing
            .iter()
            .filter_map(|c| serde_json::from_str::<Passkey>(c).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user_handle(user_id), user_name, user_name, Some(exclude))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut pending = lock(&self.registrations);
        keep_fresh(&mut pending, |(_, at)| *at);
        pending.insert(ceremony.to_string(), (state, Instant::now()));
        Ok(serde_json::to_value(options)?)
    }

    /// Registration, step 2: checks the authenticator's answer.
    pub fn finish_registration(
        &self,
        ceremony: &str,
        response: Value,
    ) -> anyhow::Result<NewPasskey> {
        let (state, _) = lock(&self.registrations)
            .remove(ceremony)
            .filter(|(_, at)| at.elapsed() < CEREMONY_TTL)
            .ok_or_else(|| anyhow::anyhow!("no passkey registration in progress; start again"))?;
        let response: RegisterPublicKeyCredential = serde_json::from_value(response)
            .map_err(|e| anyhow::anyhow!("not a WebAuthn registration: {e}"))?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&response, &state)
            .map_err(|e| anyhow::anyhow!("the passkey could not be verified: {e}"))?;
        Ok(NewPasskey {
            id: serde_json::to_value(passkey.cred_id())?
                .as_str()
                .unwrap_or_default()
                .to_string(),
            credential: serde_json::to_string(&passkey)?,
        })
    }

    /// Sign-in, step 1: the options for `navigator.credentials.get` (JSON), for one of
    /// `user_id`'s passkeys.
    pub fn start_authentication(
        &self,
        ceremony: &str,
        user_id: &str,
        credentials: &[String],
    ) -> anyhow::Result<Value> {
        let passkeys: Vec<Passkey> = credentials
            .iter()
            .filter_map(|c| serde_json::from_str(c).ok())
            .collect();
        anyhow::ensure!(!passkeys.is_empty(), "this account has no passkey");
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut pending = lock(&self.authentications);
        keep_fresh(&mut pending, |(_, _, at)| *at);
        pending.insert(
            ceremony.to_string(),
            (user_id.to_string(), state, Instant::now()),
        );
        Ok(serde_json::to_value(options)?)
    }

    /// Sign-in, step 2: checks the authenticator's answer against the stored passkeys.
    pub fn finish_authentication(
        &self,
        ceremony: &str,
        response: Value,
        credentials: &[(String, String)],
    ) -> anyhow::Result<UsedPasskey> {
        let (user_id, state, _) = lock(&self.authentications)
            .remove(ceremony)
            .filter(|(_, _, at)| at.elapsed() < CEREMONY_TTL)
            .ok_or_else(|| anyhow::anyhow!("no passkey sign-in in progress; start again"))?;
        let response: PublicKeyCredential = serde_json::from_value(response)
            .map_err(|e| anyhow::anyhow!("not a WebAuthn assertion: {e}"))?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&response, &state)
            .map_err(|e| anyhow::anyhow!("the passkey was not accepted: {e}"))?;
        for (id, credential) in credentials {
            let Ok(mut passkey) = serde_json::from_str::<Passkey>(credential) else {
                continue;
            };
            if passkey.cred_id() == result.cred_id() {
                passkey.update_credential(&result);
                return Ok(UsedPasskey {
                    user_id,
                    id: id.clone(),
                    credential: serde_json::to_string(&passkey)?,
                });
            }
        }
        anyhow::bail!("the passkey is not registered to this account")
    }
}
