//! `ironmesh-bench`: load scenarios against a running server, on loopback only.

mod agents;
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
    /// A device's state change seen by 1, 100, 1,000 consoles: latency p50/p99.
    Events(events::EventsArgs),
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
    if let Scenario::RsaCeiling(args) = cli.scenario {
        return rsa_ceiling::run(args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.scenario {
        Scenario::Agents(args) => runtime.block_on(agents::run(args)),
        Scenario::Relay(args) => runtime.block_on(relay::run(args)),
        Scenario::Events(args) => runtime.block_on(events::run(args)),
        Scenario::RsaCeiling(_) => unreachable!("handled above"),
        Scenario::Gateways(args) => runtime.block_on(gateways::run(args)),
        Scenario::Soak(args) => runtime.block_on(soak::run(args)),
    }
}

/// Where cached keys live by default.
pub fn default_key_dir() -> PathBuf {
    PathBuf::from(".deps/bench-keys")
}
