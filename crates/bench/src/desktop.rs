//! Remote desktop sessions (docs/protocol/desktop.md) against a device showing the test
//! pattern of `ironmesh-xpattern` (testkit::xdisplay), on ironmesh or MeshCentral alike:
//! sessions are opened the way MeshCentral's own viewer opens them (an auth cookie, a
//! `tunnel` message to the agent, then the relay), so both servers get the same client.
//!
//! `--phase static` (the painter still): time to the first whole frame over several fresh
//! sessions (the first one is a warm-up and not counted), then input-to-screen latency: a key
//! press, and the time until a tile shows the painter's echo box in its next colour.
//! `--phase animated` (the painter with `--animate`): updates per second and bytes per second
//! for a region that changes every 10 ms, with the server's (and agent's) CPU per second of
//! session.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ironmesh_client::control::{open, ControlClient, Credentials, ServerAddress};
use ironmesh_client::desktop::{Coverage, DesktopSession, Settings};
use ironmesh_client::relay::percent_escape;
use ironmesh_proto::desktop::{image_size, KeyAction, ToAgent, ToViewer};
use ironmesh_testkit::xdisplay::{Rect, ANIMATED, ECHO_BOX};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::procstat::{clock_ticks_per_s, cpu_ticks, result};
use crate::ServerArgs;

#[derive(clap::Args)]
pub struct DesktopArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// `static` (first frame, input latency), `animated` (frame rate, bandwidth, CPU), or
    /// `probe` (succeeds once a device is online).
    #[arg(long, default_value = "static")]
    phase: String,
    /// Device name (default: the first online device).
    #[arg(long)]
    device: Option<String>,
    /// Fresh sessions timed to their first whole frame (plus one warm-up).
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Key presses timed to the screen.
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// Length of the animated measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// JPEG quality asked for.
    #[arg(long, default_value_t = 50)]
    quality: u8,
    /// Frame timer asked for (ms between captures; MeshCentral's viewer: 100, "fast" 33).
    #[arg(long, default_value_t = 100)]
    frame_ms: u16,
    /// Server process (with its children) whose CPU is measured.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Agent process (with its children) whose CPU is measured.
    #[arg(long)]
    agent_pid: Option<u32>,
    /// Prefix of the RESULT keys (e.g. the frame timer), so several runs can share a file.
    #[arg(long, default_value = "desktop")]
    label: String,
}

const SILENCE: Duration = Duration::from_secs(20);

pub async fn run(args: DesktopArgs) -> anyhow::Result<()> {
    let (server, creds) = args.server.target()?;
    let mut control = ControlClient::connect(&server, &creds, None).await?;
    let node = find_device(&mut control, args.device.as_deref()).await?;
    let settings = Settings {
        quality: args.quality,
        scaling: 1024,
        frame_ms: args.frame_ms,
    };
    let key = |k: &str| format!("{}.{k}", args.label);
    match args.phase.as_str() {
        "static" => {
            let mut first = Vec::new();
            for i in 0..=args.sessions {
                let t0 = Instant::now();
                let mut s = session(&server, &creds, &mut control, &node, settings).await?;
                let mut screen = Coverage::default();
                while !screen.complete() {
                    screen.take(&s.next(SILENCE).await?);
                }
                if i > 0 {
                    first.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
                s.close().await;
                // Let the agent tear its capture down before the next fresh session.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let (min, med, max) = spread(&first);
            result(&key("first_frame_ms_median"), med);
            result(&key("first_frame_ms_min"), min);
            result(&key("first_frame_ms_max"), max);
            println!("first whole frame over {} fresh sessions: median {med:.0} ms (min {min:.0}, max {max:.0})", first.len());

            let mut s = session(&server, &creds, &mut control, &node, settings).await?;
            let mut echo = EchoWatch::default();
            let mut screen = Coverage::default();
            while !screen.complete() || echo.colour.is_none() {
                let c = s.next(SILENCE).await?;
                screen.take(&c);
                echo.take(&c)?;
            }
            let mut latencies = Vec::new();
            let mut lost = 0;
            for i in 0..args.keys {
                let before = echo.colour;
                let t0 = Instant::now();
                s.send(&ToAgent::Key {
                    action: KeyAction::Down,
                    code: 0x41,
                })
                .await?;
                s.send(&ToAgent::Key {
                    action: KeyAction::Up,
                    code: 0x41,
                })
                .await?;
                let seen = tokio::time::timeout(Duration::from_secs(3), async {
                    loop {
                        let c = s.next(SILENCE).await?;
                        echo.take(&c)?;
                        if echo.colour != before {
                            return anyhow::Ok(());
                        }
                    }
                })
                .await;
                match seen {
                    Ok(r) => {
                        r?;
                        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                    Err(_) => lost += 1,
                }
                // Spread the presses over the capture cycle.
                tokio::time::sleep(Duration::from_millis(40 + (i as u64 * 37) % 60)).await;
            }
            s.close().await;
            anyhow::ensure!(!latencies.is_empty(), "no key press reached the screen");
            latencies.sort_by(f64::total_cmp);
            let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
            result(&key("input_p50_ms"), at(0.5));
            result(&key("input_p99_ms"), at(0.99));
            result(&key("input_lost"), lost as f64);
            println!(
                "key press to screen over {} presses: p50 {:.1} ms, p99 {:.1} ms ({lost} not seen within 3 s)",
                latencies.len(),
                at(0.5),
                at(0.99)
            );
        }
        "animated" => {
            let mut s = session(&server, &creds, &mut control, &node, settings).await?;
            let mut screen = Coverage::default();
            while !screen.complete() {
                screen.take(&s.next(SILENCE).await?);
            }
            // Warm-up, then the measured window.
            let warm = Instant::now() + Duration::from_secs(2);
            while Instant::now() < warm {
                s.next(SILENCE).await?;
            }
            let bytes0 = s.bytes_received;
            let server0 = args.server_pid.and_then(cpu_ticks);
            let agent0 = args.agent_pid.and_then(cpu_ticks);
            let t0 = Instant::now();
            let end = t0 + Duration::from_secs(args.seconds);
            let (mut updates, mut tiles) = (0u64, 0u64);
            let mut last_tile: Option<Instant> = None;
            while Instant::now() < end {
                let c = s.next(SILENCE).await?;
                if let ToViewer::Tile { x, y, image } = &c {
                    tiles += 1;
                    let now = Instant::now();
                    let touches = image_size(image).is_some_and(|(w, h)| {
                        let tile = Rect {
                            x: *x,
                            y: *y,
                            width: w,
                            height: h,
                        };
                        tile.overlaps(&ANIMATED)
                    });
                    // Tiles of one capture arrive back to back; a gap starts a new update.
                    if touches && last_tile.is_none_or(|t| now - t > Duration::from_millis(4)) {
                        updates += 1;
                    }
                    last_tile = Some(now);
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            let bytes = (s.bytes_received - bytes0) as f64;
            s.close().await;
            let per_s = |t0: Option<u64>, pid: Option<u32>| match (t0, pid.and_then(cpu_ticks)) {
                // A child that exits without being reaped takes its time away: never below 0.
                (Some(a), Some(b)) => {
                    Some(b.saturating_sub(a) as f64 / clock_ticks_per_s() * 1000.0 / secs)
                }
                _ => None,
            };
            let server_cpu = per_s(server0, args.server_pid);
            let agent_cpu = per_s(agent0, args.agent_pid);
            result(&key("updates_per_s"), updates as f64 / secs);
            result(&key("tiles_per_s"), tiles as f64 / secs);
            result(&key("kib_per_s"), bytes / 1024.0 / secs);
            if let Some(c) = server_cpu {
                result(&key("server_cpu_ms_per_s"), c);
            }
            if let Some(c) = agent_cpu {
                result(&key("agent_cpu_ms_per_s"), c);
            }
            println!(
                "animated region for {secs:.1} s: {:.1} updates/s, {:.1} tiles/s, {:.0} KiB/s; server CPU {} ms/s, agent CPU {} ms/s",
                updates as f64 / secs,
                tiles as f64 / secs,
                bytes / 1024.0 / secs,
                server_cpu.map_or("-".into(), |c| format!("{c:.1}")),
                agent_cpu.map_or("-".into(), |c| format!("{c:.1}")),
            );
        }
        "probe" => println!("device {node} is online"),
        other => anyhow::bail!("unknown phase {other} (static, animated or probe)"),
    }
    Ok(())
}

/// The first online device, or the one named.
async fn find_device(control: &mut ControlClient, name: Option<&str>) -> anyhow::Result<String> {
    control.send(&json!({"action":"nodes"})).await?;
    let reply = loop {
        let v = control.next_push().await?;
        if v["action"] == "nodes" {
            break v;
        }
    };
    let nodes: Vec<Value> = reply["nodes"]
        .as_object()
        .map(|groups| {
            groups
                .values()
                .flat_map(|g| g.as_array().cloned().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    nodes
        .iter()
        .find(|n| {
            n["conn"].as_u64().unwrap_or(0) & 1 == 1 && name.is_none_or(|want| n["name"] == want)
        })
        .and_then(|n| n["_id"].as_str().map(str::to_string))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no online device{}",
                name.map(|n| format!(" named {n}")).unwrap_or_default()
            )
        })
}

/// A fresh desktop session, opened as MeshCentral's viewer opens one.
async fn session(
    server: &ServerAddress,
    creds: &Credentials,
    control: &mut ControlClient,
    node: &str,
    settings: Settings,
) -> anyhow::Result<DesktopSession> {
    control.send(&json!({"action":"authcookie"})).await?;
    let cookies = loop {
        let v = control.next_push().await?;
        if v["action"] == "authcookie" {
            break v;
        }
    };
    let (cookie, rcookie) = (
        cookies["cookie"].as_str().unwrap_or_default().to_string(),
        cookies["rcookie"].as_str().unwrap_or_default().to_string(),
    );
    let id = format!("{:016x}", rand::random::<u64>());
    let node_q = percent_escape(node);
    control
        .send(&json!({
            "action": "msg", "type": "tunnel", "nodeid": node, "usage": 2,
            "value": format!("*/meshrelay.ashx?p=2&nodeid={node_q}&id={id}&rauth={}", percent_escape(&rcookie)),
        }))
        .await?;
    let path = format!(
        "/meshrelay.ashx?browser=1&p=2&nodeid={node_q}&id={id}&auth={}",
        percent_escape(&cookie)
    );
    let (mut socket, _) = open(server, &path, creds, None).await?;
    loop {
        match tokio::time::timeout(SILENCE, socket.next()).await? {
            Some(Ok(Message::Text(t))) if t.as_str() == "c" || t.as_str() == "cr" => break,
            Some(Ok(Message::Close(c))) => anyhow::bail!("relay refused: {c:?}"),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("relay ended: {other:?}"),
        }
    }
    DesktopSession::start(socket, settings).await
}

/// The colour at the echo box's centre, from the last tile that covered it.
#[derive(Default)]
struct EchoWatch {
    colour: Option<[u8; 3]>,
}

impl EchoWatch {
    fn take(&mut self, c: &ToViewer) -> anyhow::Result<()> {
        let ToViewer::Tile { x, y, image } = c else {
            return Ok(());
        };
        let Some((w, h)) = image_size(image) else {
            return Ok(());
        };
        let (cx, cy) = ECHO_BOX.centre();
        if !(Rect {
            x: *x,
            y: *y,
            width: w,
            height: h,
        })
        .contains(cx, cy)
        {
            return Ok(());
        }
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
            zune_jpeg::zune_core::bytestream::ZCursor::new(image),
            zune_jpeg::zune_core::options::DecoderOptions::default()
                .jpeg_set_out_colorspace(zune_jpeg::zune_core::colorspace::ColorSpace::RGB),
        );
        let rgb = decoder
            .decode()
            .map_err(|e| anyhow::anyhow!("tile does not decode: {e:?}"))?;
        let at = ((cy - y) as usize * w as usize + (cx - x) as usize) * 3;
        // Quantised so JPEG noise between two tiles of the same colour is not a change.
        let q = |v: u8| v / 64;
        self.colour = Some([q(rgb[at]), q(rgb[at + 1]), q(rgb[at + 2])]);
        Ok(())
    }
}

fn spread(samples: &[f64]) -> (f64, f64, f64) {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    (s[0], s[s.len() / 2], s[s.len() - 1])
}
