//! Session recordings: where each file is, and what session it is of.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreResult};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordingRecord {
    /// Random hex; also the file's name.
    pub id: String,
    pub node_id: Option<String>,
    pub group_id: Option<String>,
    pub user_id: String,
    pub username: String,
    /// The relay protocol recorded (1 terminal, later 2 desktop).
    pub protocol: i64,
    /// `asciicast-v2` for terminals.
    pub format: String,
    /// The file's name in the recordings folder.
    pub file: String,
    pub size: i64,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// The audit record of the session's end.
    pub event_id: Option<String>,
}

const COLUMNS: &str = "id, node_id, group_id, user_id, username, protocol, format, file, size, \
                       started_ms, ended_ms, event_id";

fn from_row(row: &AnyRow) -> Result<RecordingRecord, sqlx::Error> {
    Ok(RecordingRecord {
        id: row.try_get("id")?,
        node_id: row.try_get("node_id")?,
        group_id: row.try_get("group_id")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        protocol: row.try_get("protocol")?,
        format: row.try_get("format")?,
        file: row.try_get("file")?,
        size: row.try_get("size")?,
        started_ms: row.try_get("started_ms")?,
        ended_ms: row.try_get("ended_ms")?,
        event_id: row.try_get("event_id")?,
    })
}

impl Store {
    pub async fn insert_recording(&self, r: &RecordingRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO recordings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&r.id)
        .bind(&r.node_id)
        .bind(&r.group_id)
        .bind(&r.user_id)
        .bind(&r.username)
        .bind(r.protocol)
        .bind(&r.format)
        .bind(&r.file)
        .bind(r.size)
        .bind(r.started_ms)
        .bind(r.ended_ms)
        .bind(&r.event_id)
        .execute(&self.pool)
        .await?;
        super::health::wrote();
        Ok(())
    }

    pub async fn recording(&self, id: &str) -> StoreResult<Option<RecordingRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM recordings WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Newest first; of one device when `node_id` is given.
    pub async fn recordings(
        &self,
        node_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<RecordingRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE ($1 = '' OR node_id = $1) \
             ORDER BY started_ms DESC, id DESC LIMIT $2"
        ))
        .bind(node_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Removes the records of recordings started before `before_ms`; returns their files.
    pub async fn prune_recordings(&self, before_ms: i64) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT file FROM recordings WHERE started_ms < $1")
                .bind(before_ms)
                .fetch_all(&self.pool)
                .await?;
        sqlx::query("DELETE FROM recordings WHERE started_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
