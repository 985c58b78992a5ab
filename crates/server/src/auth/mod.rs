//! Who is on the other end of a request: password logins (rate-limited), login tokens,
//! encrypted `auth=` tokens, the `x-meshauth` header and web session cookies.

pub mod cookie;
pub mod ratelimit;

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::HeaderMap;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::meshauth;
use ironmesh_proto::rights::SiteRights;
use serde_json::json;

use crate::domain::accounts::{sha256_hex, LoginFailure};
use crate::domain::DomainError;
use crate::state::AppState;
use crate::store::{now_ms, Outage, User, WebSession};

/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "ironmesh_session";
/// Lifetime of a browser session.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
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
}

impl AuthFailure {
    fn noauth(msg: &'static str, reason: impl Into<String>) -> AuthFailure {
        AuthFailure {
            cause: "noauth",
            msg,
            reason: reason.into(),
            outage: None,
        }
    }

    fn unavailable(outage: Outage) -> AuthFailure {
        AuthFailure {
            outage: Some(outage),
            ..AuthFailure::noauth("noauth", outage.to_string())
        }
    }
}

/// Tries each credential in MeshCentral's order (control spec §1.3): `auth=` token,
/// `x-meshauth`, `user`/`pass` query, session cookie. A bad `auth=` token falls through
/// to the next method, as in MeshCentral.
pub async fn authenticate(
    state: &AppState,
    creds: &Credentials,
    ip: IpAddr,
) -> Result<User, AuthFailure> {
    if let Some(token) = &creds.auth_token {
        if let Some(user) = user_from_auth_token(state, token, ip)
            .await
            .map_err(AuthFailure::unavailable)?
        {
            return Ok(user);
        }
    }
    if let Some(header) = &creds.meshauth {
        let parsed = meshauth::parse(header)
            .map_err(|e| AuthFailure::noauth(e.msg(), format!("bad x-meshauth header: {e}")))?;
        let user = password_login(
            state,
            &parsed.username,
            &parsed.password,
            parsed.token.as_deref(),
            ip,
        )
        .await?;
        if SiteRights(user.site_rights).restricted(SiteRights::NO_MESH_CMD) {
            return Err(AuthFailure {
                cause: "notools",
                msg: "notools",
                reason: "this account may not use command-line tools".into(),
                outage: None,
            });
        }
        return Ok(user);
    }
    if let (Some(user), Some(pass)) = (&creds.user, &creds.pass) {
        return password_login(state, user, pass, None, ip).await;
    }
    if let Some(cookie) = &creds.session_cookie {
        if let Some(user) = session_user(state, cookie)
            .await
            .map_err(AuthFailure::unavailable)?
        {
            return Ok(user);
        }
    }
    Err(AuthFailure::noauth("noauth", "authentication required"))
}

/// A password (or login-token) login with failure limiting.
pub async fn password_login(
    state: &AppState,
    username: &str,
    password: &str,
    token: Option<&str>,
    ip: IpAddr,
) -> Result<User, AuthFailure> {
    if let Err(wait) = state.login_limiter.check(ip, username) {
        tracing::warn!(%ip, username, "login refused: too many failures");
        return Err(AuthFailure::noauth(
            "locked",
            format!(
                "too many failed logins; try again in {} s",
                wait.as_secs().max(1)
            ),
        ));
    }
    let result = state
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
            state.login_limiter.record_success(ip, username);
            Ok(user)
        }
        Err(failure) => {
            state.login_limiter.record_failure(ip, username);
            tracing::info!(%ip, username, ?failure, "failed login");
            Err(match failure {
                LoginFailure::BadCredentials => {
                    AuthFailure::noauth("noauth-2d", "invalid user name or password")
                }
                LoginFailure::AccountLocked => AuthFailure::noauth("locked", "account is locked"),
                LoginFailure::TokenUnsupported => AuthFailure::noauth(
                    "noauth-2d",
                    "two-factor tokens are not supported by this server",
                ),
            })
        }
    }
}

/// The user named by a `?auth=` token, if it is valid and the account may sign in; `Err`
/// only when the database is out.
async fn user_from_auth_token(
    state: &AppState,
    token: &str,
    ip: IpAddr,
) -> Result<Option<User>, Outage> {
    match auth_token_user_id(state, token, ip) {
        Some(user_id) => active_user(state, &user_id).await,
        None => Ok(None),
    }
}

/// The user id in a `?auth=` token: `{userid, domainid}` issued by `authcookie` or built
/// by `meshctrl --loginkey`. If the token carries `ip`, the client must match it loosely
/// (same /24, or both private/loopback), as MeshCentral's default does.
fn auth_token_user_id(state: &AppState, token: &str, ip: IpAddr) -> Option<String> {
    let now = now_ms() / 1000;
    let payload = state
        .tokens
        .open(token, AUTH_TOKEN_MAX_AGE_SECS, now)
        .ok()?;
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
    normalize_id(IdKind::User, payload.get("userid")?.as_str()?).ok()
}

/// An account by id if it exists and is not locked; `Err` only when the database is out
/// (other database errors count as no such account).
async fn active_user(state: &AppState, user_id: &str) -> Result<Option<User>, Outage> {
    match state.domain.store.user(user_id).await {
        Ok(user) => Ok(user.filter(|u| !SiteRights(u.site_rights).restricted(SiteRights::LOCKED))),
        Err(e) => e.outage().map_or(Ok(None), Err),
    }
}

/// Issues the `{userid, domainid, ip}` token clients put in `?auth=`.
pub fn issue_auth_token(state: &AppState, user: &User, ip: IpAddr) -> String {
    let payload = json!({ "userid": user.id, "domainid": "", "ip": ip.to_string() });
    state.tokens.seal(
        payload.as_object().cloned().unwrap_or_default(),
        now_ms() / 1000,
    )
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

/// Starts a browser session; returns the cookie value.
pub async fn create_web_session(state: &AppState, user: &User) -> anyhow::Result<String> {
    let token = ironmesh_proto::ids::b64_at_dollar(&crate::domain::random_bytes::<32>())
        .replace(['@', '$', '='], "");
    let now = now_ms();
    state
        .domain
        .store
        .insert_web_session(&WebSession {
            token_hash: sha256_hex(&token),
            user_id: user.id.clone(),
            created_ms: now,
            expires_ms: now + SESSION_TTL_MS,
        })
        .await?;
    Ok(token)
}

pub async fn user_from_session(state: &AppState, cookie: &str) -> Option<User> {
    session_user(state, cookie).await.ok().flatten()
}

/// The user of a live web session; `Err` only when the database is out.
async fn session_user(state: &AppState, cookie: &str) -> Result<Option<User>, Outage> {
    let session = match state
        .domain
        .store
        .web_session(&sha256_hex(cookie), now_ms())
        .await
    {
        Ok(Some(session)) => session,
        Ok(None) => return Ok(None),
        Err(e) => return e.outage().map_or(Ok(None), Err),
    };
    active_user(state, &session.user_id).await
}

pub async fn end_web_session(state: &AppState, cookie: &str) {
    if let Err(e) = state
        .domain
        .store
        .delete_web_session(&sha256_hex(cookie))
        .await
    {
        tracing::warn!(error = %e, "could not delete web session");
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
