//! The classic WiFiDog HTTP auth server (docs/protocol/wifidogx.md §8), enough for a gateway to run
//! its captive portal against ironmesh: `ping` (`Pong`), `login` (portal page: click-through, or a
//! shared password), `auth` (`Auth: <n>` for stages login/counters/logout, and the JSON
//! `counters_v2`), `portal` and `gw_message`.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde_json::{json, Value};

use crate::endpoint::{escape_html, escape_query};
use crate::state::SharedState;
use ironmesh_core::gateways::{PORTAL_ACTIVE, PORTAL_ENDED};
use ironmesh_core::{hex, random_bytes};

/// Auth codes of the protocol (apfree `src/auth.h`).
const AUTH_DENIED: i64 = 0;
const AUTH_ALLOWED: i64 = 1;

/// The portal's routes, each with and without the trailing slash gateways add.
pub fn routes() -> Router<SharedState> {
    let mut r = Router::new();
    for (path, handler) in [
        ("ping", get(ping)),
        ("login", get(login_page).post(login_submit)),
        ("auth", get(auth).post(auth_counters_v2)),
        ("portal", get(portal)),
        ("gw_message", get(gw_message)),
    ] {
        r = r
            .route(&format!("/wifidog/{path}"), handler.clone())
            .route(&format!("/wifidog/{path}/"), handler);
    }
    r
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn ping() -> Response {
    text("Pong".into())
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{}</title></head><body><main>{body}</main></body></html>",
        escape_html(title)
    ))
}

/// The portal page a gateway redirects browsers to
/// (`login/?gw_address=&gw_port=&gw_id=&mac=&url=`).
async fn login_page(
    State(state): State<SharedState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| escape_html(q.get(k).map(String::as_str).unwrap_or(""));
    let password = if state.config.wifidog.portal_password.is_some() {
        "<label>Password <input name=\"password\" type=\"password\" required></label>"
    } else {
        ""
    };
    page(
        "Wi-Fi access",
        &format!(
            "<h1>Wi-Fi access</h1><form method=\"post\" action=\"/wifidog/login/\">\
             <input type=\"hidden\" name=\"gw_address\" value=\"{}\"><input type=\"hidden\" name=\"gw_port\" value=\"{}\">\
             <input type=\"hidden\" name=\"gw_id\" value=\"{}\"><input type=\"hidden\" name=\"mac\" value=\"{}\">\
             {password}<button type=\"submit\">Connect</button></form>",
            field("gw_address"),
            field("gw_port"),
            field("gw_id"),
            field("mac")
        ),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    gw_address: String,
    gw_port: String,
    gw_id: String,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    password: String,
}

/// Accepts the portal form, issues a token and sends the browser back to its gateway
/// (`http://gw_address:gw_port/wifidog/auth?token=…&gw_id=…`).
async fn login_submit(State(state): State<SharedState>, Form(form): Form<LoginForm>) -> Response {
    // Only an IP literal and a port: this redirect must not become an open redirect.
    let (Ok(addr), Ok(port)) = (
        form.gw_address.parse::<IpAddr>(),
        form.gw_port.parse::<u16>(),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            page("Wi-Fi access", "<p>Invalid gateway address.</p>"),
        )
            .into_response();
    };
    if form.gw_id.is_empty() || form.gw_id.len() > 64 {
        return (
            StatusCode::BAD_REQUEST,
            page("Wi-Fi access", "<p>Invalid gateway id.</p>"),
        )
            .into_response();
    }
    if let Some(expected) = &state.config.wifidog.portal_password {
        let ok = ironmesh_core::accounts::constant_time_eq(
            expected.as_bytes(),
            form.password.as_bytes(),
        );
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                page("Wi-Fi access", "<p role=\"alert\">Wrong password.</p>"),
            )
                .into_response();
        }
    }
    let token = hex(&random_bytes::<16>());
    if let Err(e) = state
        .domain
        .start_portal_session(&token, &form.gw_id, &form.mac)
        .await
    {
        tracing::error!(error = %e, "could not store portal session");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            page("Wi-Fi access", "<p>Please try again.</p>"),
        )
            .into_response();
    }
    let host = match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let location = format!(
        "http://{host}:{port}/wifidog/auth?token={token}&gw_id={}",
        escape_query(&form.gw_id)
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// `auth/?stage=login|counters|logout&token=&mac=&ip=&gw_id=` → `Auth: <n>`.
async fn auth(
    State(state): State<SharedState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let domain = &state.domain;
    let session = match domain.portal_session(get("token")).await {
        Ok(Some(s)) if s.gw_id == get("gw_id") || get("gw_id").is_empty() => Some(s),
        _ => None,
    };
    let code = match (get("stage"), session) {
        ("login", Some(s)) if s.state != PORTAL_ENDED => {
            let _ = domain
                .update_portal_session(&s.token, PORTAL_ACTIVE, get("mac"), get("ip"))
                .await;
            AUTH_ALLOWED
        }
        ("counters", Some(s)) if s.state == PORTAL_ACTIVE => AUTH_ALLOWED,
        ("logout", Some(s)) => {
            let _ = domain
                .update_portal_session(&s.token, PORTAL_ENDED, "", "")
                .await;
            AUTH_DENIED
        }
        _ => AUTH_DENIED,
    };
    text(format!("Auth: {code}"))
}

/// `POST auth/?stage=counters_v2` with `{device_id, gateway:[{gw_id, clients:[{id, token, …}]}]}`
/// → `{result:[{gw_id, auth_op:[{id, auth_code}]}]}`.
async fn auth_counters_v2(
    State(state): State<SharedState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if q.get("stage").map(String::as_str) != Some("counters_v2") {
        return (
            StatusCode::BAD_REQUEST,
            "POST is only for stage=counters_v2",
        )
            .into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "counters_v2 body must be JSON").into_response();
    };
    let mut result = Vec::new();
    for gw in request["gateway"].as_array().into_iter().flatten() {
        let mut ops = Vec::new();
        for client in gw["clients"].as_array().into_iter().flatten() {
            let token = client["token"].as_str().unwrap_or("");
            let active = matches!(state.domain.portal_session(token).await, Ok(Some(s)) if s.state == PORTAL_ACTIVE);
            ops.push(json!({"id": client["id"].clone(), "auth_code": if active { AUTH_ALLOWED } else { AUTH_DENIED }}));
        }
        result.push(json!({"gw_id": gw["gw_id"].clone(), "auth_op": ops}));
    }
    axum::Json(json!({"result": result})).into_response()
}

async fn portal(Query(q): Query<HashMap<String, String>>) -> Response {
    let gw = escape_html(q.get("gw_id").map(String::as_str).unwrap_or(""));
    page(
        "Connected",
        &format!("<h1>You are connected</h1><p>Gateway {gw}.</p>"),
    )
    .into_response()
}

async fn gw_message(Query(q): Query<HashMap<String, String>>) -> Response {
    let text = match q.get("message").map(String::as_str) {
        Some("denied") => "Access was denied.",
        Some("activate") => "Please activate your account.",
        Some("failed_validation") => "Validation failed.",
        _ => "The gateway has a message for you.",
    };
    page("Wi-Fi access", &format!("<h1>{}</h1>", escape_html(text))).into_response()
}
