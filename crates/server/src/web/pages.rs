//! Server-rendered pages: login and logout (the console itself is `super::console`). No inline
//! script or style (the CSP forbids both); every interpolated value is HTML-escaped.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use crate::auth::{
    self, AuthFailure, Authenticated, Client, Method, SESSION_COOKIE, SESSION_TTL_MS,
};
use crate::endpoint::escape_html;
use crate::state::{AppState, SharedState};
use ironmesh_core::model::{Outage, User};
use ironmesh_core::DomainError;

pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} - ironmesh</title><link rel=\"stylesheet\" href=\"/login.css\"></head><body><main>{}</main></body></html>",
        escape_html(title),
        body
    )
}

fn login_form(state: &AppState, error: Option<&str>) -> String {
    let error = error
        .map(|e| {
            format!(
                "<p role=\"alert\" id=\"login-error\">{}</p>",
                escape_html(e)
            )
        })
        .unwrap_or_default();
    let sso = match &state.auth.oidc {
        Some(oidc) => format!(
            "<p class=\"sso\"><a id=\"sso-sign-in\" href=\"/oidc/login\">{}</a></p>",
            escape_html(&oidc.config.button)
        ),
        None => String::new(),
    };
    page(
        "Sign in",
        &format!(
            "<h1>ironmesh</h1>{error}<form method=\"post\" action=\"/login\">\
             <label>User name <input name=\"username\" autocomplete=\"username\" required></label>\
             <label>Password <input name=\"password\" type=\"password\" \
             autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Sign in</button></form>{sso}"
        ),
    )
}

pub async fn login_page(State(state): State<SharedState>) -> Html<String> {
    Html(login_form(&state, None))
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

fn session_cookie_header(value: &str, max_age_secs: i64) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Strict"
    )
}

/// Refuses cross-site form posts: a browser always sends `Origin` on POST.
fn same_origin(state: &SharedState, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => crate::endpoint::origin_allowed(&state.config, headers, origin),
    }
}

/// The sign-in page again, refusing a form posted from another site.
fn cross_site_login(state: &SharedState) -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(login_form(state, Some("Cross-site login refused."))),
    )
        .into_response()
}

pub async fn login_submit(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&state, &headers) {
        return cross_site_login(&state);
    }
    let client = Client::new(peer.ip(), &headers);
    let result = state
        .auth
        .password_login(&form.username, &form.password, None, &client)
        .await;
    signed_in_or_refused(&state, &client, result).await
}

/// The end of every sign-in path: a session cookie and the console, the second-factor
/// step, or the sign-in page with what went wrong.
async fn signed_in_or_refused(
    state: &SharedState,
    client: &Client,
    result: Result<Authenticated, AuthFailure>,
) -> Response {
    match result {
        Ok(signed_in) => start_session(state, &signed_in.user).await,
        Err(AuthFailure {
            outage: Some(outage),
            ..
        }) => unavailable(state, outage),
        Err(AuthFailure {
            second_factor_for: Some(user_id),
            ..
        }) => second_step_page(state, &user_id, client, None).await,
        Err(failure) => {
            let (status, text) = if failure.msg == "locked" {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Sign-in refused: {}.", failure.reason),
                )
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    "Invalid user name or password.".to_string(),
                )
            };
            (status, Html(login_form(state, Some(&text)))).into_response()
        }
    }
}

/// A browser session for `user`: the cookie, and on to the console.
pub async fn start_session(state: &SharedState, user: &User) -> Response {
    match state.auth.create_web_session(user).await {
        Ok(token) => (
            StatusCode::SEE_OTHER,
            [
                (
                    header::SET_COOKIE,
                    session_cookie_header(&token, SESSION_TTL_MS / 1000),
                ),
                (header::LOCATION, "/".to_string()),
            ],
        )
            .into_response(),
        // Logged once by the store.
        Err(DomainError::Unavailable(outage)) => unavailable(state, outage),
        Err(e) => {
            tracing::error!(error = %e, "could not create session");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(login_form(
                    state,
                    Some("The server could not start a session; try again."),
                )),
            )
                .into_response()
        }
    }
}

/// The second step of a sign-in: a code from the authenticator app (or a recovery code),
/// or one of the account's passkeys.
async fn second_step_page(
    state: &SharedState,
    user_id: &str,
    client: &Client,
    error: Option<&str>,
) -> Response {
    let pending = state.auth.pending_sign_in(user_id, client);
    let factors = state.domain.factors(user_id).await.unwrap_or_default();
    let error = error
        .map(|e| {
            format!(
                "<p role=\"alert\" id=\"login-error\">{}</p>",
                escape_html(e)
            )
        })
        .unwrap_or_default();
    let code_form = format!(
        "<form method=\"post\" action=\"/login/code\">\
         <input type=\"hidden\" name=\"pending\" value=\"{pending}\">\
         <label>Code from your authenticator app, or a recovery code \
         <input name=\"code\" autocomplete=\"one-time-code\" inputmode=\"text\" required autofocus></label>\
         <button type=\"submit\">Continue</button></form>",
        pending = escape_html(&pending)
    );
    let passkey = if factors.passkeys > 0 && state.auth.passkeys.is_some() {
        format!(
            "<p>or</p><button type=\"button\" id=\"use-passkey\" data-pending=\"{}\">Use a passkey</button>\
             <p role=\"alert\" id=\"passkey-error\" hidden></p>\
             <script src=\"/login.js\"></script>",
            escape_html(&pending)
        )
    } else {
        String::new()
    };
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    (
        status,
        Html(page(
            "Second step",
            &format!("<h1>ironmesh</h1><p>Your account has a second factor.</p>{error}{code_form}{passkey}"),
        )),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct CodeForm {
    pending: String,
    code: String,
}

/// `POST /login/code`: the second step with a TOTP or recovery code.
pub async fn login_code(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if !same_origin(&state, &headers) {
        return cross_site_login(&state);
    }
    let client = Client::new(peer.ip(), &headers);
    match state
        .auth
        .second_step(&form.pending, &form.code, &client)
        .await
    {
        Err(AuthFailure {
            second_factor_for: Some(user_id),
            ..
        }) => second_step_page(&state, &user_id, &client, Some("Wrong code; try again.")).await,
        other => signed_in_or_refused(&state, &client, other).await,
    }
}

#[derive(Deserialize)]
pub struct PasskeyRequest {
    pending: String,
    /// The authenticator's answer (`navigator.credentials.get`), when finishing.
    response: Option<serde_json::Value>,
}

/// `POST /login/passkey` (JSON): without `response`, the options for the browser's
/// `navigator.credentials.get`; with it, the check, and a session cookie when it passes.
pub async fn login_passkey(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::Json(req): axum::Json<PasskeyRequest>,
) -> Response {
    let refuse = |status: StatusCode, why: &str| {
        (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
    };
    if !same_origin(&state, &headers) {
        return refuse(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    let client = Client::new(peer.ip(), &headers);
    let (Some(passkeys), Some(user_id)) = (
        state.auth.passkeys.as_ref(),
        state.auth.pending_user(&req.pending, &client),
    ) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the sign-in took too long; start again",
        );
    };
    let stored = match state.domain.passkeys(&user_id).await {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let Some(response) = req.response else {
        let credentials: Vec<String> = stored.into_iter().map(|p| p.credential).collect();
        return match passkeys.start_authentication(&req.pending, &user_id, &credentials) {
            Ok(options) => axum::Json(options).into_response(),
            Err(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        };
    };
    let credentials: Vec<(String, String)> =
        stored.into_iter().map(|p| (p.id, p.credential)).collect();
    let user = match state.domain.active_user(&user_id).await {
        Ok(Some(user)) => user,
        _ => return refuse(StatusCode::UNAUTHORIZED, "account not found"),
    };
    match passkeys.finish_authentication(&req.pending, response, &credentials) {
        Ok(used) if used.user_id == user.id => {
            let _ = state.domain.passkey_used(&used.id, &used.credential).await;
            state.auth.signed_in(&user, Method::Passkey, &client).await;
            let session = start_session(&state, &user).await;
            // The script follows the redirect itself: answer JSON with the cookie set.
            let cookie = session.headers().get(header::SET_COOKIE).cloned();
            let mut res = axum::Json(serde_json::json!({ "redirect": "/" })).into_response();
            if let Some(cookie) = cookie {
                res.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            res
        }
        Ok(_) | Err(_) => {
            state
                .auth
                .refused(
                    &user.name,
                    Some(&user),
                    Method::Passkey,
                    &client,
                    "passkey not accepted",
                )
                .await;
            refuse(StatusCode::UNAUTHORIZED, "the passkey was not accepted")
        }
    }
}

/// The sign-in page when the database, not the credentials, failed: 503 with the cause.
fn unavailable(state: &AppState, outage: Outage) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(login_form(
            state,
            Some(&format!("Signing in is not possible right now. {outage}.")),
        )),
    )
        .into_response()
}

/// `GET /logout` changes nothing (a link or image on another site must not sign anyone
/// out): it offers the sign-out button.
pub async fn logout_page() -> Html<String> {
    Html(page(
        "Sign out",
        "<h1>ironmesh</h1><form method=\"post\" action=\"/logout\">\
         <button type=\"submit\">Sign out</button></form>",
    ))
}

/// `POST /logout`, from this server's own pages only (the same Origin check as the
/// sign-in): ends the browser session.
pub async fn logout(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&state, &headers) {
        return (
            StatusCode::FORBIDDEN,
            Html(page(
                "Sign out",
                "<p role=\"alert\">Cross-site sign-out refused.</p>",
            )),
        )
            .into_response();
    }
    if let Some(cookie) = auth::session_cookie(&headers) {
        if let Some(user) = state.auth.user_from_session(&cookie).await {
            state
                .auth
                .audit_sign_out(&user, &Client::new(peer.ip(), &headers))
                .await;
        }
        state.auth.end_web_session(&cookie).await;
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie_header("", 0)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

pub async fn health() -> &'static str {
    "ok"
}

pub async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found")
}
