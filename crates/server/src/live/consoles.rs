//! Open user sessions (control channels), so that an agent's answer can be delivered to
//! the session that asked (`sessionid`), or to a user's sessions.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;

/// How many routed messages may wait for a slow console before newer ones are dropped.
pub const CONSOLE_INBOX: usize = 256;

struct Console {
    user_id: String,
    tx: mpsc::Sender<Value>,
}

#[derive(Default)]
pub struct ConsoleRegistry {
    sessions: Mutex<HashMap<String, Console>>,
}

impl ConsoleRegistry {
    pub fn register(&self, session_id: &str, user_id: &str, tx: mpsc::Sender<Value>) {
        crate::locks::lock(&self.sessions).insert(
            session_id.to_string(),
            Console {
                user_id: user_id.to_string(),
                tx,
            },
        );
    }

    pub fn unregister(&self, session_id: &str) {
        crate::locks::lock(&self.sessions).remove(session_id);
    }

    /// Delivers to one session; false if it is gone or its inbox is full.
    pub fn send_to_session(&self, session_id: &str, message: Value) -> bool {
        let sessions = crate::locks::lock(&self.sessions);
        match sessions.get(session_id) {
            Some(c) => c.tx.try_send(message).is_ok(),
            None => false,
        }
    }

    /// Delivers to every session of the given users; returns how many got it.
    pub fn send_to_users(&self, user_ids: &[String], message: &Value) -> usize {
        let sessions = crate::locks::lock(&self.sessions);
        sessions
            .values()
            .filter(|c| user_ids.contains(&c.user_id))
            .filter(|c| c.tx.try_send(message.clone()).is_ok())
            .count()
    }

    /// Users that have at least one open session.
    pub fn connected_users(&self) -> Vec<String> {
        let sessions = crate::locks::lock(&self.sessions);
        let mut users: Vec<String> = sessions.values().map(|c| c.user_id.clone()).collect();
        users.sort();
        users.dedup();
        users
    }
}
