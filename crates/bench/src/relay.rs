//! The relay scenario: two sockets of one user paired by relay id (the server's relay data
//! path, no agent involved), against a raw TLS connection to an in-process echo server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ironmesh_client::control::{open, Credentials, ServerAddress};
use ironmesh_client::Socket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::procstat::result;

#[derive(clap::Args)]
pub struct RelayArgs {
    #[command(flatten)]
    server: crate::ServerArgs,
    /// Megabytes pushed for the throughput figure.
    #[arg(long, default_value_t = 256)]
    megabytes: usize,
    /// Small-message round trips for the latency figure.
    #[arg(long, default_value_t = 5000)]
    round_trips: usize,
    /// Concurrent sessions for the aggregate throughput figure.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Leave out the raw TLS baseline (when it was measured in another run).
    #[arg(long)]
    skip_raw: bool,
}

const CHUNK: usize = 64 * 1024;
const SMALL: usize = 32;

pub async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let (server, creds) = args.server.target()?;
    let total = args.megabytes * 1024 * 1024;

    // Relay: throughput, then round trips, on one session.
    let (mut a, mut b) = pair(&server, &creds, "bench-throughput").await?;
    let relay_mbs = ws_throughput(&mut a, &mut b, total).await?;
    let (p50, p99) = ws_round_trips(&mut a, &mut b, args.round_trips).await?;
    let (mut a2, mut b2) = pair(&server, &creds, "bench-both-ways").await?;
    let both = ws_both_ways(&mut a2, &mut b2, total / 2).await?;
    drop((a, b, a2, b2));
    let many = many_sessions(&server, &creds, args.sessions.max(1), total).await?;
    result("relay.one_way_mbs", relay_mbs);
    result("relay.both_ways_mbs", both);
    result("relay.many_sessions_mbs", many);
    result("relay.rtt_p50_us", p50);
    result("relay.rtt_p99_us", p99);

    // Baseline: raw TLS over loopback to an in-process sink/echo.
    let (raw_mbs, raw_p50, raw_p99) = if args.skip_raw {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        raw_tls_baseline(total, args.round_trips).await?
    };
    if !args.skip_raw {
        result("raw_tls.one_way_mbs", raw_mbs);
        result("raw_tls.rtt_p50_us", raw_p50);
        result("raw_tls.rtt_p99_us", raw_p99);
    }

    println!(
        "relay scenario: {} MiB in {} KiB frames, {} round trips of {SMALL} bytes",
        args.megabytes,
        CHUNK / 1024,
        args.round_trips
    );
    println!();
    if args.skip_raw {
        println!("{:<40} {:>12}", "measure", "relay");
        for (label, v) in [
            ("throughput one way (MB/s)", relay_mbs),
            ("throughput both ways, sum (MB/s)", both),
            ("sessions at once, sum (MB/s)", many),
            ("round trip p50 (µs)", p50),
            ("round trip p99 (µs)", p99),
        ] {
            println!("{label:<40} {v:>12.1}");
        }
        return Ok(());
    }
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "measure", "relay", "raw TLS", "ratio"
    );
    println!(
        "{:<40} {:>12.1} {:>12.1} {:>7.0}%",
        "throughput one way (MB/s)",
        relay_mbs,
        raw_mbs,
        100.0 * relay_mbs / raw_mbs
    );
    println!(
        "{:<40} {:>12.1} {:>12} {:>8}",
        "throughput both ways, sum (MB/s)", both, "-", ""
    );
    println!(
        "{:<40} {:>12.1} {:>12} {:>8}",
        format!("{} sessions at once, sum (MB/s)", args.sessions.max(1)),
        many,
        "-",
        ""
    );
    println!(
        "{:<40} {:>12.0} {:>12.0} {:>7.1}x",
        "round trip p50 (µs)",
        p50,
        raw_p50,
        p50 / raw_p50.max(1.0)
    );
    println!(
        "{:<40} {:>12.0} {:>12.0} {:>7.1}x",
        "round trip p99 (µs)",
        p99,
        raw_p99,
        p99 / raw_p99.max(1.0)
    );
    Ok(())
}

async fn pair(
    server: &ServerAddress,
    creds: &Credentials,
    id: &str,
) -> anyhow::Result<(Socket, Socket)> {
    let id = format!("{id}-{}", std::process::id());
    let path = format!("/meshrelay.ashx?id={id}&p=5");
    let (mut a, _) = open(server, &path, creds, None).await?;
    let (mut b, _) = open(server, &path, creds, None).await?;
    for s in [&mut a, &mut b] {
        loop {
            match s.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "c" => break,
                Some(Ok(Message::Close(c))) => anyhow::bail!("relay refused: {c:?}"),
                Some(Ok(_)) => continue,
                other => anyhow::bail!("relay ended: {other:?}"),
            }
        }
    }
    Ok((a, b))
}

async fn ws_throughput(a: &mut Socket, b: &mut Socket, total: usize) -> anyhow::Result<f64> {
    let chunk = vec![0x5au8; CHUNK];
    let started = Instant::now();
    let frames = total / CHUNK;
    let sender = async {
        for _ in 0..frames {
            a.send(Message::Binary(chunk.clone().into())).await?;
        }
        anyhow::Ok(())
    };
    let receiver = async {
        let mut got = 0usize;
        while got < frames * CHUNK {
            match tokio::time::timeout(Duration::from_secs(30), b.next()).await? {
                Some(Ok(Message::Binary(d))) => got += d.len(),
                Some(Ok(_)) => {}
                other => anyhow::bail!("relay ended: {other:?}"),
            }
        }
        anyhow::Ok(())
    };
    tokio::try_join!(sender, receiver)?;
    Ok((frames * CHUNK) as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// `sessions` pairs at once, each pushing its share of `total` one way; aggregate MB/s.
async fn many_sessions(
    server: &ServerAddress,
    creds: &Credentials,
    sessions: usize,
    total: usize,
) -> anyhow::Result<f64> {
    let mut pairs = Vec::with_capacity(sessions);
    for i in 0..sessions {
        pairs.push(pair(server, creds, &format!("bench-many-{i}")).await?);
    }
    let each = (total / sessions / CHUNK).max(1) * CHUNK;
    let started = Instant::now();
    let runs = pairs.iter_mut().map(|(a, b)| async move {
        let (a_tx, _) = a.split();
        let (_, b_rx) = b.split();
        tokio::try_join!(
            send_frames(a_tx, each / CHUNK),
            recv_frames(b_rx, each / CHUNK)
        )?;
        anyhow::Ok(())
    });
    futures_util::future::try_join_all(runs).await?;
    Ok((sessions * each) as f64 / started.elapsed().as_secs_f64() / 1e6)
}

async fn ws_both_ways(a: &mut Socket, b: &mut Socket, each: usize) -> anyhow::Result<f64> {
    let frames = each / CHUNK;
    let started = Instant::now();
    let (a_tx, a_rx) = a.split();
    let (b_tx, b_rx) = b.split();
    tokio::try_join!(
        send_frames(a_tx, frames),
        send_frames(b_tx, frames),
        recv_frames(a_rx, frames),
        recv_frames(b_rx, frames)
    )?;
    Ok((2 * frames * CHUNK) as f64 / started.elapsed().as_secs_f64() / 1e6)
}

type Tx<'a> = futures_util::stream::SplitSink<&'a mut Socket, Message>;
type Rx<'a> = futures_util::stream::SplitStream<&'a mut Socket>;

async fn send_frames(mut tx: Tx<'_>, frames: usize) -> anyhow::Result<()> {
    let chunk = vec![0xa5u8; CHUNK];
    for _ in 0..frames {
        tx.send(Message::Binary(chunk.clone().into())).await?;
    }
    Ok(())
}

async fn recv_frames(mut rx: Rx<'_>, frames: usize) -> anyhow::Result<()> {
    let mut got = 0;
    while got < frames * CHUNK {
        match tokio::time::timeout(Duration::from_secs(30), rx.next()).await? {
            Some(Ok(Message::Binary(d))) => got += d.len(),
            Some(Ok(_)) => {}
            other => anyhow::bail!("relay ended: {other:?}"),
        }
    }
    Ok(())
}

async fn ws_round_trips(a: &mut Socket, b: &mut Socket, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(n);
    let msg = vec![7u8; SMALL];
    for _ in 0..n {
        let t = Instant::now();
        a.send(Message::Binary(msg.clone().into())).await?;
        let got = next_binary(b).await?;
        b.send(Message::Binary(got.into())).await?;
        next_binary(a).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(percentiles(samples))
}

async fn next_binary(s: &mut Socket) -> anyhow::Result<Vec<u8>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.next()).await? {
            Some(Ok(Message::Binary(d))) => return Ok(d.to_vec()),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("relay ended: {other:?}"),
        }
    }
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

/// A TLS sink (for throughput) and echo (for round trips) in this process; the client side
/// does the same work as one relay user socket, without WebSocket framing or a second hop.
async fn raw_tls_baseline(total: usize, n: usize) -> anyhow::Result<(f64, f64, f64)> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])?.self_signed(&key)?;
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        for mode in ["sink", "echo"] {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = vec![0u8; CHUNK];
            while let Ok(k) = tls.read(&mut buf).await {
                if k == 0 {
                    break;
                }
                if mode == "echo" && tls.write_all(&buf[..k]).await.is_err() {
                    break;
                }
            }
        }
    });
    let connector = tokio_rustls::TlsConnector::from(ironmesh_client::tls_config());
    let connect = || async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        anyhow::Ok(
            connector
                .connect(rustls_pki_types::ServerName::try_from("localhost")?, tcp)
                .await?,
        )
    };
    // Throughput: write everything, then wait for the sink to close.
    let mut tls = connect().await?;
    let chunk = vec![0x5au8; CHUNK];
    let started = Instant::now();
    for _ in 0..total / CHUNK {
        tls.write_all(&chunk).await?;
    }
    tls.shutdown().await?;
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest).await;
    let mbs = (total / CHUNK * CHUNK) as f64 / started.elapsed().as_secs_f64() / 1e6;
    // Round trips.
    let mut tls = connect().await?;
    let msg = vec![7u8; SMALL];
    let mut back = vec![0u8; SMALL];
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        tls.write_all(&msg).await?;
        tls.read_exact(&mut back).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (p50, p99) = percentiles(samples);
    Ok((mbs, p50, p99))
}
