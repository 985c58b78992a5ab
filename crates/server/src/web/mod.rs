//! The HTTPS side: the router of every path on the one port, the TLS listener, pages and
//! response headers. WebSocket endpoints live in their own modules (`crate::control`).

pub mod headers;
pub mod install;
pub mod listener;
pub mod pages;

use axum::routing::get;
use axum::Router;

use crate::state::SharedState;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/login", get(pages::login_page).post(pages::login_submit))
        .route("/logout", get(pages::logout).post(pages::logout))
        .route("/health", get(pages::health))
        .route("/control.ashx", get(crate::control::upgrade))
        .route("/agent.ashx", get(crate::agents::upgrade))
        .route("/agent.ashx/.websocket", get(crate::agents::upgrade))
        .route("/meshrelay.ashx", get(crate::relay::upgrade))
        .route("/meshrelay.ashx/.websocket", get(crate::relay::upgrade))
        .route("/meshsettings", get(install::mesh_settings))
        .route("/meshagents", get(install::mesh_agents))
        .route("/agents/ironmesh-agent", get(install::ironmesh_agent))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(state)
}
