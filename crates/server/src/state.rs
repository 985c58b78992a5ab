//! State shared by every connection of one server process.

use std::sync::Arc;

use crate::agents::connection::AgentSigner;
use crate::agents::core::CoreProvider;
use crate::agents::registry::AgentRegistry;
use crate::auth::cookie::TokenCipher;
use crate::auth::ratelimit::LoginLimiter;
use crate::config::Config;
use crate::consoles::ConsoleRegistry;
use crate::domain::devices::LiveState;
use crate::domain::Domain;
use crate::identity::ServerIdentity;

pub struct AppState {
    pub config: Config,
    pub identity: ServerIdentity,
    pub domain: Domain,
    /// Seals and opens `auth=`/`rauth=` tokens.
    pub tokens: TokenCipher,
    pub login_limiter: LoginLimiter,
    /// Connected agents.
    pub agents: AgentRegistry,
    /// Open user sessions, for routing agents' answers.
    pub consoles: ConsoleRegistry,
    /// Signs handshake proofs with the agent-server key, off the async workers.
    pub agent_signer: AgentSigner,
    /// JavaScript cores for stock agents.
    pub cores: CoreProvider,
    /// Relay sessions being paired, and used relay ids and tokens.
    pub relays: crate::relay::hub::RelayHub,
    /// Connected WiFiDogX gateways.
    pub gateways: crate::wifidog::registry::GatewayRegistry,
    /// Unix ms of process start, reported in `serverinfo`.
    pub started_ms: i64,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// Live connection state of a device.
    pub fn live_state(&self, node_id: &str) -> LiveState {
        self.agents.live_state(node_id)
    }

    /// Users who may see a device: members of its group and full site administrators.
    pub async fn users_with_access(&self, node_id: &str) -> anyhow::Result<Vec<String>> {
        let store = &self.domain.store;
        let Some(device) = store.device(node_id).await? else {
            return Ok(Vec::new());
        };
        let mut users: Vec<String> = store
            .group_members(&device.group_id)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        for user in store.users().await? {
            if ironmesh_proto::rights::SiteRights(user.site_rights).is_full() {
                users.push(user.id);
            }
        }
        users.sort();
        users.dedup();
        Ok(users)
    }
}
