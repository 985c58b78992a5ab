//! Failed-login limiting, shaped so that nobody can lock a stranger out:
//!
//! - per (address, user name): after `max_failures` failures within `window`, that address
//!   may not try that name again until the window has passed;
//! - per address: after [`ADDRESS_FACTOR`] × `max_failures` failures (any names), that
//!   address is refused — a guesser locks only itself;
//! - per user name, across addresses: never a lock. Once a name has collected
//!   `max_failures` failures in the window, every attempt on it waits a little longer (up
//!   to [`MAX_DELAY`]) before its password is checked, which slows a distributed guesser
//!   while the real user, from their own address, still gets in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::locks::lock;

/// How many more failures an address may collect over all names than over one.
pub const ADDRESS_FACTOR: u32 = 5;
/// The longest an attempt on a name under attack is held back.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// Delay added per failure beyond the threshold.
const DELAY_STEP: Duration = Duration::from_millis(100);
/// Above this many tracked keys, stale entries are swept on insert.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(IpAddr, String),
    Address(IpAddr),
    Name(String),
}

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password now.
    Go,
    /// Check it after waiting this long (the name is under attack).
    After(Duration),
    /// Refuse without checking; the wait until this address may try again.
    Refuse(Duration),
}

pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<Key, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> LoginLimiter {
        LoginLimiter {
            max_failures: max_failures.max(1),
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(ip: IpAddr, username: &str) -> [Key; 3] {
        let name = username.to_lowercase();
        [
            Key::Pair(ip, name.clone()),
            Key::Address(ip),
            Key::Name(name),
        ]
    }

    pub fn check(&self, ip: IpAddr, username: &str) -> Verdict {
        let entries = lock(&self.entries);
        let now = Instant::now();
        let live = |key: &Key| -> Option<(u32, Duration)> {
            let (count, since) = entries.get(key)?;
            let age = now.duration_since(*since);
            (age < self.window).then(|| (*count, self.window - age))
        };
        let [pair, address, name] = Self::keys(ip, username);
        if let Some((count, left)) = live(&pair) {
            if count >= self.max_failures {
                return Verdict::Refuse(left);
            }
        }
        if let Some((count, left)) = live(&address) {
            if count >= self.max_failures * ADDRESS_FACTOR {
                return Verdict::Refuse(left);
            }
        }
        match live(&name) {
            Some((count, _)) if count >= self.max_failures => {
                let beyond = count - self.max_failures + 1;
                Verdict::After((DELAY_STEP * beyond).min(MAX_DELAY))
            }
            _ => Verdict::Go,
        }
    }

    pub fn record_failure(&self, ip: IpAddr, username: &str) {
        let mut entries = lock(&self.entries);
        let now = Instant::now();
        if entries.len() > SWEEP_AT {
            let window = self.window;
            entries.retain(|_, (_, since)| now.duration_since(*since) < window);
        }
        for key in Self::keys(ip, username) {
            let entry = entries.entry(key).or_insert((0, now));
            if now.duration_since(entry.1) >= self.window {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }

    /// A success clears this address's failures on this name (the name's global count
    /// stays: it is about the attack, not about this user).
    pub fn record_success(&self, ip: IpAddr, username: &str) {
        lock(&self.entries).remove(&Key::Pair(ip, username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn one_address_locks_only_itself() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(l.check(ip(1), "bob"), Verdict::Go);
            l.record_failure(ip(1), "bob");
        }
        assert!(matches!(l.check(ip(1), "bob"), Verdict::Refuse(_)));
        // bob from his own address is slowed (the name is under attack), never refused.
        assert!(matches!(l.check(ip(2), "bob"), Verdict::After(_)));
        // Another name from the guessing address is still allowed, up to the address limit.
        assert_eq!(l.check(ip(1), "alice"), Verdict::Go);
        l.record_success(ip(1), "bob");
        assert!(!matches!(l.check(ip(1), "bob"), Verdict::Refuse(_)));
    }

    #[test]
    fn many_addresses_slow_a_name_down_but_never_lock_it() {
        let l = LoginLimiter::new(10, Duration::from_secs(60));
        for n in 0..100u8 {
            l.record_failure(ip(n), "admin");
        }
        match l.check(ip(200), "admin") {
            Verdict::After(d) => assert_eq!(d, MAX_DELAY),
            other => panic!("expected a delay, got {other:?}"),
        }
    }

    #[test]
    fn an_address_guessing_many_names_is_refused() {
        let l = LoginLimiter::new(2, Duration::from_secs(60));
        for i in 0..(2 * ADDRESS_FACTOR) {
            l.record_failure(ip(1), &format!("user{i}"));
        }
        assert!(matches!(l.check(ip(1), "fresh"), Verdict::Refuse(_)));
        assert_eq!(l.check(ip(2), "fresh"), Verdict::Go);
    }

    #[test]
    fn window_expiry() {
        let l = LoginLimiter::new(1, Duration::from_millis(20));
        l.record_failure(ip(1), "x");
        assert!(matches!(l.check(ip(1), "x"), Verdict::Refuse(_)));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(l.check(ip(1), "x"), Verdict::Go);
    }
}
