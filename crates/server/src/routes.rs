//! Every path on the one HTTPS port, and on the optional plain gateway port.

use axum::routing::get;
use axum::Router;

use crate::state::SharedState;
use crate::web::{console, headers, install, monitoring, pages};

pub fn router(state: SharedState) -> Router {
    let router = Router::new()
        .merge(gateway_routes(&state))
        .route("/", get(console::index))
        .route("/assets/{*file}", get(console::static_file))
        .route("/login.css", get(console::login_css))
        .route("/login", get(pages::login_page).post(pages::login_submit))
        .route("/login/code", axum::routing::post(pages::login_code))
        .route("/login/passkey", axum::routing::post(pages::login_passkey))
        .route("/login.js", get(console::login_js))
        .route("/recordings/{file}", get(crate::web::recordings::download))
        .route("/oidc/login", get(crate::web::sso::login))
        .route("/oidc/callback", get(crate::web::sso::callback))
        .route("/logout", get(pages::logout_page).post(pages::logout))
        .route("/health", get(pages::health))
        .route("/health/live", get(monitoring::live))
        .route("/health/ready", get(monitoring::ready))
        .route("/metrics", get(monitoring::metrics))
        .route("/control.ashx", get(crate::control::upgrade))
        .route("/agent.ashx", get(crate::agents::upgrade))
        .route("/agent.ashx/.websocket", get(crate::agents::upgrade))
        .route("/meshrelay.ashx", get(crate::relay::upgrade))
        .route("/meshrelay.ashx/.websocket", get(crate::relay::upgrade))
        .route("/meshsettings", get(install::mesh_settings))
        .route("/meshagents", get(install::mesh_agents))
        .route("/agents/ironmesh-agent", get(install::ironmesh_agent))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(headers::security_headers));
    router.with_state(state)
}

/// The gateways' WebSocket and the classic auth-server endpoints, when gateways are
/// enabled (`[wifidog]`); nothing otherwise.
fn gateway_routes(state: &SharedState) -> Router<SharedState> {
    let wifidog = &state.config.wifidog;
    if !wifidog.is_enabled() {
        return Router::new();
    }
    Router::new()
        .route(&wifidog.path, get(crate::wifidog::upgrade))
        .merge(crate::wifidog::portal::routes())
}

/// The optional plain-HTTP port: only what gateways use (their WebSocket and the classic
/// auth-server endpoints), never logins or the console.
pub fn plain_router(state: SharedState) -> Router {
    Router::new()
        .merge(gateway_routes(&state))
        .fallback(pages::not_found)
        .with_state(state)
}
