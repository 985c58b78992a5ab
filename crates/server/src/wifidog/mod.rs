//! WiFiDogX gateway controller (docs/protocol/wifidogx.md): the gateways' WebSocket
//! endpoint (`connection`; connected gateways and their command queues are in
//! `crate::live::gateways`), and the classic WiFiDog HTTP auth-server endpoints (`portal`).

pub mod connection;
pub mod portal;

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;

use crate::state::SharedState;

/// Upgrade on the gateway path: no credentials expected (gateways send none), query strings
/// ignored, a plain 101 without extensions.
pub async fn upgrade(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(state.config.limits.gateway)
        .max_frame_size(state.config.limits.gateway)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let sessions = state.sessions.clone();
            sessions.track_future(connection::run(state, socket, peer))
        })
}
