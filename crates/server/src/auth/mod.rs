//! Who is on the other end of a request: password logins (rate-limited), login tokens,
//! encrypted `auth=` tokens, the `x-meshauth` header and web session cookies.

pub mod cookie;
pub mod oidc;
pub mod passkeys;
pub mod ratelimit;

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::HeaderMap;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::meshauth;
use ironmesh_proto::rights::SiteRights;
use serde_json::json;

use ironmesh_core::access::{Origin, TARGET_USER_MANAGERS};
use ironmesh_core::accounts::LoginFailure;
use ironmesh_core::events::Event;
use ironmesh_core::model::{now_ms, Outage, User};
use ironmesh_core::{Domain, DomainError, DomainResult};

use cookie::TokenCipher;
use ratelimit::{LoginLimiter, Verdict};

/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "ironmesh_session";
/// Lifetime of a browser session.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// How long the sign-in page's second step may take.
pub const PENDING_SECS: i64 = 300;
/// Window of `?auth=` user tokens (MeshCentral: 60 minutes).
pub const AUTH_TOKEN_MAX_AGE_SECS: i64 = 3600;

/// Credentials a WebSocket upgrade (or page request) may carry.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    pub meshauth: Option<String>,
    pub auth_token: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub session_cookie: Option<String>,
}

impl Credentials {
    pub fn from_request(headers: &HeaderMap, query: &HashMap<String, String>) -> Credentials {
        Credentials {
            meshauth: headers
                .get("x-meshauth")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            auth_token: query.get("auth").cloned().filter(|s| !s.is_empty()),
            user: query.get("user").cloned(),
            pass: query.get("pass").cloned(),
            session_cookie: session_cookie(headers),
        }
    }
}

/// The value of our session cookie in a `Cookie` header.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// A refused authentication: `msg` is MeshCentral's close message (clients key on it),
/// `reason` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub cause: &'static str,
    pub msg: &'static str,
    pub reason: String,
    /// Set when the database, not the credentials, failed: the client should come back
    /// later rather than ask for a password again.
    pub outage: Option<Outage>,
    /// Set when the password was right but a second factor is missing or wrong: the
    /// account, for the sign-in page's second step.
    pub second_factor_for: Option<String>,
}

impl AuthFailure {
    fn noauth(msg: &'static str, reason: impl Into<String>) -> AuthFailure {
        AuthFailure {
            cause: "noauth",
            msg,
            reason: reason.into(),
            outage: None,
            second_factor_for: None,
        }
    }

    fn unavailable(outage: Outage) -> AuthFailure {
        AuthFailure {
            outage: Some(outage),
            ..AuthFailure::noauth("noauth", outage.to_string())
        }
    }
}

/// The calling client: its address (for limits and the audit trail) and program.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

impl Client {
    pub fn new(ip: IpAddr, headers: &HeaderMap) -> Client {
        Client {
            ip,
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }
    }

    pub fn origin(&self) -> Origin {
        Origin::new(self.ip, self.user_agent.as_deref())
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A user name and password (`x-meshauth`, `user`/`pass`, the sign-in form).
    Password,
    /// A `~t:` login token.
    LoginToken,
    /// A sealed `auth=` token.
    AuthToken,
    /// A browser session cookie.
    SessionCookie,
    /// A password, then a TOTP or recovery code.
    SecondFactor,
    /// A password, then a passkey.
    Passkey,
    /// OpenID Connect single sign-on.
    SingleSignOn,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::LoginToken => "login token",
            Method::AuthToken => "auth token",
            Method::SessionCookie => "session cookie",
            Method::SecondFactor => "password and code",
            Method::Passkey => "password and passkey",
            Method::SingleSignOn => "single sign-on",
        }
    }
}

/// A sign-in attempt, for the audit trail.
enum SignIn<'a> {
    Succeeded(&'a User),
    Failed {
        /// The name given.
        attempted: &'a str,
        /// The account it concerns, when the password was right (a wrong code).
        account: Option<&'a str>,
        why: &'a str,
    },
}

impl<'a> SignIn<'a> {
    fn failed(attempted: &'a str, account: Option<&'a str>, why: &'a str) -> SignIn<'a> {
        SignIn::Failed {
            attempted,
            account,
            why,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub method: Method,
}

/// Who is calling: checks credentials of every kind, starts and ends browser sessions,
/// seals and opens tokens, and limits failed logins. One per server. Sign-ins with a
/// password or login token, and every refused one, go to the audit trail.
pub struct Authenticator {
    domain: Domain,
    /// Seals and opens `auth=`/`rauth=` tokens (MeshCentral's AES-GCM format).
    pub tokens: TokenCipher,
    limiter: LoginLimiter,
    /// Passkey ceremonies; `None` when the server is reached by an IP address (WebAuthn
    /// needs a host name).
    pub passkeys: Option<passkeys::Passkeys>,
    /// Single sign-on, when configured.
    pub oidc: Option<oidc::Oidc>,
}

impl Authenticator {
    pub fn new(
        domain: Domain,
        tokens: TokenCipher,
        limiter: LoginLimiter,
        passkeys: Option<passkeys::Passkeys>,
        oidc: Option<oidc::Oidc>,
    ) -> Authenticator {
        Authenticator {
            domain,
            tokens,
            limiter,
            passkeys,
            oidc,
        }
    }

    /// Tries each credential in ironmesh's order: `auth=` token, `x-meshauth`,
    /// `user`/`pass` query, session cookie (MeshCentral's own order differs, which no client
    /// can tell: each sends one kind; docs/protocol/control.md §1.3). A bad `auth=` token
    /// falls through to the next method, as in MeshCentral.
    pub async fn authenticate(
        &self,
        creds: &Credentials,
        client: &Client,
    ) -> Result<Authenticated, AuthFailure> {
        if let Some(token) = &creds.auth_token {
            if let Some(user) = self
                .user_from_auth_token(token, client.ip)
                .await
                .map_err(AuthFailure::unavailable)?
            {
                return Ok(Authenticated {
                    user,
                    method: Method::AuthToken,
                });
            }
        }
        if let Some(header) = &creds.meshauth {
            let parsed = meshauth::parse(header)
                .map_err(|e| AuthFailure::noauth(e.msg(), format!("bad x-meshauth header: {e}")))?;
            let signed_in = self
                .password_login(
                    &parsed.username,
                    &parsed.password,
                    parsed.token.as_deref(),
                    client,
                )
                .await?;
            if SiteRights(signed_in.user.site_rights).restricted(SiteRights::NO_MESH_CMD) {
                return Err(AuthFailure {
                    cause: "notools",
                    msg: "notools",
                    ..AuthFailure::noauth("notools", "this account may not use command-line tools")
                });
            }
            return Ok(signed_in);
        }
        if let (Some(user), Some(pass)) = (&creds.user, &creds.pass) {
            return self.password_login(user, pass, None, client).await;
        }
        if let Some(cookie) = &creds.session_cookie {
            if let Some(user) = self
                .session_user(cookie)
                .await
                .map_err(AuthFailure::unavailable)?
            {
                return Ok(Authenticated {
                    user,
                    method: Method::SessionCookie,
                });
            }
        }
        Err(AuthFailure::noauth("noauth", "authentication required"))
    }

    /// A password (or login-token) sign-in with failure limiting; recorded in the audit
    /// trail either way.
    pub async fn password_login(
        &self,
        username: &str,
        password: &str,
        token: Option<&str>,
        client: &Client,
    ) -> Result<Authenticated, AuthFailure> {
        let method = if username.starts_with("~t:") {
            Method::LoginToken
        } else {
            Method::Password
        };
        match self.limiter.check(client.ip, username) {
            Verdict::Go => {}
            Verdict::After(delay) => tokio::time::sleep(delay).await,
            Verdict::Refuse(wait) => {
                tracing::warn!(ip = %client.ip, username = ?username, "login refused: too many failures from this address");
                let why = "too many failed attempts from this address";
                self.audit_sign_in(SignIn::failed(username, None, why), method, client)
                    .await;
                return Err(AuthFailure::noauth(
                    "locked",
                    format!(
                        "too many failed logins from this address; try again in {} s",
                        wait.as_secs().max(1)
                    ),
                ));
            }
        }
        let result = self
            .domain
            .check_login(username, password, token)
            .await
            .map_err(|e| match e {
                // Not a failed login: the limiter is not told.
                DomainError::Unavailable(outage) => AuthFailure::unavailable(outage),
                e => {
                    tracing::error!(error = %e, "login check failed");
                    AuthFailure::noauth("noauth", "internal error")
                }
            })?;
        match result {
            Ok(user) => {
                self.limiter.record_success(client.ip, username);
                self.audit_sign_in(SignIn::Succeeded(&user), method, client)
                    .await;
                Ok(Authenticated { user, method })
            }
            // The password was right; a code is still needed. Not a failed guess.
            Err(LoginFailure::SecondFactorRequired { user_id }) => Err(AuthFailure {
                second_factor_for: Some(user_id),
                ..AuthFailure::noauth("tokenrequired", "a second-factor code is required")
            }),
            Err(failure) => {
                self.limiter.record_failure(client.ip, username);
                tracing::info!(ip = %client.ip, username = ?username, ?failure, "failed login");
                let (msg, reason, user_id) = match failure {
                    LoginFailure::BadCredentials => {
                        ("noauth-2d", "invalid user name or password", None)
                    }
                    LoginFailure::AccountLocked => ("locked", "account is locked", None),
                    LoginFailure::SecondFactorWrong { user_id } => {
                        ("tokenrequired", "wrong second-factor code", Some(user_id))
                    }
                    LoginFailure::SecondFactorRequired { .. } => unreachable!("handled above"),
                };
                self.audit_sign_in(
                    SignIn::failed(username, user_id.as_deref(), reason),
                    method,
                    client,
                )
                .await;
                Err(AuthFailure {
                    second_factor_for: user_id,
                    ..AuthFailure::noauth(msg, reason)
                })
            }
        }
    }

    /// A sign-in for the audit trail: who, how, from where, and the outcome. A failed
    /// attempt on a known account is shown to that account too.
    async fn audit_sign_in(&self, outcome: SignIn<'_>, method: Method, client: &Client) {
        let event = match outcome {
            SignIn::Succeeded(user) => {
                Event::new("user", "login", format!("Signed in ({})", method.name()))
                    .by(&user.id, &user.name)
                    .target(&user.id)
            }
            SignIn::Failed {
                attempted,
                account,
                why,
            } => {
                crate::metrics::METRICS.login_failed(method.name());
                let event = Event::new(
                    "user",
                    "login",
                    format!(
                        "Failed sign-in as {}: {why}",
                        ironmesh_core::devices::clip(attempted, 64)
                    ),
                )
                .failed();
                match account {
                    Some(id) => event.target(id).with("account", id.to_string()),
                    None => event,
                }
            }
        }
        .from(client.origin())
        .with("method", method.name())
        .target(TARGET_USER_MANAGERS);
        self.domain.publish(event).await;
    }

    /// A sealed token standing for "password checked" while the sign-in page asks for the
    /// second factor (valid [`PENDING_SECS`]).
    pub fn pending_sign_in(&self, user_id: &str, client: &Client) -> String {
        let payload = json!({ "purpose": "2fa", "userid": user_id, "ip": client.ip.to_string(), "ms": now_ms() });
        self.tokens.seal(
            payload.as_object().cloned().unwrap_or_default(),
            now_ms() / 1000,
        )
    }

    /// The account a pending sign-in token stands for, if valid (from the same address).
    pub fn pending_user(&self, token: &str, client: &Client) -> Option<String> {
        let payload = self
            .tokens
            .open(token, PENDING_SECS, now_ms() / 1000)
            .ok()?;
        (payload.get("purpose")?.as_str()? == "2fa"
            && payload.get("ip")?.as_str()? == client.ip.to_string())
        .then(|| payload.get("userid")?.as_str().map(str::to_string))
        .flatten()
    }

    /// The sign-in page's second step: the code for a pending sign-in. A wrong code counts
    /// towards the (user, address) failure limit like a wrong password.
    pub async fn second_step(
        &self,
        pending: &str,
        code: &str,
        client: &Client,
    ) -> Result<Authenticated, AuthFailure> {
        let Some(user_id) = self.pending_user(pending, client) else {
            return Err(AuthFailure::noauth(
                "noauth",
                "the sign-in took too long; start again",
            ));
        };
        let user = match self.domain.active_user(&user_id).await {
            Ok(Some(user)) => user,
            Ok(None) => return Err(AuthFailure::noauth("noauth", "account not found")),
            Err(DomainError::Unavailable(outage)) => return Err(AuthFailure::unavailable(outage)),
            Err(e) => {
                tracing::error!(error = %e, "second factor check failed");
                return Err(AuthFailure::noauth("noauth", "internal error"));
            }
        };
        if let Verdict::Refuse(wait) = self.limiter.check(client.ip, &user.name) {
            return Err(AuthFailure::noauth(
                "locked",
                format!(
                    "too many failed attempts from this address; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ));
        }
        let name = user.name.clone();
        match self.domain.second_factor(user, Some(code)).await {
            Ok(Ok(user)) => {
                self.limiter.record_success(client.ip, &name);
                self.audit_sign_in(SignIn::Succeeded(&user), Method::SecondFactor, client)
                    .await;
                Ok(Authenticated {
                    user,
                    method: Method::SecondFactor,
                })
            }
            Ok(Err(_)) => {
                self.limiter.record_failure(client.ip, &name);
                self.audit_sign_in(
                    SignIn::failed(&name, Some(&user_id), "wrong second-factor code"),
                    Method::SecondFactor,
                    client,
                )
                .await;
                Err(AuthFailure {
                    second_factor_for: Some(user_id),
                    ..AuthFailure::noauth("tokenrequired", "wrong code")
                })
            }
            Err(DomainError::Unavailable(outage)) => Err(AuthFailure::unavailable(outage)),
            Err(e) => {
                tracing::error!(error = %e, "second factor check failed");
                Err(AuthFailure::noauth("noauth", "internal error"))
            }
        }
    }

    /// Records a sign-in completed elsewhere (a passkey, single sign-on).
    pub async fn signed_in(&self, user: &User, method: Method, client: &Client) {
        self.limiter.record_success(client.ip, &user.name);
        self.audit_sign_in(SignIn::Succeeded(user), method, client)
            .await;
    }

    /// Records a refused sign-in of another kind (a passkey, single sign-on); `account`
    /// when the account is known.
    pub async fn refused(
        &self,
        attempted: &str,
        account: Option<&User>,
        method: Method,
        client: &Client,
        why: &str,
    ) {
        if !attempted.is_empty() {
            self.limiter.record_failure(client.ip, attempted);
        }
        let account = account.map(|u| u.id.as_str());
        self.audit_sign_in(SignIn::failed(attempted, account, why), method, client)
            .await;
    }

    /// Records a sign-out.
    pub async fn audit_sign_out(&self, user: &User, client: &Client) {
        let event = Event::new("user", "logout", "Signed out")
            .by(&user.id, &user.name)
            .from(client.origin())
            .target(TARGET_USER_MANAGERS)
            .target(&user.id);
        self.domain.publish(event).await;
    }

    /// The user named by a `?auth=` token, if it is valid and the account may sign in;
    /// `Err` only when the database is out.
    /// A token issued before the account's password last changed opens nothing.
    async fn user_from_auth_token(&self, token: &str, ip: IpAddr) -> Result<Option<User>, Outage> {
        let Some((user_id, issued_ms)) = self.auth_token_user_id(token, ip) else {
            return Ok(None);
        };
        Ok(outage_only(self.domain.active_user(&user_id).await)?
            .filter(|user| issued_ms >= user.password_changed_ms))
    }

    /// The user id in a `?auth=` token: `{userid, domainid}` issued by `authcookie` or
    /// built by `meshctrl --loginkey`. If the token carries `ip`, the client must match it
    /// loosely (same /24, or both private/loopback), as MeshCentral's default does.
    /// Returns the user id and when the token was issued (Unix ms: our tokens carry `ms`;
    /// others only `time` in seconds, taken as the end of that second).
    fn auth_token_user_id(&self, token: &str, ip: IpAddr) -> Option<(String, i64)> {
        let now = now_ms() / 1000;
        let payload = self.tokens.open(token, AUTH_TOKEN_MAX_AGE_SECS, now).ok()?;
        if !payload
            .get("domainid")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .is_empty()
        {
            return None;
        }
        if let Some(bound) = payload.get("ip").and_then(|v| v.as_str()) {
            let bound: IpAddr = bound.parse().ok()?;
            if !ip_matches_loosely(bound, ip) {
                return None;
            }
        }
        let issued_ms = match payload.get("ms").and_then(|v| v.as_i64()) {
            Some(ms) => ms,
            None => payload.get("time")?.as_i64()? * 1000 + 999,
        };
        let user_id = normalize_id(IdKind::User, payload.get("userid")?.as_str()?).ok()?;
        Some((user_id, issued_ms))
    }

    /// Issues the `{userid, domainid, ip}` token clients put in `?auth=`.
    pub fn issue_auth_token(&self, user: &User, ip: IpAddr) -> String {
        let payload =
            json!({ "userid": user.id, "domainid": "", "ip": ip.to_string(), "ms": now_ms() });
        self.tokens.seal(
            payload.as_object().cloned().unwrap_or_default(),
            now_ms() / 1000,
        )
    }

    /// Starts a browser session; returns the cookie value.
    pub async fn create_web_session(&self, user: &User) -> DomainResult<String> {
        self.domain.start_web_session(user, SESSION_TTL_MS).await
    }

    pub async fn user_from_session(&self, cookie: &str) -> Option<User> {
        self.session_user(cookie).await.ok().flatten()
    }

    /// The user of a live web session; `Err` only when the database is out.
    async fn session_user(&self, cookie: &str) -> Result<Option<User>, Outage> {
        outage_only(self.domain.web_session_user(cookie).await)
    }

    pub async fn end_web_session(&self, cookie: &str) {
        if let Err(e) = self.domain.end_web_session(cookie).await {
            tracing::warn!(error = %e, "could not delete web session");
        }
    }
}

/// A lookup's result with every error but an outage taken as "nothing found".
fn outage_only<T>(result: DomainResult<Option<T>>) -> Result<Option<T>, Outage> {
    match result {
        Ok(found) => Ok(found),
        Err(DomainError::Unavailable(outage)) => Err(outage),
        Err(_) => Ok(None),
    }
}

fn ip_matches_loosely(a: IpAddr, b: IpAddr) -> bool {
    fn local(ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        }
    }
    match (a, b) {
        _ if a == b => true,
        _ if local(a) && local(b) => true,
        (IpAddr::V4(x), IpAddr::V4(y)) => x.octets()[..3] == y.octets()[..3],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_ip_rule() {
        let p = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_matches_loosely(p("127.0.0.1"), p("10.1.2.3")));
        assert!(ip_matches_loosely(p("8.8.8.1"), p("8.8.8.200")));
        assert!(!ip_matches_loosely(p("8.8.8.1"), p("8.8.9.1")));
        assert!(!ip_matches_loosely(p("127.0.0.1"), p("8.8.8.8")));
    }

    #[test]
    fn finds_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; ironmesh_session=abc; b=2".parse().unwrap());
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
    }
}
