//! `/control.ashx`: the user control channel (control spec §1–§2). One WebSocket per
//! console or `meshctrl.js` run; JSON text frames both ways.
//!
//! Flow: Origin check (browsers only), client certificate (when mutual TLS is configured),
//! upgrade, authenticate (frames sent meanwhile wait in
//! the socket), push `serverinfo` and `userinfo`, then handle requests in order while
//! forwarding the events this user may see.

mod actions;
mod session;

pub use actions::ACTION_NAMES;
pub use session::truncate_reason;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::FromRequestParts;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use crate::auth::Credentials;
use crate::state::{AppState, SharedState};
use crate::tls::ClientCert;
use crate::web::deflate_ws::{self, DeflateSocket};

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
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if !origin_allowed(&state, &headers, origin) {
            tracing::warn!(%peer, origin, "control channel refused: foreign origin");
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
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
    // Browsers offering permessage-deflate get the compressing socket; everything else
    // (meshctrl, the CLIs, tests) axum's.
    if headers.contains_key(header::ORIGIN) && deflate_ws::offered(&headers) {
        return upgrade_compressed(state, peer, creds, req);
    }
    let (mut parts, _) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.max_message_size(state.config.limits.control)
        .max_frame_size(state.config.limits.control)
        .on_upgrade(move |socket| session::run(state, socket, peer, creds))
}

fn upgrade_compressed(
    state: SharedState,
    peer: SocketAddr,
    creds: Credentials,
    mut req: axum::extract::Request,
) -> Response {
    let response_headers = match deflate_ws::handshake_headers(req.headers()) {
        Ok(h) => h,
        Err(code) => return (code, "not a WebSocket upgrade request").into_response(),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let limit = state.config.limits.control;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = DeflateSocket::start(hyper_util::rt::TokioIo::new(upgraded), limit);
                session::run(state, socket, peer, creds).await;
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

/// An Origin is allowed when it is this server as the browser reached it (`Host`), the
/// configured server name, or listed in `allowed_origins`.
pub fn origin_allowed(state: &AppState, headers: &HeaderMap, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    if state
        .config
        .allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = origin.strip_prefix("https://") else {
        return false;
    };
    let own = state.config.public_host_port();
    let request_host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    host.eq_ignore_ascii_case(request_host) || host.eq_ignore_ascii_case(&own)
}
