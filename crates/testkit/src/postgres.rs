//! A fresh PostgreSQL database per test, on the server named by `IRONMESH_TEST_PG_URL`;
//! or, for tests that stop and restart PostgreSQL itself, a private cluster ([`PgCluster`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sqlx::{Connection, Executor, PgConnection};

/// Whether the PostgreSQL variants should run. They run unless `IRONMESH_SKIP_PG=1`; a
/// missing URL without that switch is a test failure, not a silent skip. When they do not,
/// the calling test is reported as skipped ([`crate::skip`]) and must return without testing
/// anything else.
pub fn enabled() -> bool {
    if std::env::var("IRONMESH_SKIP_PG").as_deref() == Ok("1") {
        crate::skip("no PostgreSQL (IRONMESH_SKIP_PG=1)");
        return false;
    }
    true
}

fn base_url() -> String {
    std::env::var("IRONMESH_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "IRONMESH_TEST_PG_URL is not set: run the tests through scripts/test (which starts \
             PostgreSQL), or set IRONMESH_SKIP_PG=1 to skip the PostgreSQL variants"
        )
    })
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let base = base_url();
    let name = format!("imtest_{}", crate::random_hex(8));
    let mut conn = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("connecting to {base}: {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("CREATE DATABASE");
    let _ = conn.close().await;
    with_database(&base, &name)
}

/// `scheme://authority[/db][?query]` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (url, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let authority_start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = url[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(url.len());
    format!("{}/{name}{query}", &url[..authority_end])
}

/// A PostgreSQL server of one test's own: `initdb` in a temporary folder, `pg_ctl` to stop
/// and start it, listening on 127.0.0.1 only (and a socket in that folder). A test that
/// restarts PostgreSQL cannot use the shared server of `IRONMESH_TEST_PG_URL`: other tests
/// (and other people's test runs) use it at the same time. Stopped (immediately) on drop.
///
/// Uses the newest `/usr/lib/postgresql/*/bin`; as root it runs PostgreSQL as the `postgres`
/// account (PostgreSQL refuses to run as root), like `scripts/pg-start`.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    pub port: u16,
}

impl PgCluster {
    /// Creates and starts the cluster; panics (with what to install) when the PostgreSQL
    /// server binaries are missing.
    pub async fn start() -> PgCluster {
        let bindir = server_bindir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries not found under /usr/lib/postgresql \
                 (apt-get install postgresql), or set IRONMESH_SKIP_PG=1"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("ironmesh-pg-")
            .tempdir()
            .expect("temp dir");
        if as_root() {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {}", dir.path().display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = PgCluster { dir, bindir, port };
        let data = cluster.data_dir();
        cluster
            .pg(
                "initdb",
                &[
                    "-D",
                    data.to_str().expect("utf-8 path"),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ],
            )
            .await;
        cluster.start_again().await;
        cluster
    }

    /// `postgres://` URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (`-m fast`: open sessions are ended, as in a normal restart).
    pub async fn stop(&self) {
        let data = self.data_dir();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        )
        .await;
    }

    /// Starts the (stopped) server again on the same port and data.
    pub async fn start_again(&self) {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-l",
                log.to_str().expect("utf-8 path"),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        )
        .await;
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one PostgreSQL program (as `postgres` when root); panics with its output on
    /// failure.
    async fn pg(&self, program: &str, args: &[&str]) {
        let mut cmd = pg_command(&self.bindir.join(program));
        cmd.args(args).current_dir(self.dir.path());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = pg_command(&self.bindir.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn pg_command(program: &Path) -> Command {
    if as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The newest installed PostgreSQL's `bin` folder with `initdb` in it.
fn server_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_database() {
        assert_eq!(
            super::with_database("postgres://u@127.0.0.1:5/postgres?sslmode=disable", "x"),
            "postgres://u@127.0.0.1:5/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h:5", "x"),
            "postgres://u@h:5/x"
        );
    }
}
