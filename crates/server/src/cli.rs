//! Command line of `ironmesh-server`: run the server (default) or manage accounts.

use std::io::{BufRead, IsTerminal};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::SiteRights;

use crate::config::{Config, LastStart, LogFormat, MetricsAccess, Overrides, DEFAULT_DATA_DIR};
use ironmesh_core::accounts::NewUser;
use ironmesh_core::Domain;

#[derive(Parser, Debug)]
#[command(
    name = "ironmesh-server",
    version,
    about = "ironmesh remote management server"
)]
pub struct Cli {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings; each also readable from an `IRONMESH_*` variable and the TOML config file.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Data folder: certificates, SQLite database, config.toml.
    #[arg(long = "data", env = "IRONMESH_DATA", default_value = DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,
    /// Config file (TOML); default `<data>/config.toml` if present.
    #[arg(long, env = "IRONMESH_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1).
    #[arg(long, env = "IRONMESH_BIND", global = true)]
    pub bind: Option<IpAddr>,
    /// Port for HTTPS + WSS (default 4443; 0 = any free port).
    #[arg(long, env = "IRONMESH_PORT", global = true)]
    pub port: Option<u16>,
    /// Name agents and browsers use to reach this server.
    #[arg(long = "name", env = "IRONMESH_SERVER_NAME", global = true)]
    pub server_name: Option<String>,
    /// `sqlite://…` (default: ironmesh.db in the data folder) or `postgres://…`.
    #[arg(long, env = "IRONMESH_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// RSA-2048 instead of RSA-3072 for a newly generated agent-server key.
    #[arg(long, env = "IRONMESH_FAST_CERT", global = true)]
    pub fast_cert: bool,
    /// PEM certificate chain to serve instead of the generated web certificate.
    #[arg(long, env = "IRONMESH_WEB_CERT", global = true)]
    pub web_cert: Option<PathBuf>,
    /// PEM private key of --web-cert.
    #[arg(long, env = "IRONMESH_WEB_KEY", global = true)]
    pub web_key: Option<PathBuf>,
    /// Extra browser origin allowed on the control channel (repeatable).
    #[arg(long = "allowed-origin", global = true)]
    pub allowed_origins: Vec<String>,
    /// An installed `meshcentral` npm package folder: stock MeshCentral agents get its
    /// JavaScript core.
    #[arg(long, env = "IRONMESH_MESHCENTRAL_DIR", global = true)]
    pub meshcentral_dir: Option<PathBuf>,
    /// The ironmesh-agent binary to serve for download (default: beside this executable).
    #[arg(long, env = "IRONMESH_AGENT_BINARY", global = true)]
    pub agent_binary: Option<PathBuf>,
    /// Log filter, e.g. `info` or `ironmesh_server=debug`.
    #[arg(long, env = "IRONMESH_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log lines as text (default) or as JSON objects, one a line.
    #[arg(long, env = "IRONMESH_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    /// Who may read /metrics: loopback (default), token, off.
    #[arg(long, env = "IRONMESH_METRICS_ACCESS", value_enum, global = true)]
    pub metrics_access: Option<MetricsAccess>,
    /// Bearer token /metrics requires. Prefer the variable or the config file to the flag,
    /// which other users of the machine can read in the process list.
    #[arg(
        long,
        env = "IRONMESH_METRICS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub metrics_token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Run,
    /// Manage user accounts directly in the database.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage device groups directly in the database.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Look after the database.
    #[command(subcommand)]
    Db(DbCommand),
    /// The audit trail (event log).
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Check the database's consistency (SQLite's integrity check; PostgreSQL: every table
    /// readable). Prints `ok`, or the findings and exits with an error.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the event log's hash chain: every record matches its hash and links to the one
    /// before it. Prints `ok: …`, or the first broken record and exits with an error.
    Verify,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Create an agent device group owned (full rights) by an existing user.
    Add {
        name: String,
        #[arg(long)]
        owner: String,
    },
    /// List device groups: id and name.
    List,
    /// Print the `.msh` agent settings of a group (by name or id), for installing agents.
    Msh { group: String },
}

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Create an account. The password is asked for, or read from stdin with
    /// --password-stdin; there is no default password.
    Add {
        name: String,
        /// Full site administrator.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove an account.
    Remove { name: String },
    /// List accounts.
    List,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // Everything the server writes (database, keys, recordings) holds secrets or personal
    // data: files 0600 and folders 0700 whatever the caller's umask, including the
    // database `account add` creates before the first start.
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask; no memory is involved.
    unsafe {
        libc::umask(0o077);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn main(cli: Cli) -> anyhow::Result<()> {
    let a = &cli.server;
    let config = Config::resolve(
        &a.data_dir,
        a.config.as_deref(),
        Overrides {
            bind: a.bind,
            port: a.port,
            server_name: a.server_name.clone(),
            database_url: a.database_url.clone(),
            fast_cert: a.fast_cert,
            web_cert: a.web_cert.clone(),
            web_key: a.web_key.clone(),
            allowed_origins: a.allowed_origins.clone(),
            meshcentral_dir: a.meshcentral_dir.clone(),
            agent_binary: a.agent_binary.clone(),
            metrics_access: a.metrics_access,
            metrics_token: a.metrics_token.clone(),
            log_format: a.log_format,
        },
    )?;
    init_logging(&a.log, config.log_format);
    match cli.command {
        None | Some(Command::Run) => crate::server::run(config).await,
        Some(Command::Account(cmd)) => account(config, cmd).await,
        Some(Command::Group(cmd)) => group(config, cmd).await,
        Some(Command::Db(DbCommand::Check)) => db_check(config).await,
        Some(Command::Audit(AuditCommand::Verify)) => audit_verify(config).await,
    }
}

/// Log lines go to stderr: text (coloured on a terminal) or JSON objects, one a line.
fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

async fn account(config: Config, cmd: AccountCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let domain = Domain::open(&config.database_url)
        .await?
        .with_policy(ironmesh_core::Policy {
            new_users_create_groups: config.new_users_create_groups,
            second_factor_required: config.require_second_factor,
        });
    let result = match cmd {
        AccountCommand::Add {
            name,
            admin,
            email,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let user = domain
                .add_user(
                    None,
                    NewUser {
                        username: name,
                        password,
                        email,
                        site_rights: if admin { SiteRights::FULL } else { 0 },
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "created {}{}",
                user.id,
                if admin { " (site administrator)" } else { "" }
            );
            Ok(())
        }
        AccountCommand::Passwd {
            name,
            password_stdin,
        } => {
            let id = normalize_id(IdKind::User, &name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let password = read_password(password_stdin)?;
            domain
                .set_password(None, &id, password, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("password of {id} changed");
            Ok(())
        }
        AccountCommand::Remove { name } => {
            let id = normalize_id(IdKind::User, &name).map_err(|e| anyhow::anyhow!("{e}"))?;
            domain
                .remove_user(None, &id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("removed {id}");
            Ok(())
        }
        AccountCommand::List => {
            for (u, _) in domain
                .users_with_memberships()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                let role = if SiteRights(u.site_rights).is_full() {
                    "admin"
                } else {
                    "user"
                };
                println!("{}\t{}\t{}", u.id, role, u.email.unwrap_or_default());
            }
            Ok(())
        }
    };
    domain.close().await;
    result
}

async fn db_check(config: Config) -> anyhow::Result<()> {
    let domain = Domain::open(&config.database_url).await?;
    let findings = domain
        .check_integrity()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"));
    domain.close().await;
    let findings = findings?;
    println!("{findings}");
    anyhow::ensure!(findings == "ok", "the database check found problems");
    Ok(())
}

async fn audit_verify(config: Config) -> anyhow::Result<()> {
    let domain = Domain::open(&config.database_url).await?;
    let report = domain
        .verify_audit_chain()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"));
    domain.close().await;
    let report = report?;
    println!("{report}");
    anyhow::ensure!(report.broken.is_none(), "the audit trail was tampered with");
    Ok(())
}

async fn group(config: Config, cmd: GroupCommand) -> anyhow::Result<()> {
    let domain = Domain::open(&config.database_url).await?;
    let all_groups = || async {
        domain
            .all_groups()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    };
    let find = |groups: &[ironmesh_core::model::DeviceGroup],
                key: &str|
     -> anyhow::Result<ironmesh_core::model::DeviceGroup> {
        let matches: Vec<_> = groups
            .iter()
            .filter(|g| g.id == key || g.name == key)
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => anyhow::bail!("no device group named {key}"),
            _ => anyhow::bail!("several device groups are named {key}; use the id"),
        }
    };
    let result = match cmd {
        GroupCommand::Add { name, owner } => {
            let id = normalize_id(IdKind::User, &owner).map_err(|e| anyhow::anyhow!("{e}"))?;
            let actor = domain
                .actor(&id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .ok_or_else(|| anyhow::anyhow!("no user {id}"))?;
            let group = domain
                .create_group(&actor, &name, ironmesh_core::groups::MTYPE_AGENT, "")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", group.id);
            Ok(())
        }
        GroupCommand::List => {
            for g in all_groups().await? {
                println!("{}\t{}", g.id, g.name);
            }
            Ok(())
        }
        GroupCommand::Msh { group } => {
            let group = find(&all_groups().await?, &group)?;
            msh(&config, &group).await
        }
    };
    domain.close().await;
    result
}

/// The `.msh` settings of `group`: the server's ServerID (its identity is created first,
/// exactly as the server would, when it has never started), and the address it really
/// uses: the name and port of its last start (flags and port 0 included), unless this
/// command's flags or `IRONMESH_*` variables say otherwise; before the first start, the
/// configuration's (the same merge of file, variables and flags the server makes).
async fn msh(config: &Config, group: &ironmesh_core::model::DeviceGroup) -> anyhow::Result<()> {
    let last = LastStart::load(&config.data_dir)?;
    let server_name = match &last {
        Some(last) if !config.name_overridden => last.server_name.clone(),
        _ => config.server_name.clone(),
    };
    let port = match (&last, config.bind.port()) {
        (Some(last), port) if port == 0 || !config.port_overridden => last.port,
        (None, 0) => anyhow::bail!(
            "the server is set to listen on any free port (port 0) and has not started yet: \
             start it once, or give the port agents should use (--port)"
        ),
        (_, port) => port,
    };
    if last.is_none() {
        eprintln!(
            "note: the server has not started yet; these settings name {server_name}:{port}, \
             as configured"
        );
    }
    let identity = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            crate::server::prepare_data_dir(&config)?;
            crate::server::load_identity(&config)
        })
        .await??
    };
    let host = if server_name.contains(':') {
        format!("[{server_name}]")
    } else {
        server_name
    };
    let settings = ironmesh_proto::msh::MeshSettings {
        mesh_name: group.name.clone(),
        mesh_id: ironmesh_proto::ids::decode_b64_at_dollar(ironmesh_proto::ids::id_key(&group.id))
            .ok_or_else(|| anyhow::anyhow!("group id is not base64"))?,
        server_id: identity.agent_server.server_id.to_vec(),
        server_url: format!("wss://{host}:{port}/agent.ashx"),
    };
    print!("{}", settings.render());
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let pw = line.trim_end_matches(['\r', '\n']).to_string();
        anyhow::ensure!(!pw.is_empty(), "no password given on stdin");
        return Ok(pw);
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Repeat password: ")?;
    anyhow::ensure!(first == second, "the passwords do not match");
    Ok(first)
}
