//! Builders for domain values used across test suites and benchmarks.
use baton_core::{time, ChatId, SessionId, Timestamp, Trace, TraceId, TraceKind, TraceOutcome};
use serde_json::json;

/// A finished tool trace in `chat` at `turn`, started at `started_at`.
pub fn trace(chat: ChatId, turn: i64, started_at: Timestamp) -> Trace {
    Trace {
        id: TraceId::new(),
        session_id: Some(SessionId::new()),
        chat_id: Some(chat),
        run_id: None,
        parent_id: None,
        turn_number: turn,
        kind: TraceKind::Tool,
        tool_name: "read_file".into(),
        input: json!({"path": "src/main.rs", "limit": 200}),
        output: Some(json!("fn main() {}\n")),
        started_at,
        finished_at: Some(started_at),
        latency_ms: Some(3),
        tokens_used: None,
        input_tokens: None,
        output_tokens: None,
        cache_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        cost_usd: None,
        error: None,
        outcome: TraceOutcome::Ok,
        meta: json!({}),
    }
}

/// A model call that has started and not finished.
pub fn running_llm_trace(chat: ChatId, turn: i64) -> Trace {
    Trace {
        kind: TraceKind::Llm,
        tool_name: "deepseek-chat".into(),
        input: json!({"messages": 3}),
        output: None,
        finished_at: None,
        latency_ms: None,
        outcome: TraceOutcome::Running,
        ..trace(chat, turn, time::now())
    }
}
