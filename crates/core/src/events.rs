//! Real-time events: every change is stored in the event log (when it is worth auditing)
//! and broadcast to connected consoles, each of which shows only what its user may see
//! ([`crate::access::Actor::may_see`]).
//!
//! The bus is in-process today. With several servers on one PostgreSQL the same `publish`
//! is where a `NOTIFY` fan-out plugs in; nothing else needs to change.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::store::{now_ms, EventRecord, Store};

/// One event, as stored and as pushed (`{"action":"event","event":{…}}`).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub time_ms: i64,
    /// `user`, `mesh`, `node`, `server`.
    pub etype: &'static str,
    pub action: String,
    /// Who caused it.
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub group_id: Option<String>,
    pub node_id: Option<String>,
    pub msg: String,
    /// Further fields pushed to consoles (e.g. the changed object).
    pub extra: Map<String, Value>,
    /// Who may see it: user ids, group ids, or `*users`.
    pub targets: Vec<String>,
    /// Written to the event log (false for high-frequency live state such as "online").
    pub persist: bool,
    /// The frame pushed to consoles, serialized once however many consoles receive it.
    wire: std::sync::OnceLock<String>,
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
            extra: Map::new(),
            targets: Vec::new(),
            persist: true,
            wire: std::sync::OnceLock::new(),
        }
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

impl crate::Domain {
    /// Stored events, newest first, as `filter` selects them.
    pub async fn stored_events(
        &self,
        filter: &crate::store::events::EventFilter<'_>,
    ) -> crate::DomainResult<Vec<EventRecord>> {
        Ok(self.store.events(filter).await?)
    }
}

/// Fan-out of events to every connected console.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        // A console that falls this far behind is told it lagged and keeps going.
        let (sender, _) = broadcast::channel(4096);
        EventBus { sender }
    }
}

impl EventBus {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Stores (if persistent) and broadcasts. A storage failure is logged, not returned:
    /// the change it reports has already happened.
    pub async fn publish(&self, store: &Store, event: Event) {
        if event.persist {
            match store.insert_event(&event.record()).await {
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
