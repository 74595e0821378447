//! What the agent runtime and its loops share: the store, the hub, the models, the
//! settings, the loops running here, and how their frames go out.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::{FrameBody, NewFrame, Session, SessionId, SessionUsage, SessionView, Topic};
use baton_events::EventHub;
use baton_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::models::ModelRegistry;
use crate::state::SessionState;
use crate::tools::ToolLimits;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub default_model: String,
    /// Workspace of chats that name none.
    pub default_workspace: PathBuf,
    /// Directories under which `write` and `exec` may be granted.
    pub workspace_roots: Vec<PathBuf>,
    /// Longest one answer (all its turns) may take.
    pub agent_timeout: Duration,
    pub max_tool_calls: u32,
    pub tool_limits: ToolLimits,
    /// This instance's id: a chat's session is claimed under it while it answers.
    pub instance: String,
    /// How long a claim on a session lasts unless renewed.
    pub lease_ttl: Duration,
    pub task_limits: crate::tasks::TaskLimits,
    pub attachments: crate::attachments::AttachmentLimits,
    /// A model that describes images for models that cannot see them.
    pub vision_model: Option<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            default_model: "deepseek-chat".into(),
            default_workspace: PathBuf::from("."),
            workspace_roots: crate::workspace::WorkspacePolicy::default_roots(),
            agent_timeout: Duration::from_secs(600),
            max_tool_calls: 50,
            tool_limits: ToolLimits::default(),
            instance: "local".into(),
            lease_ttl: Duration::from_secs(15),
            task_limits: Default::default(),
            attachments: Default::default(),
            vision_model: None,
        }
    }
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub hub: Arc<EventHub>,
    pub models: ModelRegistry,
    pub config: AgentConfig,
    pub running: Mutex<HashMap<SessionId, Running>>,
    /// Tasks running here: their session and the task's lease epoch.
    pub running_tasks: Mutex<HashMap<baton_core::TaskId, (SessionId, i64)>>,
    /// Woken when a task is spawned here, so the claim loop looks at once.
    pub work: Arc<tokio::sync::Notify>,
    /// One permit per task this instance may run at once, held from claim to end.
    pub task_permits: Arc<tokio::sync::Semaphore>,
    pub tasks: TaskTracker,
    /// Cancelled at server shutdown: loops stop without changing their session's status,
    /// so they resume at the next start.
    pub shutdown: CancellationToken,
    /// When orphan attachments were last looked for here.
    pub orphans_swept: Mutex<Option<std::time::Instant>>,
}

impl Inner {
    /// The configured model a request names (`None`: the default model); aliases and
    /// Claude Code's names resolve (`ModelRegistry::resolve`), anything else is an error
    /// that says what to configure.
    pub fn model_for(&self, requested: Option<&str>) -> Result<String, String> {
        let default = &self.config.default_model;
        match requested {
            None => Ok(default.clone()),
            Some(name) => self.models.resolve(name, default),
        }
    }
}

/// A session's loop running here.
pub(crate) struct Running {
    pub cancel: CancellationToken,
    /// Set when another instance claimed the session.
    pub lost: Arc<AtomicBool>,
    /// The lease epoch a chat's session runs under; 0 for a workflow's agent, which its
    /// run's lease covers.
    pub epoch: i64,
    /// `AgentSpec::response_started`.
    pub response_started: Option<CancellationToken>,
}

impl Running {
    pub fn new(cancel: CancellationToken, epoch: i64) -> Self {
        Self {
            cancel,
            lost: Arc::new(AtomicBool::new(false)),
            epoch,
            response_started: None,
        }
    }
}

/// Frames go out in order without the agent waiting for each commit.
pub(crate) async fn publish(hub: &EventHub, topic: Topic, body: FrameBody) {
    hub.enqueue(topic, NewFrame::from(body)).await;
}

/// The session as the API, its frames and snapshots show it: everything but the history,
/// which however long is skipped, not parsed.
pub(crate) fn session_view(s: &Session) -> SessionView {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Totals {
        usage: baton_llm::Usage,
        cost_usd: f64,
        tool_calls_used: u32,
        workspace: String,
    }
    let state = <Totals as serde::Deserialize>::deserialize(&s.state).unwrap_or_default();
    let u = state.usage;
    SessionView {
        id: s.id,
        chat_id: s.chat_id,
        run_id: s.run_id,
        parent_id: s.parent_id,
        provider: s.provider.clone(),
        model: s.model.clone(),
        status: s.status,
        turn_number: s.turn_number,
        error: s.error.clone(),
        created_at: s.created_at,
        updated_at: s.updated_at,
        lease: s.lease.clone(),
        usage: SessionUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
        },
        cost_usd: state.cost_usd,
        tool_calls_used: state.tool_calls_used,
        workspace: state.workspace,
    }
}

pub(crate) async fn publish_state(hub: &EventHub, topic: Topic, s: &Session) {
    publish(
        hub,
        topic,
        FrameBody::SessionState {
            session: session_view(s),
        },
    )
    .await;
}

/// Where a new session belongs: a chat, a run, a spawning session (any, all or none).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Links {
    pub chat: Option<baton_core::ChatId>,
    pub run: Option<baton_core::RunId>,
    pub parent: Option<SessionId>,
}

/// A new session of `model` (its provider looked up) holding `state`, not yet stored.
pub(crate) fn new_session(
    inner: &Inner,
    model: String,
    links: Links,
    status: baton_core::SessionStatus,
    state: &SessionState,
) -> Session {
    let now = baton_core::time::now();
    Session {
        id: SessionId::new(),
        chat_id: links.chat,
        run_id: links.run,
        parent_id: links.parent,
        provider: inner
            .models
            .get(&model)
            .map(|m| m.provider.clone())
            .unwrap_or_default(),
        model,
        status,
        turn_number: 0,
        state: state.to_value(),
        error: None,
        created_at: now,
        updated_at: now,
        lease: Default::default(),
    }
}
