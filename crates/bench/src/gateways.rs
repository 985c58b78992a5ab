//! The gateways scenario: N simulated apfree-wifidog devices (both firmware generations,
//! half each) connect to the server's plain gateway port and send heartbeats; the server's
//! CPU time and resident memory are read from /proc while they run.

use std::time::{Duration, Instant};

use crate::procstat::{cpu_ticks, rss_kib};

use ironmesh_testkit::gateway::{Firmware, GatewayOptions, SimGateway};

#[derive(clap::Args)]
pub struct GatewaysArgs {
    /// The server's plain gateway port on 127.0.0.1 (`[wifidog] plain_port`).
    #[arg(long)]
    port: u16,
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Heartbeat interval of the simulated devices (real ones: 60 s).
    #[arg(long, default_value_t = 5)]
    heartbeat_secs: u64,
    /// How long to measure once all are connected.
    #[arg(long, default_value_t = 20)]
    measure_secs: u64,
    #[arg(long)]
    server_pid: u32,
}

pub async fn run(args: GatewaysArgs) -> anyhow::Result<()> {
    let rss0 = rss_kib(args.server_pid).unwrap_or(0);
    let started = Instant::now();
    let mut sims = Vec::with_capacity(args.n);
    for i in 0..args.n {
        let firmware = if i % 2 == 0 {
            Firmware::V8
        } else {
            Firmware::V9
        };
        let mut opts = GatewayOptions::new(firmware, &format!("BENCH-{i:06}"), args.port);
        opts.heartbeat = Duration::from_secs(args.heartbeat_secs);
        sims.push(SimGateway::start(opts));
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Connected = acknowledged at least once.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let acked = sims
            .iter()
            .filter(|s| s.snapshot(|o| !o.received.is_empty()))
            .count();
        if acked == args.n || Instant::now() > deadline {
            println!(
                "{acked} of {} gateways connected and acknowledged in {:.1} s",
                args.n,
                started.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss1 = rss_kib(args.server_pid).unwrap_or(0);
    let cpu0 = cpu_ticks(args.server_pid).unwrap_or(0);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.measure_secs)).await;
    let cpu1 = cpu_ticks(args.server_pid).unwrap_or(0);
    let secs = t0.elapsed().as_secs_f64();
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu_pct = (cpu1 - cpu0) as f64 / ticks_per_sec / secs * 100.0;
    let thousands = args.n as f64 / 1000.0;
    let beats_per_sec = args.n as f64 / args.heartbeat_secs as f64;
    println!();
    println!(
        "gateways: {}, heartbeat every {} s ({:.0} heartbeats/s)",
        args.n, args.heartbeat_secs, beats_per_sec
    );
    println!(
        "server CPU: {cpu_pct:.1}% of one core ({:.2}% per 1,000 gateways)",
        cpu_pct / thousands
    );
    println!(
        "server RSS: {:.1} MiB before, {:.1} MiB connected: {:.1} MiB per 1,000 gateways",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        rss1.saturating_sub(rss0) as f64 / 1024.0 / thousands
    );
    println!(
        "at the real 60 s heartbeat, CPU scales by {:.2}: about {:.3}% of a core per 1,000 gateways",
        args.heartbeat_secs as f64 / 60.0,
        cpu_pct / thousands * args.heartbeat_secs as f64 / 60.0
    );
    drop(sims);
    Ok(())
}
