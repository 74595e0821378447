//! A trace is one timed call: a model request (`llm`) or a tool execution (`tool`).
//! Its row is written when the call starts (outcome `running`) and completed when it
//! finishes, so calls in progress are visible.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ChatId, RunId, SessionId, Timestamp, TraceId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TraceKind {
    Llm,
    Tool,
}

impl TraceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TraceKind::Llm => "llm",
            TraceKind::Tool => "tool",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "llm" => Some(TraceKind::Llm),
            "tool" => Some(TraceKind::Tool),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TraceOutcome {
    Running,
    Ok,
    Error,
    Cancelled,
    Timeout,
}

impl TraceOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            TraceOutcome::Running => "running",
            TraceOutcome::Ok => "ok",
            TraceOutcome::Error => "error",
            TraceOutcome::Cancelled => "cancelled",
            TraceOutcome::Timeout => "timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => TraceOutcome::Running,
            "ok" => TraceOutcome::Ok,
            "error" => TraceOutcome::Error,
            "cancelled" => TraceOutcome::Cancelled,
            "timeout" => TraceOutcome::Timeout,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Trace {
    pub id: TraceId,
    pub session_id: Option<SessionId>,
    pub chat_id: Option<ChatId>,
    pub run_id: Option<RunId>,
    /// The enclosing call: an `llm` trace for the tools it asked for.
    pub parent_id: Option<TraceId>,
    pub turn_number: i64,
    pub kind: TraceKind,
    /// The tool's name for `tool` traces; the model's name for `llm` traces.
    pub tool_name: String,
    pub input: Value,
    pub output: Option<Value>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub latency_ms: Option<i64>,
    pub tokens_used: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// Input tokens read from the provider's prompt cache.
    pub cache_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub error: Option<String>,
    pub outcome: TraceOutcome,
    /// Extra facts that have no column of their own (prompt segment sizes, truncation).
    pub meta: Value,
}

/// What completing a trace sets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceFinish {
    pub output: Option<Value>,
    pub finished_at: Option<Timestamp>,
    pub latency_ms: Option<i64>,
    pub tokens_used: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub error: Option<String>,
    pub outcome: Option<TraceOutcome>,
    pub meta: Option<Value>,
}
