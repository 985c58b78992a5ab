//! Open user sessions (control channels) and what each is waiting to be sent.
//!
//! Every frame for a console — replies, events, an agent's answer — goes through its
//! [`Outbox`]: a queue whose total size is bounded in bytes, which never makes the sender
//! wait. A console that stops reading therefore cannot pin server memory or stall the
//! session loop (whose ping timer must keep running): once its queue would pass the bound,
//! the outbox is marked overflowed and the session drops the connection.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Message;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use crate::locks::lock;

/// Bytes that may wait for one console before it is dropped: room for a burst of events
/// and a large reply (a listing of thousands of devices), far below what a stalled
/// console used to hold.
pub const OUTBOX_LIMIT: usize = 16 << 20;

/// The sending side of one console's queue; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Message>,
    queued: Arc<AtomicUsize>,
    overflowed: Arc<AtomicBool>,
    overflow: Arc<Notify>,
    limit: usize,
}

/// The writer's side: frames to write, and the count to release once written.
pub struct OutboxReader {
    rx: mpsc::UnboundedReceiver<Message>,
    queued: Arc<AtomicUsize>,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The console is not keeping up; it is being dropped.
    Overflow,
    /// The connection is gone.
    Closed,
}

fn size_of(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(_) => 2,
    }
}

impl Outbox {
    pub fn new(limit: usize) -> (Outbox, OutboxReader) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Outbox {
                tx,
                queued: queued.clone(),
                overflowed: Arc::default(),
                overflow: Arc::default(),
                limit,
            },
            OutboxReader { rx, queued },
        )
    }

    /// Queues a frame. A frame always fits an empty queue (so one large reply works);
    /// otherwise the queue may not pass the limit.
    pub fn push(&self, msg: Message) -> Result<(), Refused> {
        if self.overflowed.load(Ordering::Relaxed) {
            return Err(Refused::Overflow);
        }
        let size = size_of(&msg);
        let before = self.queued.fetch_add(size, Ordering::Relaxed);
        if before > 0 && before + size > self.limit {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            self.overflowed.store(true, Ordering::Relaxed);
            self.overflow.notify_one();
            return Err(Refused::Overflow);
        }
        self.tx.send(msg).map_err(|_| {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            Refused::Closed
        })
    }

    pub fn push_json(&self, value: &Value) -> Result<(), Refused> {
        self.push(Message::Text(value.to_string().into()))
    }

    /// Bytes waiting.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn is_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Resolves once a push has overflowed the queue.
    pub async fn overflowed(&self) {
        while !self.overflowed.load(Ordering::Relaxed) {
            self.overflow.notified().await;
        }
    }
}

impl OutboxReader {
    /// The next frame to write; call [`OutboxReader::written`] with it once written.
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    pub fn written(&self, msg: &Message) {
        self.queued.fetch_sub(size_of(msg), Ordering::Relaxed);
    }
}

struct Console {
    user_id: String,
    outbox: Outbox,
    /// Devices this session sent something to: the only agents whose answers may be
    /// addressed to it.
    asked: HashSet<String>,
}

/// Most devices one session is remembered to have asked (a console managing a large
/// fleet through one session forgets the oldest beyond this; answers from those are then
/// routed by user).
const MAX_ASKED: usize = 10_000;

#[derive(Default)]
pub struct ConsoleRegistry {
    sessions: Mutex<HashMap<String, Console>>,
}

impl ConsoleRegistry {
    pub fn register(&self, session_id: &str, user_id: &str, outbox: Outbox) {
        lock(&self.sessions).insert(
            session_id.to_string(),
            Console {
                user_id: user_id.to_string(),
                outbox,
                asked: HashSet::new(),
            },
        );
    }

    pub fn unregister(&self, session_id: &str) {
        lock(&self.sessions).remove(session_id);
    }

    /// Open control sessions.
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers that a session sent something to a device (so its agent may answer it).
    pub fn note_asked(&self, session_id: &str, node_id: &str) {
        if let Some(c) = lock(&self.sessions).get_mut(session_id) {
            if c.asked.len() >= MAX_ASKED {
                c.asked.clear();
            }
            c.asked.insert(node_id.to_string());
        }
    }

    /// The user of an open session, if that session asked `node_id` something.
    pub fn user_of_asking(&self, session_id: &str, node_id: &str) -> Option<String> {
        lock(&self.sessions)
            .get(session_id)
            .filter(|c| c.asked.contains(node_id))
            .map(|c| c.user_id.clone())
    }

    /// Delivers to one session; false if it is gone or not keeping up.
    pub fn send_to_session(&self, session_id: &str, message: &Value) -> bool {
        let outbox = match lock(&self.sessions).get(session_id) {
            Some(c) => c.outbox.clone(),
            None => return false,
        };
        outbox.push_json(message).is_ok()
    }

    /// Delivers to every session of the given users (only those that asked `asked`, when
    /// given); returns how many got it.
    pub fn send_to_users(
        &self,
        user_ids: &[String],
        asked: Option<&str>,
        message: &Value,
    ) -> usize {
        let outboxes: Vec<Outbox> = lock(&self.sessions)
            .values()
            .filter(|c| user_ids.contains(&c.user_id))
            .filter(|c| asked.is_none_or(|node| c.asked.contains(node)))
            .map(|c| c.outbox.clone())
            .collect();
        let text = message.to_string();
        outboxes
            .iter()
            .filter(|o| o.push(Message::Text(text.clone().into())).is_ok())
            .count()
    }

    /// How many sessions each connected user has open, by user id.
    pub fn session_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for c in lock(&self.sessions).values() {
            *counts.entry(c.user_id.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Users that have at least one open session.
    pub fn connected_users(&self) -> Vec<String> {
        let sessions = lock(&self.sessions);
        let mut users: Vec<String> = sessions.values().map(|c| c.user_id.clone()).collect();
        users.sort();
        users.dedup();
        users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_console_that_does_not_read_is_bounded() {
        let (outbox, mut reader) = Outbox::new(1000);
        // One large frame fits an empty queue.
        outbox.push(Message::Text("x".repeat(5000).into())).unwrap();
        // Nothing more while it waits.
        assert_eq!(
            outbox.push(Message::Text("y".into())),
            Err(Refused::Overflow)
        );
        tokio::time::timeout(std::time::Duration::from_secs(1), outbox.overflowed())
            .await
            .expect("overflow is signalled");
        // Once overflowed, it stays refused (the session is being dropped).
        let first = reader.next().await.unwrap();
        reader.written(&first);
        assert_eq!(outbox.queued(), 0);
        assert_eq!(
            outbox.push(Message::Text("z".into())),
            Err(Refused::Overflow)
        );
    }

    #[tokio::test]
    async fn written_frames_release_their_bytes() {
        let (outbox, mut reader) = Outbox::new(100);
        for _ in 0..10 {
            outbox.push(Message::Text("0123456789".into())).unwrap();
        }
        assert_eq!(outbox.queued(), 100);
        let msg = reader.next().await.unwrap();
        reader.written(&msg);
        outbox.push(Message::Text("0123456789".into())).unwrap();
        assert_eq!(
            outbox.push(Message::Text("0123456789".into())),
            Err(Refused::Overflow)
        );
    }
}
