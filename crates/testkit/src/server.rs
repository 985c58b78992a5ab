//! The real `ironmesh-server` binary on an ephemeral loopback port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    child: Option<Child>,
    /// Data folder (kept across restarts of this server).
    pub data_dir: PathBuf,
    _data: Option<tempfile::TempDir>,
    pub database_url: String,
    pub port: u16,
    /// The ready line the server printed.
    pub ready_line: String,
    extra_args: Vec<String>,
    /// Every line the server wrote to stderr (its log), across restarts.
    log: Arc<Mutex<Vec<String>>>,
}

/// Time allowed for a start (first start generates RSA keys).
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl TestServer {
    /// Starts a server with a fresh data folder and database.
    pub async fn start(db: Db) -> TestServer {
        Self::start_with(db, &[]).await
    }

    pub async fn start_with(db: Db, extra_args: &[&str]) -> TestServer {
        Self::start_full(db, None, extra_args).await
    }

    /// Starts a server whose `<data>/config.toml` holds `config` (TOML).
    pub async fn start_with_config(db: Db, config: &str) -> TestServer {
        Self::start_full(db, Some(config), &[]).await
    }

    /// Starts a server with a fresh data folder on the database at `database_url` (e.g. a
    /// test's own PostgreSQL cluster, [`crate::postgres::PgCluster`]).
    pub async fn start_on_database(database_url: &str) -> TestServer {
        Self::start_at(new_data_dir(), database_url.to_string(), &[]).await
    }

    async fn start_full(db: Db, config: Option<&str>, extra_args: &[&str]) -> TestServer {
        let data = new_data_dir();
        if let Some(config) = config {
            std::fs::write(data.path().join("config.toml"), config).expect("write config.toml");
        }
        let database_url = match db {
            Db::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                data.path().join("ironmesh.db").display()
            ),
            Db::Postgres => crate::postgres::fresh_database().await,
        };
        Self::start_at(data, database_url, extra_args).await
    }

    async fn start_at(
        data: tempfile::TempDir,
        database_url: String,
        extra_args: &[&str],
    ) -> TestServer {
        let mut server = TestServer {
            child: None,
            data_dir: data.path().to_path_buf(),
            _data: Some(data),
            database_url,
            port: 0,
            ready_line: String::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            log: Arc::default(),
        };
        server.launch(0).await;
        server
    }

    /// A server ready for the stock MeshCentral agent: named by a dotted address (a dot-less
    /// name sends MeshCentral agents into LAN-only mode) and pushing MeshCentral's core
    /// from the installed npm package.
    pub async fn start_for_stock_agents(db: Db) -> TestServer {
        let package = crate::meshctrl::script()
            .parent()
            .expect("package folder")
            .to_string_lossy()
            .into_owned();
        Self::start_with(db, &["--name", "127.0.0.1", "--meshcentral-dir", &package]).await
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(crate::binary("ironmesh-server"));
        // Hermetic: no server setting leaks in from the environment of the test run.
        for (key, _) in std::env::vars() {
            if key.starts_with("IRONMESH_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("--data")
            .arg(&self.data_dir)
            .arg("--database-url")
            .arg(&self.database_url)
            .arg("--fast-cert")
            .arg("--log")
            .arg(std::env::var("IRONMESH_TEST_LOG").unwrap_or_else(|_| "warn".into()));
        cmd.args(&self.extra_args);
        cmd
    }

    async fn launch(&mut self, port: u16) {
        let mut cmd = self.command();
        cmd.arg("--port")
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawning ironmesh-server");
        // The log goes on to this process's stderr as before (not through the test
        // harness's capture) and is kept for `log_lines`.
        let mut log_lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log = self.log.clone();
        tokio::spawn(async move {
            use std::io::Write;
            while let Ok(Some(line)) = log_lines.next_line().await {
                let _ = writeln!(std::io::stderr(), "{line}");
                log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.expect("reading server stdout") {
                if line.starts_with("ironmesh-server ready on ") {
                    return Some(line);
                }
            }
            None
        })
        .await
        .expect("server did not become ready in time")
        .expect("server exited before it was ready");
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = ready
            .split("https://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
            .expect("port in the ready line");
        self.port = port;
        self.ready_line = ready;
        self.child = Some(child);
    }

    /// The server's process id while it runs (for signals and resource limits).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The lines the server has logged so far (`--log` is `IRONMESH_TEST_LOG`, default
    /// `warn`).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the server process is still running (false once it exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `wss://127.0.0.1:<port>` — the form `meshctrl --url` takes.
    pub fn wss_url(&self) -> String {
        format!("wss://127.0.0.1:{}", self.port)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.port, path)
    }

    /// Runs `ironmesh-server account …` against this server's database.
    pub async fn account(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.command();
        cmd.arg("account")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning account command");
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes())
                .await
                .expect("writing stdin");
        }
        drop(pipe);
        child.wait_with_output().await.expect("account command")
    }

    /// Runs another `ironmesh-server` subcommand (e.g. `audit verify`) on this server's
    /// data and database.
    pub async fn subcommand(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.output().await.expect("running ironmesh-server")
    }

    /// Creates an account (site administrator if `admin`), panicking on failure.
    pub async fn add_user(&self, name: &str, password: &str, admin: bool) {
        let mut args = vec!["add", name, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        let out = self.account(&args, Some(&format!("{password}\n"))).await;
        assert!(
            out.status.success(),
            "account add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server with SIGTERM and waits for it; returns how it exited (`None` if it
    /// was not running, or had to be killed after 10 s).
    pub async fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = child.kill().await;
                None
            }
        }
    }

    /// Kills the server with SIGKILL.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops and starts again on the same port with the same data.
    pub async fn restart(&mut self) {
        let port = self.port;
        self.stop().await;
        self.launch(port).await;
    }

    /// Stops and starts again on the same port and data with different extra arguments.
    pub async fn restart_with(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        self.restart().await;
    }

    pub fn data_path(&self, file: &str) -> PathBuf {
        Path::new(&self.data_dir).join(file)
    }
}

fn new_data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ironmesh-test-")
        .tempdir()
        .expect("temp dir")
}
