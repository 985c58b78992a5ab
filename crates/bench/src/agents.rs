//! The agents scenario.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironmesh_agent::handshake::{AgentDescription, ClientHandshake};
use ironmesh_agent::identity::AgentIdentity;
use ironmesh_client::connect::{self as connection, Socket as AgentSocket};
use ironmesh_proto::msh::MeshSettings;
use tokio::sync::Semaphore;

use crate::procstat::{clock_ticks_per_s, cpu_ticks, result, rss_kib};

#[derive(clap::Args)]
pub struct AgentsArgs {
    /// The `.msh` of the device group the agents join (server URL, group, ServerID).
    #[arg(long)]
    msh: PathBuf,
    /// Number of simulated agents.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Server process id, to report its memory (VmRSS) per connected agent.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Number of 127.0.0.x source addresses to spread connections over (for N beyond
    /// one address's ephemeral ports).
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Folder of cached agent keys.
    #[arg(long)]
    key_dir: Option<PathBuf>,
    /// Longest time any phase may take before the run stops.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

struct Connected {
    /// Held open until the phase is over.
    _socket: AgentSocket,
    trust: Option<[u8; 48]>,
}

pub async fn run(args: AgentsArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.msh)?;
    let msh = MeshSettings::parse(&text).map_err(|e| anyhow::anyhow!(e))?;
    let (host, port, path) = ironmesh_agent::settings::parse_wss(&msh.server_url)?;
    crate::ensure_loopback(&host)?;
    let server_id: [u8; 48] = msh
        .server_id
        .clone()
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad ServerID"))?;
    let key_dir = args.key_dir.clone().unwrap_or_else(crate::default_key_dir);
    let identities = tokio::task::spawn_blocking({
        let n = args.n;
        move || crate::keys::load_or_generate(&key_dir, n)
    })
    .await??;
    let target = Target {
        host,
        port,
        path,
        server_id,
        mesh_id: msh.mesh_id.clone(),
        tls: connection::tls_config(),
        sources: args.sources.max(1),
    };
    let rss_before = args.server_pid.and_then(rss_kib);
    println!(
        "agents scenario: n={} concurrency={} server={}",
        args.n, args.concurrency, msh.server_url
    );

    // Phase 1: new agents, the server signs every handshake.
    let limit = Duration::from_secs(args.timeout_secs);
    let cpu0 = args.server_pid.and_then(cpu_ticks);
    let (fresh, fresh_time, fresh_fail) =
        connect_all(&target, &identities, None, args.concurrency, limit).await;
    let cpu1 = args.server_pid.and_then(cpu_ticks);
    // Let the server finish registering before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = args.server_pid.and_then(rss_kib);
    let trust: Vec<Option<[u8; 48]>> = fresh
        .iter()
        .map(|c| c.as_ref().and_then(|c| c.trust))
        .collect();
    let connected = fresh.iter().filter(|c| c.is_some()).count();
    drop(fresh);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Phase 2: the same agents return with the remembered TLS hash: the skip path.
    let cpu2 = args.server_pid.and_then(cpu_ticks);
    let (back, back_time, back_fail) =
        connect_all(&target, &identities, Some(&trust), args.concurrency, limit).await;
    let cpu3 = args.server_pid.and_then(cpu_ticks);
    let returned = back.iter().filter(|c| c.is_some()).count();
    drop(back);

    let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64().max(1e-9);
    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>12}",
        "phase", "agents", "seconds", "handshakes/s"
    );
    println!(
        "{:<34} {:>10} {:>10.2} {:>12.0}",
        "new agents (server signs)",
        connected,
        fresh_time.as_secs_f64(),
        rate(connected, fresh_time)
    );
    println!(
        "{:<34} {:>10} {:>10.2} {:>12.0}",
        "returning agents (skip path)",
        returned,
        back_time.as_secs_f64(),
        rate(returned, back_time)
    );
    println!("failed handshakes: new {fresh_fail}, returning {back_fail}");
    result("agents.new_per_s", rate(connected, fresh_time));
    result("agents.returning_per_s", rate(returned, back_time));
    result("agents.failed", (fresh_fail + back_fail) as f64);
    // Server CPU per handshake: what the server itself spends, whatever the load generator
    // (which shares the machine) costs; and the rate all cores could sustain at that price.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    for (label, key, before, after, n) in [
        ("new", "agents.new", cpu0, cpu1, connected),
        ("returning", "agents.returning", cpu2, cpu3, returned),
    ] {
        if let (Some(b), Some(a)) = (before, after) {
            let ms = (a.saturating_sub(b)) as f64 * 1000.0 / clock_ticks_per_s() / n.max(1) as f64;
            println!(
                "server CPU per {label} handshake: {ms:.2} ms (all {cores} cores: {:.0} handshakes/s)",
                cores * 1000.0 / ms.max(1e-6)
            );
            result(&format!("{key}_server_cpu_ms"), ms);
            result(
                &format!("{key}_capacity_per_s"),
                cores * 1000.0 / ms.max(1e-6),
            );
        }
    }
    if let (Some(before), Some(after)) = (rss_before, rss_connected) {
        let per = (after.saturating_sub(before)) as f64 * 1024.0 / connected.max(1) as f64;
        println!(
            "server RSS: {:.1} MiB before, {:.1} MiB with {connected} agents connected: {:.1} KiB per agent",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            per / 1024.0
        );
        result("agents.rss_idle_mib", before as f64 / 1024.0);
        result("agents.rss_per_agent_kib", per / 1024.0);
    }
    Ok(())
}

struct Target {
    host: String,
    port: u16,
    path: String,
    server_id: [u8; 48],
    mesh_id: Vec<u8>,
    tls: Arc<rustls::ClientConfig>,
    sources: u8,
}

/// Connects every identity (at most `concurrency` handshakes at a time) and keeps them
/// connected; returns the sockets (None = failed), the wall time and the failure count.
async fn connect_all(
    target: &Target,
    identities: &[Arc<AgentIdentity>],
    trust: Option<&[Option<[u8; 48]>]>,
    concurrency: usize,
    limit: Duration,
) -> (Vec<Option<Connected>>, Duration, usize) {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(identities.len());
    for (i, identity) in identities.iter().enumerate() {
        let gate = gate.clone();
        let identity = identity.clone();
        let trusted = trust.and_then(|t| t[i]);
        let source = std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            127,
            0,
            0,
            1 + (i % target.sources as usize) as u8,
        ));
        let (host, port, path, server_id, mesh_id, tls) = (
            target.host.clone(),
            target.port,
            target.path.clone(),
            target.server_id,
            target.mesh_id.clone(),
            target.tls.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            let attempt = async {
                let (mut socket, cert) =
                    connection::connect(tls, &host, port, &path, Some(source)).await?;
                let mut hs = ClientHandshake::new(
                    &identity,
                    server_id,
                    mesh_id,
                    description(),
                    &cert,
                    trusted,
                );
                let trust = ironmesh_agent::handshake::complete(&mut socket, &mut hs).await?;
                anyhow::Ok(Connected {
                    _socket: socket,
                    trust: trust.or(trusted),
                })
            };
            match tokio::time::timeout(Duration::from_secs(60), attempt).await {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    eprintln!("agent {i}: {e:#}");
                    None
                }
                Err(_) => {
                    eprintln!("agent {i}: handshake timed out");
                    None
                }
            }
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    let deadline = tokio::time::Instant::now() + limit;
    for t in tasks {
        match tokio::time::timeout_at(deadline, t).await {
            Ok(Ok(r)) => results.push(r),
            _ => results.push(None),
        }
    }
    let elapsed = started.elapsed();
    let failed = results.iter().filter(|r| r.is_none()).count();
    (results, elapsed, failed)
}

fn description() -> AgentDescription {
    AgentDescription {
        agent_id: 6,
        platform_type: 1,
        capabilities: 0x08,
        hostname: "bench".into(),
        host_info: "Simulated - x64".into(),
        build_date: "bench".into(),
    }
}
