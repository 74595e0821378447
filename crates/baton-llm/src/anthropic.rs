//! The Anthropic Messages API.
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

const VERSION: &str = "2023-06-01";

pub struct AnthropicProvider {
    http: reqwest::Client,
    base_url: String,
    api_key_env: Option<String>,
}

impl AnthropicProvider {
    /// `base_url` ends before `/messages`, e.g. `https://api.anthropic.com/v1`.
    pub fn new(base_url: &str, api_key_env: Option<String>) -> Self {
        Self {
            http: http::client(),
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key_env,
        }
    }
}

fn ephemeral() -> Value {
    json!({ "type": "ephemeral" })
}

pub(crate) fn body(req: &ChatRequest) -> Value {
    // Consecutive same-role content merges: tool results travel in a user message, and
    // the API wants roles to alternate.
    let mut messages: Vec<Value> = Vec::new();
    let mut push = |role: &str, blocks: Vec<Value>| {
        if let Some(last) = messages.last_mut() {
            if last["role"] == role {
                last["content"]
                    .as_array_mut()
                    .expect("content is a list")
                    .extend(blocks);
                return;
            }
        }
        messages.push(json!({ "role": role, "content": blocks }));
    };
    for m in &req.messages {
        match m {
            ChatMessage::User { content } => push(
                "user",
                content
                    .iter()
                    .map(|p| match p {
                        ContentPart::Text { text } => json!({ "type": "text", "text": text }),
                        ContentPart::Image { mime, data } => json!({ "type": "image",
                            "source": { "type": "base64", "media_type": mime, "data": data } }),
                        ContentPart::ImageRef(r) => {
                            json!({ "type": "text", "text": r.placeholder() })
                        }
                    })
                    .collect(),
            ),
            ChatMessage::Assistant {
                text,
                tool_calls,
                thinking,
            } => {
                // Reasoning blocks first, as they came, so extended thinking can go on
                // across tool calls.
                let mut blocks: Vec<Value> = thinking.clone();
                if !text.is_empty() {
                    blocks.push(json!({ "type": "text", "text": text }));
                }
                for c in tool_calls {
                    blocks.push(json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments }));
                }
                if blocks.is_empty() {
                    blocks.push(json!({ "type": "text", "text": "(no answer)" }));
                }
                push("assistant", blocks);
            }
            ChatMessage::Tool {
                call_id,
                content,
                is_error,
                ..
            } => push(
                "user",
                vec![
                    json!({ "type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": is_error }),
                ],
            ),
        }
    }
    // Cache breakpoints: after the tools, after the system prompt, and at the end of the
    // history so the next turn reads this one from cache.
    if let Some(block) = messages
        .last_mut()
        .and_then(|m| m["content"].as_array_mut())
        .and_then(|c| c.last_mut())
    {
        block["cache_control"] = ephemeral();
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
        .collect();
    if let Some(last) = tools.last_mut() {
        last["cache_control"] = ephemeral();
    }
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens,
        "stream": true,
        "system": [{ "type": "text", "text": req.system, "cache_control": ephemeral() }],
        "messages": messages,
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    if let Some(e) = req.effort {
        // The thinking budget must stay below max_tokens, with room for the answer.
        let budget = e.thinking_budget();
        body["thinking"] = json!({ "type": "enabled", "budget_tokens": budget });
        body["max_tokens"] = json!(req.max_tokens.max(budget + 4_096));
    }
    body
}

/// Merges the usage of `message_start` with the cumulative counts of `message_delta`.
fn merge_usage(into: &mut Usage, u: &Value) {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    if let Some(v) = n("output_tokens") {
        into.output_tokens = v;
    }
    // Total input is the sum of three disjoint counts.
    let fresh = n("input_tokens");
    let write = n("cache_creation_input_tokens");
    let read = n("cache_read_input_tokens");
    if let Some(v) = write {
        into.cache_write_tokens = v;
    }
    if let Some(v) = read {
        into.cache_read_tokens = v;
    }
    if fresh.is_some() || write.is_some() || read.is_some() {
        let fresh =
            fresh.unwrap_or(into.input_tokens - into.cache_read_tokens.min(into.input_tokens));
        into.input_tokens = fresh + into.cache_write_tokens + into.cache_read_tokens;
    }
}

enum Block {
    Text,
    Tool {
        id: String,
        name: String,
        json: String,
    },
    /// Extended thinking: its text and signature, or a redacted block as it came.
    Thinking {
        thinking: String,
        signature: String,
    },
    Redacted(Value),
}

#[async_trait]
impl Provider for AnthropicProvider {
    async fn attempt(
        &self,
        req: &ChatRequest,
        on_delta: DeltaSink<'_>,
        stall: Duration,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, LlmError> {
        let mut builder = self
            .http
            .post(format!("{}/messages", self.base_url))
            .header("anthropic-version", VERSION)
            .json(&body(req));
        if let Some(key) = http::api_key(&self.api_key_env)? {
            builder = builder.header("x-api-key", key);
        }
        let resp = http::send(builder, stall, cancel).await?;
        let mut text = String::new();
        let mut blocks: BTreeMap<u64, Block> = BTreeMap::new();
        let mut usage = Usage::default();
        let mut stop: Option<String> = None;
        http::read_events(resp, stall, cancel, |event| {
            let data: Value = match serde_json::from_str(&event.data) {
                Ok(v) => v,
                Err(e) => return Err(LlmError::Protocol(format!("event is not JSON: {e}"))),
            };
            let kind = data
                .get("type")
                .and_then(Value::as_str)
                .or(event.event.as_deref())
                .unwrap_or("");
            match kind {
                "message_start" => {
                    if let Some(u) = data.pointer("/message/usage") {
                        merge_usage(&mut usage, u);
                    }
                }
                "content_block_start" => {
                    let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let block = &data["content_block"];
                    let b = match block.get("type").and_then(Value::as_str) {
                        Some("tool_use") => Block::Tool {
                            id: block
                                .get("id")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            name: block
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            json: String::new(),
                        },
                        Some("thinking") => Block::Thinking {
                            thinking: String::new(),
                            signature: String::new(),
                        },
                        Some("redacted_thinking") => Block::Redacted(block.clone()),
                        _ => Block::Text,
                    };
                    blocks.insert(index, b);
                }
                "content_block_delta" => {
                    let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let delta = &data["delta"];
                    match delta.get("type").and_then(Value::as_str) {
                        Some("text_delta") => {
                            if let Some(t) = delta.get("text").and_then(Value::as_str) {
                                text.push_str(t);
                                on_delta(Delta::Text(t.to_string()));
                            }
                        }
                        Some("thinking_delta") => {
                            if let Some(Block::Thinking { thinking, .. }) = blocks.get_mut(&index) {
                                thinking.push_str(
                                    delta.get("thinking").and_then(Value::as_str).unwrap_or(""),
                                );
                            }
                        }
                        Some("signature_delta") => {
                            if let Some(Block::Thinking { signature, .. }) = blocks.get_mut(&index)
                            {
                                signature.push_str(
                                    delta.get("signature").and_then(Value::as_str).unwrap_or(""),
                                );
                            }
                        }
                        Some("input_json_delta") => {
                            if let Some(Block::Tool { json, .. }) = blocks.get_mut(&index) {
                                json.push_str(
                                    delta
                                        .get("partial_json")
                                        .and_then(Value::as_str)
                                        .unwrap_or(""),
                                );
                            }
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    if let Some(s) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                        stop = Some(s.to_string());
                    }
                    if let Some(u) = data.get("usage") {
                        merge_usage(&mut usage, u);
                    }
                }
                "message_stop" => return Ok(true),
                "error" => {
                    let msg = data
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error");
                    let kind = data
                        .pointer("/error/type")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    return Err(LlmError::Provider(format!("{kind}: {msg}")));
                }
                _ => {}
            }
            Ok(false)
        })
        .await?;
        let mut tool_calls: Vec<ToolCall> = Vec::new();
        let mut thinking: Vec<Value> = Vec::new();
        for b in blocks.into_values() {
            match b {
                Block::Tool { id, name, json } => tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: parse_arguments(&json),
                }),
                Block::Thinking {
                    thinking: t,
                    signature,
                } => thinking
                    .push(json!({ "type": "thinking", "thinking": t, "signature": signature })),
                Block::Redacted(v) => thinking.push(v),
                Block::Text => {}
            }
        }
        let stop_reason = match stop.as_deref() {
            Some("tool_use") => StopReason::ToolUse,
            Some("end_turn" | "stop_sequence") => StopReason::EndTurn,
            Some("max_tokens") => StopReason::MaxTokens,
            _ if !tool_calls.is_empty() => StopReason::ToolUse,
            _ => StopReason::Other,
        };
        Ok(ChatResponse {
            text,
            tool_calls,
            thinking,
            usage,
            stop_reason,
            attempts: 1,
        })
    }

    fn effort_control(&self) -> Option<&'static str> {
        Some("thinking")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Effort;

    #[test]
    fn effort_is_a_thinking_budget_and_thinking_blocks_go_back_first() {
        let signed = json!({ "type": "thinking", "thinking": "let me look", "signature": "sig" });
        let req = ChatRequest {
            model: "m".into(),
            system: "s".into(),
            tools: vec![],
            messages: vec![
                ChatMessage::user_text("q"),
                ChatMessage::Assistant {
                    text: String::new(),
                    tool_calls: vec![ToolCall {
                        id: "c1".into(),
                        name: "read_file".into(),
                        arguments: json!({ "path": "a" }),
                    }],
                    thinking: vec![signed.clone()],
                },
            ],
            max_tokens: 8192,
            effort: Some(Effort::High),
        };
        let b = body(&req);
        assert_eq!(
            b["thinking"],
            json!({ "type": "enabled", "budget_tokens": 24_576 })
        );
        assert!(b["max_tokens"].as_u64().unwrap() > 24_576);
        let assistant = &b["messages"][1]["content"];
        assert_eq!(assistant[0], signed);
        assert_eq!(assistant[1]["type"], "tool_use");
        let plain = body(&ChatRequest {
            effort: None,
            ..req
        });
        assert!(plain.get("thinking").is_none());
        assert_eq!(plain["max_tokens"], 8192);
    }
}
