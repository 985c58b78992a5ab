//! Server configuration: defaults, then a TOML file, then environment variables, then flags
//! (each later source wins). Flags and their `IRONMESH_*` variables are declared in
//! [`crate::cli::ServerArgs`]; this module merges them with the file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Everything a running server needs to know, fully resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the one HTTPS + WSS port.
    pub bind: SocketAddr,
    /// Folder holding certificates, the SQLite database and the config file.
    pub data_dir: PathBuf,
    /// Name agents and browsers use to reach the server: web certificate subject and
    /// the host written into `.msh` files.
    pub server_name: String,
    /// Whether this command's flags or `IRONMESH_*` variables set the name (or the bind
    /// address it derives from) and the port: `group msh` otherwise writes the address of
    /// the server's last start ([`LastStart`]), which the file may no longer tell.
    pub name_overridden: bool,
    pub port_overridden: bool,
    /// `sqlite://…` or `postgres://…`; defaults to `ironmesh.db` in the data folder.
    pub database_url: String,
    /// RSA size of the agent-server key: 3072, or 2048 with `--fast-cert`.
    pub agent_key_bits: usize,
    /// A user-supplied web certificate chain and key (PEM) replacing the generated one.
    pub web_cert: Option<PathBuf>,
    pub web_key: Option<PathBuf>,
    /// Origins browsers may open the control channel from, besides the server's own.
    pub allowed_origins: Vec<String>,
    /// Failed logins per client address within `login_window_secs` before refusing.
    pub login_max_failures: u32,
    pub login_window_secs: u64,
    /// Most simultaneous TCP connections; further ones wait in the accept backlog.
    pub max_connections: usize,
    /// An installed `meshcentral` npm package, from which stock agents' cores are built.
    pub meshcentral_dir: Option<PathBuf>,
    /// The `ironmesh-agent` binary served at `/agents/ironmesh-agent` (default: next to
    /// the server executable).
    pub agent_binary: Option<PathBuf>,
    /// How long the first side of a relay session waits for the second.
    pub relay_peer_timeout: std::time::Duration,
    /// How often open control and relay sessions look their account up again, to end
    /// those whose password changed, or that were locked or removed, where no event
    /// reaches this server (the server's command line, another server on the database).
    pub account_recheck: std::time::Duration,
    /// WiFiDogX gateways: WebSocket path, optional plain-`ws` port, approval rules, portal.
    pub wifidog: WifidogConfig,
    /// Largest WebSocket message per endpoint; bigger ones close the socket with 1009.
    pub limits: MessageLimits,
    /// Client certificates for the control channel (mutual TLS), off by default.
    pub client_certs: ClientCertConfig,
    /// New accounts may create device groups (otherwise an administrator allows it per
    /// account).
    pub new_users_create_groups: bool,
    /// Accounts signing in with a password must have a second factor (TOTP or a passkey);
    /// one without may only add one. Accounts of single sign-on are exempt.
    pub require_second_factor: bool,
    /// The audit trail: how long events and session recordings are kept.
    pub audit: AuditConfig,
    /// OpenID Connect single sign-on, when configured.
    pub oidc: Option<OidcConfig>,
    /// Who may read `/metrics`.
    pub metrics: MetricsConfig,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// Log lines for people (`text`, the default) or for log collectors (`json`, one object a
/// line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    /// Requests from loopback addresses only (a local Prometheus or agent). Behind a
    /// reverse proxy on the same machine every request comes from loopback: use `token`.
    Loopback,
    /// Requests with `Authorization: Bearer <token>`, from anywhere.
    Token,
    /// Not served.
    Off,
}

/// `[metrics]`: `access` defaults to `token` when a token is set, else `loopback`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub access: Option<MetricsAccess>,
    pub token: Option<String>,
}

impl MetricsConfig {
    pub fn access(&self) -> MetricsAccess {
        self.access.unwrap_or(if self.token.is_some() {
            MetricsAccess::Token
        } else {
            MetricsAccess::Loopback
        })
    }
}

/// `[audit]`: retention of the event log and of session recordings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Days events and recordings are kept (0 = forever).
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 365,
        }
    }
}

/// `[client_certs]`: when `ca` is set, the TLS port asks every client for a certificate
/// and accepts only those issued by these CA certificates (PEM); clients without one still
/// connect (agents, gateways). With `require_for_control` (the default once `ca` is set),
/// `/control.ashx` (and so the web console and the CLIs) refuses connections that did not
/// present such a certificate, on top of the normal login.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCertConfig {
    pub ca: Option<PathBuf>,
    pub require_for_control: Option<bool>,
}

impl ClientCertConfig {
    pub fn control_requires_cert(&self) -> bool {
        self.ca.is_some() && self.require_for_control.unwrap_or(true)
    }
}

/// Largest message (bytes) each WebSocket endpoint accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessageLimits {
    /// `/control.ashx` (consoles, meshctrl).
    pub control: usize,
    /// `/agent.ashx` after the handshake (reports such as sysinfo can be large).
    pub agent: usize,
    /// `/meshrelay.ashx` (upload chunks are 64 KiB).
    pub relay: usize,
    /// WiFiDogX gateways.
    pub gateway: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits {
            control: 1 << 20,
            agent: 4 << 20,
            relay: 4 << 20,
            gateway: 256 << 10,
        }
    }
}

/// Settings of the WiFiDogX gateway controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WifidogConfig {
    /// Whether gateways are served at all: off unless the configuration file has a
    /// `[wifidog]` section (which turns it on unless it says `enabled = false`), so a
    /// server nobody set up for gateways takes none.
    pub enabled: Option<bool>,
    /// WebSocket path gateways connect to (their `WSServerPath`).
    pub path: String,
    /// An extra plain-HTTP/`ws` port (many gateways are set up without TLS).
    pub plain_port: Option<u16>,
    /// Unknown gateways wait for an administrator's approval (recommended). When false, they
    /// are admitted into `default_group` at once.
    pub require_approval: bool,
    /// Device ids admitted without approval, into `default_group`.
    pub allow: Vec<String>,
    /// Group id (`mesh//…`) gateways are admitted into without approval.
    pub default_group: Option<String>,
    /// The devices' heartbeat interval; a gateway silent for two of them is offline.
    pub heartbeat_secs: u64,
    /// Frames per minute a gateway may send before the excess is dropped.
    pub max_frames_per_minute: u32,
    /// Shared password of the captive portal; none = click-through.
    pub portal_password: Option<String>,
}

impl WifidogConfig {
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }
}

impl Default for WifidogConfig {
    fn default() -> Self {
        WifidogConfig {
            enabled: None,
            path: "/ws/wifidogx".into(),
            plain_port: None,
            require_approval: true,
            allow: Vec::new(),
            default_group: None,
            heartbeat_secs: 60,
            max_frames_per_minute: 120,
            portal_password: None,
        }
    }
}

/// The TOML file's shape; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub server_name: Option<String>,
    pub database_url: Option<String>,
    pub fast_cert: Option<bool>,
    pub web_cert: Option<PathBuf>,
    pub web_key: Option<PathBuf>,
    pub allowed_origins: Option<Vec<String>>,
    pub login_max_failures: Option<u32>,
    pub login_window_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub meshcentral_dir: Option<PathBuf>,
    pub agent_binary: Option<PathBuf>,
    pub relay_peer_timeout_secs: Option<u64>,
    pub account_recheck_secs: Option<u64>,
    pub wifidog: Option<WifidogConfig>,
    pub limits: Option<MessageLimits>,
    pub client_certs: Option<ClientCertConfig>,
    pub new_users_create_groups: Option<bool>,
    pub require_second_factor: Option<bool>,
    pub audit: Option<AuditConfig>,
    pub oidc: Option<OidcConfig>,
    pub metrics: Option<MetricsConfig>,
    pub log_format: Option<LogFormat>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

pub const DEFAULT_PORT: u16 = 4443;
pub const DEFAULT_DATA_DIR: &str = "ironmesh-data";

/// Values from flags/environment (already merged by clap); `None` = not given.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub server_name: Option<String>,
    pub database_url: Option<String>,
    pub fast_cert: bool,
    pub web_cert: Option<PathBuf>,
    pub web_key: Option<PathBuf>,
    pub allowed_origins: Vec<String>,
    pub meshcentral_dir: Option<PathBuf>,
    pub agent_binary: Option<PathBuf>,
    pub metrics_access: Option<MetricsAccess>,
    pub metrics_token: Option<String>,
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Resolves the configuration. The file is `config_file` if given, else
    /// `<data_dir>/config.toml` when it exists.
    pub fn resolve(
        data_dir: &Path,
        config_file: Option<&Path>,
        flags: Overrides,
    ) -> anyhow::Result<Config> {
        let file = match config_file {
            Some(path) => FileConfig::load(path)?,
            None => {
                let default = data_dir.join("config.toml");
                if default.exists() {
                    FileConfig::load(&default)?
                } else {
                    FileConfig::default()
                }
            }
        };
        let name_overridden = flags.server_name.is_some() || flags.bind.is_some();
        let port_overridden = flags.port.is_some();
        let ip = flags
            .bind
            .or(file.bind)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let port = flags.port.or(file.port).unwrap_or(DEFAULT_PORT);
        let server_name = flags
            .server_name
            .or(file.server_name)
            .unwrap_or_else(|| default_server_name(ip));
        let database_url = flags.database_url.or(file.database_url).unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("ironmesh.db").display()
            )
        });
        let fast = flags.fast_cert || file.fast_cert.unwrap_or(false);
        let web_cert = flags.web_cert.or(file.web_cert);
        let web_key = flags.web_key.or(file.web_key);
        if web_cert.is_some() != web_key.is_some() {
            anyhow::bail!("a custom web certificate needs both --web-cert and --web-key");
        }
        let metrics = file.metrics.as_ref();
        let metrics_token = flags
            .metrics_token
            .as_ref()
            .or(metrics.and_then(|m| m.token.as_ref()));
        if metrics_token.is_some_and(|t| t.trim().is_empty()) {
            anyhow::bail!("the metrics token is empty");
        }
        if flags.metrics_access.or(metrics.and_then(|m| m.access)) == Some(MetricsAccess::Token)
            && metrics_token.is_none()
        {
            anyhow::bail!(
                "metrics access \"token\" needs a token ([metrics] token or IRONMESH_METRICS_TOKEN)"
            );
        }
        let mut allowed_origins = file.allowed_origins.unwrap_or_default();
        allowed_origins.extend(flags.allowed_origins);
        Ok(Config {
            bind: SocketAddr::new(ip, port),
            data_dir: data_dir.to_path_buf(),
            server_name,
            name_overridden,
            port_overridden,
            database_url,
            agent_key_bits: if fast { 2048 } else { 3072 },
            web_cert,
            web_key,
            allowed_origins,
            login_max_failures: file.login_max_failures.unwrap_or(10),
            login_window_secs: file.login_window_secs.unwrap_or(300),
            max_connections: file.max_connections.unwrap_or(200_000),
            meshcentral_dir: flags.meshcentral_dir.or(file.meshcentral_dir),
            agent_binary: flags.agent_binary.or(file.agent_binary),
            account_recheck: std::time::Duration::from_secs(
                file.account_recheck_secs.unwrap_or(60).max(1),
            ),
            relay_peer_timeout: std::time::Duration::from_secs(
                file.relay_peer_timeout_secs.unwrap_or(20).max(1),
            ),
            wifidog: match file.wifidog {
                Some(section) => WifidogConfig {
                    enabled: Some(section.enabled.unwrap_or(true)),
                    ..section
                },
                None => WifidogConfig {
                    enabled: Some(false),
                    ..WifidogConfig::default()
                },
            },
            limits: file.limits.unwrap_or_default(),
            client_certs: file.client_certs.unwrap_or_default(),
            new_users_create_groups: file.new_users_create_groups.unwrap_or(false),
            require_second_factor: file.require_second_factor.unwrap_or(false),
            audit: file.audit.unwrap_or_default(),
            oidc: file.oidc,
            metrics: {
                let file = file.metrics.unwrap_or_default();
                MetricsConfig {
                    access: flags.metrics_access.or(file.access),
                    token: flags.metrics_token.or(file.token),
                }
            },
            log_format: flags.log_format.or(file.log_format).unwrap_or_default(),
        })
    }

    /// Where session recordings are written (`<data>/recordings`).
    pub fn recordings_dir(&self) -> std::path::PathBuf {
        self.data_dir.join("recordings")
    }

    /// `host:port` as agents and browsers should use it (for `.msh` and links).
    pub fn public_host_port(&self) -> String {
        let host = if self.server_name.contains(':') {
            format!("[{}]", self.server_name)
        } else {
            self.server_name.clone()
        };
        format!("{host}:{}", self.bind.port())
    }
}

/// The public name and the port the server used when it last started (port 0 resolved),
/// kept in `<data>/last-start.json` for commands that run beside it, such as `group msh`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct LastStart {
    pub server_name: String,
    pub port: u16,
}

impl LastStart {
    const FILE: &str = "last-start.json";

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let path = data_dir.join(Self::FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// `None` before the first start.
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<LastStart>> {
        let path = data_dir.join(Self::FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("parsing {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

/// Loopback and unspecified binds get `localhost`; a specific address names itself.
fn default_server_name(ip: IpAddr) -> String {
    if ip.is_loopback() || ip.is_unspecified() {
        "localhost".to_string()
    } else {
        ip.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_apply() {
        let dir = std::env::temp_dir().join(format!("im-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            "port = 5000\nserver_name = \"mesh.example\"\n",
        )
        .unwrap();
        let cfg = Config::resolve(&dir, None, Overrides::default()).unwrap();
        assert_eq!(cfg.bind.port(), 5000);
        assert_eq!(cfg.server_name, "mesh.example");
        assert!(cfg.database_url.starts_with("sqlite://"));
        assert_eq!(cfg.agent_key_bits, 3072);
        let cfg = Config::resolve(
            &dir,
            None,
            Overrides {
                port: Some(6000),
                fast_cert: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(cfg.bind.port(), 6000);
        assert_eq!(cfg.agent_key_bits, 2048);
        std::fs::write(dir.join("config.toml"), "prot = 1\n").unwrap();
        let err = Config::resolve(&dir, None, Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `[oidc]` in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// Sent with `client_secret_basic`; none for a public client (PKCE alone).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back; default
    /// `https://<server name>:<port>/oidc/callback`.
    pub redirect_uri: Option<String>,
    /// Scopes asked for (`openid` is always included).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim whose value becomes the user name of a new account.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The claim listing the user's groups at the provider.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Provider groups whose members become full site administrators.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Provider groups mapped to ironmesh device groups (by name or id) with rights.
    #[serde(default)]
    pub groups: Vec<GroupMapping>,
    /// The sign-in page's button text.
    #[serde(default = "default_button")]
    pub button: String,
    /// PEM CA certificates to trust for the provider (besides the public roots).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    /// The value in the groups claim.
    pub claim: String,
    /// The ironmesh device group: its name or id.
    pub group: String,
    /// The rights members get (MeshCentral's bits; default remote control + run
    /// commands).
    #[serde(default = "default_rights")]
    pub rights: u32,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_button() -> String {
    "Sign in with single sign-on".into()
}
fn default_rights() -> u32 {
    8 | 131072
}
