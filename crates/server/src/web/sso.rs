//! `/oidc/login` and `/oidc/callback`: single sign-on through an OpenID Connect provider
//! (`crate::auth::oidc`). A failure at any step gets a page that says what went wrong.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use ironmesh_core::sso::SsoAccount;
use ironmesh_proto::rights::SiteRights;

use crate::auth::{Client, Method};
use crate::endpoint::escape_html;
use crate::state::SharedState;

/// The cookie binding a sign-in to the browser that started it.
const STATE_COOKIE: &str = "ironmesh_oidc";

fn failure(status: StatusCode, why: &str) -> Response {
    (
        status,
        Html(super::pages::page(
            "Single sign-on",
            &format!(
                "<h1>ironmesh</h1><p role=\"alert\" id=\"sso-error\">Single sign-on failed: {}</p>\
                 <p><a href=\"/login\">Back to the sign-in page</a></p>",
                escape_html(why)
            ),
        )),
    )
        .into_response()
}

pub async fn login(State(state): State<SharedState>) -> Response {
    let Some(oidc) = &state.auth.oidc else {
        return (StatusCode::NOT_FOUND, "single sign-on is not configured").into_response();
    };
    match oidc.begin().await {
        Ok((url, sign_in_state)) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, url),
                (
                    header::SET_COOKIE,
                    // Lax: the provider sends the browser back with a top-level GET.
                    format!(
                        "{STATE_COOKIE}={sign_in_state}; Path=/oidc; Max-Age=600; HttpOnly; Secure; SameSite=Lax"
                    ),
                ),
            ],
        )
            .into_response(),
        Err(e) => failure(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

pub async fn callback(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(oidc) = &state.auth.oidc else {
        return (StatusCode::NOT_FOUND, "single sign-on is not configured").into_response();
    };
    let client = Client::new(peer.ip(), &headers);
    if let Some(error) = q.get("error") {
        let why = format!(
            "the identity provider refused: {error} {}",
            q.get("error_description").map(String::as_str).unwrap_or("")
        );
        state
            .auth
            .refused("", None, Method::SingleSignOn, &client, &why)
            .await;
        return failure(StatusCode::UNAUTHORIZED, &why);
    }
    let (Some(code), Some(sign_in_state)) = (q.get("code"), q.get("state")) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "the provider's answer has no code or state",
        );
    };
    let identity = match oidc
        .finish(
            code,
            sign_in_state,
            cookie(&headers, STATE_COOKIE).as_deref(),
        )
        .await
    {
        Ok(identity) => identity,
        Err(e) => {
            state
                .auth
                .refused("", None, Method::SingleSignOn, &client, &e.to_string())
                .await;
            return failure(StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    // The provider's groups, mapped to device groups (by name or id) and site rights.
    let config = &oidc.config;
    let groups = state.domain.all_groups().await.unwrap_or_default();
    let find = |wanted: &str| {
        groups
            .iter()
            .find(|g| g.id == wanted || g.name == wanted)
            .map(|g| g.id.clone())
    };
    let mut memberships = Vec::new();
    let mut mapped_groups = Vec::new();
    for m in &config.groups {
        let Some(id) = find(&m.group) else {
            tracing::warn!(group = ?m.group, "[oidc] maps to a device group that does not exist");
            continue;
        };
        mapped_groups.push(id.clone());
        if identity.groups.contains(&m.claim) {
            memberships.push((id, m.rights));
        }
    }
    let site_rights = (!config.admin_groups.is_empty()).then(|| {
        if identity
            .groups
            .iter()
            .any(|g| config.admin_groups.contains(g))
        {
            SiteRights::FULL
        } else {
            SiteRights::NO_NEW_GROUPS
        }
    });
    let account = SsoAccount {
        identity: identity.key.clone(),
        username: identity.username.clone(),
        email: identity.email.clone(),
        realname: identity.name.clone(),
        site_rights,
        memberships,
        mapped_groups,
    };
    let user = match state.domain.sso_sign_in(account).await {
        Ok(user) => user,
        Err(e) => {
            state
                .auth
                .refused(
                    &identity.username,
                    None,
                    Method::SingleSignOn,
                    &client,
                    &e.to_string(),
                )
                .await;
            return failure(StatusCode::FORBIDDEN, &e.to_string());
        }
    };
    state
        .auth
        .signed_in(&user, Method::SingleSignOn, &client)
        .await;
    let session = super::pages::start_session(&state, &user).await;
    let Some(cookie) = session.headers().get(header::SET_COOKIE).cloned() else {
        return session;
    };
    // The session cookie is SameSite=Strict, which a browser does not send on a redirect
    // chain another site started: continue with a navigation of our own page.
    let mut response = Html(super::pages::page(
        "Signed in",
        "<meta http-equiv=\"refresh\" content=\"0;url=/\"><h1>ironmesh</h1>\
         <p>Signed in. <a href=\"/\">Continue to the console</a></p>",
    ))
    .into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, cookie);
    if let Ok(clear) =
        format!("{STATE_COOKIE}=; Path=/oidc; Max-Age=0; HttpOnly; Secure; SameSite=Lax").parse()
    {
        headers.append(header::SET_COOKIE, clear);
    }
    response
}
