//! The ceiling for fresh agent handshakes: how many RSA-3072 PKCS#1 v1.5 / SHA-384
//! signatures (the server's one signature per new agent) the machine makes per second on
//! all its cores, with the same library the server uses (ring).

use std::time::{Duration, Instant};

use rsa::pkcs8::EncodePrivateKey;

use crate::procstat::result;

#[derive(clap::Args)]
pub struct RsaArgs {
    /// Signing threads (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds to sign for.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

pub fn run(args: RsaArgs) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 3072)?;
    let pkcs8 = key.to_pkcs8_der()?;
    let pair = std::sync::Arc::new(
        ring::signature::RsaKeyPair::from_pkcs8(pkcs8.as_bytes())
            .map_err(|e| anyhow::anyhow!("ring rejected the key: {e}"))?,
    );
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let pair = pair.clone();
            std::thread::spawn(move || {
                let rng = ring::rand::SystemRandom::new();
                let message = [0x42u8; 144];
                let mut sig = vec![0u8; pair.public().modulus_len()];
                let mut n = 0u64;
                while Instant::now() < until {
                    let _ = pair.sign(&ring::signature::RSA_PKCS1_SHA384, &rng, &message, &mut sig);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!("RSA-3072 SHA-384 signatures with ring on {threads} threads: {rate:.0}/s");
    result("rsa3072.signatures_per_s", rate);
    Ok(())
}
