//! Client messages and the frames the connection itself produces (not from the log).
use baton_core::{time, FrameBody, SnapshotState, WireFrame};
use serde::Deserialize;
use serde_json::Value;

/// What a client may send over the WebSocket.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Frames of `topic` from now on: first a snapshot, or with `since` the frames after
    /// that seq (a reset snapshot when they are no longer kept).
    Subscribe {
        /// `chat:<id>`, `run:<id>` or `tasks`.
        topic: String,
        #[serde(default)]
        since: Option<i64>,
    },
    Unsubscribe {
        topic: String,
    },
    /// Answered with a `pong` frame.
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

/// A frame about the connection rather than a topic's log: `seq` is null.
pub fn local_frame(topic: Option<&str>, body: FrameBody) -> String {
    wire(topic, None, body)
}

pub fn error_frame(topic: Option<&str>, code: &str, message: &str) -> String {
    local_frame(
        topic,
        FrameBody::Error {
            code: code.into(),
            message: message.into(),
            session_id: None,
        },
    )
}

pub fn snapshot_frame(topic: &str, seq: i64, reset: bool, state: SnapshotState) -> String {
    wire(Some(topic), Some(seq), FrameBody::Snapshot { reset, state })
}

fn wire(topic: Option<&str>, seq: Option<i64>, body: FrameBody) -> String {
    let frame = WireFrame {
        topic: topic.map(str::to_string),
        seq,
        at: time::now(),
        body,
    };
    serde_json::to_string(&frame).expect("a frame serializes")
}
