//! Reconnect pacing (docs/protocol/agent.md §1): the first retry after 0.5–2 s, then doubling with
//! jitter up to a cap of 4–6 minutes; reset only after a successful authentication. The
//! jitter spreads a fleet's reconnects after a server restart.

use std::time::Duration;

use rand::Rng;

pub struct Backoff {
    next: Duration,
    /// This agent's cap, chosen once in 4..6 min so agents do not align at the cap.
    cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        let mut rng = rand::thread_rng();
        Backoff {
            next: Self::first(&mut rng),
            cap: Duration::from_millis(rng.gen_range(240_000..=360_000)),
        }
    }

    fn first(rng: &mut impl Rng) -> Duration {
        Duration::from_millis(rng.gen_range(500..=2000))
    }

    /// The delay before the next attempt; grows for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let mut rng = rand::thread_rng();
        let delay = self.next.min(self.cap);
        let factor = rng.gen_range(1.5..2.5);
        self.next =
            Duration::from_secs_f64((delay.as_secs_f64() * factor).min(self.cap.as_secs_f64()));
        delay
    }

    /// After a successful authentication.
    pub fn reset(&mut self) {
        self.next = Self::first(&mut rand::thread_rng());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_a_cap_and_resets() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(2));
        let mut last = first;
        for _ in 0..30 {
            last = b.next_delay();
        }
        assert!(
            last >= Duration::from_secs(240) && last <= Duration::from_secs(360),
            "{last:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(2));
    }
}
