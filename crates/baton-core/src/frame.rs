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

/// The envelope's fields, which a body never carries (the envelope is written after the
/// body and would win in any JSON reader; `WireFrame` would refuse the duplicate).
const ENVELOPE: [&str; 4] = ["type", "topic", "seq", "at"];

/// A frame's own fields as JSON text: an object, without the envelope's fields. Kept as
/// text from when the frame is made to when a socket sends it, so the event log stores
/// and replays it and every subscriber receives it without it being taken apart again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameText(String);

impl FrameText {
    /// `map` as a frame's body, the envelope's fields dropped.
    pub fn from_map(mut map: Map<String, Value>) -> Self {
        for k in ENVELOPE {
            map.remove(k);
        }
        Self(Value::Object(map).to_string())
    }

    /// Text the event log stored from a `FrameText`: trusted to be such an object.
    pub fn stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The fields, read back (for tests and the rare reader; the hot path never parses).
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::from_str(&self.0) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// The text between the object's braces: its fields, comma-separated.
    fn fields(&self) -> &str {
        self.0
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or("")
    }
}

/// A frame to publish; the event log assigns its `seq` and `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFrame {
    pub kind: String,
    /// The frame's own fields, beside `type`, `topic`, `seq` and `at`.
    pub body: FrameText,
}

impl NewFrame {
    /// A frame of any kind and body: the event log stores what it is given (a body that
    /// is not an object is put under `data`). The server's own frames come from
    /// [`FrameBody`] (`NewFrame::from`).
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
            body: FrameText::from_map(body),
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
        // Serialized straight to text: an internally tagged enum writes its tag first,
        // `{"type":"<kind>"` then `,` and the fields, or `}`.
        let text = serde_json::to_string(&body).expect("a frame body serializes");
        let split = text.strip_prefix(r#"{"type":""#).and_then(|rest| {
            let end = rest.find('"')?;
            let (kind, after) = (&rest[..end], &rest[end + 1..]);
            let fields = after.strip_prefix(',').unwrap_or(after);
            Some((kind.to_string(), format!("{{{fields}")))
        });
        match split {
            Some((kind, body)) => Self {
                kind,
                body: FrameText(body),
            },
            None => unreachable!("a frame body serializes to an object tagged first: {text}"),
        }
    }
}

/// A frame as stored in the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub topic: Topic,
    pub seq: i64,
    pub kind: String,
    pub at: Timestamp,
    pub body: FrameText,
}

impl Frame {
    /// The wire form: `{...body, type, topic, seq, at}`, as text.
    pub fn wire_text(&self) -> String {
        let fields = self.body.fields();
        let mut out = String::with_capacity(fields.len() + self.kind.len() + 120);
        out.push('{');
        if !fields.is_empty() {
            out.push_str(fields);
            out.push(',');
        }
        out.push_str(r#""type":"#);
        out.push_str(&Value::String(self.kind.clone()).to_string());
        out.push_str(r#","topic":""#);
        out.push_str(&self.topic.to_string());
        out.push_str(r#"","seq":"#);
        out.push_str(&self.seq.to_string());
        out.push_str(r#","at":""#);
        out.push_str(&crate::time::format(&self.at));
        out.push_str("\"}");
        out
    }

    /// The wire form as a JSON value.
    pub fn to_json(&self) -> Value {
        serde_json::from_str(&self.wire_text()).expect("a frame's wire text is JSON")
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
        assert_eq!(frame.body.to_map()["event"], "budget");
        assert_eq!(frame.body.to_map()["spent"], 4);
        let mut wire = frame.body.to_map();
        wire.insert("type".into(), "run_event".into());
        wire.insert("topic".into(), Value::Null);
        wire.insert("seq".into(), Value::Null);
        wire.insert("at".into(), "2026-01-01T00:00:00.000Z".into());
        let back: WireFrame = serde_json::from_value(Value::Object(wire)).unwrap();
        assert_eq!(back.body, body);
        let pong = NewFrame::from(FrameBody::Pong);
        assert_eq!((pong.kind.as_str(), pong.body.as_str()), ("pong", "{}"));
    }

    #[test]
    fn the_wire_text_is_the_body_with_its_envelope() {
        let at = crate::time::from_micros(1_767_225_600_000_000).unwrap();
        let topic = Topic::Tasks;
        let frame = NewFrame::from(FrameBody::RunEvent(RunEvent::Log {
            message: "quote \" and \u{0}".into(),
        }))
        .stored(topic, 7, at);
        let wire: WireFrame = serde_json::from_str(&frame.wire_text()).unwrap();
        assert_eq!((wire.topic.as_deref(), wire.seq), (Some("tasks"), Some(7)));
        assert_eq!(
            wire.body,
            FrameBody::RunEvent(RunEvent::Log {
                message: "quote \" and \u{0}".into()
            })
        );
        let empty = NewFrame::from(FrameBody::Pong).stored(topic, 1, at);
        assert_eq!(
            empty.to_json(),
            serde_json::json!({"type": "pong", "topic": "tasks", "seq": 1, "at": "2026-01-01T00:00:00.000000Z"})
        );
        // Any frame's envelope fields give way to the envelope.
        let odd = NewFrame::new("x", serde_json::json!({"seq": 99, "type": "y", "k": 1}))
            .stored(topic, 2, at);
        assert_eq!(odd.to_json()["seq"], 2);
        assert_eq!(odd.to_json()["type"], "x");
        assert_eq!(odd.body.to_map().len(), 1);
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
