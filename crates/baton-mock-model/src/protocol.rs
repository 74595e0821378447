use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::cache::{CacheHit, PrefixCache};
use crate::{Fault, MockModel, Recorded, Reply, State};

type Shared = Arc<Mutex<State>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    OpenAi,
    DeepSeek,
    Anthropic,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::OpenAi => "openai",
            Flavor::DeepSeek => "deepseek",
            Flavor::Anthropic => "anthropic",
        }
    }
}

pub(crate) async fn openai(AxState(s): AxState<Shared>, Json(body): Json<Value>) -> Response {
    respond(s, Flavor::OpenAi, body).await
}

pub(crate) async fn deepseek(AxState(s): AxState<Shared>, Json(body): Json<Value>) -> Response {
    respond(s, Flavor::DeepSeek, body).await
}

pub(crate) async fn anthropic(AxState(s): AxState<Shared>, Json(body): Json<Value>) -> Response {
    respond(s, Flavor::Anthropic, body).await
}

/// Removes `cache_control` markers: they move between turns and are not part of the
/// prompt a real cache keys on.
fn strip_cache_control(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| k.as_str() != "cache_control")
                .map(|(k, v)| (k.clone(), strip_cache_control(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_cache_control).collect()),
        other => other.clone(),
    }
}

fn prompt_text(flavor: Flavor, body: &Value) -> Vec<u8> {
    let prompt = match flavor {
        // Anthropic's cache reads tools, then system, then messages.
        Flavor::Anthropic => json!([body["tools"], body["system"], body["messages"]]),
        _ => json!([body["tools"], body["messages"]]),
    };
    strip_cache_control(&prompt).to_string().into_bytes()
}

/// The prompt's size in tokens without building its text: what a lean server reports
/// (cache markers, if any, count too).
fn prompt_tokens(flavor: Flavor, body: &Value) -> u64 {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    let written = match flavor {
        Flavor::Anthropic => serde_json::to_writer(
            &mut n,
            &(&body["tools"], &body["system"], &body["messages"]),
        ),
        _ => serde_json::to_writer(&mut n, &(&body["tools"], &body["messages"])),
    };
    written.expect("values serialize");
    PrefixCache::tokens_in(n.0)
}

/// The text of the latest message: what rules match on.
fn latest_text(body: &Value) -> String {
    let Some(last) = body["messages"].as_array().and_then(|m| m.last()) else {
        return String::new();
    };
    fn text_of(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().map(text_of).collect::<Vec<_>>().join("\n"),
            Value::Object(o) => ["text", "content"]
                .iter()
                .filter_map(|k| o.get(*k))
                .map(text_of)
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
    text_of(&last["content"])
}

fn latest_is_tool_result(body: &Value) -> bool {
    let Some(last) = body["messages"].as_array().and_then(|m| m.last()) else {
        return false;
    };
    last["role"] == "tool"
        || last["content"]
            .as_array()
            .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
}

/// Counts a request as in flight while it lives.
struct Answering(Shared);

impl Answering {
    fn start(shared: &Shared) -> Self {
        let mut state = shared.lock().unwrap();
        state.in_flight += 1;
        state.peak_in_flight = state.peak_in_flight.max(state.in_flight);
        Self(shared.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.lock() {
            state.in_flight -= 1;
        }
    }
}

async fn respond(shared: Shared, flavor: Flavor, body: Value) -> Response {
    let answering = Answering::start(&shared);
    let (reply, hit, pending) = {
        let mut state = shared.lock().unwrap();
        let recorded = if state.no_record {
            Value::Null
        } else {
            body.clone()
        };
        state.requests.push(Recorded {
            flavor: flavor.name(),
            body: recorded,
        });
        let mut reply = MockModel::next_reply(
            &mut state,
            &latest_text(&body),
            latest_is_tool_result(&body),
        );
        if state.schema_answers && reply.tool_calls.is_empty() && reply.fault.is_none() {
            if let Some(schema) = crate::example::tool_schema(&body, "StructuredOutput") {
                let value = crate::example::example(&schema, "answer", 0);
                reply.tool_calls = vec![("StructuredOutput".into(), value)];
                reply.text.clear();
            }
        }
        let (hit, pending) = if state.no_cache {
            let hit = CacheHit {
                prompt_tokens: prompt_tokens(flavor, &body),
                cached_tokens: 0,
            };
            (hit, None)
        } else if state.prefill.is_zero() {
            (state.cache.lookup(&prompt_text(flavor, &body)), None)
        } else {
            let prompt = prompt_text(flavor, &body);
            (state.cache.peek(&prompt), Some((prompt, state.prefill)))
        };
        (reply, hit, pending)
    };
    let (reply, hit) = match pending {
        None => (reply, hit),
        Some((prompt, prefill)) => {
            tokio::time::sleep(prefill).await;
            shared.lock().unwrap().cache.remember(&prompt);
            (reply, hit)
        }
    };
    if let Some(Fault::Status { code, retry_after }) = &reply.fault {
        let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            status,
            Json(json!({ "error": { "message": format!("mock fault {code}"), "type": "mock_error" } })),
        )
            .into_response();
        if let Some(s) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*s));
        }
        return resp;
    }
    let model = body["model"].as_str().unwrap_or("mock").to_string();
    let events = match flavor {
        Flavor::Anthropic => {
            anthropic_events(&model, &reply, hit, body["thinking"]["type"] == "enabled")
        }
        _ => openai_events(
            flavor,
            &model,
            &reply,
            hit,
            body["stream_options"]["include_usage"] == true,
        ),
    };
    stream(events, reply, answering)
}

fn stream(events: Vec<String>, reply: Reply, answering: Answering) -> Response {
    let sse = |body: Body| {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(body)
            .unwrap()
    };
    // With no delay between chunks and nothing to cut, the events go out as one body,
    // as a fast server's would when they are ready at once: no task, no channel.
    if reply.chunk_delay.is_zero() && reply.fault.is_none() {
        let all = Bytes::from(events.concat());
        return sse(Body::from_stream(futures_util::stream::once(async move {
            let _answering = answering;
            Ok::<_, Infallible>(all)
        })));
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let _answering = answering;
        let (limit, stall) = match reply.fault {
            Some(Fault::StallAfter(n)) => (n, true),
            Some(Fault::TruncateAfter(n)) => (n, false),
            _ => (usize::MAX, false),
        };
        for (i, e) in events.into_iter().enumerate() {
            if i >= limit {
                break;
            }
            if !reply.chunk_delay.is_zero() {
                tokio::time::sleep(reply.chunk_delay).await;
            }
            if tx.send(Bytes::from(e)).await.is_err() {
                return;
            }
        }
        if stall {
            // Keep the body open and silent until the client gives up.
            tokio::select! {
                _ = tx.closed() => {}
                _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            }
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>))
    });
    sse(Body::from_stream(body))
}

fn pieces(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let per = words.len().div_ceil(5).max(1);
    words.chunks(per).map(|c| c.concat()).collect()
}

fn output_tokens(reply: &Reply) -> u64 {
    let args: usize = reply
        .tool_calls
        .iter()
        .map(|(n, a)| n.len() + a.to_string().len())
        .sum();
    PrefixCache::tokens(reply.text.as_bytes()) + (args as u64).div_ceil(4) + reply.reasoning_tokens
}

fn sse(data: &Value) -> String {
    format!("data: {data}\n\n")
}

fn openai_events(
    flavor: Flavor,
    model: &str,
    reply: &Reply,
    hit: CacheHit,
    include_usage: bool,
) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    };
    let mut out = vec![sse(&chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    ))];
    for p in pieces(&reply.text) {
        out.push(sse(&chunk(json!({ "content": p }), Value::Null)));
    }
    for (i, (name, args)) in reply.tool_calls.iter().enumerate() {
        let id = format!("call_{i}_{}", name);
        out.push(sse(&chunk(
            json!({ "tool_calls": [{ "index": i, "id": id, "type": "function",
                    "function": { "name": name, "arguments": "" } }] }),
            Value::Null,
        )));
        let text = args.to_string();
        let mid = text.len() / 2;
        let mid = (0..=mid)
            .rev()
            .find(|m| text.is_char_boundary(*m))
            .unwrap_or(0);
        for part in [&text[..mid], &text[mid..]] {
            out.push(sse(&chunk(
                json!({ "tool_calls": [{ "index": i, "function": { "arguments": part } }] }),
                Value::Null,
            )));
        }
    }
    let finish = if reply.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let completion = output_tokens(reply);
    let mut last = chunk(json!({}), json!(finish));
    match flavor {
        // DeepSeek puts usage on the last content chunk.
        Flavor::DeepSeek => {
            last["usage"] = json!({
                "prompt_tokens": hit.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": hit.prompt_tokens + completion,
                "prompt_cache_hit_tokens": hit.cached_tokens,
                "prompt_cache_miss_tokens": hit.prompt_tokens - hit.cached_tokens,
                "completion_tokens_details": { "reasoning_tokens": reply.reasoning_tokens },
            });
            out.push(sse(&last));
        }
        _ => {
            out.push(sse(&last));
            if include_usage {
                out.push(sse(&json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
                    "choices": [], "usage": {
                        "prompt_tokens": hit.prompt_tokens,
                        "completion_tokens": completion,
                        "total_tokens": hit.prompt_tokens + completion,
                        "prompt_tokens_details": { "cached_tokens": hit.cached_tokens },
                        "completion_tokens_details": { "reasoning_tokens": reply.reasoning_tokens },
                    } })));
            }
        }
    }
    out.push("data: [DONE]\n\n".to_string());
    out
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// With `thinking` on (extended thinking was asked for), the answer starts with a signed
/// thinking block, as Anthropic's does.
fn anthropic_events(model: &str, reply: &Reply, hit: CacheHit, thinking: bool) -> Vec<String> {
    let read = hit.cached_tokens;
    let write = (hit.prompt_tokens - read) / 64 * 64;
    let fresh = hit.prompt_tokens - read - write;
    let mut out = vec![event(
        "message_start",
        json!({ "type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null,
            "usage": { "input_tokens": fresh, "cache_creation_input_tokens": write,
                       "cache_read_input_tokens": read, "output_tokens": 1 } } }),
    )];
    let mut index = 0;
    if thinking {
        out.push(event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": index,
            "content_block": { "type": "thinking", "thinking": "" } }),
        ));
        for (kind, key, value) in [
            ("thinking_delta", "thinking", "Let me think "),
            ("thinking_delta", "thinking", "about this."),
            ("signature_delta", "signature", "mock-signature"),
        ] {
            out.push(event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": index,
                "delta": { "type": kind, key: value } }),
            ));
        }
        out.push(event(
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        ));
        index += 1;
    }
    if !reply.text.is_empty() {
        out.push(event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": index,
            "content_block": { "type": "text", "text": "" } }),
        ));
        for p in pieces(&reply.text) {
            out.push(event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": index,
                "delta": { "type": "text_delta", "text": p } }),
            ));
        }
        out.push(event(
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        ));
        index += 1;
    }
    for (i, (name, args)) in reply.tool_calls.iter().enumerate() {
        out.push(event("content_block_start", json!({ "type": "content_block_start", "index": index,
            "content_block": { "type": "tool_use", "id": format!("toolu_{i}_{name}"), "name": name, "input": {} } })));
        out.push(event(
            "content_block_delta",
            json!({ "type": "content_block_delta", "index": index,
            "delta": { "type": "input_json_delta", "partial_json": args.to_string() } }),
        ));
        out.push(event(
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        ));
        index += 1;
    }
    let stop = if reply.tool_calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    out.push(event(
        "message_delta",
        json!({ "type": "message_delta",
        "delta": { "stop_reason": stop, "stop_sequence": null },
        "usage": { "output_tokens": output_tokens(reply) } }),
    ));
    out.push(event("message_stop", json!({ "type": "message_stop" })));
    out
}
