//! State shared by every connection of one server process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent_cores::CoreProvider;
use crate::auth::cookie::{TokenCipher, KEY_LEN};
use crate::auth::oidc::Oidc;
use crate::auth::passkeys::Passkeys;
use crate::auth::ratelimit::LoginLimiter;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::identity::{AgentSigner, ServerIdentity};
use crate::live::agents::AgentRegistry;
use crate::live::consoles::ConsoleRegistry;
use crate::live::gateways::GatewayRegistry;
use crate::live::relays::RelayHub;
use ironmesh_core::devices::LiveState;
use ironmesh_core::model::now_ms;
use ironmesh_core::{Domain, Policy};

pub struct AppState {
    pub config: Config,
    pub identity: ServerIdentity,
    pub domain: Domain,
    /// Who is calling: credentials, sessions, sealed tokens, failed-login limits.
    pub auth: Authenticator,
    /// Connected agents.
    pub agents: AgentRegistry,
    /// Open user sessions, for routing agents' answers.
    pub consoles: ConsoleRegistry,
    /// Signs handshake proofs with the agent-server key, off the async workers.
    pub agent_signer: AgentSigner,
    /// JavaScript cores for stock agents.
    pub cores: CoreProvider,
    /// Relay sessions being paired, and used relay ids and tokens.
    pub relays: RelayHub,
    /// Connected WiFiDogX gateways.
    pub gateways: GatewayRegistry,
    /// Unix ms of process start, reported in `serverinfo`.
    pub started_ms: i64,
    /// Cancelled when the server starts shutting down: every session closes with
    /// [`crate::endpoint::SHUTTING_DOWN`].
    pub shutdown: CancellationToken,
    /// Every WebSocket session, so that shutdown can wait for them to say goodbye.
    pub sessions: TaskTracker,
}

pub type SharedState = Arc<AppState>;

/// Passkeys for the host name browsers use; none when the server is named by an IP
/// address (WebAuthn needs a host name).
fn passkeys_for(config: &Config) -> Option<Passkeys> {
    if config.server_name.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    match Passkeys::new(
        &config.server_name,
        config.bind.port(),
        &config.allowed_origins,
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "passkeys are unavailable");
            None
        }
    }
}

impl AppState {
    /// One server's state from its prepared parts: reads (or, on a new database, creates)
    /// the token-sealing key and sets up signing, authentication and the empty live
    /// registries. The server and the in-process tests build their state here.
    pub async fn new(
        config: Config,
        identity: ServerIdentity,
        domain: Domain,
        cores: CoreProvider,
    ) -> anyhow::Result<AppState> {
        let domain = domain.with_policy(Policy {
            new_users_create_groups: config.new_users_create_groups,
            second_factor_required: config.require_second_factor,
        });
        let sealing_key = domain
            .sealing_key(KEY_LEN)
            .await
            .context("reading the token-sealing key")?;
        Ok(AppState {
            agents: Default::default(),
            consoles: Default::default(),
            relays: Default::default(),
            gateways: Default::default(),
            agent_signer: AgentSigner::new(&identity.agent_server.key_pkcs8)?,
            cores,
            auth: Authenticator::new(
                domain.clone(),
                TokenCipher::new(&sealing_key)?,
                LoginLimiter::new(
                    config.login_max_failures,
                    Duration::from_secs(config.login_window_secs),
                ),
                passkeys_for(&config),
                match &config.oidc {
                    Some(oidc) => Some(
                        Oidc::new(
                            oidc.clone(),
                            &format!("https://{}", config.public_host_port()),
                        )
                        .context("setting up single sign-on ([oidc])")?,
                    ),
                    None => None,
                },
            ),
            domain,
            identity,
            started_ms: now_ms(),
            config,
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
        })
    }

    /// Live connection state of a device.
    pub fn live_state(&self, node_id: &str) -> LiveState {
        self.agents.live_state(node_id)
    }
}
