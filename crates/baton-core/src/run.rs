use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::collections::BTreeMap;

use crate::{Capabilities, Lease, RunId, SessionId, Timestamp};

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
    pub options: RunOptions,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Token and cost totals, set when the run stops.
    pub totals: RunTotals,
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

/// What a run was started with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RunOptions {
    /// Output tokens the run may spend; none when absent.
    pub budget_tokens: Option<u64>,
    /// Agents asking the model at once.
    pub concurrency: usize,
    /// The canonical workspace; the server's default when absent.
    pub workspace: Option<String>,
    pub capabilities: Capabilities,
    /// Agents and output tokens projected from the script before it ran.
    pub projected_agents: u64,
    pub projected_tokens: u64,
    /// Approved (by `auto_approve`, or by a person): the run may start more than
    /// `approval_agents` agents.
    pub approved: bool,
    /// `meta.phases` titles, read once when the script is parsed.
    pub phases: Vec<String>,
}

/// A run's token and cost totals over its journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RunTotals {
    pub agents: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
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

/// One agent of a run as the run view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentView {
    pub key: String,
    /// Its start order within the run.
    pub order: i64,
    pub label: Option<String>,
    pub phase: Option<String>,
    pub status: AgentStatus,
    pub session_id: Option<SessionId>,
    pub cached: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
}

impl From<JournalEntry> for AgentView {
    fn from(e: JournalEntry) -> Self {
        Self {
            key: e.key,
            order: e.seq,
            label: e.label,
            phase: e.phase,
            status: e.status,
            session_id: e.session_id,
            cached: e.cached,
            input_tokens: e.input_tokens,
            output_tokens: e.output_tokens,
            cost_usd: e.cost_usd,
            started_at: e.started_at,
            finished_at: e.finished_at,
            error: e.error,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseView {
    pub title: String,
    /// Agents by status: running, completed, failed, cancelled.
    pub agents: BTreeMap<AgentStatus, u64>,
    pub tokens: i64,
    pub cost_usd: f64,
    /// From the first agent's start to the last one's finish (or now).
    pub elapsed_ms: i64,
    /// The first agent's start; null before any started.
    pub started_at: Option<Timestamp>,
    /// The last agent's finish; null while any of its agents runs (a client's clock then
    /// runs on from `started_at`).
    pub finished_at: Option<Timestamp>,
}

/// `GET /api/runs/:id`: the run with per-phase agent counts, tokens, cost and elapsed
/// time over all its agents, and its first agents (each with its session for
/// drill-down); the rest are paged (`GET /api/runs/:id/agents`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub run: Run,
    pub phases: Vec<PhaseView>,
    /// The first agents in start order.
    pub agents: Vec<AgentView>,
    /// How many agents the run has started in all.
    pub agents_total: u64,
    /// The `cursor` of `GET /api/runs/:id/agents` for the agents after these; null when
    /// these are all.
    pub agents_next: Option<String>,
    /// How many lines the run's log has; `log` holds the newest of them (200 at most).
    pub log_total: u64,
    /// The `cursor` of `GET /api/runs/:id/log` for the lines before those in `log`; null
    /// when `log` holds them all.
    pub log_next: Option<String>,
}
