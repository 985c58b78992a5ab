//! Events: every change is announced on a live bus to connected consoles, each of which
//! shows only what its user may see ([`crate::access::Actor::may_see`]), and (unless it is
//! high-frequency live state) stored in the event log, which is the audit trail: who (user,
//! address, client), what, on which user, group or device, when, and with what outcome.
//!
//! Stored events form a hash chain (`store::events`); [`Domain::verify_audit_chain`] checks
//! it. Appends go through one writer task that commits whatever has queued up in one
//! transaction, so a storm of agent connections costs few database round trips.
//!
//! The bus is in-process today. With several servers on one PostgreSQL the same `publish`
//! is where a `NOTIFY` fan-out plugs in; nothing else needs to change.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::access::{Actor, Origin};
use crate::store::events::{EventFilter, GENESIS};
use crate::store::{now_ms, EventRecord, Store, StoreError};
use crate::{Domain, DomainResult};

/// Every open session of `user_id` must end (its credentials changed, or the account is
/// gone), except the control session `keep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndSessions {
    pub user_id: String,
    pub keep: Option<String>,
    /// The close reason sessions get.
    pub reason: &'static str,
}

/// One event, as stored and as pushed (`{"action":"event","event":{…}}`).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub time_ms: i64,
    /// `user`, `mesh`, `node`, `server`, `relay`, `wifidog`.
    pub etype: &'static str,
    pub action: String,
    /// Who caused it.
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub group_id: Option<String>,
    pub node_id: Option<String>,
    pub msg: String,
    /// Where the user who caused it was, and with which client.
    pub origin: Origin,
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// Further fields pushed to consoles (e.g. the changed object).
    pub extra: Map<String, Value>,
    /// Who may see it: user ids, group ids, or `*users`.
    pub targets: Vec<String>,
    /// Written to the event log (false for high-frequency live state such as "online").
    pub persist: bool,
    /// Sessions of a user this change ends (not shown to anyone).
    pub ends_sessions: Option<EndSessions>,
    /// The frame pushed to consoles, serialized once however many consoles receive it.
    wire: std::sync::OnceLock<String>,
    /// When [`Domain::publish`] took it (for the fan-out latency the server measures).
    published: Option<std::time::Instant>,
}

impl Event {
    pub fn new(etype: &'static str, action: &str, msg: impl Into<String>) -> Event {
        Event {
            id: crate::hex(&crate::random_bytes::<12>()),
            time_ms: now_ms(),
            etype,
            action: action.to_string(),
            user_id: None,
            username: None,
            group_id: None,
            node_id: None,
            msg: msg.into(),
            origin: Origin::default(),
            outcome: "success",
            extra: Map::new(),
            targets: Vec::new(),
            persist: true,
            ends_sessions: None,
            wire: std::sync::OnceLock::new(),
            published: None,
        }
    }

    /// Time since [`Domain::publish`] took this event (`None` before it was published).
    pub fn since_published(&self) -> Option<std::time::Duration> {
        self.published.map(|at| at.elapsed())
    }

    /// `{"action":"event","event":{…}}` as text, built on first use.
    pub fn wire_text(&self) -> &str {
        self.wire.get_or_init(|| {
            serde_json::json!({ "action": "event", "event": self.to_json() }).to_string()
        })
    }

    pub fn by(mut self, user_id: &str, username: &str) -> Event {
        self.user_id = Some(user_id.to_string());
        self.username = Some(username.to_string());
        self
    }

    /// Caused by `actor`, from where they are.
    pub fn by_actor(self, actor: &Actor) -> Event {
        let origin = actor.origin.clone();
        self.by(&actor.user.id, &actor.user.name).from(origin)
    }

    /// From this address and client (for events without an actor, e.g. failed sign-ins).
    pub fn from(mut self, origin: Origin) -> Event {
        self.origin = origin;
        self
    }

    /// Records a refused or failed attempt.
    pub fn failed(mut self) -> Event {
        self.outcome = "failure";
        self
    }

    pub fn group(mut self, group_id: &str) -> Event {
        self.group_id = Some(group_id.to_string());
        self.targets.push(group_id.to_string());
        self
    }

    pub fn node(mut self, node_id: &str) -> Event {
        self.node_id = Some(node_id.to_string());
        self
    }

    pub fn target(mut self, target: &str) -> Event {
        self.targets.push(target.to_string());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn live_only(mut self) -> Event {
        self.persist = false;
        self
    }

    /// The `event` object consoles receive; `time` is an ISO-8601 string (meshctrl prints
    /// it as text).
    pub fn to_json(&self) -> Value {
        let mut obj = self.extra.clone();
        obj.insert("etype".into(), self.etype.into());
        obj.insert("action".into(), self.action.clone().into());
        obj.insert("msg".into(), self.msg.clone().into());
        obj.insert("time".into(), iso_time(self.time_ms).into());
        if let Some(v) = &self.user_id {
            obj.insert("userid".into(), v.clone().into());
        }
        if let Some(v) = &self.username {
            obj.insert("username".into(), v.clone().into());
        }
        if let Some(v) = &self.group_id {
            obj.insert("meshid".into(), v.clone().into());
        }
        if let Some(v) = &self.node_id {
            obj.insert("nodeid".into(), v.clone().into());
        }
        if let Some(v) = &self.origin.addr {
            obj.insert("remoteaddr".into(), v.clone().into());
        }
        if let Some(v) = &self.origin.user_agent {
            obj.insert("useragent".into(), v.clone().into());
        }
        if self.outcome != "success" {
            obj.insert("outcome".into(), self.outcome.into());
        }
        Value::Object(obj)
    }

    fn record(&self) -> EventRecord {
        EventRecord {
            id: self.id.clone(),
            time_ms: self.time_ms,
            etype: self.etype.to_string(),
            action: self.action.clone(),
            user_id: self.user_id.clone(),
            group_id: self.group_id.clone(),
            node_id: self.node_id.clone(),
            msg: self.msg.clone(),
            body: self.to_json().to_string(),
            remote_addr: self.origin.addr.clone(),
            user_agent: self.origin.user_agent.clone(),
            outcome: self.outcome.to_string(),
            // Group targets are the record's group; user targets are kept.
            targets: format!(
                ",{},",
                self.targets
                    .iter()
                    .filter(|t| !t.starts_with("mesh/"))
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            ..Default::default()
        }
    }
}

/// ISO-8601 UTC with milliseconds, e.g. `2026-11-23T18:21:19.123Z`.
pub fn iso_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Most records one append transaction takes.
const APPEND_BATCH: usize = 256;

type Append = (EventRecord, oneshot::Sender<Result<(), StoreError>>);

/// The one writer of the event log: appends queue here and are committed together.
#[derive(Clone)]
struct AuditWriter {
    queue: mpsc::UnboundedSender<Append>,
}

impl AuditWriter {
    fn start(store: Store) -> AuditWriter {
        let (queue, mut pending) = mpsc::unbounded_channel::<Append>();
        tokio::spawn(async move {
            while let Some(first) = pending.recv().await {
                let mut batch = vec![first];
                while batch.len() < APPEND_BATCH {
                    match pending.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (mut records, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let result = store.append_events(&mut records).await;
                for waiter in waiters {
                    let _ = waiter.send(match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(e.again()),
                    });
                }
            }
        });
        AuditWriter { queue }
    }

    async fn append(&self, record: EventRecord) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        if self.queue.send((record, done)).is_err() {
            return Err(StoreError::Db(sqlx::Error::PoolClosed));
        }
        result
            .await
            .unwrap_or(Err(StoreError::Db(sqlx::Error::PoolClosed)))
    }
}

/// Fan-out of events to every connected console, and the way into the event log.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
    log: AuditWriter,
}

impl EventBus {
    /// A bus writing to `store`'s event log (starts the writer task: call it inside the
    /// async runtime).
    pub(crate) fn new(store: Store) -> EventBus {
        // A console that falls this far behind is told it lagged and keeps going.
        let (sender, _) = broadcast::channel(4096);
        EventBus {
            sender,
            log: AuditWriter::start(store),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Stores (if persistent) and broadcasts. A storage failure is logged, not returned:
    /// the change it reports has already happened.
    pub(crate) async fn publish(&self, mut event: Event) {
        event.published = Some(std::time::Instant::now());
        if event.persist {
            match self.log.append(event.record()).await {
                // An outage is logged once by the store, not once per event.
                Err(e) if e.outage().is_none() => {
                    tracing::error!(error = %e, action = %event.action, "could not store event")
                }
                _ => {}
            }
        }
        let _ = self.sender.send(Arc::new(event));
    }
}

/// What [`Domain::verify_audit_chain`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Records checked.
    pub checked: u64,
    /// The first sequence number checked (after what retention removed).
    pub first_seq: i64,
    /// The first broken link, if any: which record, and how.
    pub broken: Option<ChainBreak>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    /// The record's id (`None` when the record is missing).
    pub id: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for ChainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.broken {
            None => write!(
                f,
                "ok: {} records from #{} chain correctly",
                self.checked, self.first_seq
            ),
            Some(b) => write!(
                f,
                "BROKEN at #{}{}: {}",
                b.seq,
                b.id.as_deref()
                    .map(|i| format!(" (event {i})"))
                    .unwrap_or_default(),
                b.problem
            ),
        }
    }
}

impl Domain {
    /// Stored events, newest first, as `filter` selects them.
    pub async fn stored_events(&self, filter: &EventFilter<'_>) -> DomainResult<Vec<EventRecord>> {
        Ok(self.store.events(filter).await?)
    }

    /// Walks the whole event log in order and checks every link of its hash chain: each
    /// record's hash matches its content, each names the one before it, no number is
    /// missing, and the chain ends at the recorded head.
    pub async fn verify_audit_chain(&self) -> DomainResult<ChainReport> {
        const PAGE: i64 = 1000;
        let (head, pruned_through) = self.store.chain_state().await?;
        let mut report = ChainReport {
            checked: 0,
            first_seq: pruned_through + 1,
            broken: None,
        };
        let mut expected_seq = pruned_through + 1;
        // The link before the first record left: unknown after pruning (the pruned record's
        // hash), so the first record's own `prev_hash` is taken as the anchor then.
        let mut prev_hash: Option<String> = (pruned_through == 0).then(|| GENESIS.to_string());
        let mut after = pruned_through;
        loop {
            let page = self.store.chain_after(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in page {
                let problem = if r.seq != expected_seq {
                    report.broken = Some(ChainBreak {
                        seq: expected_seq,
                        id: None,
                        problem: format!(
                            "record missing (the next record is #{}, event {})",
                            r.seq, r.id
                        ),
                    });
                    return Ok(report);
                } else if prev_hash.as_ref().is_some_and(|p| p != &r.prev_hash) {
                    Some("does not link to the record before it".to_string())
                } else if r.chain_hash(&r.prev_hash) != r.hash {
                    Some("its content does not match its hash (edited)".to_string())
                } else {
                    None
                };
                if let Some(problem) = problem {
                    report.broken = Some(ChainBreak {
                        seq: r.seq,
                        id: Some(r.id),
                        problem,
                    });
                    return Ok(report);
                }
                report.checked += 1;
                expected_seq = r.seq + 1;
                prev_hash = Some(r.hash);
            }
        }
        if let Some(head) = head {
            let end_ok = if report.checked == 0 {
                head.seq <= pruned_through
            } else {
                head.seq == expected_seq - 1 && prev_hash.as_deref() == Some(head.hash.as_str())
            };
            if !end_ok {
                report.broken = Some(ChainBreak {
                    seq: expected_seq,
                    id: None,
                    problem: format!(
                        "the chain should end at #{} but ends at #{} (records removed from the end)",
                        head.seq,
                        expected_seq - 1
                    ),
                });
            }
        }
        Ok(report)
    }

    /// Removes events older than `days` days (the retention); returns how many.
    pub async fn apply_event_retention(&self, days: u32) -> DomainResult<u64> {
        let before = now_ms() - i64::from(days) * 86_400_000;
        Ok(self.store.prune_events(before).await?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_time_format() {
        assert_eq!(super::iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::iso_time(1_795_363_281_123),
            "2026-11-22T16:01:21.123Z"
        );
    }
}
