//! State shared by every connection of one server process.

use std::sync::Arc;

use crate::auth::cookie::TokenCipher;
use crate::auth::ratelimit::LoginLimiter;
use crate::config::Config;
use crate::domain::Domain;
use crate::identity::ServerIdentity;

pub struct AppState {
    pub config: Config,
    pub identity: ServerIdentity,
    pub domain: Domain,
    /// Seals and opens `auth=`/`rauth=` tokens.
    pub tokens: TokenCipher,
    pub login_limiter: LoginLimiter,
    /// Unix ms of process start, reported in `serverinfo`.
    pub started_ms: i64,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// Live connection state of a device (online, since when). Devices only come online
    /// through the agent channel; until one connects every device reads as offline.
    pub fn live_state(&self, _node_id: &str) -> crate::domain::devices::LiveState {
        crate::domain::devices::LiveState::default()
    }
}
