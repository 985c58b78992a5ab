//! Each device's power history: when it came online and when it went away
//! (docs/protocol/control.md §2.7).

use super::{Store, StoreResult};

/// One change of a device's power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerChange {
    pub time_ms: i64,
    /// MeshCentral's power states: 0 unknown/offline, 1 powered (agent connected).
    pub power: i64,
}

impl Store {
    pub async fn insert_power_change(&self, node_id: &str, change: PowerChange) -> StoreResult<()> {
        sqlx::query("INSERT INTO power_history (node_id, time_ms, power) VALUES ($1, $2, $3)")
            .bind(node_id)
            .bind(change.time_ms)
            .bind(change.power)
            .execute(&self.pool)
            .await?;
        super::health::wrote();
        Ok(())
    }

    /// The changes at or after `since_ms`, oldest first, preceded by the last change before
    /// it (the state the window starts in), if any.
    pub async fn power_changes(
        &self,
        node_id: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<PowerChange>> {
        let before: Option<(i64, i64)> = sqlx::query_as(
            "SELECT time_ms, power FROM power_history WHERE node_id = $1 AND time_ms < $2 \
             ORDER BY time_ms DESC LIMIT 1",
        )
        .bind(node_id)
        .bind(since_ms)
        .fetch_optional(&self.pool)
        .await?;
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT time_ms, power FROM power_history WHERE node_id = $1 AND time_ms >= $2 \
             ORDER BY time_ms ASC",
        )
        .bind(node_id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(before
            .into_iter()
            .chain(rows)
            .map(|(time_ms, power)| PowerChange { time_ms, power })
            .collect())
    }

    /// Records `power` 0 at `time_ms` for every device whose last change left it on: the
    /// server stopped without seeing those agents go (crash, kill), so they are no longer
    /// connected. Returns how many.
    pub async fn close_power_history(&self, time_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "INSERT INTO power_history (node_id, time_ms, power) \
             SELECT p.node_id, $1, 0 FROM power_history p WHERE p.power <> 0 AND p.time_ms = \
             (SELECT MAX(q.time_ms) FROM power_history q WHERE q.node_id = p.node_id)",
        )
        .bind(time_ms)
        .execute(&self.pool)
        .await?;
        super::health::wrote();
        Ok(done.rows_affected())
    }

    /// Deletes changes older than `before_ms`, except each device's newest one (it still
    /// says what state the device is in).
    pub async fn prune_power_history(&self, before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM power_history WHERE time_ms < $1 AND time_ms < \
             (SELECT MAX(q.time_ms) FROM power_history q WHERE q.node_id = power_history.node_id)",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
