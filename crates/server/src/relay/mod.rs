//! `/meshrelay.ashx`: pairs a user's socket with an agent's socket by relay id and pipes
//! frames between them verbatim (docs/protocol/control.md §3, §3.2).
//!
//! `ironmesh_proto::relay::RelayQuery` parses the URL, `admission` decides who a socket is (user, or agent carrying a
//! relay token) and whether it may join, `pairing` takes it through the hub of waiting
//! sockets (`crate::live::relays`), `pipe` forwards frames with backpressure until either
//! side ends, `guard` holds the user side to its rights inside the session (the protocol it
//! really starts; no input from view-only desktop viewers). `crate::tunnel` builds the request that asks an agent to connect.

pub mod admission;
pub mod guard;
pub mod pairing;
pub mod pipe;
pub mod tap;

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::state::SharedState;

/// Close codes of refused or ended relay sessions; each comes with a reason text.
pub mod close {
    /// No usable credentials on the user side, or an invalid agent relay token; or, for a
    /// session under way, the user's credentials were revoked (password changed, account
    /// locked or removed).
    pub const UNAUTHORIZED: u16 = 4401;
    /// The user lacks the rights this protocol needs on the device.
    pub const FORBIDDEN: u16 = 4403;
    /// Unknown device (or one the user may not see).
    pub const NOT_FOUND: u16 = 4404;
    /// The other side never arrived, or the session sat idle too long.
    pub const TIMEOUT: u16 = 4408;
    /// The relay id is already paired or was used before; or the token was used before.
    pub const CONFLICT: u16 = 4409;
    /// The relay token has expired.
    pub const EXPIRED: u16 = 4410;
    /// The device is not connected.
    pub const OFFLINE: u16 = 4412;
    /// Malformed request (missing id, bad protocol number).
    pub const BAD_REQUEST: u16 = 4400;
    /// The peer disconnected.
    pub const PEER_GONE: u16 = 1000;
}

pub async fn upgrade(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Browsers open relays from the console: refuse other sites' pages, as on the control
    // channel. Agents and tools send no Origin.
    if let Some(origin) = crate::endpoint::foreign_origin(&state.config, &headers) {
        tracing::warn!(%peer, origin = ?origin, "relay refused: foreign origin");
        return (axum::http::StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let query = ironmesh_proto::relay::RelayQuery::parse(raw.as_deref().unwrap_or(""));
    ws.max_message_size(state.config.limits.relay)
        .max_frame_size(state.config.limits.relay)
        .on_upgrade(move |socket| {
            let sessions = state.sessions.clone();
            sessions.track_future(async move {
                match admission::admit(&state, &query, &headers, peer).await {
                    Ok(party) => pairing::join(state, party, socket).await,
                    Err(refusal) => refusal.send(socket).await,
                }
            })
        })
}
