//! The real MeshCentral server (npm package `meshcentral`, installed by `scripts/test` under
//! `.deps/npm`, never committed), started on loopback from a private data folder: the other
//! half of the differential tests, which run the same clients against it and against
//! ironmesh.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long a cold start (it generates five RSA certificates) may take on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running MeshCentral server with one site administrator.
pub struct MeshCentral {
    pub port: u16,
    child: Child,
    _data: tempfile::TempDir,
}

impl MeshCentral {
    /// Creates the account `admin` (site administrator) in a fresh data folder, then starts
    /// the server on a free loopback port and waits until it answers HTTPS.
    ///
    /// The configuration keeps it on loopback and offline: no redirection or MPS port, no
    /// self-update, no backups, no Authenticode timestamp server, no plugins. It is named
    /// `127.0.0.1`, as ironmesh is in the tests with stock agents.
    pub async fn start(admin: &str, pass: &str) -> MeshCentral {
        let data = tempfile::Builder::new()
            .prefix("meshcentral-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let config = serde_json::json!({
            "settings": {
                "cert": "127.0.0.1", "port": port, "portBind": "127.0.0.1", "redirPort": 0,
                "mpsPort": 0, "exactPorts": true, "WANonly": true, "selfUpdate": false,
                "autoBackup": false, "agentTimeStampServer": false,
                "plugins": { "enabled": false }
            },
            "domains": { "": { "title": "differential", "newAccounts": false } }
        });
        std::fs::write(data.path().join("config.json"), config.to_string()).expect("config");
        // Accounts are made while the server is stopped (MeshCentral's own rule).
        for args in [
            vec!["--createaccount", admin, "--pass", pass],
            vec!["--adminaccount", admin],
        ] {
            let out = node(data.path())
                .args(args)
                .output()
                .await
                .expect("running meshcentral");
            assert!(
                out.status.success(),
                "meshcentral account setup: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut cmd = node(data.path());
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            // Its own process group: MeshCentral relaunches itself as a child process, and
            // the whole group is stopped on drop.
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("starting meshcentral");
        let server = MeshCentral {
            port,
            child,
            _data: data,
        };
        crate::wait_until(START_TIMEOUT, "MeshCentral answering HTTPS", async || {
            crate::http::request(port, "GET", "/", &[], b"")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
        server
    }

    pub fn wss_url(&self) -> String {
        format!("wss://127.0.0.1:{}", self.port)
    }

    /// The `.msh` MeshCentral hands out for a group (`mesh//…` or the bare id).
    pub async fn msh(&self, group_id: &str) -> String {
        crate::agent::msh_on_port(self.port, group_id).await
    }
}

impl Drop for MeshCentral {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The negative pid names the process group (the relaunched child too).
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

fn package_dir() -> PathBuf {
    crate::meshctrl::script()
        .parent()
        .expect("package folder")
        .to_path_buf()
}

fn node(data: &std::path::Path) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(package_dir()).arg("--datapath").arg(data);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
