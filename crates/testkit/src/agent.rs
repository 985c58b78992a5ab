//! Agents for tests: the real `ironmesh-agent` binary, the stock MeshCentral agent, and an
//! in-process simulated agent that can be told to misbehave.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ironmesh_agent::handshake::{AgentDescription, ClientHandshake};
use ironmesh_agent::identity::AgentIdentity;
use ironmesh_client::connect::{self as connection, Socket as AgentSocket};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::server::TestServer;

/// Creates a device group through the control channel and returns its full id.
pub async fn create_group(server: &TestServer, admin: &str, pass: &str, name: &str) -> String {
    let mut c = crate::ws::control(server.port, admin, pass)
        .await
        .expect("control channel");
    let r = crate::ws::request(
        &mut c,
        &serde_json::json!({"action":"createmesh","meshname":name}),
    )
    .await
    .expect("createmesh");
    assert_eq!(r["result"], "ok", "{r}");
    r["meshid"].as_str().expect("meshid").to_string()
}

/// Adds the existing account `user` to device group `group` with `rights` (MeshCentral's
/// bits), as `admin`.
pub async fn add_member(
    server: &TestServer,
    (admin, pass): (&str, &str),
    group: &str,
    user: &str,
    rights: u32,
) {
    let mut c = crate::ws::control(server.port, admin, pass)
        .await
        .expect("control channel");
    let r = crate::ws::request(
        &mut c,
        &serde_json::json!({"action":"addmeshuser","meshid":group,"usernames":[user],"meshadmin":rights}),
    )
    .await
    .expect("addmeshuser");
    assert_eq!(r["success"], 1, "{r}");
}

/// The `.msh` text the server hands out for a group.
pub async fn fetch_msh(server: &TestServer, group_id: &str) -> String {
    msh_on_port(server.port, group_id).await
}

/// The `.msh` text the HTTPS server on `port` (ironmesh or MeshCentral) hands out for a
/// group (`mesh//…` or the bare id).
pub async fn msh_on_port(port: u16, group_id: &str) -> String {
    let key = group_id
        .trim_start_matches("mesh//")
        .replace('$', "%24")
        .replace('@', "%40");
    let r = crate::http::request(port, "GET", &format!("/meshsettings?id={key}"), &[], b"")
        .await
        .expect("meshsettings");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// A running `ironmesh-agent` process.
pub struct TestAgent {
    child: Option<Child>,
    pub state_dir: PathBuf,
    _state: Option<tempfile::TempDir>,
    msh: PathBuf,
    /// Extra environment for the agent process (e.g. `IRONMESH_DISPLAY` for desktop tests).
    env: Vec<(String, String)>,
    /// Lines of the agent's log, as they arrive.
    pub log: mpsc::UnboundedReceiver<String>,
}

impl TestAgent {
    /// Writes `msh` to a fresh state folder and starts the agent.
    pub async fn start(msh: &str) -> TestAgent {
        TestAgent::start_with_env(msh, Vec::new()).await
    }

    /// Like [`TestAgent::start`], with extra environment variables for the agent.
    pub async fn start_with_env(msh: &str, env: Vec<(String, String)>) -> TestAgent {
        let state = tempfile::Builder::new()
            .prefix("ironmesh-agent-")
            .tempdir()
            .expect("tempdir");
        let msh_path = state.path().join("agent.msh");
        std::fs::write(&msh_path, msh).expect("write msh");
        let mut agent = TestAgent {
            child: None,
            state_dir: state.path().join("state"),
            _state: Some(state),
            msh: msh_path,
            env,
            log: mpsc::unbounded_channel().1,
        };
        agent.launch();
        agent
    }

    fn launch(&mut self) {
        let mut child = Command::new(crate::binary("ironmesh-agent"))
            .arg("--msh")
            .arg(&self.msh)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--log")
            .arg("info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning ironmesh-agent");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        self.log = rx;
        self.child = Some(child);
    }

    /// Waits for a log line containing `needle`; returns it.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.log.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("agent exited before logging {needle:?}"),
                Err(_) => panic!("agent did not log {needle:?} within {timeout:?}"),
            }
        }
    }

    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Waits for the agent process to end by itself (e.g. after the server told it to
    /// uninstall); returns how it exited. Panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("the agent was started");
        let status = tokio::time::timeout(timeout, child.wait())
            .await
            .unwrap_or_else(|_| panic!("the agent did not exit within {timeout:?}"))
            .expect("waiting for the agent");
        self.child = None;
        status
    }

    /// The settings file the agent was started with.
    pub fn msh_path(&self) -> &std::path::Path {
        &self.msh
    }

    /// Waits for the agent to authenticate; returns its node id and whether it took the
    /// skip path.
    pub async fn wait_online(&mut self) -> (String, bool) {
        let line = self
            .wait_for_log("authenticated", Duration::from_secs(60))
            .await;
        (node_id_in(&line), line.contains("skip_path=true"))
    }

    /// Kills and starts again with the same state (same key, same trust record).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.launch();
    }
}

/// The `node//…` id in a log line.
pub fn node_id_in(line: &str) -> String {
    let start = line.find("node//").expect("node id in log line");
    line[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string()
}

/// An in-process agent speaking the real handshake, for tests that need to break it.
pub struct SimAgent {
    pub identity: Arc<AgentIdentity>,
    pub server_id: [u8; 48],
    pub mesh_id: Vec<u8>,
    pub port: u16,
}

impl SimAgent {
    pub fn new(identity: Arc<AgentIdentity>, msh: &str, port: u16) -> SimAgent {
        let parsed = ironmesh_proto::msh::MeshSettings::parse(msh).expect("msh");
        SimAgent {
            identity,
            server_id: parsed.server_id.try_into().expect("48-byte server id"),
            mesh_id: parsed.mesh_id,
            port,
        }
    }

    pub fn description() -> AgentDescription {
        AgentDescription {
            agent_id: 6,
            platform_type: 1,
            capabilities: 0x08,
            hostname: "sim".into(),
            host_info: "Simulated - x64".into(),
            build_date: "sim".into(),
        }
    }

    /// Opens the socket; returns it and the server's TLS certificate.
    pub async fn open(&self) -> (AgentSocket, Vec<u8>) {
        connection::connect(
            connection::tls_config(),
            "127.0.0.1",
            self.port,
            "/agent.ashx",
            None,
        )
        .await
        .expect("connect to /agent.ashx")
    }

    /// A complete, honest handshake; returns the authenticated socket.
    pub async fn connect(
        &self,
        trusted: Option<[u8; 48]>,
    ) -> anyhow::Result<(AgentSocket, Option<[u8; 48]>)> {
        let (mut socket, cert) = self.open().await;
        let mut hs = ClientHandshake::new(
            &self.identity,
            self.server_id,
            self.mesh_id.clone(),
            Self::description(),
            &cert,
            trusted,
        );
        let trust = tokio::time::timeout(
            Duration::from_secs(10),
            ironmesh_agent::handshake::complete(&mut socket, &mut hs),
        )
        .await??;
        Ok((socket, trust))
    }
}

/// Reads until the server closes; returns the close reason (or a description of how the
/// socket ended).
pub async fn close_reason(socket: &mut AgentSocket) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(c))))) => {
                return format!("{} {}", u16::from(c.code), c.reason)
            }
            Ok(Some(Ok(Message::Close(None)))) => return "close without reason".into(),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return format!("error: {e}"),
            Ok(None) => return "ended".into(),
            Err(_) => return "timeout".into(),
        }
    }
}

/// The stock MeshCentral agent (`agents/meshagent_x86-64` from the npm package), run in
/// the foreground from a private folder with the `.msh` beside it.
pub struct StockAgent {
    child: Child,
    _dir: tempfile::TempDir,
}

impl StockAgent {
    pub async fn start(msh: &str) -> StockAgent {
        StockAgent::start_with_env(msh, Vec::new()).await
    }

    /// As [`StockAgent::start`], with extra environment variables: `DISPLAY` and `XAUTHORITY`
    /// make it capture that display even when other root-owned X servers run
    /// (docs/protocol/desktop.md §7).
    pub async fn start_with_env(msh: &str, env: Vec<(String, String)>) -> StockAgent {
        let source = crate::meshctrl::script()
            .parent()
            .expect("package dir")
            .join("agents/meshagent_x86-64");
        let dir = tempfile::Builder::new()
            .prefix("stock-agent-")
            .tempdir()
            .expect("tempdir");
        let exe = dir.path().join("meshagent");
        std::fs::copy(&source, &exe).expect("copy stock agent");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::write(dir.path().join("meshagent.msh"), msh).expect("write msh");
        let child = Command::new(&exe)
            .current_dir(dir.path())
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the stock agent");
        StockAgent { child, _dir: dir }
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Desktop frames of a device that lies: a 1024×768 screen, then a 64×64 JPEG tile at
/// (1000, 760), which would hang over the screen's edge (only the image's header is there:
/// a viewer must refuse it before decoding).
pub fn tile_off_the_screen() -> Vec<Vec<u8>> {
    use ironmesh_proto::desktop::ToViewer;
    let jpeg = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 64, 0, 64, 3, 0xFF, 0xD9,
    ];
    let mut frame = ToViewer::ScreenSize {
        width: 1024,
        height: 768,
    }
    .to_bytes();
    ToViewer::Tile {
        x: 1000,
        y: 760,
        image: jpeg,
    }
    .encode(&mut frame);
    vec![frame]
}

/// Plays a misbehaving device's side of desktop sessions on an authenticated simulated-agent
/// `socket`: each tunnel request the server sends is answered by joining the relay, waiting
/// for the viewer's protocol number, then sending `frames` as they are. Runs until the
/// agent socket ends; abort the task to stop it.
pub async fn answer_tunnels_with(mut socket: AgentSocket, port: u16, frames: Vec<Vec<u8>>) {
    while let Some(Ok(msg)) = socket.next().await {
        // JSON comes in text or binary frames.
        let bytes = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            _ => continue,
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            continue;
        };
        if v["action"] != "msg" || v["type"] != "tunnel" {
            continue;
        }
        let Some(rest) = v["value"].as_str().and_then(|u| u.strip_prefix("*/")) else {
            continue;
        };
        let path = format!("/{}", rest.replace('$', "%24").replace('@', "%40"));
        let frames = frames.clone();
        tokio::spawn(async move {
            use futures_util::SinkExt;
            let tls = connection::tls_config();
            let Ok((mut relay, _)) = connection::connect(tls, "127.0.0.1", port, &path, None).await
            else {
                return;
            };
            // `c`, then the viewer's protocol number (and any options before it).
            let mut texts = 0;
            while let Some(Ok(m)) = relay.next().await {
                if let Message::Text(_) = m {
                    texts += 1;
                    if texts == 2 {
                        break;
                    }
                }
            }
            for f in frames {
                if relay.send(Message::Binary(f.into())).await.is_err() {
                    return;
                }
            }
            while let Some(Ok(_)) = relay.next().await {}
        });
    }
}
