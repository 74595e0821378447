//! Writing a call's trace row when it starts and completing it when it ends, each with
//! a `tool_trace` frame, so calls in progress are visible everywhere.
use std::sync::Arc;

use baton_core::{
    time, FrameBody, Topic, Trace, TraceFinish, TraceId, TraceKind, TraceOutcome, TracePhase,
};
use baton_events::EventHub;
use baton_store::{Queued, Store};
use serde_json::{json, Value};

/// Input and output are kept whole up to this size; beyond it they are cut and flagged.
pub const MAX_PAYLOAD: usize = 256 * 1024;

pub(crate) fn capped(v: Value) -> (Value, bool) {
    let text = v.to_string();
    if text.len() <= MAX_PAYLOAD {
        return (v, false);
    }
    let mut end = MAX_PAYLOAD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (json!({ "truncated": &text[..end] }), true)
}

#[derive(Clone)]
pub(crate) struct Tracer {
    pub store: Arc<dyn Store>,
    pub hub: Arc<EventHub>,
    pub topic: Topic,
}

impl Tracer {
    pub async fn start(&self, mut trace: Trace) -> Trace {
        let (input, cut) = capped(std::mem::take(&mut trace.input));
        trace.input = input;
        if cut {
            trace.meta["input_truncated"] = json!(true);
        }
        // Queued, not awaited: the call starts at once, and the finish, an awaited
        // write behind it on the same store, cannot overtake it.
        self.store.queue(Queued::Trace(trace.clone())).await;
        self.frame(TracePhase::Start, &trace).await;
        trace
    }

    /// Completes `started` (as `start` returned it). The row's update is queued behind
    /// its insert; the frame carries the same completed trace, computed here, with the
    /// finish time and latency fixed so that both backends store exactly what it shows.
    pub async fn finish(&self, started: &Trace, mut finish: TraceFinish) -> Trace {
        if let Some(out) = finish.output.take() {
            let (out, cut) = capped(out);
            finish.output = Some(out);
            if cut {
                let meta = finish.meta.get_or_insert_with(|| json!({}));
                meta["output_truncated"] = json!(true);
            }
        }
        let done = started.finished(&finish);
        // The store is told the time and latency the frame shows, not left to derive its own.
        finish.finished_at = done.finished_at;
        finish.latency_ms = done.latency_ms;
        self.store.queue(Queued::Finish(started.id, finish)).await;
        self.frame(TracePhase::Finish, &done).await;
        done
    }

    pub async fn frame(&self, phase: TracePhase, trace: &Trace) {
        let frame = FrameBody::ToolTrace {
            phase,
            trace: trace.clone(),
        };
        self.hub.enqueue(self.topic, frame.into()).await;
    }
}

pub(crate) fn new_trace(kind: TraceKind, name: &str, turn: i64, input: Value) -> Trace {
    Trace {
        id: TraceId::new(),
        session_id: None,
        chat_id: None,
        run_id: None,
        parent_id: None,
        turn_number: turn,
        kind,
        tool_name: name.to_string(),
        input,
        output: None,
        started_at: time::now(),
        finished_at: None,
        latency_ms: None,
        tokens_used: None,
        input_tokens: None,
        output_tokens: None,
        cache_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        cost_usd: None,
        error: None,
        outcome: TraceOutcome::Running,
        meta: json!({}),
    }
}
