//! `ironmesh`: the command line. Parses arguments and dispatches to one module per area.

mod accounts;
mod completion;
mod config;
mod devices;
mod events;
mod files;
mod gateways;
mod groups;
mod output;
mod power;
mod remote;
mod screenshot;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ironmesh",
    version,
    about = "Manage devices on an ironmesh server"
)]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Folder of the stored login (default $XDG_CONFIG_HOME/ironmesh).
    #[arg(long, env = "IRONMESH_CONFIG_DIR", global = true)]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Log in once; stores a login token and pins the server certificate.
    Login {
        /// Server, e.g. wss://127.0.0.1:4443
        #[arg(long)]
        url: String,
        #[arg(long)]
        user: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Token lifetime in days (0 = no expiry).
        #[arg(long, default_value_t = 30)]
        expire_days: u64,
        /// Client certificate (PEM) for a server that requires one (`[client_certs]`);
        /// remembered with the login.
        #[arg(long, requires = "client_key")]
        client_cert: Option<std::path::PathBuf>,
        /// Private key (PEM) of --client-cert.
        #[arg(long, requires = "client_cert")]
        client_key: Option<std::path::PathBuf>,
        /// Second-factor code (authenticator app or recovery code) for an account that has
        /// one; asked for when needed and missing at a terminal. The stored login token
        /// needs none afterwards.
        #[arg(long)]
        code: Option<String>,
    },
    /// Remove the stored login (and revoke its token on the server).
    Logout,
    /// List devices; or act on one (rename, describe, tag, move, remove, power, message).
    #[command(args_conflicts_with_subcommands = true)]
    Devices {
        /// Only this device group (name or id).
        #[arg(long)]
        group: Option<String>,
        #[command(subcommand)]
        change: Option<DeviceCommand>,
    },
    /// Device groups: list (the default), add, rename, remove, members (with rights by
    /// name).
    Groups {
        #[command(subcommand)]
        command: Option<groups::GroupsCommand>,
    },
    /// Accounts: list (the default), add, remove, passwd, disable, enable (needs the
    /// right to manage users).
    Users {
        #[command(subcommand)]
        command: Option<accounts::UsersCommand>,
    },
    /// User groups: list (the default), add, remove, members add/remove.
    Usergroups {
        #[command(subcommand)]
        command: Option<accounts::UserGroupsCommand>,
    },
    /// Your login tokens: list (the default), revoke.
    Tokens {
        #[command(subcommand)]
        command: Option<accounts::TokensCommand>,
    },
    /// Change your own password.
    Passwd {
        /// Read the current and the new password as two lines of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Details of one device.
    Info { device: String },
    /// Run a shell command on a device and print its output.
    Run {
        device: String,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Interactive shell on a device.
    Shell { device: String },
    /// Save one whole frame of a device's screen as a PNG (a remote desktop session).
    Screenshot {
        device: String,
        /// The PNG file to write.
        file: PathBuf,
        /// JPEG quality the device encodes with (1–100).
        #[arg(long, default_value_t = 90)]
        quality: u8,
    },
    /// Copy a local file to a folder on the device.
    Upload {
        device: String,
        local: PathBuf,
        remote_dir: String,
    },
    /// Copy a file from the device.
    Download {
        device: String,
        remote: String,
        local: PathBuf,
    },
    /// List a folder on the device.
    Ls { device: String, path: String },
    /// Create a folder (and its parents) on the device.
    Mkdir { device: String, path: String },
    /// Delete a file, or a folder with --recursive.
    Rm {
        device: String,
        path: String,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Rename (move within its folder) a file or folder on the device.
    Mv {
        device: String,
        from: String,
        to: String,
    },
    /// The audit trail: who did what, when, from where (newest first).
    Events {
        /// From this time: an age (30m, 12h, 7d) or a UTC date/time (2026-11-30,
        /// 2026-11-30T08:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Until this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Caused by or about this user (name or id).
        #[arg(long)]
        user: Option<String>,
        /// About this device (name or id).
        #[arg(long)]
        device: Option<String>,
        /// Of this device group (name or id).
        #[arg(long)]
        group: Option<String>,
        /// Only this action (e.g. login, runcommands, relaylog, fileop).
        #[arg(long)]
        action: Option<String>,
        /// At most this many (newest first; default 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// table, csv, or jsonl (JSON Lines); --json is jsonl.
        #[arg(long, value_enum)]
        format: Option<events::Format>,
        /// Instead: print events as they happen (Ctrl-C to stop).
        #[arg(long, conflicts_with_all = ["since", "until", "user", "device", "group", "action", "limit", "format"])]
        follow: bool,
    },
    /// List WiFiDogX gateways; `gateways ops` lists the operations `gateway` sends.
    Gateways {
        #[command(subcommand)]
        what: Option<gateways::GatewaysCommand>,
    },
    /// Admit a waiting gateway into a device group (name or id).
    GatewayApprove {
        device_id: String,
        #[arg(long)]
        group: String,
    },
    /// Send a command to a gateway, e.g. `gateway DEV1 kickoff --param client_mac=aa:bb:…`
    /// (`gateways ops` lists the operations and their parameters).
    Gateway(gateways::CommandArgs),
    /// Set a gateway's captive-portal mode: 1 on, 0 off.
    GatewayAuthMode {
        device_id: String,
        gw_id: String,
        mode: u32,
    },
    /// Print a shell completion script, e.g. `ironmesh completion bash > /etc/bash_completion.d/ironmesh`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Changes to one device (named by id or unique name). Each needs its right on the device:
/// manage devices (rename, describe, tag), edit group on both groups (move), uninstall
/// (remove).
#[derive(Subcommand)]
enum DeviceCommand {
    /// Give the device a new name.
    Rename { device: String, name: String },
    /// Set the device's description ("" removes it).
    Describe { device: String, text: String },
    /// Set the device's tags: exactly TAGS when given, then --add and --remove.
    Tag {
        device: String,
        tags: Vec<String>,
        /// Add this tag (repeatable).
        #[arg(long)]
        add: Vec<String>,
        /// Remove this tag (repeatable).
        #[arg(long)]
        remove: Vec<String>,
        /// Remove every tag.
        #[arg(long, conflicts_with = "tags")]
        clear: bool,
    },
    /// Move the device to another device group (name or id).
    Move {
        device: String,
        #[arg(long)]
        group: String,
    },
    /// Remove the device from the server; a connected ironmesh-agent uninstalls itself.
    Remove { device: String },
    /// Restart, power off or put a device to sleep (through its agent), or wake it
    /// (Wake-on-LAN sent by the other agents the server knows).
    Power {
        device: String,
        #[arg(value_enum)]
        op: power::PowerOp,
    },
    /// Show a message box (or with --toast a notification) to the device's user.
    Message {
        device: String,
        /// A notification instead of a message box.
        #[arg(long)]
        toast: bool,
        #[arg(long, default_value = "ironmesh")]
        title: String,
        text: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completion { shell } = cli.command {
        completion::print::<Cli>(shell);
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // A pending read of the terminal (shell) sits on a blocking thread; do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = config::Store::new(cli.config_dir.clone())?;
    let json = cli.json;
    match cli.command {
        Command::Login {
            url,
            user,
            password_stdin,
            expire_days,
            client_cert,
            client_key,
            code,
        } => {
            let cert = client_cert.zip(client_key).map(|(c, k)| {
                (
                    std::path::absolute(&c).unwrap_or(c),
                    std::path::absolute(&k).unwrap_or(k),
                )
            });
            session::login(&store, &url, &user, password_stdin, expire_days, cert, code).await?
        }
        Command::Logout => session::logout(&store).await?,
        Command::Devices {
            group,
            change: None,
        } => devices::list_devices(&store, group.as_deref(), json).await?,
        Command::Devices {
            change: Some(change),
            ..
        } => match change {
            DeviceCommand::Rename { device, name } => {
                devices::rename(&store, &device, &name, json).await?
            }
            DeviceCommand::Describe { device, text } => {
                devices::describe(&store, &device, &text, json).await?
            }
            DeviceCommand::Tag {
                device,
                tags,
                add,
                remove,
                clear,
            } => {
                let set = (!tags.is_empty()).then_some(tags);
                let change = devices::TagChange {
                    set,
                    add,
                    remove,
                    clear,
                };
                devices::tag(&store, &device, change, json).await?
            }
            DeviceCommand::Move { device, group } => {
                devices::move_to(&store, &device, &group, json).await?
            }
            DeviceCommand::Remove { device } => devices::remove(&store, &device, json).await?,
            DeviceCommand::Power { device, op } => power::power(&store, &device, op, json).await?,
            DeviceCommand::Message {
                device,
                toast,
                title,
                text,
            } => power::message(&store, &device, toast, &title, &text, json).await?,
        },
        Command::Groups { command } => {
            let command = command.unwrap_or(groups::GroupsCommand::List);
            groups::groups(&store, command, json).await?
        }
        Command::Users { command } => {
            accounts::users(
                &store,
                command.unwrap_or(accounts::UsersCommand::List),
                json,
            )
            .await?
        }
        Command::Usergroups { command } => {
            let command = command.unwrap_or(accounts::UserGroupsCommand::List);
            accounts::user_groups(&store, command, json).await?
        }
        Command::Tokens { command } => {
            accounts::tokens(
                &store,
                command.unwrap_or(accounts::TokensCommand::List),
                json,
            )
            .await?
        }
        Command::Passwd { password_stdin } => accounts::passwd(&store, password_stdin).await?,
        Command::Info { device } => devices::info(&store, &device, json).await?,
        Command::Run { device, command } => {
            return remote::run(&store, &device, &command.join(" "), json).await
        }
        Command::Shell { device } => remote::shell(&store, &device).await?,
        Command::Screenshot {
            device,
            file,
            quality,
        } => screenshot::screenshot(&store, &device, &file, quality).await?,
        Command::Upload {
            device,
            local,
            remote_dir,
        } => files::upload(&store, &device, &local, &remote_dir).await?,
        Command::Download {
            device,
            remote,
            local,
        } => files::download(&store, &device, &remote, &local).await?,
        Command::Ls { device, path } => files::ls(&store, &device, &path, json).await?,
        Command::Mkdir { device, path } => files::mkdir(&store, &device, &path).await?,
        Command::Rm {
            device,
            path,
            recursive,
        } => files::rm(&store, &device, &path, recursive).await?,
        Command::Mv { device, from, to } => files::mv(&store, &device, &from, &to).await?,
        Command::Events {
            since,
            until,
            user,
            device,
            group,
            action,
            limit,
            format,
            follow,
        } => {
            if follow {
                events::follow(&store, json).await?
            } else {
                let format = match (format, json) {
                    (Some(f), _) => f,
                    (None, true) => events::Format::Jsonl,
                    (None, false) => events::Format::Table,
                };
                let filters = events::Filters {
                    since,
                    until,
                    user,
                    device,
                    group,
                    action,
                    limit,
                };
                events::history(&store, &filters, format).await?
            }
        }
        Command::Gateways { what: None } => gateways::list(&store, json).await?,
        Command::Gateways {
            what: Some(gateways::GatewaysCommand::Ops { op }),
        } => gateways::ops(op.as_deref(), json)?,
        Command::GatewayApprove { device_id, group } => {
            gateways::approve(&store, &device_id, &group).await?
        }
        Command::Gateway(args) => return gateways::command(&store, &args, json).await,
        Command::GatewayAuthMode {
            device_id,
            gw_id,
            mode,
        } => gateways::auth_mode(&store, &device_id, &gw_id, mode).await?,
        Command::Completion { .. } => unreachable!("answered before connecting"),
    }
    Ok(ExitCode::SUCCESS)
}
