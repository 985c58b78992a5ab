//! The events scenario: a device's state change seen by 1, 100, 1,000 consoles.
//!
//! Consoles are control channels of one user, opened with an `auth=` token (one password
//! login in all, so neither server spends the run hashing passwords). Each state change is a
//! simulated device of the user's group going offline: the time from closing its socket to
//! each console receiving the `nodeconnect` event (its coming online first is not measured:
//! its handshake would dominate). Percentiles are over every console in every round.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ironmesh_agent::handshake::{AgentDescription, ClientHandshake};
use ironmesh_client::connect::{self as connection, connect_with_headers};
use ironmesh_client::control::ControlClient;
use ironmesh_client::relay::percent_escape;
use ironmesh_proto::msh::MeshSettings;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::procstat::result;

#[derive(clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    server: crate::ServerArgs,
    /// `.msh` of a device group the user sees: the simulated device joins it.
    #[arg(long)]
    msh: PathBuf,
    /// Console counts to measure at, ascending.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    consoles: Vec<usize>,
    /// State changes per console count.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Folder of cached agent keys.
    #[arg(long)]
    key_dir: Option<PathBuf>,
}

const WAIT: Duration = Duration::from_secs(30);

/// What a console saw: its index, the device, its `conn` value, when.
type Seen = (usize, String, u64, Instant);

pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let (server, creds) = args.server.target()?;
    let mut login = ControlClient::connect(&server, &creds, None).await?;
    // MeshCentral's reply does not echo `responseid`: wait for the action instead.
    login
        .send(&serde_json::json!({"action": "authcookie"}))
        .await?;
    let reply = tokio::time::timeout(WAIT, async {
        loop {
            let v = login.next_push().await?;
            if v["action"] == "authcookie" {
                return anyhow::Ok(v);
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("no authcookie reply within {WAIT:?}"))??;
    let cookie = reply["cookie"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no auth cookie in {reply}"))?
        .to_string();
    let console_path = format!("/control.ashx?auth={}", percent_escape(&cookie));

    let text = std::fs::read_to_string(&args.msh)?;
    let msh = MeshSettings::parse(&text).map_err(|e| anyhow::anyhow!(e))?;
    let (host, port, agent_path) = ironmesh_agent::settings::parse_wss(&msh.server_url)?;
    // One device per state change: MeshCentral stops completing the handshake of a device
    // that disconnected more than six times in two minutes (flapping protection), so the
    // same device cannot be switched on and off for every round.
    let changes = args.rounds * args.consoles.len();
    let key_dir = args.key_dir.clone().unwrap_or_else(crate::default_key_dir);
    let identities =
        tokio::task::spawn_blocking(move || crate::keys::load_or_generate(&key_dir, changes))
            .await??;
    let server_id: [u8; 48] = msh
        .server_id
        .clone()
        .try_into()
        .map_err(|_| anyhow::anyhow!("ServerID must be 48 bytes"))?;
    let connect_agent = |identity: Arc<ironmesh_agent::identity::AgentIdentity>| {
        let (host, agent_path, mesh_id) = (host.clone(), agent_path.clone(), msh.mesh_id.clone());
        async move {
            let (mut socket, cert) =
                connection::connect(connection::tls_config(), &host, port, &agent_path, None)
                    .await?;
            let mut hs = ClientHandshake::new(
                &identity,
                server_id,
                mesh_id,
                AgentDescription {
                    agent_id: 6,
                    platform_type: 1,
                    capabilities: 0x08,
                    hostname: "bench-events".into(),
                    host_info: "Simulated - x64".into(),
                    build_date: "bench".into(),
                },
                &cert,
                None,
            );
            tokio::time::timeout(
                WAIT,
                ironmesh_agent::handshake::complete(&mut socket, &mut hs),
            )
            .await
            .map_err(|_| anyhow::anyhow!("agent handshake not completed within {WAIT:?}"))??;
            anyhow::Ok(socket)
        }
    };

    // Every console forwards (its index, device, conn value, arrival time) of device events.
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<Seen>();
    let mut opened = 0usize;
    let mut next_identity = identities.iter();
    println!(
        "events scenario: consoles {:?}, {} state changes each, server {}",
        args.consoles, args.rounds, args.server.url
    );
    println!();
    println!(
        "{:<12} {:>10} {:>12} {:>12}",
        "consoles", "samples", "p50 (ms)", "p99 (ms)"
    );
    for &target in &args.consoles {
        while opened < target {
            let (socket, _) = connect_with_headers(
                connection::tls_config(),
                &server.host,
                server.port,
                &console_path,
                None,
                &[],
            )
            .await?;
            let (tx, idx) = (seen_tx.clone(), opened);
            tokio::spawn(async move {
                let (_sink, mut stream) = socket.split();
                while let Some(Ok(msg)) = stream.next().await {
                    let Message::Text(text) = msg else { continue };
                    if !text.as_str().contains("nodeconnect") {
                        continue;
                    }
                    let at = Instant::now();
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    let ev = &v["event"];
                    if ev["action"] == "nodeconnect" {
                        let node = ev["nodeid"].as_str().unwrap_or("").to_string();
                        let conn = ev["conn"].as_u64().unwrap_or(0);
                        if tx.send((idx, node, conn, at)).is_err() {
                            break;
                        }
                    }
                }
            });
            opened += 1;
        }
        // Let greetings settle, and forget anything seen while opening.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while seen.try_recv().is_ok() {}
        let mut samples = Vec::with_capacity(target * args.rounds);
        for _ in 0..args.rounds {
            let identity = next_identity
                .next()
                .expect("one identity per change")
                .clone();
            let node = identity.node_id.clone();
            let mut socket = connect_agent(identity).await?;
            collect(
                &mut seen,
                opened,
                &node,
                |conn| conn != 0,
                None,
                &mut samples,
            )
            .await?;
            let t0 = Instant::now();
            let _ = socket.close(None).await;
            drop(socket);
            collect(
                &mut seen,
                opened,
                &node,
                |conn| conn == 0,
                Some(t0),
                &mut samples,
            )
            .await?;
        }
        let (p50, p99) = percentiles(&mut samples);
        println!(
            "{:<12} {:>10} {:>12.2} {:>12.2}",
            target,
            samples.len(),
            p50,
            p99
        );
        result(&format!("events.c{target}.p50_ms"), p50);
        result(&format!("events.c{target}.p99_ms"), p99);
    }
    Ok(())
}

/// Waits until each of `consoles` has reported a matching event; with `t0`, records the
/// latency of each in milliseconds.
async fn collect(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    consoles: usize,
    node: &str,
    matches: impl Fn(u64) -> bool,
    t0: Option<Instant>,
    samples: &mut Vec<f64>,
) -> anyhow::Result<()> {
    let mut got = vec![false; consoles];
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while count < consoles {
        let Ok(Some((idx, seen_node, conn, at))) =
            tokio::time::timeout_at(deadline, seen.recv()).await
        else {
            anyhow::bail!("only {count} of {consoles} consoles saw the change within {WAIT:?}");
        };
        if idx < consoles && seen_node == node && matches(conn) && !got[idx] {
            got[idx] = true;
            count += 1;
            if let Some(t0) = t0 {
                samples.push(at.duration_since(t0).as_secs_f64() * 1e3);
            }
        }
    }
    Ok(())
}

fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}
