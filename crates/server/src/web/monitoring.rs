//! What monitoring reads: `/metrics` (Prometheus text format, access set by `[metrics]`),
//! `/health/live` (the process answers) and `/health/ready` (it can serve: the database
//! answers, and it is not shutting down). `/health` stays what it always was, `ok` while
//! the process answers (`super::pages::health`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::MetricsAccess;
use crate::metrics::{render_process, Exposition, CONTENT_TYPE, METRICS};
use crate::state::{AppState, SharedState};

/// Longest wait for the database in a readiness check: well below the pool's own 5 s wait
/// and the usual probe timeouts.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /metrics`.
pub async fn metrics(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refuse(&state, peer, &headers) {
        return refusal;
    }
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render(&state),
    )
        .into_response()
}

/// Why a request may not read the metrics, as its response; `None` if it may.
fn refuse(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Option<Response> {
    let config = &state.config.metrics;
    let text = |status: StatusCode, text: &'static str| (status, text).into_response();
    match config.access() {
        MetricsAccess::Off => Some(text(StatusCode::NOT_FOUND, "not found")),
        MetricsAccess::Loopback if peer.ip().to_canonical().is_loopback() => None,
        MetricsAccess::Loopback => Some(text(
            StatusCode::FORBIDDEN,
            "/metrics is served only to loopback addresses; set [metrics] token to scrape it from elsewhere\n",
        )),
        MetricsAccess::Token => {
            let expected = config.token.as_deref().unwrap_or_default();
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match given {
                Some(given) if same_secret(given, expected) => None,
                Some(_) => Some(text(
                    StatusCode::FORBIDDEN,
                    "/metrics: wrong bearer token\n",
                )),
                None => Some(
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Bearer")],
                        "/metrics needs Authorization: Bearer <token> ([metrics] token)\n",
                    )
                        .into_response(),
                ),
            }
        }
    }
}

/// Compares two secrets in time that depends on neither: their SHA-256 digests (same
/// length whatever the inputs) are compared without an early exit.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    let difference = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The whole page: what is connected now (read from the live registries), the counters,
/// and the process.
fn render(state: &AppState) -> String {
    let mut out = Exposition::default();
    let name = "ironmesh_agents_online";
    out.header(name, "gauge", "Connected agents, by device group id.");
    for (group, n) in state.agents.online_by_group() {
        out.sample(name, &[("group", &group)], n);
    }
    out.gauge(
        "ironmesh_control_sessions",
        "Open control channels (web consoles, meshctrl, the CLI).",
        state.consoles.len(),
    );
    out.gauge(
        "ironmesh_relay_sessions_active",
        "Relay sessions being piped now.",
        state.relays.active_sessions(),
    );
    out.gauge(
        "ironmesh_wifidog_gateways_online",
        "Connected WiFiDogX gateways.",
        state.gateways.len(),
    );
    METRICS.render(&mut out);
    render_process(&mut out);
    out.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds.",
        state.started_ms as f64 / 1000.0,
    );
    out.into_text()
}

/// `GET /health/live`: the process is up and answers requests.
pub async fn live() -> &'static str {
    "live\n"
}

/// `GET /health/ready`: 200 when the server can serve, 503 with the reason otherwise.
pub async fn ready(State(state): State<SharedState>) -> Response {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
            .into_response();
    }
    match state.domain.ping(READY_DB_TIMEOUT).await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_by_value() {
        assert!(super::same_secret("s3cret", "s3cret"));
        assert!(!super::same_secret("s3cret", "s3cres"));
        assert!(!super::same_secret("s3cret", "s3cret-longer"));
        assert!(!super::same_secret("", "s3cret"));
    }
}
