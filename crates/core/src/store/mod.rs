//! Persistence. One [`Store`] over `sqlx::Any`, so the same SQL text and the same
//! migrations run on SQLite (default, a file in the data folder, WAL) and PostgreSQL
//! (selected by a `postgres://` URL).
//!
//! Portability rules every query here follows: `$N` placeholders (both drivers take them),
//! only `TEXT` and `BIGINT` columns (no booleans, no serial ids, no JSON types), times as
//! Unix milliseconds, `INSERT … ON CONFLICT` for upserts. The store tests run against both
//! databases.

pub mod devices;
pub mod events;
pub mod gateways;
mod groups;
mod health;
mod migrations;
pub mod power;
mod recordings;
mod sessions;
mod settings;
mod timed;
mod twofactor;
mod usergroups;
mod users;

#[cfg(test)]
mod portability_tests;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::ConnectOptions;

pub use devices::{DeviceLink, DeviceRecord};
pub use events::EventRecord;
pub use groups::{DeviceGroup, GroupMember};
pub use recordings::RecordingRecord;
pub use sessions::{LoginToken, WebSession};
pub use twofactor::Passkey;
pub use usergroups::{UserGroup, UserGroupLink};
pub use users::User;

/// Which database is underneath; only `migrations` and connection set-up look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: timed::TimedPool,
    backend: Backend,
}

/// Errors the domain layer distinguishes; everything else is an I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    /// The database cannot be reached: down, restarting, its connections lost, or no
    /// connection free within the pool's wait. Nothing was changed; retrying later works.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// The database cannot grow: its disk, a quota or the process's file-size limit is full.
    /// The transaction was rolled back; reads still work.
    #[error("storage full: {0}")]
    StorageFull(sqlx::Error),
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

/// A condition of the database that refuses requests until it ends, as opposed to an error
/// of one request. Its `Display` is the text clients get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    Unreachable,
    StorageFull,
}

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outage::Unreachable => "Database unavailable: try again in a few seconds",
            Outage::StorageFull => {
                "Storage full: the server's disk has no room for this change; nothing was saved"
            }
        })
    }
}

impl Outage {
    /// What the operator reads in the log, once per episode (see `health`).
    fn log_text(self) -> &'static str {
        match self {
            Outage::Unreachable => {
                "database unavailable: requests that need it are refused until it is back"
            }
            Outage::StorageFull => {
                "database storage full (no space left on the disk, or a quota or file-size \
                 limit reached): writes are refused until space is freed; reads still work"
            }
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let Some(outage) = outage_of(&e) else {
            crate::observe::failed(crate::observe::DbFailure::Other);
            return StoreError::Db(e);
        };
        health::failed(outage, &e);
        crate::observe::failed(match outage {
            Outage::Unreachable => crate::observe::DbFailure::Unavailable,
            Outage::StorageFull => crate::observe::DbFailure::StorageFull,
        });
        match outage {
            Outage::Unreachable => StoreError::Unavailable(e),
            Outage::StorageFull => StoreError::StorageFull(e),
        }
    }
}

/// Which outage an error is a symptom of, if any.
fn outage_of(e: &sqlx::Error) -> Option<Outage> {
    match e {
        // The server went away (connection refused or reset, EOF mid-query) or never answered
        // within the pool's wait.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Some(Outage::Unreachable),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            match code.as_ref() {
                // SQLite (extended result codes): SQLITE_FULL (ENOSPC, or a write cut short),
                // SQLITE_IOERR_WRITE (EFBIG past RLIMIT_FSIZE, EDQUOT, EIO),
                // SQLITE_IOERR_SHMSIZE (the shared-memory file could not grow).
                "13" | "778" | "4874" => Some(Outage::StorageFull),
                // PostgreSQL: disk_full.
                "53100" => Some(Outage::StorageFull),
                // PostgreSQL: connection exceptions (class 08), admin_shutdown, crash_shutdown,
                // cannot_connect_now (starting up or shutting down), too_many_connections.
                c if c.starts_with("08") => Some(Outage::Unreachable),
                "57P01" | "57P02" | "57P03" | "53300" => Some(Outage::Unreachable),
                _ => None,
            }
        }
        _ => None,
    }
}

impl StoreError {
    fn from_insert(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::from(e),
        }
    }

    /// The same error for another waiter of the same failed operation (sqlx errors cannot
    /// be cloned): same kind, same text.
    pub fn again(&self) -> StoreError {
        let text = || sqlx::Error::Protocol(self.to_string());
        match self {
            StoreError::Conflict => StoreError::Conflict,
            StoreError::Unavailable(_) => StoreError::Unavailable(text()),
            StoreError::StorageFull(_) => StoreError::StorageFull(text()),
            StoreError::Db(_) => StoreError::Db(text()),
        }
    }

    /// The outage this error is a symptom of; such errors are logged once per episode by the
    /// store, so callers should not log each of them again.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            StoreError::Unavailable(_) => Some(Outage::Unreachable),
            StoreError::StorageFull(_) => Some(Outage::StorageFull),
            StoreError::Conflict | StoreError::Db(_) => None,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Longest wait for a pooled connection; see `Store::open`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL (use sqlite://… or postgres://…): {url}");
        };
        let options = AnyConnectOptions::from_str(url)
            .with_context(|| format!("parsing database URL {}", redact(url)))?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time anyway; a few readers alongside in WAL mode.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            // While the database is unreachable a request waits this long (the pool retries
            // the connection meanwhile), then gets "Database unavailable" rather than hanging.
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A pooled connection is pinged before use, so connections a database restart
            // cut are replaced instead of failing the request that draws them.
            .test_before_acquire(true)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        use sqlx::Executor;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    health::connected();
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to {}", redact(url)))?;
        let store = Store {
            pool: timed::TimedPool::new(pool),
            backend,
        };
        migrations::run(&store)
            .await
            .context("bringing the database schema up to date")?;
        Ok(store)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// One trivial round trip.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// SQLite: `PRAGMA integrity_check` ("ok", or what it found, one finding a line).
    /// PostgreSQL checks its pages itself; there every table is read once instead.
    pub async fn integrity_check(&self) -> StoreResult<String> {
        match self.backend {
            Backend::Sqlite => {
                let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n"))
            }
            Backend::Postgres => {
                let tables: Vec<(String,)> = sqlx::query_as(
                    "SELECT table_name::TEXT FROM information_schema.tables \
                     WHERE table_schema = current_schema()",
                )
                .fetch_all(&self.pool)
                .await?;
                for (table,) in tables {
                    sqlx::query(&format!("SELECT count(*) FROM \"{table}\""))
                        .execute(&self.pool)
                        .await?;
                }
                Ok("ok".into())
            }
        }
    }
}

/// Hides a password in a database URL for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Current time in Unix milliseconds, the unit of every time column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@127.0.0.1:5432/db"),
            "postgres://u:***@127.0.0.1:5432/db"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }

    /// SQLITE_FULL, as a database that may not grow returns it (`max_page_count` here; ENOSPC
    /// and writes cut short give the same code), is an outage, not an internal error.
    #[tokio::test]
    async fn a_full_sqlite_database_is_storage_full() {
        use super::{Outage, StoreError};
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&pool)
            .await
            .unwrap();
        sqlx::query(&format!("PRAGMA max_page_count = {}", pages + 2))
            .execute(&pool)
            .await
            .unwrap();
        let mut failure = None;
        for _ in 0..100 {
            let insert = sqlx::query("INSERT INTO t (x) VALUES ($1)")
                .bind("x".repeat(3000))
                .execute(&pool)
                .await;
            if let Err(e) = insert {
                failure = Some(e);
                break;
            }
        }
        let e = StoreError::from(failure.expect("the database never filled up"));
        assert_eq!(e.outage(), Some(Outage::StorageFull), "{e}");
        assert!(e.to_string().contains("(code: 13)"), "{e}");
    }

    /// Losing the server is an outage too: an unreachable PostgreSQL (nothing listens on the
    /// port) ends in the pool's timeout.
    #[tokio::test]
    async fn an_unreachable_database_is_unavailable() {
        use super::{Outage, StoreError};
        sqlx::any::install_default_drivers();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let pool = sqlx::any::AnyPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_millis(300))
            .connect_lazy(&format!("postgres://u@127.0.0.1:{port}/db"))
            .unwrap();
        let e = StoreError::from(sqlx::query("SELECT 1").execute(&pool).await.unwrap_err());
        assert_eq!(e.outage(), Some(Outage::Unreachable), "{e}");
    }
}
