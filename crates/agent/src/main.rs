//! `ironmesh-agent`: parses arguments and runs the agent.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ironmesh_agent::run::Agent;
use ironmesh_agent::settings::AgentSettings;

#[derive(Parser, Debug)]
#[command(name = "ironmesh-agent", version, about = "ironmesh device agent")]
struct Cli {
    /// Settings file from the server's /meshsettings (MeshServer, MeshID, ServerID).
    #[arg(long, conflicts_with_all = ["server", "mesh_id", "server_id"])]
    msh: Option<PathBuf>,
    /// Server agent URL, e.g. wss://mesh.example.org:4443/agent.ashx.
    #[arg(long, requires_all = ["mesh_id", "server_id"])]
    server: Option<String>,
    /// Device group id in hex (0x…, 48 bytes).
    #[arg(long)]
    mesh_id: Option<String>,
    /// ServerID to pin, 96 hex characters.
    #[arg(long)]
    server_id: Option<String>,
    /// Folder for the agent's key, certificate and trust record.
    #[arg(
        long,
        env = "IRONMESH_AGENT_STATE",
        default_value = "ironmesh-agent-data"
    )]
    state_dir: PathBuf,
    /// Log filter.
    #[arg(long, env = "IRONMESH_AGENT_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let settings = match (&cli.msh, &cli.server, &cli.mesh_id, &cli.server_id) {
        (Some(path), _, _, _) => AgentSettings::from_msh(path),
        (None, Some(url), Some(mesh), Some(sid)) => AgentSettings::from_flags(url, mesh, sid),
        _ => Err(anyhow::anyhow!(
            "give --msh FILE, or --server, --mesh-id and --server-id"
        )),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let agent = match Agent::new(settings, cli.state_dir) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(node = %agent.identity.node_id, server = %agent.settings.server_url, "agent starting");
        agent.run().await;
        // Only an uninstall request ends the loop.
        match agent.uninstall(cli.msh.as_deref()) {
            Ok(()) => {
                tracing::info!("uninstalled: state and settings removed");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
