//! Any OpenAI-compatible chat-completions endpoint: OpenAI, DeepSeek, vLLM, Ollama,
//! llama.cpp, LM Studio.
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::http;
use crate::types::parse_arguments;
use crate::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, Delta, DeltaSink, LlmError, Provider,
    StopReason, ToolCall, Usage,
};

pub struct OpenAiProvider {
    http: reqwest::Client,
    base_url: String,
    api_key_env: Option<String>,
    images: bool,
}

impl OpenAiProvider {
    /// `base_url` ends before `/chat/completions`, e.g. `https://api.openai.com/v1`.
    pub fn new(base_url: &str, api_key_env: Option<String>, images: bool) -> Self {
        Self {
            http: http::client(),
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key_env,
            images,
        }
    }
}

pub(crate) fn body(req: &ChatRequest) -> Value {
    let mut messages = vec![json!({ "role": "system", "content": req.system })];
    for m in &req.messages {
        messages.push(match m {
            ChatMessage::User { content } => {
                let only_text = content.iter().all(|p| matches!(p, ContentPart::Text { .. }));
                if only_text {
                    let text: Vec<&str> = content
                        .iter()
                        .filter_map(|p| match p {
                            ContentPart::Text { text } => Some(text.as_str()),
                            _ => None,
                        })
                        .collect();
                    json!({ "role": "user", "content": text.join("\n") })
                } else {
                    let parts: Vec<Value> = content
                        .iter()
                        .map(|p| match p {
                            ContentPart::Text { text } => json!({ "type": "text", "text": text }),
                            ContentPart::Image { mime, data } => json!({
                                "type": "image_url",
                                "image_url": { "url": format!("data:{mime};base64,{data}") }
                            }),
                            ContentPart::ImageRef(r) => {
                                json!({ "type": "text", "text": r.placeholder() })
                            }
                        })
                        .collect();
                    json!({ "role": "user", "content": parts })
                }
            }
            ChatMessage::Assistant {
                text, tool_calls, ..
            } => {
                let mut m = json!({ "role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) } });
                if !tool_calls.is_empty() {
                    m["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| json!({ "id": c.id, "type": "function",
                            "function": { "name": c.name, "arguments": c.arguments.to_string() } }))
                        .collect();
                }
                m
            }
            ChatMessage::Tool { call_id, content, .. } => {
                json!({ "role": "tool", "tool_call_id": call_id, "content": content })
            }
        });
    }
    let mut body = json!({
        "model": req.model,
        "stream": true,
        "stream_options": { "include_usage": true },
        "max_tokens": req.max_tokens,
        "messages": messages,
    });
    if let Some(e) = req.effort {
        body["reasoning_effort"] = json!(e.as_str());
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({ "type": "function",
                "function": { "name": t.name, "description": t.description, "parameters": t.parameters } }))
            .collect();
    }
    body
}

/// Usage from any chunk that carries it: OpenAI's `prompt_tokens_details` or DeepSeek's
/// `prompt_cache_hit_tokens`, wherever it rides.
pub(crate) fn usage(u: &Value) -> Option<Usage> {
    if !u.is_object() {
        return None;
    }
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64);
    let prompt = n("/prompt_tokens").unwrap_or(0);
    let cached = n("/prompt_tokens_details/cached_tokens")
        .or_else(|| n("/prompt_cache_hit_tokens"))
        .unwrap_or(0);
    Some(Usage {
        input_tokens: prompt,
        output_tokens: n("/completion_tokens").unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
        reasoning_tokens: n("/completion_tokens_details/reasoning_tokens").unwrap_or(0),
    })
}

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

#[async_trait]
impl Provider for OpenAiProvider {
    async fn attempt(
        &self,
        req: &ChatRequest,
        on_delta: DeltaSink<'_>,
        stall: Duration,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, LlmError> {
        let mut builder = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&body(req));
        if let Some(key) = http::api_key(&self.api_key_env)? {
            builder = builder.bearer_auth(key);
        }
        let resp = http::send(builder, stall, cancel).await?;
        let mut text = String::new();
        let mut calls: BTreeMap<u64, PartialCall> = BTreeMap::new();
        let mut usage_seen: Option<Usage> = None;
        let mut finish: Option<String> = None;
        http::read_events(resp, stall, cancel, |event| {
            if event.data.trim() == "[DONE]" {
                return Ok(true);
            }
            let chunk: Value = serde_json::from_str(&event.data)
                .map_err(|e| LlmError::Protocol(format!("chunk is not JSON: {e}")))?;
            if let Some(err) = chunk.get("error") {
                let msg = err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                return Err(LlmError::Provider(msg.to_string()));
            }
            if let Some(u) = chunk.get("usage").and_then(usage) {
                usage_seen = Some(u);
            }
            if let Some(choice) = chunk.pointer("/choices/0") {
                if let Some(t) = choice.pointer("/delta/content").and_then(Value::as_str) {
                    if !t.is_empty() {
                        text.push_str(t);
                        on_delta(Delta::Text(t.to_string()));
                    }
                }
                if let Some(tcs) = choice
                    .pointer("/delta/tool_calls")
                    .and_then(Value::as_array)
                {
                    for tc in tcs {
                        let index = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let call = calls.entry(index).or_default();
                        if let Some(id) = tc.get("id").and_then(Value::as_str) {
                            call.id = id.to_string();
                        }
                        if let Some(name) = tc.pointer("/function/name").and_then(Value::as_str) {
                            call.name.push_str(name);
                        }
                        if let Some(args) =
                            tc.pointer("/function/arguments").and_then(Value::as_str)
                        {
                            call.arguments.push_str(args);
                        }
                    }
                }
                if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                    finish = Some(f.to_string());
                }
            }
            Ok(false)
        })
        .await?;
        let tool_calls: Vec<ToolCall> = calls
            .into_values()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: if c.id.is_empty() {
                    format!("call_{i}")
                } else {
                    c.id
                },
                name: c.name,
                arguments: parse_arguments(&c.arguments),
            })
            .collect();
        let stop_reason = match finish.as_deref() {
            _ if !tool_calls.is_empty() => StopReason::ToolUse,
            Some("stop") => StopReason::EndTurn,
            Some("length") => StopReason::MaxTokens,
            Some("tool_calls") => StopReason::ToolUse,
            None => return Err(LlmError::Truncated),
            _ => StopReason::Other,
        };
        Ok(ChatResponse {
            thinking: Vec::new(),
            text,
            tool_calls,
            usage: usage_seen.unwrap_or_default(),
            stop_reason,
            attempts: 1,
        })
    }

    fn accepts_images(&self) -> bool {
        self.images
    }

    fn effort_control(&self) -> Option<&'static str> {
        Some("reasoning_effort")
    }
}
