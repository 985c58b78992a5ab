//! `/agent.ashx`: the agent channel (docs/protocol/agent.md). `connection` is one agent's
//! socket: it drives the authentication state machine (`ironmesh_proto::agent_handshake`),
//! registers the agent in `crate::live::agents`, pushes a JavaScript core
//! (`crate::agent_cores`) and stores its reports.

pub mod connection;

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
        .on_upgrade(move |socket| {
            let sessions = state.sessions.clone();
            sessions.track_future(connection::run(state, socket, peer))
        })
}
