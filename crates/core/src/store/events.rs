//! The event log: the audit trail and `listevents`.
//!
//! Every stored event is a link of a hash chain: it carries a sequence number, the hash of
//! the record before it and its own hash over its content and that link, so editing,
//! removing or inserting a record breaks the chain where it happened. The head of the
//! chain (last sequence number and hash) is a row of `settings`, updated in the same
//! transaction as the records, which also serializes appends between servers sharing a
//! PostgreSQL database (the update locks that row until commit).

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreResult};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// `settings` row holding `<seq> <hash>` of the last record.
const HEAD: &str = "audit_head";
/// `settings` row holding the last sequence number removed by retention.
const PRUNED_THROUGH: &str = "audit_pruned_through";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventRecord {
    pub id: String,
    /// Position in the chain, from 1; 0 until stored.
    pub seq: i64,
    pub time_ms: i64,
    /// `user`, `mesh`, `node`, `server`, `relay`, `wifidog`.
    pub etype: String,
    pub action: String,
    /// The user the event is about or who caused it.
    pub user_id: Option<String>,
    pub group_id: Option<String>,
    pub node_id: Option<String>,
    pub msg: String,
    /// The whole event as sent to consoles (JSON object text).
    pub body: String,
    /// Where the user was (IP address), when a user caused it.
    pub remote_addr: Option<String>,
    /// The client program (browser user agent, meshctrl, the ironmesh CLI).
    pub user_agent: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Who the event is for besides its group: user ids, and `*users` (user managers), as
    /// `,a,b,` (so a `LIKE '%,id,%'` finds one).
    pub targets: String,
    pub prev_hash: String,
    pub hash: String,
}

impl EventRecord {
    /// The hash this record must carry after `prev_hash`: SHA-256 over the link and every
    /// field but the hash itself, serialized as one JSON array (unambiguous, stable).
    pub fn chain_hash(&self, prev_hash: &str) -> String {
        let content = serde_json::json!([
            self.seq,
            self.id,
            self.time_ms,
            self.etype,
            self.action,
            self.user_id,
            self.group_id,
            self.node_id,
            self.msg,
            self.body,
            self.remote_addr,
            self.user_agent,
            self.outcome,
            self.targets,
        ]);
        let mut h = Sha256::new();
        h.update(prev_hash.as_bytes());
        h.update(b"\n");
        h.update(content.to_string().as_bytes());
        crate::hex(&h.finalize())
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter<'a> {
    pub node_id: Option<&'a str>,
    /// Events caused by or about this user.
    pub user_id: Option<&'a str>,
    pub group_id: Option<&'a str>,
    pub action: Option<&'a str>,
    /// Unix ms, inclusive.
    pub since_ms: Option<i64>,
    /// Unix ms, exclusive.
    pub until_ms: Option<i64>,
    /// `Some(user)`: only events that user may see: those they caused or that are for
    /// them, those for user managers when `manages_users`, and those of groups they are a
    /// member of and of devices linked to them (where they have "only own events", only
    /// their own and those no user caused). `None`: everything (site administrators).
    pub visible_to: Option<&'a str>,
    pub manages_users: bool,
    pub limit: i64,
}

const COLUMNS: &str = "id, seq, time_ms, etype, action, user_id, group_id, node_id, msg, body, \
                       remote_addr, user_agent, outcome, targets, prev_hash, hash";

fn from_row(row: &AnyRow) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        id: row.try_get("id")?,
        seq: row.try_get::<Option<i64>, _>("seq")?.unwrap_or(0),
        time_ms: row.try_get("time_ms")?,
        etype: row.try_get("etype")?,
        action: row.try_get("action")?,
        user_id: row.try_get("user_id")?,
        group_id: row.try_get("group_id")?,
        node_id: row.try_get("node_id")?,
        msg: row.try_get("msg")?,
        body: row.try_get("body")?,
        remote_addr: row.try_get("remote_addr")?,
        user_agent: row.try_get("user_agent")?,
        outcome: row.try_get("outcome")?,
        targets: row
            .try_get::<Option<String>, _>("targets")?
            .unwrap_or_default(),
        prev_hash: row
            .try_get::<Option<String>, _>("prev_hash")?
            .unwrap_or_default(),
        hash: row
            .try_get::<Option<String>, _>("hash")?
            .unwrap_or_default(),
    })
}

/// `text` as a literal inside a `LIKE` pattern whose escape character is `!`.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// The last link of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

fn parse_head(text: &str) -> Option<ChainHead> {
    let (seq, hash) = text.split_once(' ')?;
    Some(ChainHead {
        seq: seq.parse().ok()?,
        hash: hash.to_string(),
    })
}

impl Store {
    /// Appends records to the chain in one transaction, filling in their `seq`,
    /// `prev_hash` and `hash`.
    pub async fn append_events(&self, records: &mut [EventRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        let result = append_in(&mut conn, records).await;
        if result.is_err() {
            // See `Store::insert_group`: a connection whose transaction SQLite rolled back
            // by itself is not reused.
            conn.close_on_drop();
        }
        result
    }

    /// Newest first.
    pub async fn events(&self, f: &EventFilter<'_>) -> StoreResult<Vec<EventRecord>> {
        // Empty strings and zeros stand for "no filter" so the statement text stays fixed.
        // Visibility: the user's own events, and events of their groups and of the devices
        // linked to them, except in groups where their rights have LIMIT_EVENTS (8192)
        // without being full (all ones), and on linked devices whose link has it: there
        // only events caused by them or by no one. (A device link is never full.)
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events \
             WHERE ($1 = '' OR node_id = $1) \
             AND ($2 = '' OR user_id = $2 OR targets LIKE $11 ESCAPE '!') \
             AND ($3 = '' OR group_id = $3) AND ($4 = '' OR action = $4) \
             AND ($5 = 0 OR time_ms >= $5) AND ($6 = 0 OR time_ms < $6) \
             AND ($7 = '' OR user_id = $7 \
               OR targets LIKE $9 ESCAPE '!' \
               OR ($10 = 1 AND targets LIKE '%,*users,%') \
               OR group_id IN (SELECT group_id FROM group_members WHERE user_id = $7 \
                   AND (rights = 4294967295 OR (rights & 8192) = 0)) \
               OR (group_id IN (SELECT group_id FROM group_members WHERE user_id = $7) \
                   AND (user_id IS NULL OR user_id = '')) \
               OR node_id IN (SELECT node_id FROM device_members WHERE user_id = $7 \
                   AND (rights & 8192) = 0) \
               OR (node_id IN (SELECT node_id FROM device_members WHERE user_id = $7) \
                   AND (user_id IS NULL OR user_id = ''))) \
             ORDER BY time_ms DESC, id DESC LIMIT $8"
        ))
        .bind(f.node_id.unwrap_or(""))
        .bind(f.user_id.unwrap_or(""))
        .bind(f.group_id.unwrap_or(""))
        .bind(f.action.unwrap_or(""))
        .bind(f.since_ms.unwrap_or(0))
        .bind(f.until_ms.unwrap_or(0))
        .bind(f.visible_to.unwrap_or(""))
        .bind(f.limit)
        .bind(format!("%,{},%", like_escape(f.visible_to.unwrap_or(""))))
        .bind(i64::from(f.manages_users))
        .bind(format!("%,{},%", like_escape(f.user_id.unwrap_or(""))))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Chained records with `seq` greater than `after`, oldest first, at most `limit`.
    pub async fn chain_after(&self, after: i64, limit: i64) -> StoreResult<Vec<EventRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// The chain's head, and the last sequence number retention removed (0 if none).
    pub async fn chain_state(&self) -> StoreResult<(Option<ChainHead>, i64)> {
        let head = self.setting(HEAD).await?.as_deref().and_then(parse_head);
        let pruned = self
            .setting(PRUNED_THROUGH)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok((head, pruned))
    }

    /// Removes events older than `before_ms` (retention), remembering how far the chain
    /// was cut so the verification can tell pruning from tampering. Returns how many.
    pub async fn prune_events(&self, before_ms: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let last: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT MAX(seq) FROM events WHERE time_ms < $1")
                .bind(before_ms)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(last) = last.and_then(|r| r.0) else {
            return Ok(0);
        };
        let done =
            sqlx::query("DELETE FROM events WHERE seq <= $1 OR (seq IS NULL AND time_ms < $2)")
                .bind(last)
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(PRUNED_THROUGH)
        .bind(last.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

/// The transaction of [`Store::append_events`].
async fn append_in(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    records: &mut [EventRecord],
) -> StoreResult<()> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(HEAD)
        .bind(format!("0 {GENESIS}"))
        .execute(&mut *tx)
        .await?;
    // Writing the head row first takes its lock (PostgreSQL) or the write lock (SQLite)
    // before it is read, so two appenders never build on the same head.
    sqlx::query("UPDATE settings SET value = value WHERE name = $1")
        .bind(HEAD)
        .execute(&mut *tx)
        .await?;
    let (head,): (String,) = sqlx::query_as("SELECT value FROM settings WHERE name = $1")
        .bind(HEAD)
        .fetch_one(&mut *tx)
        .await?;
    let mut head = parse_head(&head).ok_or_else(|| {
        sqlx::Error::Protocol(format!("the audit chain head is unreadable: {head:?}"))
    })?;
    for r in records.iter_mut() {
        r.seq = head.seq + 1;
        r.prev_hash = head.hash.clone();
        r.hash = r.chain_hash(&r.prev_hash);
        sqlx::query(&format!(
            "INSERT INTO events ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&r.id)
        .bind(r.seq)
        .bind(r.time_ms)
        .bind(&r.etype)
        .bind(&r.action)
        .bind(&r.user_id)
        .bind(&r.group_id)
        .bind(&r.node_id)
        .bind(&r.msg)
        .bind(&r.body)
        .bind(&r.remote_addr)
        .bind(&r.user_agent)
        .bind(&r.outcome)
        .bind(&r.targets)
        .bind(&r.prev_hash)
        .bind(&r.hash)
        .execute(&mut *tx)
        .await?;
        head = ChainHead {
            seq: r.seq,
            hash: r.hash.clone(),
        };
    }
    sqlx::query("UPDATE settings SET value = $2 WHERE name = $1")
        .bind(HEAD)
        .bind(format!("{} {}", head.seq, head.hash))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    super::health::wrote();
    Ok(())
}
