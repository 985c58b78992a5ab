//! `/control.ashx`: the user control channel (docs/protocol/control.md §1–§2). One WebSocket per
//! console or `meshctrl.js` run; JSON text frames both ways.
//!
//! Flow: Origin check (browsers only), client certificate (when mutual TLS is configured),
//! upgrade, authenticate (frames sent meanwhile wait in
//! the socket), push `serverinfo` and `userinfo`, then handle requests in order while
//! forwarding the events this user may see.

mod actions;
mod session;

pub use actions::ACTION_NAMES;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::FromRequestParts;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use crate::auth::{Client, Credentials};
use crate::endpoint::deflate_ws::{self, DeflateSocket};
use crate::endpoint::foreign_origin;
use crate::state::SharedState;
use crate::tls::ClientCert;

pub async fn upgrade(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    client_cert: Option<Extension<ClientCert>>,
    req: axum::extract::Request,
) -> Response {
    let client_cert = client_cert.map(|Extension(c)| c);
    // Browsers always send Origin; a foreign one means another site's page is trying to
    // drive this user's session (cross-site WebSocket hijacking). Tools send none.
    if let Some(origin) = foreign_origin(&state.config, &headers) {
        tracing::warn!(%peer, origin = ?origin, "control channel refused: foreign origin");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    // Mutual TLS, when configured: the connection must have shown a certificate of the
    // configured CA (the TLS layer already refused any other certificate).
    if state.config.client_certs.control_requires_cert() && client_cert != Some(ClientCert(true)) {
        tracing::warn!(%peer, "control channel refused: no client certificate");
        return (
            StatusCode::FORBIDDEN,
            "a client certificate issued by this server's configured CA is required",
        )
            .into_response();
    }
    let creds = Credentials::from_request(&headers, &query);
    let client = Client::new(peer.ip(), &headers);
    // Browsers offering permessage-deflate get the compressing socket; everything else
    // (meshctrl, the CLIs, tests) axum's.
    if headers.contains_key(header::ORIGIN) && deflate_ws::offered(&headers) {
        return upgrade_compressed(state, peer, creds, client, req);
    }
    let (mut parts, _) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.max_message_size(state.config.limits.control)
        .max_frame_size(state.config.limits.control)
        .on_upgrade(move |socket| {
            let sessions = state.sessions.clone();
            sessions.track_future(session::run(state, socket, peer, creds, client))
        })
}

fn upgrade_compressed(
    state: SharedState,
    peer: SocketAddr,
    creds: Credentials,
    client: Client,
    mut req: axum::extract::Request,
) -> Response {
    let response_headers = match deflate_ws::handshake_headers(req.headers()) {
        Ok(h) => h,
        Err(code) => return (code, "not a WebSocket upgrade request").into_response(),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let limit = state.config.limits.control;
    let sessions = state.sessions.clone();
    sessions.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = DeflateSocket::start(hyper_util::rt::TokioIo::new(upgraded), limit);
                session::run(state, socket, peer, creds, client).await;
            }
            Err(e) => tracing::debug!(%peer, error = %e, "control channel upgrade failed"),
        }
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    for (name, value) in response_headers {
        res.headers_mut().insert(name, value);
    }
    res
}
