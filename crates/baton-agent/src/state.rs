//! What a session snapshot holds. Pending tool calls are not stored separately: they are
//! the calls of the last assistant message that no tool message answers yet.
use baton_llm::{ChatMessage, ToolCall, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use baton_store::Store;

use crate::tools::Capabilities;
use crate::AgentError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionState {
    /// The system prompt. Not stored with the state when `system_ref` names it.
    #[serde(default)]
    pub system: String,
    /// The hash under which the system prompt is kept once in the store
    /// (`Store::prompt`): the agents of a run share one instead of each storing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_ref: Option<String>,
    /// The canonical workspace root.
    pub workspace: String,
    #[serde(default)]
    pub caps: Capabilities,
    pub history: Vec<ChatMessage>,
    pub max_tool_calls: u32,
    #[serde(default)]
    pub tool_calls_used: u32,
    /// For structured output: the JSON Schema the answer must match.
    #[serde(default)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub schema_retries: u32,
    #[serde(default)]
    pub budget_tokens: Option<u64>,
    /// When set, only these tools (of those the capabilities grant) are offered and run.
    #[serde(default)]
    pub tool_allowlist: Option<Vec<String>>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub cost_usd: f64,
    /// How hard the model should think (`agent(…, { effort })`), where its provider can be
    /// told.
    #[serde(default)]
    pub effort: Option<baton_llm::Effort>,
    /// 0 for a chat's or a workflow's agent; a background task's depth otherwise.
    #[serde(default)]
    pub task_depth: u32,
    /// The final answer: text, or the validated object with a schema.
    #[serde(default)]
    pub result: Option<Value>,
    /// The cacheable prefix of the last model call, to name what the next one changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<crate::cache_shape::PrefixKey>,
}

impl SessionState {
    pub fn from_value(v: &Value) -> Result<Self, String> {
        serde_json::from_value(v.clone()).map_err(|e| format!("unreadable session snapshot: {e}"))
    }

    /// The state as stored: without the system prompt when `system_ref` names it.
    pub fn to_value(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("state serializes");
        if self.system_ref.is_some() {
            if let Value::Object(fields) = &mut v {
                fields.remove("system");
            }
        }
        v
    }

    /// A stored state, with its system prompt fetched from `store` when the state names it.
    pub async fn load(store: &dyn Store, v: &Value) -> Result<Self, AgentError> {
        let mut state = Self::from_value(v).map_err(AgentError::BadInput)?;
        if let (true, Some(hash)) = (state.system.is_empty(), &state.system_ref) {
            state.system = store.prompt(hash).await?.ok_or_else(|| {
                AgentError::BadInput(format!(
                    "unreadable session snapshot: its system prompt {hash} is not stored"
                ))
            })?;
        }
        Ok(state)
    }

    /// Readies the state for a new answer: the previous answer and its counters belong to
    /// the last one (a stale result would end this answer after its first tool call).
    pub fn begin_answer(&mut self) {
        self.tool_calls_used = 0;
        self.result = None;
        self.schema_retries = 0;
    }

    /// Calls of the last assistant message not yet answered, in order.
    pub fn pending_calls(&self) -> Vec<ToolCall> {
        let Some(pos) = self
            .history
            .iter()
            .rposition(|m| matches!(m, ChatMessage::Assistant { .. }))
        else {
            return Vec::new();
        };
        let ChatMessage::Assistant { tool_calls, .. } = &self.history[pos] else {
            return Vec::new();
        };
        let answered: Vec<&str> = self.history[pos + 1..]
            .iter()
            .filter_map(|m| match m {
                ChatMessage::Tool { call_id, .. } => Some(call_id.as_str()),
                _ => None,
            })
            .collect();
        tool_calls
            .iter()
            .filter(|c| !answered.contains(&c.id.as_str()))
            .cloned()
            .collect()
    }

    /// The final text when the last message is an answer without tool calls.
    pub fn final_answer(&self) -> Option<&str> {
        match self.history.last() {
            Some(ChatMessage::Assistant {
                text, tool_calls, ..
            }) if tool_calls.is_empty() => Some(text),
            _ => None,
        }
    }
}
