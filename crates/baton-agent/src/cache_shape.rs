//! The prompt-cache shape of one model call: the request's segments in the order a
//! provider's cache reads them (tool schemas, system prompt, the history the previous call
//! already sent, the messages new to this call), each with its tokens and how many of them
//! were read from the cache, written to it or sent fresh.
//!
//! No provider Baton calls offers a tokenizer to ask before the call, so a segment's
//! tokens are estimated (four characters a token; an image by its pixels) and then
//! calibrated: scaled so the segments add up to the input tokens the provider reported.
//! A cached prefix covers the segments in order, so the provider's cache-read figure fills
//! the first segments, the cache-write figure the next, and the rest was fresh.
use baton_llm::{ChatMessage, ChatRequest, ContentPart, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// What a call's cacheable prefix was made of, to tell the next call what changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrefixKey {
    pub model: String,
    pub tools: String,
    pub system: String,
}

/// One segment's estimate before the call.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub name: &'static str,
    pub estimate: f64,
    pub images: u32,
}

/// The request's shape, measured before it is sent.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub segments: Vec<Segment>,
    pub key: PrefixKey,
}

fn hash(v: &impl Serialize) -> String {
    let text = serde_json::to_vec(v).expect("request parts serialize");
    Sha256::digest(&text)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text_tokens(chars: usize) -> f64 {
    chars as f64 / 4.0
}

/// Tokens an image costs: its pixels over 750, after scaling to fit 1568 pixels on the
/// long side (Anthropic's published rule; OpenAI's tiles land close to it).
fn image_tokens(width: u32, height: u32) -> f64 {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let scale = (1568.0 / w.max(h)).min(1.0);
    ((w * scale) * (h * scale) / 750.0).ceil()
}

fn messages_segment(name: &'static str, messages: &[ChatMessage]) -> Segment {
    let mut chars = 0usize;
    let mut images = 0u32;
    let mut image_est = 0.0;
    for m in messages {
        match m {
            ChatMessage::User { content } => {
                for p in content {
                    match p {
                        ContentPart::Text { text } => chars += text.len() + 16,
                        ContentPart::ImageRef(r) => {
                            images += 1;
                            image_est += image_tokens(r.width, r.height);
                        }
                        ContentPart::Image { .. } => {
                            images += 1;
                            image_est += 1_000.0;
                        }
                    }
                }
            }
            other => chars += serde_json::to_string(other).map_or(0, |s| s.len()),
        }
    }
    Segment {
        name,
        estimate: text_tokens(chars) + image_est,
        images,
    }
}

/// Where the messages new to this call start: after the model's last answer.
pub(crate) fn new_from(history: &[ChatMessage]) -> usize {
    history
        .iter()
        .rposition(|m| matches!(m, ChatMessage::Assistant { .. }))
        .map_or(0, |i| i + 1)
}

/// Measures `req` (its history still naming stored images, not holding their bytes).
pub(crate) fn measure(req: &ChatRequest) -> Shape {
    let from = new_from(&req.messages);
    let tools_chars = serde_json::to_string(&req.tools).map_or(0, |s| s.len());
    let segments = vec![
        Segment {
            name: "tools",
            estimate: if req.tools.is_empty() {
                0.0
            } else {
                text_tokens(tools_chars)
            },
            images: 0,
        },
        Segment {
            name: "system",
            estimate: text_tokens(req.system.len()),
            images: 0,
        },
        messages_segment("history", &req.messages[..from]),
        messages_segment("new", &req.messages[from..]),
    ];
    Shape {
        segments,
        key: PrefixKey {
            model: req.model.clone(),
            tools: hash(&req.tools),
            system: hash(&req.system),
        },
    }
}

/// What changed in the cacheable prefix since the previous call.
pub(crate) fn changed(prev: Option<&PrefixKey>, now: &PrefixKey) -> Vec<&'static str> {
    let Some(prev) = prev else {
        return vec![];
    };
    let mut out = vec![];
    if prev.model != now.model {
        out.push("model");
    }
    if prev.tools != now.tools {
        out.push("tools");
    }
    if prev.system != now.system {
        out.push("system");
    }
    out
}

/// The shape as the trace keeps it before the call: estimates only.
pub(crate) fn estimated(shape: &Shape, changed: &[&str]) -> Value {
    json!({
        "calibrated": false,
        "changed": changed,
        "segments": shape.segments.iter().map(|s| json!({
            "name": s.name, "tokens": s.estimate.round() as u64, "images": s.images,
        })).collect::<Vec<_>>(),
    })
}

/// The shape once the provider reported its figures: each segment's tokens calibrated to
/// the reported input, split into read from cache, written to it, and fresh.
pub(crate) fn settled(shape: &Shape, changed: &[&str], usage: &Usage) -> Value {
    let total_est: f64 = shape.segments.iter().map(|s| s.estimate).sum();
    let input = usage.input_tokens;
    // Calibrated tokens per segment, rounded so they add up to the reported input.
    let mut tokens: Vec<u64> = Vec::with_capacity(shape.segments.len());
    let mut given = 0u64;
    let mut acc = 0.0;
    for s in &shape.segments {
        acc += if total_est > 0.0 {
            s.estimate / total_est * input as f64
        } else {
            0.0
        };
        let upto = (acc.round() as u64).min(input);
        tokens.push(upto - given);
        given = upto;
    }
    if let Some(last) = tokens.last_mut() {
        *last += input - given;
    }
    let mut read_left = usage.cache_read_tokens.min(input);
    let mut write_left = usage.cache_write_tokens.min(input - read_left);
    let segments: Vec<Value> = shape
        .segments
        .iter()
        .zip(&tokens)
        .map(|(s, &t)| {
            let read = read_left.min(t);
            read_left -= read;
            let written = write_left.min(t - read);
            write_left -= written;
            json!({ "name": s.name, "tokens": t, "images": s.images,
                    "cached": read, "written": written, "fresh": t - read - written })
        })
        .collect();
    let hit = if input > 0 {
        usage.cache_read_tokens.min(input) as f64 / input as f64
    } else {
        0.0
    };
    json!({
        "calibrated": true,
        "changed": changed,
        "hit_rate": (hit * 1000.0).round() / 1000.0,
        "segments": segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_llm::ToolSpec;

    fn req(system: &str, tools: usize, turns: usize) -> ChatRequest {
        let mut messages = vec![];
        for i in 0..turns {
            messages.push(ChatMessage::user_text(format!("question {i}").repeat(20)));
            messages.push(ChatMessage::Assistant {
                text: "answer ".repeat(40),
                tool_calls: vec![],
                thinking: vec![],
            });
        }
        messages.push(ChatMessage::user_text("the newest question"));
        ChatRequest {
            model: "m".into(),
            system: system.into(),
            tools: (0..tools)
                .map(|i| ToolSpec {
                    name: format!("tool{i}"),
                    description: "does a thing".repeat(10),
                    parameters: json!({ "type": "object" }),
                })
                .collect(),
            messages,
            max_tokens: 100,
            effort: None,
        }
    }

    fn figures(v: &Value, field: &str) -> Vec<u64> {
        v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[field].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn segments_add_up_to_the_reported_input_and_the_cache_fills_them_in_order() {
        let shape = measure(&req(&"be brief. ".repeat(50), 3, 4));
        let usage = Usage {
            input_tokens: 1_000,
            cache_read_tokens: 700,
            cache_write_tokens: 200,
            ..Default::default()
        };
        let v = settled(&shape, &[], &usage);
        let tokens = figures(&v, "tokens");
        assert_eq!(tokens.iter().sum::<u64>(), 1_000);
        let (cached, written, fresh) = (
            figures(&v, "cached"),
            figures(&v, "written"),
            figures(&v, "fresh"),
        );
        assert_eq!(cached.iter().sum::<u64>(), 700);
        assert_eq!(written.iter().sum::<u64>(), 200);
        assert_eq!(fresh.iter().sum::<u64>(), 100);
        // Tools and system are wholly cached before any history is.
        assert_eq!(cached[0], tokens[0]);
        assert_eq!(cached[1], tokens[1]);
        // The newest question is what was sent fresh.
        assert!(fresh[3] > 0 && fresh[0] == 0);
        assert_eq!(v["hit_rate"], 0.7);
    }

    #[test]
    fn a_changed_system_prompt_or_tool_list_is_named() {
        let a = measure(&req("you are helpful", 2, 1));
        let b = measure(&req("you are terse", 2, 1));
        let c = measure(&req("you are helpful", 3, 1));
        assert_eq!(changed(Some(&a.key), &b.key), ["system"]);
        assert_eq!(changed(Some(&a.key), &c.key), ["tools"]);
        assert!(changed(Some(&a.key), &measure(&req("you are helpful", 2, 5)).key).is_empty());
        assert!(changed(None, &a.key).is_empty());
    }

    #[test]
    fn images_count_by_their_pixels() {
        assert_eq!(image_tokens(750, 1), 1.0);
        assert_eq!(image_tokens(1000, 1000), 1334.0);
        // Scaled to fit 1568 on the long side first.
        assert_eq!(image_tokens(3136, 3136), image_tokens(1568, 1568));
    }
}
