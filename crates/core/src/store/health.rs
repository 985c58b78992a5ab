//! The database's condition as the operator reads it in the log. An outage — the database
//! unreachable, or its storage full — makes every request of a kind fail; it is logged once
//! when first seen, reminded of at most once a minute while it lasts (with the number of
//! refused requests), and logged once more when it is over. Callers that report a failed
//! request to a client leave outages out of their own logging ([`super::StoreError::outage`]).
//!
//! Process-wide on purpose: a server process serves one database.
//!
//! The end is noticed, not polled: a new connection ends `Unreachable` (the pool's
//! `after_connect`), a successful write ends either ([`wrote`], called by the writes that
//! happen after almost every change: the event log and agent reports).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Outage;

/// How often a lasting outage is logged again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

struct Episode {
    outage: Outage,
    since: Instant,
    /// Requests refused since the start.
    refused: u64,
    reminded: Instant,
}

static EPISODE: Mutex<Option<Episode>> = Mutex::new(None);
/// Fast path for [`wrote`] and [`connected`]: no lock unless an outage is on.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Records a request refused by an outage; logs the first of an episode.
pub(super) fn failed(outage: Outage, error: &sqlx::Error) {
    let mut episode = EPISODE.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    match episode.as_mut() {
        Some(e) if e.outage == outage => {
            e.refused += 1;
            if now.duration_since(e.reminded) >= REMIND_EVERY {
                tracing::error!(
                    lasting_secs = now.duration_since(e.since).as_secs(),
                    refused = e.refused,
                    %error,
                    "{} (still)",
                    outage.log_text()
                );
                e.reminded = now;
            }
        }
        _ => {
            tracing::error!(%error, "{}", outage.log_text());
            *episode = Some(Episode {
                outage,
                since: now,
                refused: 1,
                reminded: now,
            });
            ACTIVE.store(true, Ordering::Release);
        }
    }
}

/// A new database connection works: the end of an `Unreachable` episode.
pub(super) fn connected() {
    ended(|outage| outage == Outage::Unreachable);
}

/// A write went through: the end of any episode.
pub(super) fn wrote() {
    ended(|_| true);
}

fn ended(is_over: impl Fn(Outage) -> bool) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    let mut episode = EPISODE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(e) = episode.take_if(|e| is_over(e.outage)) else {
        return;
    };
    ACTIVE.store(false, Ordering::Release);
    tracing::warn!(
        lasted_secs = e.since.elapsed().as_secs(),
        refused = e.refused,
        "{}",
        match e.outage {
            Outage::Unreachable => "database reachable again",
            Outage::StorageFull => "database storage writable again",
        }
    );
}
