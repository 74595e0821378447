use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Capabilities, ChatId, Lease, SessionId, TaskId, Timestamp};

/// Where a background task is in its life. `queued` until an instance claims it,
/// `running` while one runs it (and, if that instance dies, until another claims it
/// again), then one of the three ends, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => TaskStatus::Queued,
            "running" => TaskStatus::Running,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// How far a running task has got, as its agent reports at each turn boundary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskProgress {
    pub turns: u32,
    pub tool_calls: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The name of the last tool the agent called.
    pub last_tool: Option<String>,
}

/// A background agent: spawned by an agent (`spawn_subagent`) or a person
/// (`POST /api/tasks`), run by whichever instance claims it, collected later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Task {
    pub id: TaskId,
    pub status: TaskStatus,
    /// A short name for lists; the prompt's start when none was given.
    pub label: Option<String>,
    pub prompt: String,
    /// A configured model; the server's default when absent.
    pub model: Option<String>,
    /// The canonical workspace; the server's default when absent.
    pub workspace: Option<String>,
    /// What its agent may do beyond reading: never more than its spawner had.
    pub capabilities: Capabilities,
    /// Only these tools (of those the capabilities grant); all of them when absent.
    pub tools: Option<Vec<String>>,
    /// The agent session that spawned it, if an agent did.
    pub parent_session_id: Option<SessionId>,
    /// The chat whose agent spawned it: told when it finishes.
    pub chat_id: Option<ChatId>,
    /// 0 for a task a person started; one more than its spawner's for a task an agent
    /// started.
    pub depth: u32,
    /// The task's own agent session (its traces), once it has started.
    pub session_id: Option<SessionId>,
    pub progress: TaskProgress,
    /// The agent's final answer, when completed.
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// When its chat was told it finished (once).
    pub notified_at: Option<Timestamp>,
    /// Which instance runs it; its writes are conditional on `lease.epoch`.
    #[serde(default)]
    pub lease: Lease,
}
