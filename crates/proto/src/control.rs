//! The `/control.ashx` JSON envelope (docs/protocol/control.md §2.1).
//!
//! Every frame is one JSON object with a string `action` (3..=32 characters). Requests may
//! carry `responseid` and `tag`; replies echo them so clients such as `meshctrl.js` can
//! match answers to questions.

use serde_json::{Map, Value};

/// A parsed control-channel request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The action name, as sent (MeshCentral action names are case-sensitive).
    pub action: String,
    /// The whole object, `action` included, for the action's own field parsing.
    pub body: Map<String, Value>,
}

/// Why a frame is not a request. Each has a reply text a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("malformed JSON: {0}")]
    BadJson(String),
    #[error("a request must be a JSON object")]
    NotAnObject,
    #[error("missing \"action\" field")]
    MissingAction,
    #[error("\"action\" must be a string of 3 to 32 characters")]
    BadAction,
}

impl EnvelopeError {
    /// Short machine-readable cause sent beside the human text.
    pub fn cause(&self) -> &'static str {
        match self {
            EnvelopeError::BadJson(_) => "badjson",
            EnvelopeError::NotAnObject => "notobject",
            EnvelopeError::MissingAction => "noaction",
            EnvelopeError::BadAction => "badaction",
        }
    }
}

impl Request {
    pub fn parse(text: &str) -> Result<Request, EnvelopeError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| EnvelopeError::BadJson(e.to_string()))?;
        let Value::Object(body) = value else {
            return Err(EnvelopeError::NotAnObject);
        };
        let action = match body.get("action") {
            None => return Err(EnvelopeError::MissingAction),
            Some(Value::String(a)) if (3..=32).contains(&a.chars().count()) => a.clone(),
            Some(_) => return Err(EnvelopeError::BadAction),
        };
        Ok(Request { action, body })
    }

    /// A reply for this request: `action`, plus `responseid` and `tag` when the request had
    /// them.
    pub fn reply(&self) -> Reply {
        let mut reply = Reply::new(&self.action);
        for key in ["responseid", "tag"] {
            if let Some(v) = self.body.get(key) {
                reply.0.insert(key.to_string(), v.clone());
            }
        }
        reply
    }

    /// An error reply: the request's action with `result` set to a human-readable text,
    /// which `meshctrl.js` prints.
    pub fn error(&self, result: &str) -> Value {
        self.reply().with("result", result).into_value()
    }

    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    pub fn u32_field(&self, key: &str) -> Option<u32> {
        self.body
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    }

    pub fn bool_field(&self, key: &str) -> Option<bool> {
        self.body.get(key).and_then(Value::as_bool)
    }
}

/// A JSON object under construction, sent as one text frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply(pub Map<String, Value>);

impl Reply {
    pub fn new(action: &str) -> Reply {
        let mut map = Map::new();
        map.insert("action".into(), Value::String(action.into()));
        Reply(map)
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Reply {
        self.0.insert(key.to_string(), value.into());
        self
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// The frame sent before closing a control socket that failed authentication
/// (docs/protocol/control.md §1.3): `meshctrl.js` prints "Invalid login." for cause `noauth`.
pub fn close_frame(cause: &str, msg: &str) -> Value {
    Reply::new("close")
        .with("cause", cause)
        .with("msg", msg)
        .into_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_echoes_correlation_fields() {
        let req = Request::parse(r#"{"action":"users","responseid":"meshctrl","tag":7}"#).unwrap();
        assert_eq!(req.action, "users");
        assert_eq!(
            req.error("Access denied"),
            json!({"action":"users","responseid":"meshctrl","tag":7,"result":"Access denied"})
        );
    }

    #[test]
    fn refuses_bad_envelopes() {
        assert!(matches!(
            Request::parse("{nope"),
            Err(EnvelopeError::BadJson(_))
        ));
        assert_eq!(Request::parse("[1]"), Err(EnvelopeError::NotAnObject));
        assert_eq!(Request::parse("{}"), Err(EnvelopeError::MissingAction));
        assert_eq!(
            Request::parse(r#"{"action":"ab"}"#),
            Err(EnvelopeError::BadAction)
        );
        assert_eq!(
            Request::parse(r#"{"action":5}"#),
            Err(EnvelopeError::BadAction)
        );
        assert_eq!(EnvelopeError::MissingAction.cause(), "noaction");
    }
}
