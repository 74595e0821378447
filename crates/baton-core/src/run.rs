use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Lease, RunId, SessionId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    AwaitingApproval,
    Queued,
    Running,
    Paused,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::AwaitingApproval => "awaiting_approval",
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "awaiting_approval" => RunStatus::AwaitingApproval,
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "paused" => RunStatus::Paused,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// One execution of a workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    pub id: RunId,
    pub name: String,
    pub status: RunStatus,
    /// `builtin`, `project`, `personal` or `inline`.
    pub source: String,
    pub script: String,
    pub args: Option<Value>,
    /// What the run was started with: budget, concurrency, workspace, capabilities.
    pub options: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Token and cost totals.
    pub totals: Value,
    /// Narrator lines from `log()`, oldest first.
    pub log: Vec<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// Which instance runs it; writes for it are conditional on `lease.epoch`.
    #[serde(default)]
    pub lease: Lease,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl AgentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AgentStatus::Running => "running",
            AgentStatus::Completed => "completed",
            AgentStatus::Failed => "failed",
            AgentStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => AgentStatus::Running,
            "completed" => AgentStatus::Completed,
            "failed" => AgentStatus::Failed,
            "cancelled" => AgentStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One `agent()` call of a run, keyed by its content: the run's journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JournalEntry {
    pub run_id: RunId,
    /// SHA-256 (hex) of the canonical JSON of `{prompt, schema, model, tools, occurrence}`.
    pub key: String,
    /// Start order within the run.
    pub seq: i64,
    pub label: Option<String>,
    pub phase: Option<String>,
    pub status: AgentStatus,
    pub session_id: Option<SessionId>,
    pub prompt: String,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    /// Whether the last execution of the run took this result from the journal.
    pub cached: bool,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// The run's lease epoch when this was written: where several instances share the
    /// store, a write under an epoch the run has moved past is refused.
    #[serde(default)]
    pub epoch: i64,
}
