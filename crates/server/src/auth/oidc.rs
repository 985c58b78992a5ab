//! OpenID Connect single sign-on (authorization code flow with PKCE), as a relying party:
//!
//! 1. `/oidc/login`: a fresh `state`, `nonce` and PKCE verifier are kept server-side (a few
//!    minutes), `state` also in a cookie of this browser; the browser goes to the identity
//!    provider's authorization endpoint.
//! 2. `/oidc/callback?code&state`: `state` must be the one this browser started with; the
//!    code is exchanged (with the verifier) at the token endpoint; the ID token's signature
//!    is checked against the provider's published keys (refetched once for an unknown key
//!    id), and its issuer, audience, expiry and nonce against what we expect.
//!
//! The provider's endpoints come from its discovery document. Accounts are created on the
//! first sign-in (see `ironmesh_core::sso`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

use crate::config::OidcConfig;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::locks::lock;

/// How long a sign-in may take at the provider.
const PENDING_FOR: Duration = Duration::from_secs(600);
const MAX_PENDING: usize = 10_000;

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

struct Pending {
    verifier: String,
    nonce: String,
    at: Instant,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `issuer|subject`: stable across renames at the provider.
    pub key: String,
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
}

/// Why a single sign-on failed; the text is shown to the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SsoError(pub String);

fn fail(text: impl Into<String>) -> SsoError {
    SsoError(text.into())
}

pub struct Oidc {
    pub config: OidcConfig,
    redirect_uri: String,
    http: reqwest::Client,
    discovery: tokio::sync::Mutex<Option<Discovery>>,
    keys: tokio::sync::Mutex<Option<JwkSet>>,
    pending: Mutex<HashMap<String, Pending>>,
}

fn random_b64url<const N: usize>() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ironmesh_core::random_bytes::<N>())
}

impl Oidc {
    /// `public_base` is `https://host:port` as browsers reach this server.
    pub fn new(config: OidcConfig, public_base: &str) -> anyhow::Result<Oidc> {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(Oidc {
            redirect_uri: config
                .redirect_uri
                .clone()
                .unwrap_or_else(|| format!("{public_base}/oidc/callback")),
            config,
            http: http.build()?,
            discovery: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(None),
            pending: Mutex::default(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, SsoError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(format!("the identity provider cannot be reached: {e}")))?;
        if !response.status().is_success() {
            return Err(fail(format!(
                "the identity provider answered {} for {url}",
                response.status()
            )));
        }
        response.json().await.map_err(|e| {
            fail(format!(
                "the identity provider sent something unreadable: {e}"
            ))
        })
    }

    async fn discovery(&self) -> Result<Discovery, SsoError> {
        let mut cached = self.discovery.lock().await;
        if let Some(d) = cached.as_ref() {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let d: Discovery = self.get_json(&url).await?;
        if d.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(fail(format!(
                "the identity provider calls itself {} instead of {}",
                d.issuer, self.config.issuer
            )));
        }
        *cached = Some(d.clone());
        Ok(d)
    }

    /// Step 1: where to send the browser, and the `state` to remember in its cookie.
    pub async fn begin(&self) -> Result<(String, String), SsoError> {
        let d = self.discovery().await?;
        let state = random_b64url::<24>();
        let nonce = random_b64url::<24>();
        let verifier = random_b64url::<32>();
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let mut scopes = vec!["openid".to_string()];
        scopes.extend(
            self.config
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned(),
        );
        let mut url = reqwest::Url::parse(&d.authorization_endpoint)
            .map_err(|e| fail(format!("bad authorization endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let mut pending = lock(&self.pending);
        pending.retain(|_, p| p.at.elapsed() < PENDING_FOR);
        if pending.len() >= MAX_PENDING {
            return Err(fail(
                "too many sign-ins in progress; try again in a few minutes",
            ));
        }
        pending.insert(
            state.clone(),
            Pending {
                verifier,
                nonce,
                at: Instant::now(),
            },
        );
        Ok((url.to_string(), state))
    }

    /// Step 2: the provider sent the browser back with `code` and `state`; `cookie_state`
    /// is the state this browser started with.
    pub async fn finish(
        &self,
        code: &str,
        state: &str,
        cookie_state: Option<&str>,
    ) -> Result<Identity, SsoError> {
        if cookie_state != Some(state) {
            return Err(fail(
                "the sign-in state does not match this browser's: start the sign-in again",
            ));
        }
        let pending = lock(&self.pending)
            .remove(state)
            .filter(|p| p.at.elapsed() < PENDING_FOR)
            .ok_or_else(|| fail("this sign-in is unknown or too old: start again"))?;
        let d = self.discovery().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let mut request = self.http.post(&d.token_endpoint);
        match &self.config.client_secret {
            Some(secret) => request = request.basic_auth(&self.config.client_id, Some(secret)),
            None => form.push(("client_id", self.config.client_id.as_str())),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| fail(format!("the identity provider cannot be reached: {e}")))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| {
            fail(format!(
                "the identity provider sent something unreadable: {e}"
            ))
        })?;
        if !status.is_success() {
            return Err(fail(format!(
                "the identity provider refused the sign-in code: {} {}",
                body["error"].as_str().unwrap_or(status.as_str()),
                body["error_description"].as_str().unwrap_or("")
            )));
        }
        let id_token = body["id_token"]
            .as_str()
            .ok_or_else(|| fail("the identity provider sent no ID token"))?;
        let claims = self.verify(id_token, &d, &pending.nonce).await?;
        self.identity(&d, &claims)
    }

    /// The ID token's claims, once its signature, issuer, audience, expiry and nonce hold.
    async fn verify(&self, token: &str, d: &Discovery, nonce: &str) -> Result<Value, SsoError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| fail(format!("the ID token is malformed: {e}")))?;
        let kid = header.kid.clone().unwrap_or_default();
        let jwk = {
            let mut keys = self.keys.lock().await;
            let known = keys.as_ref().and_then(|set| set.find(&kid)).cloned();
            match known {
                Some(jwk) => jwk,
                None => {
                    // A key id we have not seen: the provider may have rotated its keys.
                    let set: JwkSet = self.get_json(&d.jwks_uri).await?;
                    let found = set.find(&kid).cloned();
                    *keys = Some(set);
                    found.ok_or_else(|| {
                        fail("the ID token was signed with a key the identity provider does not publish")
                    })?
                }
            }
        };
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| fail(format!("the identity provider's key is unusable: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_issuer(&[&d.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 60;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            fail(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "the ID token's signature does not verify with the identity provider's keys"
                        .to_string()
                }
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "the ID token has expired".into()
                }
                _ => format!("the ID token is not valid: {e}"),
            })
        })?;
        if data.claims["nonce"].as_str() != Some(nonce) {
            return Err(fail("the ID token was issued for another sign-in (nonce)"));
        }
        Ok(data.claims)
    }

    fn identity(&self, d: &Discovery, claims: &Value) -> Result<Identity, SsoError> {
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| fail("the ID token names no subject"))?;
        let username = claims[self.config.username_claim.as_str()]
            .as_str()
            .or_else(|| claims["email"].as_str().and_then(|e| e.split('@').next()))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                fail(format!(
                    "the identity provider sent no {} claim to name the account by",
                    self.config.username_claim
                ))
            })?;
        let groups = match &claims[self.config.groups_claim.as_str()] {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Value::String(one) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            key: format!("{}|{subject}", d.issuer),
            username: username.to_string(),
            email: claims["email"].as_str().map(str::to_string),
            name: claims["name"].as_str().map(str::to_string),
            groups,
        })
    }
}
