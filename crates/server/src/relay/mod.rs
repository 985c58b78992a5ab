//! `/meshrelay.ashx`: pairs a user's socket with an agent's socket by relay id and pipes
//! frames between them verbatim (control spec §3; relay guide, seed 000).
//!
//! `query` parses the URL, `admission` decides who a socket is (user, or agent carrying a
//! relay token) and whether it may join, `hub` pairs sockets by id, `pipe` forwards frames
//! with backpressure until either side ends, and `tunnel` builds the request that asks an
//! agent to connect.

pub mod admission;
pub mod hub;
pub mod pipe;
pub mod query;
pub mod tunnel;

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::state::SharedState;

/// Close codes of refused or ended relay sessions; each comes with a reason text.
pub mod close {
    /// No usable credentials on the user side, or an invalid agent relay token.
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
    if let Some(origin) = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        if !crate::control::origin_allowed(&state, &headers, origin) {
            tracing::warn!(%peer, origin, "relay refused: foreign origin");
            return (axum::http::StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    let query = query::RelayQuery::parse(raw.as_deref().unwrap_or(""));
    ws.max_message_size(state.config.limits.relay)
        .max_frame_size(state.config.limits.relay)
        .on_upgrade(move |socket| async move {
            match admission::admit(&state, &query, &headers, peer).await {
                Ok(party) => hub::join(state, party, socket).await,
                Err(refusal) => refusal.send(socket).await,
            }
        })
}
