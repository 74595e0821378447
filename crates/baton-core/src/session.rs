use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ChatId, Lease, RunId, SessionId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Waiting for the next user message.
    Idle,
    Running,
    AwaitingInput,
    Completed,
    Failed,
    Cancelled,
}

impl SessionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionStatus::Idle => "idle",
            SessionStatus::Running => "running",
            SessionStatus::AwaitingInput => "awaiting_input",
            SessionStatus::Completed => "completed",
            SessionStatus::Failed => "failed",
            SessionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "idle" => SessionStatus::Idle,
            "running" => SessionStatus::Running,
            "awaiting_input" => SessionStatus::AwaitingInput,
            "completed" => SessionStatus::Completed,
            "failed" => SessionStatus::Failed,
            "cancelled" => SessionStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One agent's execution, as snapshotted at its last turn boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    pub id: SessionId,
    pub chat_id: Option<ChatId>,
    pub run_id: Option<RunId>,
    pub parent_id: Option<SessionId>,
    pub provider: String,
    pub model: String,
    pub status: SessionStatus,
    /// The last turn started (a turn is one model request and the tools it asked for).
    pub turn_number: i64,
    /// The runtime's snapshot: history, settings, totals. Its shape belongs to the agent
    /// runtime.
    pub state: Value,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Which instance runs a chat's session; its snapshots are conditional on
    /// `lease.epoch`. A workflow agent's session is covered by its run's lease instead.
    #[serde(default)]
    pub lease: Lease,
}

/// One turn of a session's timeline, derived from its traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnSummary {
    pub turn_number: i64,
    pub started_at: Timestamp,
    /// `null` while a call of the turn is still running.
    pub finished_at: Option<Timestamp>,
    pub tool_count: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_tokens: i64,
    /// Cached input ÷ input, 0 to 1.
    pub cache_hit_rate: f64,
    pub cost_usd: f64,
}

impl TurnSummary {
    /// Cached input ÷ input, 0 when the turn had no input.
    pub fn hit_rate(input_tokens: i64, cache_tokens: i64) -> f64 {
        if input_tokens > 0 {
            cache_tokens as f64 / input_tokens as f64
        } else {
            0.0
        }
    }
}

/// A session as the API and its frames show it: everything but its history (which grows
/// with every turn; the chat's messages and the session's traces and turns are paged
/// instead), with the totals its snapshot keeps as it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionView {
    pub id: SessionId,
    pub chat_id: Option<ChatId>,
    pub run_id: Option<RunId>,
    pub parent_id: Option<SessionId>,
    pub provider: String,
    pub model: String,
    pub status: SessionStatus,
    /// The last turn started; `GET /api/sessions/:id/turns` lists them.
    pub turn_number: i64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub lease: Lease,
    pub usage: SessionUsage,
    pub cost_usd: f64,
    pub tool_calls_used: u32,
    pub workspace: String,
}

/// Tokens a session used so far, all its turns together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionUsage {
    /// All input tokens, cached ones included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}
