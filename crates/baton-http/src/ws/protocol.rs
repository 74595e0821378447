//! Client messages and the frames the connection itself produces (not from the log).
use baton_core::time;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Subscribe {
        topic: String,
        #[serde(default)]
        since: Option<i64>,
    },
    Unsubscribe {
        topic: String,
    },
    Ping,
}

/// Parses a client text message, or says what is wrong with it.
pub fn parse(text: &str) -> Result<ClientMessage, (&'static str, String)> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ("invalid_json", format!("message is not JSON: {e}")))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_string);
    match kind.as_deref() {
        Some("subscribe" | "unsubscribe" | "ping") => {
            serde_json::from_value(value).map_err(|e| ("invalid_message", e.to_string()))
        }
        Some(other) => Err((
            "unknown_type",
            format!(
                "unknown message type '{}': expected subscribe, unsubscribe or ping",
                trunc(other)
            ),
        )),
        None => Err((
            "invalid_message",
            "message needs a string field \"type\"".into(),
        )),
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(40).collect()
}

fn now() -> String {
    time::format(&time::now())
}

/// A frame about the connection rather than a topic's log: `seq` is null.
pub fn local_frame(kind: &str, topic: Option<&str>, fields: Value) -> String {
    let mut frame = json!({ "type": kind, "topic": topic, "seq": null, "at": now() });
    if let (Some(obj), Value::Object(extra)) = (frame.as_object_mut(), fields) {
        obj.extend(extra);
    }
    frame.to_string()
}

pub fn error_frame(topic: Option<&str>, code: &str, message: &str) -> String {
    local_frame("error", topic, json!({ "code": code, "message": message }))
}

pub fn snapshot_frame(topic: &str, seq: i64, reset: bool, state: Value) -> String {
    json!({ "type": "snapshot", "topic": topic, "seq": seq, "at": now(),
            "reset": reset, "state": state })
    .to_string()
}
