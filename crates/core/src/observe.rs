//! A way for the process that runs the domain to watch its database work without the
//! domain knowing how it is reported: the server installs one [`DatabaseObserver`] (its
//! metrics) at start-up. Process-wide, like the store's outage log (`store::health`): a
//! server process serves one database.
//!
//! The calls happen on the path of every statement, so an observer must be quick and must
//! not block (atomic counters, no locks, no I/O).

use std::sync::OnceLock;
use std::time::Duration;

/// What was timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbWork {
    /// One statement run on a pooled connection (including the wait for the connection).
    Statement,
    /// A transaction or a connection held for several statements, from the moment it was
    /// asked for to the moment it was committed or given back.
    Transaction,
}

/// Why a database request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// The database cannot be reached (down, restarting, no connection within the wait).
    Unavailable,
    /// Its storage is full.
    StorageFull,
    /// Any other error (constraint violations the domain expects, such as a name already
    /// taken, are not failures and are not reported).
    Other,
}

/// Receives the timings and failures of the store.
pub trait DatabaseObserver: Send + Sync {
    fn timed(&self, work: DbWork, elapsed: Duration);
    fn failed(&self, failure: DbFailure);
}

static OBSERVER: OnceLock<&'static dyn DatabaseObserver> = OnceLock::new();

/// Installs the process's observer; the first call wins (later ones are ignored, so a test
/// that starts several domains in one process keeps the first).
pub fn observe_database(observer: &'static dyn DatabaseObserver) {
    let _ = OBSERVER.set(observer);
}

pub(crate) fn timed(work: DbWork, elapsed: Duration) {
    if let Some(o) = OBSERVER.get() {
        o.timed(work, elapsed);
    }
}

pub(crate) fn failed(failure: DbFailure) {
    if let Some(o) = OBSERVER.get() {
        o.failed(failure);
    }
}
