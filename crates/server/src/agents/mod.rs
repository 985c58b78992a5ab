//! `/agent.ashx`: the agent channel (agent spec). `handshake` is the authentication state
//! machine, `connection` one agent's socket, `registry` the connected agents, `core` the
//! JavaScript cores pushed to stock MeshCentral agents.

pub mod connection;
pub mod core;
pub mod handshake;
pub mod registry;

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;

use crate::state::SharedState;

pub async fn upgrade(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    // Agents are many and mostly idle: small buffers keep memory per agent low.
    ws.max_message_size(state.config.limits.agent)
        .max_frame_size(state.config.limits.agent)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| connection::run(state, socket, peer))
}
