//! Starting and stopping a server: identity, database, state, listener.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use std::time::Duration;

use ironmesh_core::Domain;
use ironmesh_proto::rights::SiteRights;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::agent_cores::CoreProvider;
use crate::config::{Config, LastStart};
use crate::identity::{IdentityOptions, ServerIdentity};
use crate::state::AppState;

/// Runs until SIGINT/SIGTERM.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    ironmesh_core::observe::observe_database(&crate::metrics::METRICS);
    prepare_data_dir(&config)?;
    // Bind first: with port 0 the real port is known before anything reports it.
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    config.bind = listener.local_addr()?;
    let identity = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || load_identity(&config)).await??
    };
    // What `group msh` writes into agents' settings when not told otherwise: the address
    // this server really uses (a --port flag, or the port 0 resolved).
    LastStart {
        server_name: config.server_name.clone(),
        port: config.bind.port(),
    }
    .save(&config.data_dir)?;
    let tls = crate::tls::server_config(&identity.web, config.client_certs.ca.as_deref())?;
    let domain = Domain::open(&config.database_url).await?;
    // Agents connected to a previous process that ended without seeing them go.
    match domain.close_power_history().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            devices = n,
            "power history: devices left online are now offline"
        ),
        Err(e) => tracing::warn!(error = %e, "could not close the power history"),
    }
    let cores = match &config.meshcentral_dir {
        Some(dir) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || CoreProvider::from_meshcentral(&dir))
                .await?
                .context("assembling MeshCentral agent cores")?
        }
        None => CoreProvider::default(),
    };
    let state = Arc::new(AppState::new(config, identity, domain, cores).await?);

    let local = state.config.bind;
    // The ready line: scripts and tests wait for it and read the port from it.
    println!(
        "ironmesh-server ready on https://{local} (ServerID {}, {} ms)",
        ironmesh_proto::ids::hex_upper(&state.identity.agent_server.server_id),
        started.elapsed().as_millis()
    );
    if state.domain.user_count().await? == 0 {
        println!(
            "No accounts yet. Create the first administrator with:\n  ironmesh-server --data {} account add --admin <name>",
            state.config.data_dir.display()
        );
    }

    // One bound for both ports: a flood on the plain gateway port cannot exhaust the
    // process's file descriptors any more than one on the TLS port.
    let connection_slots = Arc::new(Semaphore::new(state.config.max_connections));
    let router = crate::routes::router(state.clone());
    let server = tokio::spawn(crate::web::listener::serve(
        listener,
        tls,
        router,
        connection_slots.clone(),
        state.shutdown.clone(),
    ));
    let plain = match state
        .config
        .wifidog
        .plain_port
        .filter(|_| state.config.wifidog.is_enabled())
    {
        Some(port) => {
            let addr = std::net::SocketAddr::new(state.config.bind.ip(), port);
            let plain_listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the plain gateway port {addr}"))?;
            println!(
                "ironmesh-server gateway port on ws://{}",
                plain_listener.local_addr()?
            );
            Some(tokio::spawn(crate::web::listener::serve_plain(
                plain_listener,
                crate::routes::plain_router(state.clone()),
                connection_slots.clone(),
                state.shutdown.clone(),
            )))
        }
        None => None,
    };
    let sweeper = tokio::spawn(sweep_sessions(state.clone()));
    let revoker = tokio::spawn(end_revoked_relays(state.clone()));
    let rechecker = tokio::spawn(recheck_relay_accounts(state.clone()));
    shutdown_signal().await;
    shut_down(&state, server, plain).await;
    sweeper.abort();
    revoker.abort();
    rechecker.abort();
    Ok(())
}

/// How long sessions get to send their close frames and finish what they are writing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Graceful shutdown: stop accepting, tell every session to close (each sends a close frame
/// with [`crate::endpoint::SHUTTING_DOWN`]), give them [`SHUTDOWN_GRACE`] to finish their
/// writes, then close the database.
async fn shut_down(
    state: &AppState,
    server: tokio::task::JoinHandle<()>,
    plain: Option<tokio::task::JoinHandle<()>>,
) {
    tracing::info!(sessions = state.sessions.len(), "shutting down");
    state.shutdown.cancel();
    let _ = server.await;
    if let Some(p) = plain {
        let _ = p.await;
    }
    state.sessions.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, state.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            sessions = state.sessions.len(),
            "sessions still open after the shutdown grace period"
        );
    }
    state.domain.close().await;
    tracing::info!("stopped");
}

/// The server's certificates and keys, loaded from the data folder or created there (the
/// agent-server key is never regenerated over an existing one). Slow when it creates the
/// RSA key: call it off the async workers.
pub fn load_identity(config: &Config) -> anyhow::Result<ServerIdentity> {
    let custom = match (&config.web_cert, &config.web_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    ServerIdentity::load_or_create(&IdentityOptions {
        data_dir: &config.data_dir,
        server_name: &config.server_name,
        agent_key_bits: config.agent_key_bits,
        custom_web: custom,
    })
}

/// Creates the data folder (mode 0700) and, for the default SQLite database, an empty
/// database file with mode 0600 so that SQLite's WAL and shared-memory files inherit it.
pub fn prepare_data_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
        if let Some(path) = config
            .database_url
            .strip_prefix("sqlite://")
            .map(|rest| rest.split('?').next().unwrap_or(rest))
        {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating database file {path}"))?;
        }
    }
    Ok(())
}

/// Hourly: deletes expired web sessions, power history older than a week, and events and
/// recordings past the retention.
async fn sweep_sessions(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(e) = state.domain.sweep_web_sessions().await {
            tracing::warn!(error = %e, "could not sweep sessions");
        }
        if let Err(e) = state.domain.apply_power_retention().await {
            tracing::warn!(error = %e, "could not prune the power history");
        }
        let days = state.config.audit.retention_days;
        if days == 0 {
            continue;
        }
        match state.domain.apply_event_retention(days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, days, "events past the retention removed"),
            Err(e) => tracing::warn!(error = %e, "could not apply the event retention"),
        }
        match state.domain.apply_recording_retention(days).await {
            Ok(files) => {
                let dir = state.config.recordings_dir();
                for file in files {
                    if let Err(e) = std::fs::remove_file(dir.join(&file)) {
                        tracing::warn!(file, error = %e, "could not delete an expired recording");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not apply the recording retention"),
        }
    }
}

/// Ends the relay sessions of users whose credentials were revoked (password changed,
/// account locked or removed). Control sessions watch for that themselves.
async fn end_revoked_relays(state: Arc<AppState>) {
    let mut events = state.domain.events.subscribe();
    loop {
        match events.recv().await {
            Ok(event) => {
                if let Some(ends) = &event.ends_sessions {
                    let ended = state.relays.end_user_sessions(&ends.user_id, ends.reason);
                    if ended > 0 {
                        tracing::info!(user = %ends.user_id, sessions = ended, reason = ends.reason, "relay sessions ended");
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Ends relay sessions whose account changed in ways no event announced here: a password
/// set with `account passwd` or through another server, an account locked or removed
/// there. Every `account_recheck_secs` (a minute), as for control sessions.
async fn recheck_relay_accounts(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.account_recheck);
    tick.tick().await;
    loop {
        tick.tick().await;
        for (user_id, oldest) in state.relays.users_piping() {
            let user = match state.domain.actor(&user_id).await {
                Ok(actor) => actor.map(|a| a.user),
                Err(_) => continue, // the database is out: try again next time
            };
            let (before, reason) = match user {
                None => (i64::MAX, "account removed"),
                Some(u) if SiteRights(u.site_rights).restricted(SiteRights::LOCKED) => {
                    (i64::MAX, "account locked")
                }
                Some(u) if u.password_changed_ms > oldest => {
                    (u.password_changed_ms, "password changed: sign in again")
                }
                Some(_) => continue,
            };
            let ended = state
                .relays
                .end_user_sessions_started_before(&user_id, before, reason);
            if ended > 0 {
                tracing::info!(user = %user_id, sessions = ended, reason, "relay sessions ended");
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
