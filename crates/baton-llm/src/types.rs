use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    /// Base64 data of an image.
    Image {
        mime: String,
        data: String,
    },
    /// An image kept by Baton (an attachment), as a session's history holds it: the agent
    /// puts in its bytes (an `Image`) or a description before a request is sent. A
    /// provider that meets one anyway sends `ImageRef::placeholder`.
    ImageRef(ImageRef),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRef {
    /// The attachment's id.
    pub attachment: String,
    pub mime: String,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

impl ImageRef {
    pub fn placeholder(&self) -> String {
        format!("[image {} was not loaded]", self.attachment)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The parsed arguments; `{"_raw": "..."}` when the model sent something that is not
    /// a JSON object, so the tool can answer with a clear error.
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    User {
        content: Vec<ContentPart>,
    },
    Assistant {
        text: String,
        #[serde(default)]
        tool_calls: Vec<ToolCall>,
        /// The provider's own reasoning blocks, sent back as they came (Anthropic's
        /// extended thinking needs them with the tool results that follow).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        thinking: Vec<serde_json::Value>,
    },
    Tool {
        call_id: String,
        name: String,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
}

impl ChatMessage {
    pub fn user_text(text: impl Into<String>) -> Self {
        ChatMessage::User {
            content: vec![ContentPart::Text { text: text.into() }],
        }
    }
}

/// A model request. Build it cache-friendly: `system` and `tools` stable across the
/// turns of a session, `messages` only ever appended to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model id sent to the provider.
    pub model: String,
    pub system: String,
    pub tools: Vec<ToolSpec>,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    /// How hard the model should think, where its provider has a control for it.
    pub effort: Option<Effort>,
}

/// Claude Code's `effort`: sent as OpenAI-compatible `reasoning_effort`, or as an
/// Anthropic extended-thinking budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    Low,
    Medium,
    High,
}

impl Effort {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" => Effort::High,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }

    /// Anthropic's extended-thinking budget for this effort, in tokens.
    pub fn thinking_budget(&self) -> u32 {
        match self {
            Effort::Low => 2_048,
            Effort::Medium => 8_192,
            Effort::High => 24_576,
        }
    }
}

/// Token counts, normalized across vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// All input tokens, cached ones included (OpenAI's `prompt_tokens`; Anthropic's
    /// `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`).
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// Reasoning blocks to keep in the history (see `ChatMessage::Assistant`).
    pub thinking: Vec<serde_json::Value>,
    pub usage: Usage,
    pub stop_reason: StopReason,
    /// Attempts it took (1 without retries).
    pub attempts: u32,
}

/// Streamed output.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    /// A retry is starting: text streamed by the failed attempt is void.
    Restart {
        attempt: u32,
        reason: String,
    },
}

/// Parses tool-call argument text into a JSON object, keeping unparseable text.
pub(crate) fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::Object(Default::default());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => v,
        _ => serde_json::json!({ "_raw": raw }),
    }
}
