//! Background tasks (SPEC 6): an agent session started now and collected later. A task is
//! a row first (queued); whichever instance claims it runs it as an agent session of its
//! own, leased like a chat's session, so a task whose instance dies is claimed again and
//! continues from its last snapshot. The three tools agents use to spawn, watch and
//! collect tasks are answered here.
use std::path::PathBuf;
use std::time::Duration;

use baton_core::{
    time, Capabilities, ChatId, FrameBody, NotificationKind, Session, SessionId, SessionStatus,
    Task, TaskId, TaskPhase, TaskProgress, TaskStatus, Topic,
};
use baton_llm::{ChatMessage, ToolCall, ToolSpec};
use serde_json::{json, Value};

use crate::error::AgentError;
use crate::runner;
use crate::runtime::{AgentRuntime, SYSTEM_PROMPT};
use crate::shared::{new_session, publish, Inner, Links};
use crate::state::SessionState;
use crate::tools::{ToolOutput, Workspace};

pub const SPAWN: &str = "spawn_subagent";
pub const STATUS: &str = "subagent_status";
pub const RESULT: &str = "subagent_result";

/// Limits on background tasks (`[limits]`).
#[derive(Debug, Clone)]
pub struct TaskLimits {
    /// How deep tasks may nest: 1 lets chats and workflow agents spawn tasks, and tasks
    /// spawn none.
    pub max_depth: u32,
    /// Tasks one instance runs at once.
    pub per_instance: usize,
    /// Tasks one session may spawn in all.
    pub per_session: usize,
    /// Longest one task may run.
    pub timeout: Duration,
    /// Tokens one task may use; unlimited when absent.
    pub budget_tokens: Option<u64>,
    /// Longest `subagent_result` waits.
    pub max_wait: Duration,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            max_depth: 1,
            per_instance: 4,
            per_session: 16,
            timeout: Duration::from_secs(1800),
            budget_tokens: None,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// What a task is started with.
#[derive(Debug, Clone, Default)]
pub struct SpawnRequest {
    pub prompt: String,
    pub model: Option<String>,
    pub label: Option<String>,
    pub tools: Option<Vec<String>>,
    pub workspace: Option<PathBuf>,
    pub capabilities: Capabilities,
    /// The spawning session: its id, its chat and its depth.
    pub parent: Option<(SessionId, Option<ChatId>, u32)>,
}

const MAX_PROMPT_CHARS: usize = 200_000;
const MAX_LABEL_CHARS: usize = 200;

pub(crate) async fn spawn(inner: &Inner, req: SpawnRequest) -> Result<Task, AgentError> {
    let prompt = req.prompt.trim();
    if prompt.is_empty() || prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(AgentError::BadInput(format!(
            "a task needs a prompt of 1 to {MAX_PROMPT_CHARS} characters"
        )));
    }
    let label = req
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    if label.is_some_and(|l| l.chars().count() > MAX_LABEL_CHARS || l.chars().any(char::is_control))
    {
        return Err(AgentError::BadInput(format!(
            "a label is at most {MAX_LABEL_CHARS} characters, without control characters"
        )));
    }
    let model = match &req.model {
        Some(m) => Some(inner.model_for(Some(m)).map_err(AgentError::BadInput)?),
        None => None,
    };
    let limits = &inner.config.task_limits;
    let depth = match req.parent {
        Some((parent, _, depth)) => {
            if depth >= limits.max_depth {
                return Err(AgentError::BadInput(format!(
                    "a background agent at depth {depth} may not start more (limits.task_depth is {})",
                    limits.max_depth
                )));
            }
            let spawned = inner.store.session_tasks(parent).await?.len();
            if spawned >= limits.per_session {
                return Err(AgentError::BadInput(format!(
                    "this agent already started {spawned} background tasks, the most one session may (limits.tasks_per_session)"
                )));
            }
            depth + 1
        }
        None => 0,
    };
    let task = Task {
        id: TaskId::new(),
        status: TaskStatus::Queued,
        label: Some(
            label
                .map(str::to_string)
                .unwrap_or_else(|| prompt.chars().take(60).collect()),
        ),
        prompt: prompt.to_string(),
        model,
        workspace: req.workspace.map(|w| w.display().to_string()),
        capabilities: req.capabilities,
        tools: req.tools,
        parent_session_id: req.parent.map(|p| p.0),
        chat_id: req.parent.and_then(|p| p.1),
        depth,
        session_id: None,
        progress: TaskProgress::default(),
        result: None,
        error: None,
        created_at: time::now(),
        started_at: None,
        finished_at: None,
        notified_at: None,
        lease: Default::default(),
    };
    inner.store.create_task(&task).await?;
    event(inner, TaskPhase::Created, &task).await;
    inner.work.notify_one();
    Ok(task)
}

pub(crate) async fn event(inner: &Inner, phase: TaskPhase, task: &Task) {
    publish(
        &inner.hub,
        Topic::Tasks,
        FrameBody::TaskEvent {
            phase,
            task: task.clone(),
        },
    )
    .await;
}

/// The task with its progress read from its session's last snapshot.
pub(crate) async fn with_progress(inner: &Inner, mut task: Task) -> Result<Task, AgentError> {
    if task.status.is_finished() {
        return Ok(task);
    }
    if let Some(sid) = task.session_id {
        if let Some(s) = inner.store.get_session(sid).await? {
            task.progress = progress_of(&s);
        }
    }
    Ok(task)
}

fn progress_of(s: &Session) -> TaskProgress {
    let state = SessionState::from_value(&s.state).unwrap_or_default();
    let last_tool = state.history.iter().rev().find_map(|m| match m {
        ChatMessage::Tool { name, .. } => Some(name.clone()),
        _ => None,
    });
    TaskProgress {
        turns: u32::try_from(s.turn_number).unwrap_or(u32::MAX),
        tool_calls: state
            .history
            .iter()
            .filter(|m| matches!(m, ChatMessage::Tool { .. }))
            .count() as u32,
        input_tokens: state.usage.input_tokens,
        output_tokens: state.usage.output_tokens,
        last_tool,
    }
}

/// How often a running task's progress is looked at, and told (`task_event` `progress`)
/// when it changed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Tells the `tasks` topic how far a running task has got, from its session's snapshots,
/// until it is aborted when the task's loop ends.
async fn report_progress(rt: AgentRuntime, mut task: Task) {
    let Some(sid) = task.session_id else { return };
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let Ok(Some(s)) = rt.inner.store.get_session(sid).await else {
            continue;
        };
        let now = progress_of(&s);
        if now != task.progress {
            task.progress = now;
            event(&rt.inner, TaskPhase::Progress, &task).await;
        }
    }
}

/// The task tools' schemas: spawning only where the depth allows it.
pub(crate) fn specs(depth: u32, limits: &TaskLimits) -> Vec<ToolSpec> {
    let id = json!({ "type": "string", "description": "The task_id spawn_subagent returned" });
    let mut out = Vec::new();
    if depth < limits.max_depth {
        out.push(ToolSpec {
            name: SPAWN.into(),
            description: "Start a background agent on a task and return its task_id at once; it works in the same workspace with the same or fewer tools while you go on. Collect its answer later with subagent_result.".into(),
            parameters: json!({ "type": "object", "required": ["prompt"], "additionalProperties": false, "properties": {
                "prompt": { "type": "string", "description": "Everything the background agent needs to know: it does not see this conversation" },
                "label": { "type": "string", "description": "A short name for lists" },
                "model": { "type": "string" },
                "tools": { "type": "array", "items": { "type": "string" }, "description": "Only these of your tools (all of them when absent)" } } }),
        });
    }
    out.push(ToolSpec {
        name: STATUS.into(),
        description: "The status of a background task you started: queued, running, completed, failed or cancelled, with its progress.".into(),
        parameters: json!({ "type": "object", "required": ["task_id"], "additionalProperties": false, "properties": { "task_id": id.clone() } }),
    });
    out.push(ToolSpec {
        name: RESULT.into(),
        description: "The final answer of a background task you started (or its error). With wait_s, waits up to that many seconds (at most 60) for it to finish instead of answering 'still running'.".into(),
        parameters: json!({ "type": "object", "required": ["task_id"], "additionalProperties": false, "properties": {
            "task_id": id, "wait_s": { "type": "number", "minimum": 0 } } }),
    });
    out
}

pub fn is_task_tool(name: &str) -> bool {
    matches!(name, SPAWN | STATUS | RESULT)
}

/// Answers one of the task tools for `session`.
pub(crate) async fn tool(
    inner: &Inner,
    session: &Session,
    state: &SessionState,
    offered: &[String],
    call: &ToolCall,
) -> ToolOutput {
    match tool_inner(inner, session, state, offered, call).await {
        Ok(v) => ToolOutput::ok(v.to_string()),
        Err(e) => ToolOutput::error(e),
    }
}

async fn tool_inner(
    inner: &Inner,
    session: &Session,
    state: &SessionState,
    offered: &[String],
    call: &ToolCall,
) -> Result<Value, String> {
    let args = &call.arguments;
    let text = |key: &str| -> Result<Option<String>, String> {
        match args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("'{key}' must be a string")),
        }
    };
    if call.name == SPAWN {
        let prompt = text("prompt")?.ok_or("missing argument 'prompt'")?;
        let tools = match args.get("tools") {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => {
                let names: Vec<String> = list
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or("'tools' must be a list of tool names")
                    })
                    .collect::<Result<_, _>>()?;
                if let Some(bad) = names
                    .iter()
                    .find(|n| !offered.contains(n) || is_task_tool(n))
                {
                    return Err(format!(
                        "'{bad}' is not one of your tools; a background agent gets the same tools as you or fewer: {}",
                        offered.iter().filter(|n| !is_task_tool(n)).cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                Some(names)
            }
            Some(_) => return Err("'tools' must be a list of tool names".into()),
        };
        let task = spawn(
            inner,
            SpawnRequest {
                prompt,
                model: text("model")?,
                label: text("label")?,
                tools: tools.or_else(|| state.tool_allowlist.clone()),
                workspace: Some(PathBuf::from(&state.workspace)),
                capabilities: state.caps,
                parent: Some((session.id, session.chat_id, state.task_depth)),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        return Ok(json!({ "task_id": task.id, "status": task.status }));
    }
    let id: TaskId = text("task_id")?
        .ok_or("missing argument 'task_id'")?
        .parse()
        .map_err(|_| "'task_id' is not a task id")?;
    let mine = |t: &Task| t.parent_session_id == Some(session.id);
    let find = || async {
        match inner.store.get_task(id).await {
            Ok(Some(t)) if mine(&t) => Ok(t),
            Ok(_) => Err(format!("no task {id} was started by you")),
            Err(e) => Err(format!("the task could not be read: {e}")),
        }
    };
    let mut task = find().await?;
    if call.name == STATUS {
        let task = with_progress(inner, task)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(status_json(&task));
    }
    let wait = match args.get("wait_s") {
        None | Some(Value::Null) => Duration::ZERO,
        Some(v) => {
            let s = v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or("'wait_s' must be a number of seconds")?;
            Duration::from_secs_f64(s).min(inner.config.task_limits.max_wait)
        }
    };
    let deadline = tokio::time::Instant::now() + wait;
    while !task.status.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100).min(deadline - tokio::time::Instant::now()))
            .await;
        task = find().await?;
    }
    Ok(match task.status {
        TaskStatus::Completed => json!({ "status": "completed", "result": task.result }),
        TaskStatus::Failed | TaskStatus::Cancelled => {
            json!({ "status": task.status, "error": task.error })
        }
        _ => {
            let task = with_progress(inner, task)
                .await
                .map_err(|e| e.to_string())?;
            let mut v = status_json(&task);
            v["note"] = json!("still working; ask again later, or pass wait_s to wait");
            v
        }
    })
}

fn status_json(t: &Task) -> Value {
    let elapsed = t.started_at.map(|s| {
        let end = t.finished_at.unwrap_or_else(time::now);
        (end - s).num_milliseconds().max(0) as f64 / 1000.0
    });
    json!({
        "task_id": t.id, "label": t.label, "status": t.status,
        "progress": t.progress, "elapsed_s": elapsed, "error": t.error,
    })
}

impl AgentRuntime {
    /// Starts a background task a person asked for (`POST /api/tasks`).
    pub async fn spawn_task(&self, req: SpawnRequest) -> Result<Task, AgentError> {
        let ws = self.resolve_workspace(req.workspace.as_deref(), &req.capabilities)?;
        spawn(
            &self.inner,
            SpawnRequest {
                workspace: ws,
                ..req
            },
        )
        .await
    }

    /// One task with its progress.
    pub async fn task(&self, id: TaskId) -> Result<Task, AgentError> {
        let task = self
            .inner
            .store
            .get_task(id)
            .await?
            .ok_or(AgentError::NotFound("task"))?;
        with_progress(&self.inner, task).await
    }

    /// Stops a task wherever it runs; a queued one ends at once. Conflict when it ended.
    pub async fn cancel_task(&self, id: TaskId) -> Result<Task, AgentError> {
        let inner = &self.inner;
        let task = inner
            .store
            .get_task(id)
            .await?
            .ok_or(AgentError::NotFound("task"))?;
        if task.status.is_finished() {
            return Err(AgentError::Conflict(format!(
                "the task already ended ({})",
                task.status.as_str()
            )));
        }
        if let Some(t) = inner
            .store
            .cancel_queued_task(id, time::now(), "cancelled")
            .await?
        {
            event(inner, TaskPhase::Finished, &t).await;
            return Ok(t);
        }
        if !self.cancel_task_here(id) {
            inner.store.request_task_cancel(id).await?;
        }
        Ok(task)
    }

    /// Cancels task `id` if it runs here.
    pub fn cancel_task_here(&self, id: TaskId) -> bool {
        let session = self
            .inner
            .running_tasks
            .lock()
            .expect("tasks lock")
            .get(&id)
            .map(|r| r.0);
        session.is_some_and(|s| self.cancel_here(s))
    }

    /// The tasks running here, with the epoch each runs under.
    pub fn leased_tasks(&self) -> Vec<(TaskId, i64)> {
        self.inner
            .running_tasks
            .lock()
            .expect("tasks lock")
            .iter()
            .map(|(id, (_, epoch))| (*id, *epoch))
            .collect()
    }

    /// Stops task `id` here without writing: another instance claimed it.
    pub fn lose_task(&self, id: TaskId, epoch: i64) {
        let session = {
            let running = self.inner.running_tasks.lock().expect("tasks lock");
            running.get(&id).filter(|r| r.1 == epoch).map(|r| r.0)
        };
        if let Some(s) = session {
            tracing::warn!(task = %id, "another instance claimed this task; stopping it here");
            self.lose_session(s);
        }
    }

    /// Claims tasks while this instance has room (`limits.tasks_per_instance`), oldest
    /// first, and starts each at once, side by side.
    pub async fn claim_and_start_tasks(&self) {
        let cfg = &self.inner.config;
        loop {
            let Ok(permit) = self.inner.task_permits.clone().try_acquire_owned() else {
                return;
            };
            let claimed = match self
                .inner
                .store
                .claim_tasks(&cfg.instance, cfg.lease_ttl, 1)
                .await
            {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming tasks failed");
                    return;
                }
            };
            let Some(task) = claimed.into_iter().next() else {
                return;
            };
            let this = self.clone();
            self.inner.tasks.spawn(async move {
                let id = task.id;
                if let Err(e) = this.start_task(task, permit).await {
                    tracing::warn!(task = %id, error = %e, "starting a task failed");
                }
            });
        }
    }

    /// Woken when a task is spawned here (the claim loop waits on it).
    pub fn work_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.inner.work.clone()
    }

    /// Runs a task this instance claimed: a fresh session for a queued task, or its
    /// session's last snapshot for one whose instance died. A task that cannot start
    /// (its workspace is gone, its snapshot unreadable) ends as failed, with the reason.
    async fn start_task(
        &self,
        task: Task,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), AgentError> {
        let Err(e) = self.begin_task(task.clone(), permit).await else {
            return Ok(());
        };
        // Its slot is free again.
        self.inner.work.notify_one();
        if matches!(e, AgentError::Store(baton_store::StoreError::Fenced(_))) {
            return Err(e);
        }
        let mut failed = task;
        failed.status = TaskStatus::Failed;
        failed.error = Some(format!("the task could not start: {e}"));
        failed.finished_at = Some(time::now());
        if self.inner.store.update_task(&failed).await.is_ok() {
            event(&self.inner, TaskPhase::Finished, &failed).await;
        }
        Err(e)
    }

    async fn begin_task(
        &self,
        mut task: Task,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), AgentError> {
        let inner = &self.inner;
        let cfg = &inner.config;
        let epoch = task.lease.epoch;
        let (mut session, state) = match task.session_id {
            Some(sid) => {
                let s = self.claim_task_session(sid).await?;
                inner
                    .store
                    .close_running_traces(
                        sid,
                        "interrupted: the instance running it stopped during this call",
                    )
                    .await?;
                let state = SessionState::load(&*inner.store, &s.state).await?;
                (s, state)
            }
            None => {
                let root = task
                    .workspace
                    .clone()
                    .map(PathBuf::from)
                    .unwrap_or(cfg.default_workspace.clone());
                let ws = Workspace::new(&root).map_err(|e| AgentError::BadInput(e.to_string()))?;
                let model = task.model.clone().unwrap_or(cfg.default_model.clone());
                let state = SessionState {
                    system: SYSTEM_PROMPT.to_string(),
                    workspace: ws.root().display().to_string(),
                    caps: task.capabilities,
                    history: vec![ChatMessage::user_text(task.prompt.clone())],
                    max_tool_calls: cfg.max_tool_calls,
                    budget_tokens: cfg.task_limits.budget_tokens,
                    tool_allowlist: task.tools.clone(),
                    task_depth: task.depth,
                    ..Default::default()
                };
                let links = Links {
                    parent: task.parent_session_id,
                    ..Links::default()
                };
                let session = new_session(inner, model, links, SessionStatus::Idle, &state);
                inner.store.create_session(&session).await?;
                let claimed = inner
                    .store
                    .claim_session(session.id, &cfg.instance, cfg.lease_ttl)
                    .await?
                    .ok_or(AgentError::Conflict(
                        "the task's new session was claimed elsewhere".into(),
                    ))?;
                (
                    Session {
                        lease: claimed.lease,
                        ..session
                    },
                    state,
                )
            }
        };
        session.status = SessionStatus::Running;
        session.updated_at = time::now();
        inner.store.save_session(&session, &[]).await?;
        task.status = TaskStatus::Running;
        task.session_id = Some(session.id);
        task.started_at = task.started_at.or(Some(time::now()));
        inner.store.update_task(&task).await?;
        event(inner, TaskPhase::Started, &task).await;
        inner
            .running_tasks
            .lock()
            .expect("tasks lock")
            .insert(task.id, (session.id, epoch));
        let this = self.clone();
        let span = tracing::info_span!("task", task = %task.id, session = %session.id);
        inner.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let limit = this.inner.config.task_limits.timeout;
                let reporter = tokio::spawn(report_progress(this.clone(), task.clone()));
                let (session, state) = this.drive_session(session, state, limit).await;
                reporter.abort();
                drop(permit);
                this.finish_task(task, &session, &state).await;
            },
            span,
        ));
        Ok(())
    }

    /// Claims the session of a task taken over from a dead instance. Its lease was renewed
    /// with the task's, but set a moment later, so it may outlive the task's by that
    /// moment: wait for it (two TTLs at most).
    async fn claim_task_session(&self, sid: SessionId) -> Result<Session, AgentError> {
        let cfg = &self.inner.config;
        let deadline = tokio::time::Instant::now() + cfg.lease_ttl * 2;
        loop {
            if let Some(s) = self
                .inner
                .store
                .claim_session(sid, &cfg.instance, cfg.lease_ttl)
                .await?
            {
                return Ok(s);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AgentError::Conflict(
                    "its agent session is still held by another instance".into(),
                ));
            }
            tokio::time::sleep((cfg.lease_ttl / 8).min(Duration::from_millis(250))).await;
        }
    }

    async fn finish_task(&self, mut task: Task, session: &Session, state: &SessionState) {
        let inner = &self.inner;
        inner
            .running_tasks
            .lock()
            .expect("tasks lock")
            .remove(&task.id);
        // A slot is free: the claim loop may take the next queued task.
        inner.work.notify_one();
        task.progress = progress_of(session);
        task.status = match session.status {
            SessionStatus::Completed => TaskStatus::Completed,
            SessionStatus::Failed => TaskStatus::Failed,
            SessionStatus::Cancelled => TaskStatus::Cancelled,
            // Lost to another instance, or stopping for shutdown: the task goes on elsewhere
            // or at the next start.
            _ => return,
        };
        task.result = match &state.result {
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(v.to_string()),
            None => None,
        };
        task.error = session.error.clone();
        task.finished_at = Some(time::now());
        match inner.store.update_task(&task).await {
            // As stored: an ended task is held by nobody.
            Ok(()) => task.lease = Default::default(),
            Err(e) => {
                tracing::warn!(error = %e, "the task's end was not recorded (another instance holds it now?)");
                return;
            }
        }
        event(inner, TaskPhase::Finished, &task).await;
        if let Some(chat) = task.chat_id {
            // Sent once: a task ends once (`update_task`). The notice itself goes into
            // the conversation now if its agent is idle, else at its next turn boundary.
            publish(
                &inner.hub,
                Topic::Chat(chat),
                FrameBody::Notification {
                    kind: NotificationKind::TaskFinished,
                    task: task.clone(),
                },
            )
            .await;
            if let Err(e) = self.tell_chat(chat).await {
                tracing::warn!(error = %e, "telling the chat of its ended task failed");
            }
        }
    }

    /// Runs a task's session loop to its end, registered as running here meanwhile.
    async fn drive_session(
        &self,
        session: Session,
        state: SessionState,
        limit: Duration,
    ) -> (Session, SessionState) {
        let inner = &self.inner;
        let cancel = inner.shutdown.child_token();
        let running = crate::shared::Running::new(cancel.clone(), session.lease.epoch);
        let lost = running.lost.clone();
        let id = session.id;
        inner
            .running
            .lock()
            .expect("running lock")
            .insert(id, running);
        let out = runner::drive(inner, session, state, cancel, lost, limit).await;
        inner.running.lock().expect("running lock").remove(&id);
        out
    }
}
