//! The agent's life: connect, authenticate, serve, and after any failure wait (with
//! backoff) and start again. Nothing accumulates while the server is unreachable: each
//! attempt starts from the same small state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ironmesh_proto::agent::{self, caps, cmd};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::backoff::Backoff;
use crate::commands;
use crate::handshake::{AgentDescription, ClientHandshake};
use crate::identity::{AgentIdentity, AgentState};
use crate::reports;
use crate::settings::AgentSettings;
use crate::tunnel::{self, ControlLink, TunnelRequest};
use crate::{notify, power};
use ironmesh_client::connect::{self as connection, Socket as AgentSocket};
use sha2::Digest;

/// Silence after which the agent pings the server (as the stock agent does).
const KEEPALIVE_AFTER: Duration = Duration::from_secs(120);
/// How long a ping may go unanswered.
const PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Agent {
    pub settings: AgentSettings,
    pub state: AgentState,
    pub identity: AgentIdentity,
    pub tls: Arc<rustls::ClientConfig>,
    /// Capabilities announced in command 3 and `coreinfo`.
    pub caps: u32,
}

/// How one connection ended.
#[derive(Debug)]
pub enum Ended {
    /// Failed before authentication.
    BeforeAuth(anyhow::Error),
    /// Was authenticated, then the connection ended.
    AfterAuth(anyhow::Error),
    /// The server removed this device and told the agent to uninstall itself.
    Uninstall,
}

/// The server's `uninstallagent` (docs/protocol/agent.md §5.2), carried out of the
/// connection as an error so that nothing else runs after it.
#[derive(Debug)]
struct UninstallRequested;

impl std::fmt::Display for UninstallRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server asked this agent to uninstall itself")
    }
}

impl std::error::Error for UninstallRequested {}

impl Agent {
    pub fn new(settings: AgentSettings, state_dir: PathBuf) -> anyhow::Result<Agent> {
        let state = AgentState::new(&state_dir);
        let identity = state.load_or_create_identity()?;
        Ok(Agent {
            settings,
            state,
            identity,
            tls: connection::tls_config(),
            caps: caps::TERMINAL | caps::FILES | caps::CONSOLE,
        })
    }

    pub fn description(&self) -> AgentDescription {
        AgentDescription {
            agent_id: reports::agent_arch_id(),
            platform_type: 1,
            capabilities: self.caps,
            hostname: reports::hostname(),
            host_info: reports::host_info(),
            build_date: concat!("ironmesh-agent ", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// Runs until the server tells the agent to uninstall itself, reconnecting with
    /// backoff after every other end of a connection.
    pub async fn run(&self) {
        let mut backoff = Backoff::new();
        loop {
            match self.connect_once(&mut backoff).await {
                Ended::BeforeAuth(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "could not connect")
                }
                Ended::AfterAuth(e) => tracing::warn!(error = %format!("{e:#}"), "connection lost"),
                Ended::Uninstall => {
                    tracing::warn!("the server removed this device: uninstalling");
                    return;
                }
            }
            let delay = backoff.next_delay();
            tracing::info!(?delay, "reconnecting after a pause");
            tokio::time::sleep(delay).await;
        }
    }

    /// One connection, from TCP connect to its end.
    pub async fn connect_once(&self, backoff: &mut Backoff) -> Ended {
        let (mut socket, skipped, tls_hash) = match self.authenticate().await {
            Ok(s) => s,
            Err(e) => return Ended::BeforeAuth(e),
        };
        backoff.reset();
        tracing::info!(node = %self.identity.node_id, skip_path = skipped, "authenticated");
        let e = self.serve(&mut socket, tls_hash).await;
        if e.is::<UninstallRequested>() {
            let _ = socket.close(None).await;
            return Ended::Uninstall;
        }
        Ended::AfterAuth(e)
    }

    /// Removes what this agent keeps on the device: its state folder (key, certificate,
    /// trust record) and the settings file it was started with, so that neither this
    /// process nor a supervisor restarting it enrols the device again. What an installer
    /// set up around it (a service unit) is left to the installer.
    pub fn uninstall(&self, settings_file: Option<&std::path::Path>) -> anyhow::Result<()> {
        self.state.remove()?;
        if let Some(path) = settings_file {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(anyhow::anyhow!("removing {}: {e}", path.display())),
            }
        }
        Ok(())
    }

    /// Returns the socket, whether the skip path was taken, and the TLS certificate hash.
    async fn authenticate(&self) -> anyhow::Result<(AgentSocket, bool, [u8; 48])> {
        let (host, port, path) = self.settings.endpoint()?;
        let (mut socket, cert) =
            connection::connect(self.tls.clone(), &host, port, &path, None).await?;
        let trusted = self.state.trusted_tls_hash();
        let mut hs = ClientHandshake::new(
            &self.identity,
            self.settings.server_id,
            self.settings.mesh_id.clone(),
            self.description(),
            &cert,
            trusted,
        );
        let skipping = hs.skipping();
        let tls_hash: [u8; 48] = sha2::Sha384::digest(&cert).into();
        let trust = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            crate::handshake::complete(&mut socket, &mut hs),
        )
        .await
        .map_err(|_| anyhow::anyhow!("handshake timed out"))??;
        if let Some(hash) = trust {
            if let Err(e) = self.state.remember_tls_hash(&hash) {
                tracing::warn!(error = %e, "could not remember the server certificate");
            }
        }
        Ok((socket, skipping, tls_hash))
    }

    /// After authentication: answers the server until the connection ends.
    async fn serve(&self, socket: &mut AgentSocket, tls_hash: [u8; 48]) -> anyhow::Error {
        match self.serve_inner(socket, tls_hash).await {
            Ok(()) => anyhow::anyhow!("server closed the connection"),
            Err(e) => e,
        }
    }

    async fn serve_inner(
        &self,
        socket: &mut AgentSocket,
        tls_hash: [u8; 48],
    ) -> anyhow::Result<()> {
        // The tag (command 15, empty).
        socket
            .send(Message::Binary(agent::bare(cmd::AGENT_TAG).into()))
            .await?;
        let link = ControlLink {
            server_url: self.settings.server_url.clone(),
            tls_hash,
            tls: self.tls.clone(),
        };
        // Work started from here (commands, sessions) reports back through this queue.
        let (outbox_tx, mut outbox) = tokio::sync::mpsc::channel::<Value>(64);
        let runner = commands::CommandRunner::default();
        let mut last_rx = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                msg = socket.next() => {
                    let msg = match msg {
                        None => return Ok(()),
                        Some(m) => m?,
                    };
                    last_rx = Instant::now();
                    ping_sent = None;
                    match msg {
                        Message::Binary(b) if b.first() == Some(&b'{') => self.on_json(socket, &b, &link, &outbox_tx, &runner).await?,
                        Message::Binary(b) => self.on_command(socket, &b).await?,
                        Message::Text(t) => self.on_json(socket, t.as_bytes(), &link, &outbox_tx, &runner).await?,
                        Message::Close(c) => anyhow::bail!("server closed: {}", close_text(c)),
                        _ => {}
                    }
                }
                Some(report) = outbox.recv() => send_json(socket, &report).await?,
                _ = tick.tick() => {
                    match ping_sent {
                        Some(at) if at.elapsed() > PONG_TIMEOUT => anyhow::bail!("server did not answer a ping"),
                        None if last_rx.elapsed() > KEEPALIVE_AFTER => {
                            socket.send(Message::Ping(Vec::new().into())).await?;
                            ping_sent = Some(Instant::now());
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    async fn on_command(&self, socket: &mut AgentSocket, frame: &[u8]) -> anyhow::Result<()> {
        let Ok(Some(command)) = agent::command_of(frame) else {
            return Ok(());
        };
        match command {
            // "Which core do you run?" — none in JavaScript: 48 zero bytes mean "custom core,
            // leave it" (docs/protocol/agent.md §4.1). A pushed core is declined the same way.
            cmd::CORE_MODULE_HASH | cmd::CORE_MODULE | cmd::COMPRESSED_CORE_MODULE => {
                let reply = agent::with_request_id(cmd::CORE_MODULE_HASH, &[0u8; 48]);
                socket.send(Message::Binary(reply.into())).await?;
            }
            // "Which binary are you?" — all zeros: never replace me.
            cmd::AGENT_HASH => {
                let reply = agent::with_request_id(cmd::AGENT_HASH, &[0u8; 48]);
                socket.send(Message::Binary(reply.into())).await?;
            }
            cmd::CORE_OK => {
                for report in [reports::coreinfo(self.caps), reports::netinfo()] {
                    send_json(socket, &report).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn on_json(
        &self,
        socket: &mut AgentSocket,
        bytes: &[u8],
        link: &ControlLink,
        outbox: &tokio::sync::mpsc::Sender<Value>,
        runner: &commands::CommandRunner,
    ) -> anyhow::Result<()> {
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(bytes) else {
            return Ok(());
        };
        match obj.get("action").and_then(Value::as_str).unwrap_or("") {
            "sysinfo" => {
                let report = reports::sysinfo();
                let unchanged =
                    obj.get("hash").and_then(Value::as_str) == report["data"]["hash"].as_str();
                if !unchanged {
                    send_json(socket, &report).await?;
                }
            }
            "ping" => send_json(socket, &json!({ "action": "pong" })).await?,
            "msg" if obj.get("type").and_then(Value::as_str) == Some("tunnel") => {
                match TunnelRequest::from_json(&obj) {
                    Some(req) => {
                        let link = link.clone();
                        tokio::spawn(async move {
                            if let Err(e) = tunnel::run(link, req).await {
                                tracing::warn!(error = %format!("{e:#}"), "relay session failed");
                            }
                        });
                    }
                    None => tracing::warn!("tunnel request without a relay URL"),
                }
            }
            "msg" if obj.get("type").and_then(Value::as_str) == Some("console") => {
                let mut reply = json!({
                    "action": "msg",
                    "type": "console",
                    "value": "ironmesh-agent has no agent console; use a terminal session or runcommands",
                });
                if let Some(sid) = obj.get("sessionid") {
                    reply["sessionid"] = sid.clone();
                }
                send_json(socket, &reply).await?;
            }
            "runcommands" => runner.start(&obj, outbox.clone()),
            "uninstallagent" => return Err(UninstallRequested.into()),
            "poweraction" => {
                if let Some(actiontype) = obj.get("actiontype").and_then(Value::as_u64) {
                    tokio::spawn(power::perform(actiontype));
                }
            }
            "wakeonlan" => {
                let macs: Vec<String> = obj
                    .get("macs")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .filter_map(|m| Some(m.as_str()?.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                tokio::spawn(power::wake(macs));
            }
            "toast" => show_message("toast", &obj),
            "msg" if obj.get("type").and_then(Value::as_str) == Some("messagebox") => {
                show_message("message box", &obj)
            }
            "serverInfo" | "pong" => {}
            other => tracing::debug!(action = other, "server request not handled by this agent"),
        }
        Ok(())
    }
}

/// Shows a `toast` or message box when it has both a title and a text (as MeshCentral's
/// agent requires).
fn show_message(kind: &'static str, obj: &serde_json::Map<String, Value>) {
    let field = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    match (field("title"), field("msg")) {
        (Some(title), Some(text)) => {
            tokio::spawn(notify::show(kind, title.to_string(), text.to_string()));
        }
        _ => tracing::warn!(kind, "message without a title or a text ignored"),
    }
}

async fn send_json(socket: &mut AgentSocket, value: &Value) -> anyhow::Result<()> {
    socket.send(Message::Text(value.to_string().into())).await?;
    Ok(())
}

fn close_text(c: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    match c {
        Some(f) => format!("{} ({})", f.reason, u16::from(f.code)),
        None => "no reason".into(),
    }
}
