//! The stored login: server, login token, pinned certificate hash. Mode 0600.

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    /// `wss://host:port`.
    pub url: String,
    /// Who logged in (for messages).
    pub user: String,
    /// The login token's generated user name (`~t:…`) and password.
    pub token_user: String,
    pub token_pass: String,
    /// SHA-384 (hex) of the server certificate seen at login.
    pub tls_hash: String,
    /// Client certificate and key (PEM paths) for servers that require mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: Option<PathBuf>) -> anyhow::Result<Store> {
        let dir = match dir {
            Some(d) => d,
            None => match std::env::var_os("XDG_CONFIG_HOME") {
                Some(x) => PathBuf::from(x).join("ironmesh"),
                None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                    .join(".config/ironmesh"),
            },
        };
        Ok(Store { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("credentials.json")
    }

    pub fn load(&self) -> anyhow::Result<Login> {
        let path = self.path();
        let text = std::fs::read_to_string(&path).map_err(|_| {
            anyhow::anyhow!("not logged in: run `ironmesh login --url wss://… --user …` first")
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged; log in again", path.display()))
    }

    pub fn save(&self, login: &Login) -> anyhow::Result<PathBuf> {
        use std::io::Write;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.path();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(serde_json::to_string_pretty(login)?.as_bytes())?;
        Ok(path)
    }

    pub fn remove(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
