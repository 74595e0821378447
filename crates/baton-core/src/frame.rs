//! Frames: everything sent over WebSocket. Each stored frame has a per-topic `seq`.
//!
//! What a frame says is a [`FrameBody`]: the server builds frames only from it, and the
//! web app's types are generated from its schema, so the two sides cannot drift.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    AgentStatus, Chat, Message, RunStatus, RunTotals, RunView, SessionId, SessionView, Task,
    Timestamp, Topic, Trace,
};

/// What one frame says, beside its envelope (`topic`, `seq`, `at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FrameBody {
    /// A message was saved to the chat: a question, an answer, or a notice.
    Message { message: Message },
    /// Answer text as it streams, a frame about every 50 ms. With `restart`, the model
    /// call was tried again: the text shown so far for this turn is dropped.
    MessageDelta {
        session_id: SessionId,
        turn_number: i64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restart: Option<StreamRestart>,
    },
    /// The chat's session changed status or totals.
    SessionState { session: SessionView },
    /// A model or tool call started or finished (on its chat's or its run's topic).
    ToolTrace { phase: TracePhase, trace: Trace },
    /// The chat's agent stopped with an error (`cancelled` when a person stopped it), or,
    /// with a null `seq`, this connection's request was refused.
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<SessionId>,
    },
    /// Something the chat is told of that is not a message: a background task it
    /// started has ended.
    Notification { kind: NotificationKind, task: Task },
    /// A background task changed (`tasks` topic): the whole task as it now is.
    TaskEvent { phase: TaskPhase, task: Task },
    /// Something happened in a run (`run:<id>` topic).
    RunEvent(RunEvent),
    /// A topic's state on subscribing (without `since`, or when `since` is too old:
    /// then `reset`). Not stored: its `seq` is the topic's latest.
    Snapshot { reset: bool, state: SnapshotState },
    /// The answer to a client's `ping`.
    Pong,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamRestart {
    pub attempt: u32,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TracePhase {
    Start,
    Finish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskPhase {
    Created,
    Started,
    Progress,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    TaskFinished,
}

/// One event of a run, as its `run_event` frames carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The script called `phase(title)`.
    Phase { title: String },
    /// The script called `log(message)`.
    Log { message: String },
    /// An agent asked the model.
    AgentStart {
        key: String,
        label: Option<String>,
        phase: Option<String>,
        /// Its start order within the run (the journal's `seq`; the frame's own `seq`
        /// is its place in the topic's log).
        order: i64,
    },
    /// An agent ended; `cached` when its result came from the journal (it did not run).
    AgentFinish {
        key: String,
        /// Its start order within the run.
        order: i64,
        label: Option<String>,
        phase: Option<String>,
        status: AgentStatus,
        cached: bool,
        session_id: Option<SessionId>,
        error: Option<String>,
        input_tokens: i64,
        output_tokens: i64,
        cost_usd: f64,
    },
    /// An agent waits for a sibling with its request prefix to start answering, to read
    /// its prompt cache: `max_ms` when it starts waiting, `held_ms` when it stops.
    AgentHold {
        key: String,
        label: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        held_ms: Option<u64>,
    },
    /// Output tokens spent of the run's budget.
    Budget { total: u64, spent: u64 },
    /// The run's status changed, or it passed to another instance (`owner`).
    Status {
        status: RunStatus,
        error: Option<String>,
        totals: RunTotals,
        owner: Option<String>,
    },
}

/// A topic's state as its `snapshot` frame carries it.
// One is built per subscription and sent at once: its size in memory does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum SnapshotState {
    /// `chat:<id>`: the chat and its latest session.
    Chat {
        chat: Chat,
        session: Option<SessionView>,
    },
    /// `tasks`: the newest tasks.
    Tasks { tasks: Vec<Task> },
    /// `run:<id>`: the run's view; null while nobody can read it yet.
    Run { run: Option<Box<RunView>> },
}

/// A frame as it goes over the WebSocket: `{type, topic, seq, at, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WireFrame {
    /// Null for frames about the connection itself.
    pub topic: Option<String>,
    /// The frame's place in its topic's log; null for frames not stored there.
    pub seq: Option<i64>,
    pub at: Timestamp,
    #[serde(flatten)]
    pub body: FrameBody,
}

/// A frame to publish; the event log assigns its `seq` and `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFrame {
    pub kind: String,
    /// The frame's own fields, beside `type`, `topic`, `seq` and `at`. Must be an object.
    pub body: Map<String, Value>,
}

impl NewFrame {
    /// A frame of any kind and body: the event log stores what it is given. The server's
    /// own frames come from [`FrameBody`] (`NewFrame::from`).
    pub fn new(kind: impl Into<String>, body: Value) -> Self {
        let body = match body {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                let mut map = Map::new();
                map.insert("data".into(), other);
                map
            }
        };
        Self {
            kind: kind.into(),
            body,
        }
    }

    /// This frame as the event log stored it: `seq` in `topic`, appended at `at`.
    pub fn stored(self, topic: Topic, seq: i64, at: Timestamp) -> Frame {
        Frame {
            topic,
            seq,
            kind: self.kind,
            at,
            body: self.body,
        }
    }
}

impl From<FrameBody> for NewFrame {
    fn from(body: FrameBody) -> Self {
        let mut map = match serde_json::to_value(&body) {
            Ok(Value::Object(map)) => map,
            // Every variant is a struct or a unit, tagged: always an object.
            _ => unreachable!("a frame body serializes to an object"),
        };
        let kind = match map.remove("type") {
            Some(Value::String(kind)) => kind,
            _ => unreachable!("a frame body has a string type"),
        };
        Self { kind, body: map }
    }
}

/// A frame as stored in the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub topic: Topic,
    pub seq: i64,
    pub kind: String,
    pub at: Timestamp,
    pub body: Map<String, Value>,
}

impl Frame {
    /// The wire form: `{type, topic, seq, at, ...body}`. The envelope fields win over
    /// any body field of the same name.
    pub fn to_json(&self) -> Value {
        let mut map = self.body.clone();
        map.insert("type".into(), Value::String(self.kind.clone()));
        map.insert("topic".into(), Value::String(self.topic.to_string()));
        map.insert("seq".into(), Value::from(self.seq));
        map.insert("at".into(), Value::String(crate::time::format(&self.at)));
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_becomes_a_frame_kind_and_fields_and_reads_back() {
        let body = FrameBody::RunEvent(RunEvent::Budget {
            total: 10,
            spent: 4,
        });
        let frame = NewFrame::from(body.clone());
        assert_eq!(frame.kind, "run_event");
        assert_eq!(frame.body["event"], "budget");
        assert_eq!(frame.body["spent"], 4);
        let mut wire = frame.body.clone();
        wire.insert("type".into(), "run_event".into());
        wire.insert("topic".into(), Value::Null);
        wire.insert("seq".into(), Value::Null);
        wire.insert("at".into(), "2026-01-01T00:00:00.000Z".into());
        let back: WireFrame = serde_json::from_value(Value::Object(wire)).unwrap();
        assert_eq!(back.body, body);
        let pong = NewFrame::from(FrameBody::Pong);
        assert_eq!((pong.kind.as_str(), pong.body.len()), ("pong", 0));
    }

    /// The envelope wins over a body field of the same name (`Frame::to_json`), so such a
    /// field would never reach a client.
    #[test]
    fn no_frame_field_is_named_like_the_envelope() {
        let schema = schemars::schema_for!(FrameBody).to_value();
        let variants = schema["oneOf"]
            .as_array()
            .into_iter()
            .chain(schema["$defs"]["RunEvent"]["oneOf"].as_array())
            .flatten();
        let mut seen = 0;
        for v in variants {
            for props in [&v["properties"], &v["allOf"][1]["properties"]] {
                for name in props.as_object().into_iter().flat_map(|p| p.keys()) {
                    seen += 1;
                    assert!(
                        !["topic", "seq", "at"].contains(&name.as_str()),
                        "a frame field is named `{name}`, like the envelope's: {v}"
                    );
                }
            }
        }
        assert!(seen > 30, "the frames' fields were found ({seen})");
    }

    #[test]
    fn snapshot_states_read_back_as_their_topic() {
        let tasks: SnapshotState = serde_json::from_str(r#"{"tasks":[]}"#).unwrap();
        assert_eq!(tasks, SnapshotState::Tasks { tasks: vec![] });
        let run: SnapshotState = serde_json::from_str(r#"{"run":null}"#).unwrap();
        assert_eq!(run, SnapshotState::Run { run: None });
        assert!(serde_json::from_str::<SnapshotState>(r#"{"runs":null}"#).is_err());
    }
}
