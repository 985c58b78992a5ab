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

/// Largest message an agent may send once connected (reports such as `sysinfo` or
/// `smbios` can be large; cores flow the other way).
pub const MAX_AGENT_MESSAGE: usize = 4 << 20;

pub async fn upgrade(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    // Agents are many and mostly idle: small buffers keep memory per agent low.
    ws.max_message_size(MAX_AGENT_MESSAGE)
        .max_frame_size(MAX_AGENT_MESSAGE)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| connection::run(state, socket, peer))
}
