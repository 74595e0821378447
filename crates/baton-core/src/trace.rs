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
    #[schemars(with = "serde_json::Map<String, Value>")]
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

impl Trace {
    /// This trace completed by `f` as a store's `finish_trace` writes it: what `f` leaves
    /// unset keeps its value, the latency defaults to finish minus start in whole
    /// milliseconds (cut, not rounded, as both stores compute it), and `f.meta`'s keys
    /// are merged into `meta`.
    pub fn finished(&self, f: &TraceFinish) -> Trace {
        let finished_at = f.finished_at.unwrap_or_else(crate::time::now);
        let started = crate::time::to_micros(&self.started_at);
        let ended = crate::time::to_micros(&finished_at);
        let mut meta = self.meta.clone();
        if let Some(patch) = &f.meta {
            merge_patch(&mut meta, patch);
        }
        Trace {
            output: f.output.clone().or_else(|| self.output.clone()),
            finished_at: Some(finished_at),
            latency_ms: f.latency_ms.or(Some((ended - started) / 1000)),
            tokens_used: f.tokens_used.or(self.tokens_used),
            input_tokens: f.input_tokens.or(self.input_tokens),
            output_tokens: f.output_tokens.or(self.output_tokens),
            cache_tokens: f.cache_tokens.or(self.cache_tokens),
            cache_write_tokens: f.cache_write_tokens.or(self.cache_write_tokens),
            reasoning_tokens: f.reasoning_tokens.or(self.reasoning_tokens),
            cost_usd: f.cost_usd.or(self.cost_usd),
            error: f.error.clone().or_else(|| self.error.clone()),
            outcome: f.outcome.unwrap_or(TraceOutcome::Ok),
            meta,
            ..self.clone()
        }
    }
}

/// Top-level keys of `patch` replace those of `target`: what both backends do with a
/// patch object free of nulls (SQLite's `json_patch`, Postgres's `||`), which is the
/// only kind Baton sends.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(map), Some(changes)) => {
            for (k, v) in changes {
                map.insert(k.clone(), v.clone());
            }
        }
        _ => *target = patch.clone(),
    }
}

#[cfg(test)]
mod finish_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finishing_keeps_what_is_unset_and_merges_meta() {
        let started = crate::time::from_micros(1_000_000).unwrap();
        let t = Trace {
            id: TraceId::new(),
            session_id: None,
            chat_id: None,
            run_id: None,
            parent_id: None,
            turn_number: 1,
            kind: TraceKind::Llm,
            tool_name: "m".into(),
            input: json!({}),
            output: None,
            started_at: started,
            finished_at: None,
            latency_ms: None,
            tokens_used: Some(5),
            input_tokens: None,
            output_tokens: None,
            cache_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
            cost_usd: None,
            error: None,
            outcome: TraceOutcome::Running,
            meta: json!({ "segments": [1], "a": 1 }),
        };
        let done = t.finished(&TraceFinish {
            finished_at: crate::time::from_micros(1_250_999),
            output: Some(json!("x")),
            meta: Some(json!({ "a": 2, "attempts": 1 })),
            ..Default::default()
        });
        assert_eq!(done.latency_ms, Some(250));
        assert_eq!(done.tokens_used, Some(5));
        assert_eq!(done.output, Some(json!("x")));
        assert_eq!(done.outcome, TraceOutcome::Ok);
        assert_eq!(done.meta, json!({ "segments": [1], "a": 2, "attempts": 1 }));
        assert_eq!((done.id, done.started_at), (t.id, t.started_at));
    }
}
