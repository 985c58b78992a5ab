//! The soak scenario: many agents stay connected (and reconnect if dropped) while relay
//! sessions carry traffic, for a bounded time; every 10 s a line with what happened.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ironmesh_agent::handshake::{AgentDescription, ClientHandshake};
use ironmesh_client::connect::{connect, tls_config};
use ironmesh_client::control::{open, Credentials, ServerAddress};
use ironmesh_proto::msh::MeshSettings;
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args)]
pub struct SoakArgs {
    #[arg(long)]
    msh: PathBuf,
    /// Server for the relay sessions, e.g. wss://127.0.0.1:4443.
    #[arg(long)]
    url: String,
    #[arg(long)]
    user: String,
    #[arg(long)]
    pass: String,
    #[arg(long, default_value_t = 2000)]
    agents: usize,
    #[arg(long, default_value_t = 20)]
    relays: usize,
    #[arg(long, default_value_t = 3)]
    minutes: u64,
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long)]
    key_dir: Option<PathBuf>,
}

#[derive(Default)]
struct Tally {
    agents_connected: AtomicU64,
    agent_drops: AtomicU64,
    agent_errors: AtomicU64,
    relays_alive: AtomicU64,
    relay_errors: AtomicU64,
    relayed_bytes: AtomicU64,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let msh = MeshSettings::parse(&std::fs::read_to_string(&args.msh)?)
        .map_err(|e| anyhow::anyhow!(e))?;
    let (host, port, path) = ironmesh_agent::settings::parse_wss(&msh.server_url)?;
    anyhow::ensure!(
        host == "localhost" || host.starts_with("127."),
        "soak only targets loopback servers"
    );
    let server_id: [u8; 48] = msh
        .server_id
        .clone()
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad ServerID"))?;
    let key_dir = args.key_dir.clone().unwrap_or_else(crate::default_key_dir);
    let n = args.agents;
    let identities =
        tokio::task::spawn_blocking(move || crate::keys::load_or_generate(&key_dir, n)).await??;
    let tally = Arc::new(Tally::default());
    let end = Instant::now() + Duration::from_secs(args.minutes * 60);
    let tls = tls_config();

    for (i, identity) in identities.into_iter().enumerate() {
        let (tally, tls, host, path, mesh) = (
            tally.clone(),
            tls.clone(),
            host.clone(),
            path.clone(),
            msh.mesh_id.clone(),
        );
        let source = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % 8) as u8));
        tokio::spawn(async move {
            let mut trust = None;
            while Instant::now() < end {
                let attempt = async {
                    let (mut socket, cert) =
                        connect(tls.clone(), &host, port, &path, Some(source)).await?;
                    let mut hs = ClientHandshake::new(
                        &identity,
                        server_id,
                        mesh.clone(),
                        description(),
                        &cert,
                        trust,
                    );
                    let t = ironmesh_agent::handshake::complete(&mut socket, &mut hs).await?;
                    anyhow::Ok((socket, t.or(trust)))
                };
                let (mut socket, t) =
                    match tokio::time::timeout(Duration::from_secs(60), attempt).await {
                        Ok(Ok(x)) => x,
                        _ => {
                            tally.agent_errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    };
                trust = t;
                tally.agents_connected.fetch_add(1, Ordering::Relaxed);
                // Stay connected: read (pings are answered while reading), ping every 60 s.
                let mut keepalive = tokio::time::interval(Duration::from_secs(60));
                keepalive.tick().await;
                let dropped = loop {
                    tokio::select! {
                        msg = socket.next() => match msg {
                            Some(Ok(_)) => {}
                            _ => break true,
                        },
                        _ = keepalive.tick() => {
                            if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                                break true;
                            }
                        }
                        _ = tokio::time::sleep_until(end.into()) => break false,
                    }
                };
                tally.agents_connected.fetch_sub(1, Ordering::Relaxed);
                if dropped {
                    tally.agent_drops.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let server = ServerAddress::parse(&args.url)?;
    let creds = Credentials {
        user: args.user.clone(),
        password: args.pass.clone(),
        code: None,
    };
    for r in 0..args.relays {
        let (tally, server, creds) = (tally.clone(), server.clone(), creds.clone());
        tokio::spawn(async move {
            let id = format!("soak-{}-{r}", std::process::id());
            let path = format!("/meshrelay.ashx?id={id}&p=5");
            let counted = std::sync::atomic::AtomicBool::new(false);
            let result = async {
                let (mut a, _) = open(&server, &path, &creds, None).await?;
                let (mut b, _) = open(&server, &path, &creds, None).await?;
                for s in [&mut a, &mut b] {
                    while !matches!(s.next().await, Some(Ok(Message::Text(t))) if t.as_str() == "c")
                    {
                    }
                }
                tally.relays_alive.fetch_add(1, Ordering::Relaxed);
                counted.store(true, Ordering::Relaxed);
                let chunk = vec![0x42u8; 16 * 1024];
                while Instant::now() < end {
                    a.send(Message::Binary(chunk.clone().into())).await?;
                    loop {
                        match tokio::time::timeout(Duration::from_secs(30), b.next()).await? {
                            Some(Ok(Message::Binary(d))) => {
                                tally
                                    .relayed_bytes
                                    .fetch_add(d.len() as u64, Ordering::Relaxed);
                                break;
                            }
                            Some(Ok(_)) => continue,
                            other => anyhow::bail!("relay ended: {other:?}"),
                        }
                    }
                    std::mem::swap(&mut a, &mut b);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                anyhow::Ok(())
            }
            .await;
            if counted.load(Ordering::Relaxed) {
                tally.relays_alive.fetch_sub(1, Ordering::Relaxed);
            }
            if let Err(e) = result {
                eprintln!("relay {r}: {e:#}");
                tally.relay_errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    println!(
        "soak: {} agents, {} relay sessions, {} minutes",
        args.agents, args.relays, args.minutes
    );
    println!(
        "{:>6} {:>9} {:>7} {:>9} {:>7} {:>8} {:>10} {:>9}",
        "secs", "agents", "drops", "agent-err", "relays", "relay-err", "relayed-MB", "rss-MiB"
    );
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let rss = args
            .server_pid
            .and_then(crate::procstat::rss_kib)
            .map(|kib| kib as f64 / 1024.0)
            .map(|m| format!("{m:.1}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:>6} {:>9} {:>7} {:>9} {:>7} {:>8} {:>10.1} {:>9}",
            started.elapsed().as_secs(),
            tally.agents_connected.load(Ordering::Relaxed),
            tally.agent_drops.load(Ordering::Relaxed),
            tally.agent_errors.load(Ordering::Relaxed),
            tally.relays_alive.load(Ordering::Relaxed),
            tally.relay_errors.load(Ordering::Relaxed),
            tally.relayed_bytes.load(Ordering::Relaxed) as f64 / 1e6,
            rss
        );
        if Instant::now() >= end {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "dropped connections: {} (goal 0); agent connect errors: {}; relay errors: {}",
        tally.agent_drops.load(Ordering::Relaxed),
        tally.agent_errors.load(Ordering::Relaxed),
        tally.relay_errors.load(Ordering::Relaxed)
    );
    Ok(())
}

fn description() -> AgentDescription {
    AgentDescription {
        agent_id: 6,
        platform_type: 1,
        capabilities: 0x08,
        hostname: "soak".into(),
        host_info: "Simulated - x64".into(),
        build_date: "soak".into(),
    }
}
