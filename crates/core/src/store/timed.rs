//! The connection pool with a stopwatch: every statement run on it, and every transaction
//! or connection taken from it, is timed for [`crate::observe`]. Store code uses it like
//! the pool itself (`&self.pool` as an executor, `begin`, `acquire`).

use std::ops::{Deref, DerefMut};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Describe, Either, Execute, Executor, Transaction};

use crate::observe::{self, DbWork};

#[derive(Clone, Debug)]
pub struct TimedPool(AnyPool);

/// Reports the time since it was made when dropped.
#[derive(Debug)]
struct Stopwatch(DbWork, Instant);

impl Stopwatch {
    fn start(work: DbWork) -> Stopwatch {
        Stopwatch(work, Instant::now())
    }
}

impl Drop for Stopwatch {
    fn drop(&mut self) {
        observe::timed(self.0, self.1.elapsed());
    }
}

impl TimedPool {
    pub fn new(pool: AnyPool) -> TimedPool {
        TimedPool(pool)
    }

    pub async fn begin(&self) -> Result<TimedTransaction, sqlx::Error> {
        let watch = Stopwatch::start(DbWork::Transaction);
        Ok(TimedTransaction(self.0.begin().await?, watch))
    }

    pub async fn acquire(&self) -> Result<TimedConnection, sqlx::Error> {
        let watch = Stopwatch::start(DbWork::Transaction);
        Ok(TimedConnection {
            conn: self.0.acquire().await?,
            _watch: watch,
        })
    }

    pub async fn close(&self) {
        self.0.close().await;
    }
}

/// A transaction, timed until it is committed or dropped (rolled back).
pub struct TimedTransaction(Transaction<'static, Any>, Stopwatch);

impl TimedTransaction {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let TimedTransaction(tx, _watch) = self;
        tx.commit().await
    }
}

impl Deref for TimedTransaction {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.0
    }
}

impl DerefMut for TimedTransaction {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.0
    }
}

/// A connection taken from the pool, timed until it goes back.
pub struct TimedConnection {
    conn: PoolConnection<Any>,
    /// Reports when the connection goes back to the pool.
    _watch: Stopwatch,
}

impl Deref for TimedConnection {
    type Target = PoolConnection<Any>;
    fn deref(&self) -> &PoolConnection<Any> {
        &self.conn
    }
}

impl DerefMut for TimedConnection {
    fn deref_mut(&mut self) -> &mut PoolConnection<Any> {
        &mut self.conn
    }
}

impl<'p> Executor<'p> for &'_ TimedPool {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let watch = Stopwatch::start(DbWork::Statement);
        // The stopwatch lives as long as the stream: until the last row was read.
        (&self.0)
            .fetch_many(query)
            .map(move |item| {
                let _ = &watch;
                item
            })
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let watch = Stopwatch::start(DbWork::Statement);
        (&self.0)
            .fetch_optional(query)
            .map(move |result| {
                drop(watch);
                result
            })
            .boxed()
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.0).prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.0).describe(sql)
    }
}
