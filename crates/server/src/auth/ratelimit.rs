//! Failed-login limiting: after `max_failures` failures within `window` from one client
//! address (or against one user name, with a higher threshold), further attempts are
//! refused without checking the password until the window has passed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How much more lenient the per-name limit is than the per-address one: a name is shared
/// by its owner's devices, and a distributed guesser is still slowed down.
const NAME_FACTOR: u32 = 3;
/// Above this many tracked keys, stale entries are swept on insert.
const SWEEP_AT: usize = 10_000;

pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> LoginLimiter {
        LoginLimiter {
            max_failures: max_failures.max(1),
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(ip: IpAddr, username: &str) -> [(String, u32); 2] {
        [
            (format!("ip:{ip}"), 1),
            (format!("name:{}", username.to_lowercase()), NAME_FACTOR),
        ]
    }

    /// `Err(wait)` if this attempt must be refused.
    pub fn check(&self, ip: IpAddr, username: &str) -> Result<(), Duration> {
        let entries = crate::locks::lock(&self.entries);
        let now = Instant::now();
        for (key, factor) in Self::keys(ip, username) {
            if let Some((count, since)) = entries.get(&key) {
                let age = now.duration_since(*since);
                if age < self.window && *count >= self.max_failures * factor {
                    return Err(self.window - age);
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, ip: IpAddr, username: &str) {
        let mut entries = crate::locks::lock(&self.entries);
        let now = Instant::now();
        if entries.len() > SWEEP_AT {
            let window = self.window;
            entries.retain(|_, (_, since)| now.duration_since(*since) < window);
        }
        for (key, _) in Self::keys(ip, username) {
            let entry = entries.entry(key).or_insert((0, now));
            if now.duration_since(entry.1) >= self.window {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }

    pub fn record_success(&self, ip: IpAddr, username: &str) {
        let mut entries = crate::locks::lock(&self.entries);
        for (key, _) in Self::keys(ip, username) {
            entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_failures_and_resets_on_success() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(ip, "bob").is_ok());
            l.record_failure(ip, "bob");
        }
        assert!(l.check(ip, "bob").is_err());
        // Another address is not blocked for another name.
        assert!(l.check("127.0.0.2".parse().unwrap(), "alice").is_ok());
        l.record_success(ip, "bob");
        assert!(l.check(ip, "bob").is_ok());
    }

    #[test]
    fn window_expiry() {
        let l = LoginLimiter::new(1, Duration::from_millis(20));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        l.record_failure(ip, "x");
        assert!(l.check(ip, "x").is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(l.check(ip, "x").is_ok());
    }
}
