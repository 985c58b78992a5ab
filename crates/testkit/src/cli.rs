//! The `ironmesh` CLI as a test runs it: with its own configuration folder (where `login`
//! stores the token), so tests do not share a login.

use std::path::Path;
use std::process::{Command, Output};

use crate::server::TestServer;

/// The `ironmesh` binary with a fresh configuration folder (`IRONMESH_CONFIG_DIR`), removed
/// when dropped.
pub struct Cli {
    config: tempfile::TempDir,
}

impl Default for Cli {
    fn default() -> Self {
        Self::new()
    }
}

impl Cli {
    pub fn new() -> Cli {
        Cli {
            config: tempfile::tempdir().expect("a configuration folder for ironmesh"),
        }
    }

    /// The configuration folder (`credentials.json` after a login).
    pub fn path(&self) -> &Path {
        self.config.path()
    }

    /// The command `ironmesh <args>` with this configuration, for a test that starts it
    /// itself (in a pty, or to read its output as it comes).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::binary("ironmesh"));
        cmd.args(args).env("IRONMESH_CONFIG_DIR", self.path());
        cmd
    }

    /// Runs `ironmesh <args>` (stdin empty) and returns what it did.
    pub fn run(&self, args: &[&str]) -> Output {
        crate::ironmesh_cli(self.path(), args, None)
    }

    /// Runs `ironmesh <args>` with `stdin` written as one line.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        crate::ironmesh_cli(self.path(), args, Some(stdin))
    }

    /// `ironmesh login --url <server> --user <user> --password-stdin <extra>`, whatever its
    /// outcome.
    pub fn try_login(&self, server: &TestServer, user: &str, pass: &str, extra: &[&str]) -> Output {
        let url = server.wss_url();
        let mut args = vec!["login", "--url", &url, "--user", user, "--password-stdin"];
        args.extend_from_slice(extra);
        self.run_with_stdin(&args, pass)
    }

    /// Logs in to `server` as `user`; panics with the CLI's error unless that succeeds.
    pub fn login(&self, server: &TestServer, user: &str, pass: &str) {
        let out = self.try_login(server, user, pass, &[]);
        assert!(
            out.status.success(),
            "ironmesh login as {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
