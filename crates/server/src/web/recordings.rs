//! `GET /recordings/<id>.cast`: a session recording, for the signed-in browser (session
//! cookie) or a client with `x-meshauth`, if its user may watch it (full administrators,
//! or the RECORDINGS site right on the device's group).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ironmesh_core::recordings::FORMAT_ASCIICAST;

use crate::auth::{Client, Credentials};
use crate::state::SharedState;

pub async fn download(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such recording").into_response();
    let Some(id) = file
        .strip_suffix(".cast")
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return not_found();
    };
    let creds = Credentials::from_request(&headers, &Default::default());
    let client = Client::new(peer.ip(), &headers);
    let user = match state.auth.authenticate(&creds, &client).await {
        Ok(signed_in) => signed_in.user,
        Err(_) => return (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
    };
    let Ok(Some(actor)) = state.domain.actor(&user.id).await else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let recording = match state.domain.recording(&actor, id).await {
        Ok(Some(r)) if r.format == FORMAT_ASCIICAST => r,
        Ok(_) => return not_found(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    match tokio::fs::read(state.config.recordings_dir().join(&recording.file)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/x-asciicast".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"session-{id}.cast\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => not_found(),
    }
}
