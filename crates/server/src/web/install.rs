//! Agent installation endpoints: the `.msh` settings of a device group, and agent binaries.

use std::collections::HashMap;
use std::path::PathBuf;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ironmesh_proto::ids::{decode_b64_at_dollar, normalize_id, IdKind};
use ironmesh_proto::msh::MeshSettings;

use crate::state::SharedState;
use ironmesh_core::groups::MTYPE_AGENT;

/// `GET /meshsettings?id=<group id>` (docs/protocol/agent.md §7). No login: the 48-byte random
/// group id is the invitation. Unknown ids get 404.
pub async fn mesh_settings(
    State(state): State<SharedState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(id) = q.get("id") else {
        return (StatusCode::BAD_REQUEST, "missing ?id=<device group id>").into_response();
    };
    let Ok(group_id) = normalize_id(IdKind::Mesh, id) else {
        return (StatusCode::NOT_FOUND, "unknown device group").into_response();
    };
    let group = match state.domain.group_by_id(&group_id).await {
        Ok(Some(g)) if g.mtype == MTYPE_AGENT => g,
        Ok(_) => return (StatusCode::NOT_FOUND, "unknown device group").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "meshsettings lookup failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let Some(mesh_id) = decode_b64_at_dollar(ironmesh_proto::ids::id_key(&group.id)) else {
        return (StatusCode::NOT_FOUND, "unknown device group").into_response();
    };
    let settings = MeshSettings {
        mesh_name: group.name,
        mesh_id,
        server_id: state.identity.agent_server.server_id.to_vec(),
        server_url: format!("wss://{}/agent.ashx", state.config.public_host_port()),
    };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"meshagent.msh\"",
            ),
        ],
        settings.render(),
    )
        .into_response()
}

/// Stock MeshCentral agent file names by architecture number, for the ones ironmesh
/// serves from an installed `meshcentral` package.
fn stock_agent_file(arch: u32) -> Option<&'static str> {
    match arch {
        6 => Some("meshagent_x86-64"),
        _ => None,
    }
}

/// `GET /meshagents?id=<arch>`: the stock agent binary, when a `meshcentral` package is
/// configured.
pub async fn mesh_agents(
    State(state): State<SharedState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let arch = q.get("id").and_then(|v| v.parse::<u32>().ok());
    let (Some(dir), Some(file)) = (
        state.config.meshcentral_dir.as_ref(),
        arch.and_then(stock_agent_file),
    ) else {
        return (
            StatusCode::NOT_FOUND,
            "no agent binary for this architecture on this server",
        )
            .into_response();
    };
    serve_binary(dir.join("agents").join(file), "meshagent").await
}

/// `GET /agents/ironmesh-agent`: ironmesh's own agent for this server's platform.
pub async fn ironmesh_agent(State(state): State<SharedState>) -> Response {
    let path = state.config.agent_binary.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("ironmesh-agent")))
    });
    match path {
        Some(p) => serve_binary(p, "ironmesh-agent").await,
        None => (StatusCode::NOT_FOUND, "agent binary not available").into_response(),
    }
}

async fn serve_binary(path: PathBuf, download_name: &str) -> Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{download_name}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "agent binary not readable");
            (
                StatusCode::NOT_FOUND,
                "agent binary not available on this server: build it next to the server \
                 (cargo build --release -p ironmesh-agent, or start with scripts/serve)",
            )
                .into_response()
        }
    }
}
