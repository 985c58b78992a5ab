//! `ironmesh-bench`: load scenarios against a running server, on loopback only.

mod agents;
mod desktop;
mod events;
mod gateways;
mod keys;
mod procstat;
mod relay;
mod rsa_ceiling;
mod soak;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ironmesh-bench",
    about = "Load scenarios against an ironmesh or MeshCentral server (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N simulated agents: handshakes/s for new (server signs) and returning (skip path)
    /// agents, and server memory per connected agent.
    Agents(agents::AgentsArgs),
    /// One relay session between two signed-in sockets: throughput (MB/s) and small-message
    /// round trips (p50/p99), beside a raw TLS loopback connection measured in the same run.
    Relay(relay::RelayArgs),
    /// Remote desktop sessions to a device showing the test pattern: first frame, input to
    /// screen latency (`--phase static`), frame rate, bandwidth and CPU (`--phase animated`).
    Desktop(desktop::DesktopArgs),
    /// A device's state change seen by 1, 100, 1,000 consoles: latency p50/p99.
    Events(events::EventsArgs),
    /// Resident memory of a server's whole process tree, now (MiB).
    Rss {
        #[arg(long)]
        pid: u32,
    },
    /// RSA-3072 signatures per second on all cores (the ceiling for fresh agent handshakes).
    RsaCeiling(rsa_ceiling::RsaArgs),
    /// N simulated WiFiDogX gateways with heartbeats: server CPU and memory per 1,000.
    Gateways(gateways::GatewaysArgs),
    /// Bounded soak: N agents and M relay sessions kept busy for some minutes, printing
    /// dropped connections, errors and server memory over time.
    Soak(soak::SoakArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::RsaCeiling(args) => rsa_ceiling::run(args),
        Scenario::Rss { pid } => {
            let kib = procstat::rss_kib(pid).ok_or_else(|| anyhow::anyhow!("no process {pid}"))?;
            procstat::result("server.rss_after_mib", kib as f64 / 1024.0);
            Ok(())
        }
        scenario => run_async(scenario),
    }
}

fn run_async(scenario: Scenario) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match scenario {
        Scenario::Agents(args) => runtime.block_on(agents::run(args)),
        Scenario::Relay(args) => runtime.block_on(relay::run(args)),
        Scenario::Events(args) => runtime.block_on(events::run(args)),
        Scenario::Desktop(args) => runtime.block_on(desktop::run(args)),
        Scenario::RsaCeiling(_) | Scenario::Rss { .. } => unreachable!("run without a runtime"),
        Scenario::Gateways(args) => runtime.block_on(gateways::run(args)),
        Scenario::Soak(args) => runtime.block_on(soak::run(args)),
    }
}

/// The server and account a scenario signs in with (`--url`, `--user`, `--pass`).
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Server, e.g. wss://127.0.0.1:4443 (loopback only).
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub pass: String,
}

impl ServerArgs {
    /// The parsed address (refused unless it is loopback) and the credentials.
    pub fn target(
        &self,
    ) -> anyhow::Result<(
        ironmesh_client::control::ServerAddress,
        ironmesh_client::control::Credentials,
    )> {
        let server = ironmesh_client::control::ServerAddress::parse(&self.url)?;
        ensure_loopback(&server.host)?;
        let creds = ironmesh_client::control::Credentials {
            user: self.user.clone(),
            password: self.pass.clone(),
            code: None,
        };
        Ok((server, creds))
    }
}

/// Benchmarks talk to loopback servers only.
pub fn ensure_loopback(host: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        host == "localhost" || host.starts_with("127.") || host == "::1",
        "benchmarks only target loopback servers (got {host})"
    );
    Ok(())
}

/// Where cached keys live by default.
pub fn default_key_dir() -> PathBuf {
    PathBuf::from(".deps/bench-keys")
}
