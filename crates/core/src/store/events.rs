//! The event log (audit trail and `listevents`).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: String,
    pub time_ms: i64,
    /// `user`, `mesh`, `node`, `server`.
    pub etype: String,
    pub action: String,
    /// The user the event is about or who caused it.
    pub user_id: Option<String>,
    pub group_id: Option<String>,
    pub node_id: Option<String>,
    pub msg: String,
    /// The whole event as sent to consoles (JSON object text).
    pub body: String,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter<'a> {
    pub node_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    /// `Some(user)`: only events that user may see (their own, or of groups they are a
    /// member of). `None`: everything (site administrators).
    pub visible_to: Option<&'a str>,
    pub limit: i64,
}

fn from_row(row: &AnyRow) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        id: row.try_get("id")?,
        time_ms: row.try_get("time_ms")?,
        etype: row.try_get("etype")?,
        action: row.try_get("action")?,
        user_id: row.try_get("user_id")?,
        group_id: row.try_get("group_id")?,
        node_id: row.try_get("node_id")?,
        msg: row.try_get("msg")?,
        body: row.try_get("body")?,
    })
}

impl Store {
    pub async fn insert_event(&self, e: &EventRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO events (id, time_ms, etype, action, user_id, group_id, node_id, msg, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&e.id)
        .bind(e.time_ms)
        .bind(&e.etype)
        .bind(&e.action)
        .bind(&e.user_id)
        .bind(&e.group_id)
        .bind(&e.node_id)
        .bind(&e.msg)
        .bind(&e.body)
        .execute(&self.pool)
        .await?;
        super::health::wrote();
        Ok(())
    }

    /// Newest first.
    pub async fn events(&self, f: &EventFilter<'_>) -> StoreResult<Vec<EventRecord>> {
        // Empty strings stand for "no filter" so the statement text stays fixed.
        let rows = sqlx::query(
            "SELECT id, time_ms, etype, action, user_id, group_id, node_id, msg, body FROM events \
             WHERE ($1 = '' OR node_id = $1) AND ($2 = '' OR user_id = $2) AND \
             ($3 = '' OR user_id = $3 OR group_id IN \
               (SELECT group_id FROM group_members WHERE user_id = $3)) \
             ORDER BY time_ms DESC, id DESC LIMIT $4",
        )
        .bind(f.node_id.unwrap_or(""))
        .bind(f.user_id.unwrap_or(""))
        .bind(f.visible_to.unwrap_or(""))
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }
}
