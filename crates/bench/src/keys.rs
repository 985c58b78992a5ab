//! A pool of agent identities. RSA key generation is slow (tens of ms each), so keys are
//! made once, on all cores, and cached as PKCS#8 files for later runs.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use ironmesh_agent::identity::AgentIdentity;
use rsa::pkcs8::EncodePrivateKey;

/// Key size of simulated agents: the smallest the protocol accepts, to keep the pool cheap.
const BITS: usize = 2048;

pub fn load_or_generate(dir: &Path, n: usize) -> anyhow::Result<Vec<Arc<AgentIdentity>>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let missing: Vec<usize> = (0..n)
        .filter(|i| !dir.join(format!("{i}.der")).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "generating {} RSA-{BITS} agent keys (cached in {})",
            missing.len(),
            dir.display()
        );
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(2);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(index) = missing.get(i) else { break };
                    let key =
                        rsa::RsaPrivateKey::new(&mut rand::thread_rng(), BITS).expect("keygen");
                    let der = key.to_pkcs8_der().expect("pkcs8");
                    std::fs::write(dir.join(format!("{index}.der")), der.as_bytes())
                        .expect("write key");
                });
            }
        });
    }
    (0..n)
        .map(|i| {
            let der = std::fs::read(dir.join(format!("{i}.der")))?;
            Ok(Arc::new(AgentIdentity::from_parts(&der, None)?))
        })
        .collect()
}
