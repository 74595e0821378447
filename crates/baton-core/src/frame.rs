//! Frames: everything sent over WebSocket. Each stored frame has a per-topic `seq`.
use serde_json::{Map, Value};

use crate::{Timestamp, Topic};

/// A frame to publish; the event log assigns its `seq` and `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFrame {
    pub kind: String,
    /// The frame's own fields, beside `type`, `topic`, `seq` and `at`. Must be an object.
    pub body: Map<String, Value>,
}

impl NewFrame {
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
