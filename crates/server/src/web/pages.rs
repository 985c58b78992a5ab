//! Server-rendered pages: login and logout (the console itself is `super::console`). No inline
//! script or style (the CSP forbids both); every interpolated value is HTML-escaped.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use crate::auth::{self, AuthFailure, Client, SESSION_COOKIE, SESSION_TTL_MS};
use crate::endpoint::escape_html;
use crate::state::SharedState;
use ironmesh_core::model::Outage;
use ironmesh_core::DomainError;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} - ironmesh</title><link rel=\"stylesheet\" href=\"/login.css\"></head><body><main>{}</main></body></html>",
        escape_html(title),
        body
    )
}

fn login_form(error: Option<&str>) -> String {
    let error = error
        .map(|e| {
            format!(
                "<p role=\"alert\" id=\"login-error\">{}</p>",
                escape_html(e)
            )
        })
        .unwrap_or_default();
    page(
        "Sign in",
        &format!(
            "<h1>ironmesh</h1>{error}<form method=\"post\" action=\"/login\">\
             <label>User name <input name=\"username\" autocomplete=\"username\" required></label>\
             <label>Password <input name=\"password\" type=\"password\" \
             autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Sign in</button></form>"
        ),
    )
}

pub async fn login_page() -> Html<String> {
    Html(login_form(None))
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

pub async fn login_submit(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&state, &headers) {
        return (
            StatusCode::FORBIDDEN,
            Html(login_form(Some("Cross-site login refused."))),
        )
            .into_response();
    }
    let client = Client::new(peer.ip(), &headers);
    match state
        .auth
        .password_login(&form.username, &form.password, None, &client)
        .await
    {
        Ok(signed_in) => match state.auth.create_web_session(&signed_in.user).await {
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
            Err(e) => match e {
                // Logged once by the store.
                DomainError::Unavailable(outage) => unavailable(outage),
                e => {
                    tracing::error!(error = %e, "could not create session");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Html(login_form(Some(
                            "The server could not start a session; try again.",
                        ))),
                    )
                        .into_response()
                }
            },
        },
        Err(AuthFailure {
            outage: Some(outage),
            ..
        }) => unavailable(outage),
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
            (status, Html(login_form(Some(&text)))).into_response()
        }
    }
}

/// The sign-in page when the database, not the credentials, failed: 503 with the cause.
fn unavailable(outage: Outage) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(login_form(Some(&format!(
            "Signing in is not possible right now. {outage}."
        )))),
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
