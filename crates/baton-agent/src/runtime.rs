//! Starting, continuing, cancelling and resuming sessions.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::{
    time, AttachmentId, ChatId, FrameBody, Message, MessageId, Role, Session, SessionId,
    SessionStatus, SessionView, Topic, TracePhase, TurnSummary,
};
use baton_events::EventHub;
use baton_llm::{ChatMessage, ContentPart};
use baton_store::{Queued, Store};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lifecycle;
use crate::models::ModelRegistry;
use crate::runner;
pub use crate::shared::AgentConfig;
use crate::shared::{new_session, publish, publish_state, session_view, Inner, Links, Running};
use crate::state::SessionState;
use crate::tools::{Capabilities, Workspace};
use crate::AgentError;

#[derive(Clone)]
pub struct AgentRuntime {
    pub(crate) inner: Arc<Inner>,
}

/// One agent to run as a child session.
#[derive(Debug, Clone, Default)]
pub struct AgentSpec {
    pub prompt: String,
    pub model: Option<String>,
    /// With a schema the answer is the validated object given through StructuredOutput.
    pub schema: Option<serde_json::Value>,
    pub caps: Capabilities,
    pub max_tool_calls: Option<u32>,
    pub timeout: Option<Duration>,
    pub budget_tokens: Option<u64>,
    /// Only these tools, of those `caps` grants (`None`: all of them).
    pub tools: Option<Vec<String>>,
    pub workspace: Option<PathBuf>,
    pub run_id: Option<baton_core::RunId>,
    pub parent_id: Option<SessionId>,
    /// Put before Baton's own instructions: an agent type's system prompt.
    pub system: Option<String>,
    pub effort: Option<baton_llm::Effort>,
    /// Cancelled once the agent's first model response has started (or its first call
    /// ended, or the agent did): when its prompt is in the provider's cache.
    pub response_started: Option<CancellationToken>,
}

#[derive(Debug, Clone)]
pub struct AgentOutcome {
    pub session_id: SessionId,
    /// `completed`, `failed` or `cancelled` (`running` only if the server is stopping).
    pub status: SessionStatus,
    /// The answer: text, or the validated object.
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub usage: baton_llm::Usage,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PostedMessage {
    pub message_id: MessageId,
    pub session_id: SessionId,
}

pub(crate) const SYSTEM_PROMPT: &str = "You are Baton's agent. You work inside one workspace directory and can use the tools \
provided to look at it; paths are relative to the workspace root. Read what you need before answering, prefer \
precise answers that cite file paths and line numbers, and say so when something cannot be determined from the \
workspace. When you are done, answer in plain text without calling a tool.";

fn busy() -> AgentError {
    let e = lifecycle::on_message(SessionStatus::Running, true).unwrap_err();
    AgentError::Conflict(e.0)
}

impl AgentRuntime {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<EventHub>,
        models: ModelRegistry,
        config: AgentConfig,
    ) -> Self {
        let slots = config.task_limits.per_instance;
        Self {
            inner: Arc::new(Inner {
                store,
                hub,
                models,
                config,
                running: Mutex::new(HashMap::new()),
                running_tasks: Mutex::new(HashMap::new()),
                work: Arc::new(tokio::sync::Notify::new()),
                task_permits: Arc::new(tokio::sync::Semaphore::new(slots)),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                orphans_swept: Mutex::new(None),
            }),
        }
    }

    pub fn models(&self) -> &ModelRegistry {
        &self.inner.models
    }

    /// The configured model a request names (`None`: the default); the error says what
    /// to configure.
    pub fn model_for(&self, requested: Option<&str>) -> Result<String, String> {
        self.inner.model_for(requested)
    }

    /// The canonical workspace `raw` names (`None` for the default), once `caps` are
    /// known to be allowed there.
    pub fn resolve_workspace(
        &self,
        raw: Option<&std::path::Path>,
        caps: &baton_core::Capabilities,
    ) -> Result<Option<std::path::PathBuf>, AgentError> {
        let c = &self.inner.config;
        let policy = crate::workspace::WorkspacePolicy {
            default: c.default_workspace.clone(),
            roots: c.workspace_roots.clone(),
        };
        Ok(policy.resolve(raw, caps)?)
    }

    /// Stores the user's message and starts (or continues) the chat's session in the
    /// background.
    /// `attachments` are images from `upload_attachment`, shown to the model in that
    /// order before the text, on this turn and every later one.
    pub async fn post_message(
        &self,
        chat_id: ChatId,
        content: String,
        attachments: Vec<AttachmentId>,
        model: Option<String>,
    ) -> Result<PostedMessage, AgentError> {
        let inner = &self.inner;
        let chat = inner
            .store
            .get_chat(chat_id)
            .await?
            .ok_or(AgentError::NotFound("chat"))?;
        let model = match model {
            Some(m) => Some(inner.model_for(Some(&m)).map_err(AgentError::BadInput)?),
            None => None,
        };
        // Another writer may take the idle session between this claim and its save (a
        // finished task's notice being told): then read it again and go on from there.
        let question = Question {
            content: &content,
            attachments: &attachments,
            images: crate::attachments::lookup(inner, &attachments).await?,
        };
        for _ in 0..3 {
            if let Some(posted) = self.try_post(&chat, &question, model.as_deref()).await? {
                return Ok(posted);
            }
        }
        Err(busy())
    }

    /// One attempt of `post_message`; `None` when another writer claimed the session in
    /// between.
    async fn try_post(
        &self,
        chat: &baton_core::Chat,
        question: &Question<'_>,
        model: Option<&str>,
    ) -> Result<Option<PostedMessage>, AgentError> {
        let inner = &self.inner;
        let cfg = &inner.config;
        let existing = match inner.store.list_sessions(chat.id).await?.pop() {
            Some(s) => {
                lifecycle::on_message(s.status, self.is_running(s.id))
                    .map_err(|e| AgentError::Conflict(e.0))?;
                s
            }
            None => {
                let root = chat
                    .workspace
                    .clone()
                    .map(PathBuf::from)
                    .unwrap_or(cfg.default_workspace.clone());
                let ws = Workspace::new(&root).map_err(|e| AgentError::BadInput(e.to_string()))?;
                let state = SessionState {
                    system: SYSTEM_PROMPT.to_string(),
                    workspace: ws.root().display().to_string(),
                    caps: chat.capabilities,
                    max_tool_calls: cfg.max_tool_calls,
                    ..Default::default()
                };
                let model = model
                    .map(str::to_string)
                    .unwrap_or(cfg.default_model.clone());
                let links = Links {
                    chat: Some(chat.id),
                    ..Links::default()
                };
                let session = new_session(inner, model, links, SessionStatus::Idle, &state);
                inner.store.create_session(&session).await?;
                session
            }
        };
        // This instance answers: it claims the session, so a second message (here or on
        // another instance) finds it busy, and its snapshots are fenced by the claim. The
        // state is read from the claimed row: nothing written before the claim is lost.
        let mut session = inner
            .store
            .claim_session(existing.id, &cfg.instance, cfg.lease_ttl)
            .await?
            .ok_or_else(busy)?;
        if session.status == SessionStatus::Running {
            return Err(busy());
        }
        let mut state = SessionState::load(&*inner.store, &session.state).await?;
        if let Some(m) = model {
            session.provider = inner
                .models
                .get(m)
                .map(|e| e.provider.clone())
                .unwrap_or_default();
            session.model = m.to_string();
        }
        if !question.images.is_empty() {
            if let Some(entry) = inner.models.get(&session.model) {
                crate::attachments::check_vision(inner, &entry)
                    .map_err(AgentError::TextOnlyModel)?;
            }
        }
        // Tasks that ended while the agent was idle are told first, the question last.
        let mut messages = crate::notices::take(inner, &session, &mut state).await?;
        let message = Message {
            id: MessageId::new(),
            chat_id: chat.id,
            role: Role::User,
            content: question.content.to_string(),
            attachments: question.attachments.to_vec(),
            turn_number: session.turn_number + 1,
            created_at: time::now(),
            task_id: None,
        };
        let mut parts: Vec<ContentPart> = question
            .images
            .iter()
            .cloned()
            .map(ContentPart::ImageRef)
            .collect();
        parts.push(ContentPart::Text {
            text: question.content.to_string(),
        });
        state.history.push(ChatMessage::User { content: parts });
        state.begin_answer();
        session.status = SessionStatus::Running;
        session.error = None;
        session.state = state.to_value();
        session.updated_at = time::now();
        messages.push(message.clone());
        match inner.store.save_session(&session, &messages).await {
            Ok(()) => {}
            Err(baton_store::StoreError::Fenced(_) | baton_store::StoreError::NotFound(_)) => {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        }
        let topic = Topic::Chat(chat.id);
        crate::notices::publish_messages(inner, &messages).await;
        publish_state(&inner.hub, topic, &session).await;
        let posted = PostedMessage {
            message_id: message.id,
            session_id: session.id,
        };
        self.spawn(session, state);
        Ok(Some(posted))
    }

    pub(crate) fn is_running(&self, id: SessionId) -> bool {
        self.inner
            .running
            .lock()
            .expect("running lock")
            .contains_key(&id)
    }

    pub(crate) fn spawn(&self, session: Session, state: SessionState) {
        let cancel = self.inner.shutdown.child_token();
        let running = Running::new(cancel.clone(), session.lease.epoch);
        let lost = running.lost.clone();
        self.inner
            .running
            .lock()
            .expect("running lock")
            .insert(session.id, running);
        let inner = self.inner.clone();
        let id = session.id;
        let span = tracing::info_span!("session", session = %id);
        self.inner.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let limit = inner.config.agent_timeout;
                let (session, _) = runner::drive(&inner, session, state, cancel, lost, limit).await;
                inner.running.lock().expect("running lock").remove(&id);
                // Tasks that ended during its last turn are told now that it is idle.
                if let (Some(chat), false) =
                    (session.chat_id, session.status == SessionStatus::Running)
                {
                    if let Err(e) = (AgentRuntime { inner }).tell_chat(chat).await {
                        tracing::warn!(error = %e, "telling the chat of its ended tasks failed");
                    }
                }
            },
            span,
        ));
    }

    /// The chat sessions answering here, with the epoch each runs under.
    pub fn leased_sessions(&self) -> Vec<(SessionId, i64)> {
        self.inner
            .running
            .lock()
            .expect("running lock")
            .iter()
            .filter(|(_, r)| r.epoch > 0 && !r.cancel.is_cancelled())
            .map(|(id, r)| (*id, r.epoch))
            .collect()
    }

    /// Stops a session another instance has claimed, writing nothing more for it.
    pub fn lose(&self, id: SessionId, epoch: i64) {
        let running = self.inner.running.lock().expect("running lock");
        if let Some(r) = running.get(&id).filter(|r| r.epoch == epoch) {
            tracing::warn!(session = %id, epoch, "another instance claimed the session; stopping it here");
            r.lost.store(true, Ordering::SeqCst);
            r.cancel.cancel();
        }
    }

    /// Stops session `id` here without writing, whatever epoch it runs under.
    pub(crate) fn lose_session(&self, id: SessionId) {
        let running = self.inner.running.lock().expect("running lock");
        if let Some(r) = running.get(&id) {
            r.lost.store(true, Ordering::SeqCst);
            r.cancel.cancel();
        }
    }

    /// Stops a running session, wherever it runs: here at once; on another instance by a
    /// request it acts on within a second; if its instance died, here, under a fresh
    /// claim. 409 if it is not running.
    pub async fn cancel(&self, id: SessionId) -> Result<(), AgentError> {
        if self.cancel_here(id) {
            return Ok(());
        }
        let inner = &self.inner;
        let s = self.session(id).await?;
        let elsewhere = match (&s.lease.owner, s.lease.expires_at) {
            (Some(o), Some(until)) => *o != inner.config.instance && until > time::now(),
            _ => false,
        };
        let holder = if elsewhere {
            lifecycle::Holder::Elsewhere
        } else {
            lifecycle::Holder::Nobody
        };
        let step = lifecycle::on_cancel(s.status, holder, s.chat_id.is_some())
            .map_err(|e| AgentError::Conflict(e.0))?;
        if step == lifecycle::Cancel::Close {
            if let Some(mut claimed) = inner
                .store
                .claim_session(id, &inner.config.instance, inner.config.lease_ttl)
                .await?
            {
                // Its instance died mid-answer: nothing runs it, so it ends here.
                let topic = runner::topic_of(&claimed);
                let closed = inner.store.close_running_traces(id, "cancelled").await?;
                for t in &closed {
                    publish(
                        &inner.hub,
                        topic,
                        FrameBody::ToolTrace {
                            phase: TracePhase::Finish,
                            trace: t.clone(),
                        },
                    )
                    .await;
                }
                claimed.status = lifecycle::after(lifecycle::Ending::Cancelled, true)
                    .unwrap_or(SessionStatus::Cancelled);
                claimed.error = Some("cancelled".into());
                claimed.updated_at = time::now();
                inner.store.save_session(&claimed, &[]).await?;
                publish_state(&inner.hub, topic, &claimed).await;
                return Ok(());
            }
        }
        inner.store.request_session_cancel(id).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            match inner.store.get_session(id).await? {
                Some(s) if s.status == SessionStatus::Running => {
                    tokio::time::sleep(Duration::from_millis(25)).await
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Cancels session `id` if it runs here.
    pub fn cancel_here(&self, id: SessionId) -> bool {
        let token = self
            .inner
            .running
            .lock()
            .expect("running lock")
            .get(&id)
            .map(|r| r.cancel.clone());
        match token {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    async fn session(&self, id: SessionId) -> Result<Session, AgentError> {
        self.inner
            .store
            .get_session(id)
            .await?
            .ok_or(AgentError::NotFound("session"))
    }

    pub async fn view(&self, id: SessionId) -> Result<SessionView, AgentError> {
        Ok(session_view(&self.session(id).await?))
    }

    /// Up to `limit` of the session's turns numbered above `after`, and the session's last
    /// turn number.
    pub async fn turns(
        &self,
        id: SessionId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<(i64, Vec<TurnSummary>), AgentError> {
        let session = self.session(id).await?;
        let turns = self.inner.store.turn_summaries(id, after, limit).await?;
        Ok((session.turn_number, turns))
    }

    pub async fn chat_sessions(&self, chat: ChatId) -> Result<Vec<SessionView>, AgentError> {
        self.inner
            .store
            .get_chat(chat)
            .await?
            .ok_or(AgentError::NotFound("chat"))?;
        let mut out = Vec::new();
        for session in self.inner.store.list_sessions(chat).await? {
            out.push(session_view(&session));
        }
        Ok(out)
    }

    /// Continues a chat's session claimed from an instance that stopped (or from an
    /// earlier process on the same SQLite file): its interrupted calls are closed as
    /// cancelled, and it goes on from its last snapshot.
    pub async fn adopt(&self, session: Session) -> Result<(), AgentError> {
        let topic = runner::topic_of(&session);
        if self.is_running(session.id) {
            return Ok(());
        }
        let closed = self
            .inner
            .store
            .close_running_traces(
                session.id,
                "interrupted: the instance running it stopped during this call",
            )
            .await?;
        for t in &closed {
            publish(
                &self.inner.hub,
                topic,
                FrameBody::ToolTrace {
                    phase: TracePhase::Finish,
                    trace: t.clone(),
                },
            )
            .await;
        }
        match SessionState::load(&*self.inner.store, &session.state).await {
            Ok(state) => {
                tracing::info!(session = %session.id, epoch = session.lease.epoch, "continuing a session its last instance left");
                self.spawn(session, state);
            }
            Err(AgentError::Store(e)) => return Err(e.into()),
            Err(e) => {
                let mut s = session;
                s.status = SessionStatus::Failed;
                s.error = Some(e.to_string());
                s.updated_at = time::now();
                self.inner.store.save_session(&s, &[]).await?;
                publish_state(&self.inner.hub, topic, &s).await;
            }
        }
        Ok(())
    }

    /// Closes workflow agents' sessions left `running` by an earlier process on a store
    /// one process holds (SQLite): their runs decide from their journals whether to call
    /// them again. Where instances share the store, a run's new holder does this instead.
    pub async fn close_orphaned_agents(&self) -> Result<usize, AgentError> {
        let sessions = self
            .inner
            .store
            .sessions_with_status(SessionStatus::Running)
            .await?;
        let mut n = 0;
        for mut session in sessions.into_iter().filter(|s| s.chat_id.is_none()) {
            self.inner
                .store
                .close_running_traces(session.id, "interrupted: the server stopped")
                .await?;
            session.status = SessionStatus::Cancelled;
            session.error = Some("interrupted: the server stopped".into());
            session.updated_at = time::now();
            self.inner.store.save_session(&session, &[]).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Runs one agent to its end as a child session (of a workflow run, or standalone)
    /// and returns its outcome. Cancelling `cancel` stops it.
    /// Its rows are queued (`Store::queue`), the last snapshot included: the caller's
    /// next awaited write to the same store (a run's journal entry) commits after them.
    pub async fn run_agent(
        &self,
        spec: AgentSpec,
        cancel: CancellationToken,
    ) -> Result<AgentOutcome, AgentError> {
        let inner = &self.inner;
        // A name that resolves to nothing stays as written: the agent fails on its first
        // call with the reason (`runner::model_turn`).
        let model = inner
            .model_for(spec.model.as_deref())
            .unwrap_or_else(|_| spec.model.clone().unwrap_or_default());
        let root = spec
            .workspace
            .unwrap_or(inner.config.default_workspace.clone());
        let ws = Workspace::new(&root).map_err(|e| AgentError::BadInput(e.to_string()))?;
        if let Some(schema) = &spec.schema {
            jsonschema::validator_for(schema)
                .map_err(|e| AgentError::BadInput(format!("invalid schema: {e}")))?;
        }
        let mut system = match &spec.system {
            Some(own) => format!("{own}\n\n{SYSTEM_PROMPT}"),
            None => SYSTEM_PROMPT.to_string(),
        };
        if spec.schema.is_some() {
            system.push_str(" Give your final answer by calling the StructuredOutput tool.");
        }
        // Kept once, by its hash: the agents of a run share it (each queues it, and the
        // store writes what a group holds of it once).
        let hash = prompt_hash(&system);
        inner
            .store
            .queue(Queued::Prompt {
                hash: hash.clone(),
                text: system.clone(),
            })
            .await;
        let state = SessionState {
            system,
            system_ref: Some(hash),
            workspace: ws.root().display().to_string(),
            caps: spec.caps,
            history: vec![ChatMessage::user_text(spec.prompt)],
            max_tool_calls: spec.max_tool_calls.unwrap_or(inner.config.max_tool_calls),
            schema: spec.schema,
            budget_tokens: spec.budget_tokens,
            tool_allowlist: spec.tools,
            effort: spec.effort,
            ..Default::default()
        };
        let links = Links {
            run: spec.run_id,
            parent: spec.parent_id,
            ..Links::default()
        };
        let session = new_session(inner, model, links, SessionStatus::Running, &state);
        // Queued: every later write of this session follows it through the same store.
        inner.store.queue(Queued::Session(session.clone())).await;
        let id = session.id;
        let token = inner.shutdown.child_token();
        let link = cancel.clone();
        let child = token.clone();
        let relay = tokio::spawn(async move {
            link.cancelled().await;
            child.cancel();
        });
        let mut running = Running::new(token.clone(), 0);
        running.response_started = spec.response_started.clone();
        let lost = running.lost.clone();
        inner
            .running
            .lock()
            .expect("running lock")
            .insert(id, running);
        let limit = spec.timeout.unwrap_or(inner.config.agent_timeout);
        let (session, state) = runner::drive(inner, session, state, token, lost, limit).await;
        relay.abort();
        if let Some(started) = &spec.response_started {
            started.cancel();
        }
        inner.running.lock().expect("running lock").remove(&id);
        Ok(AgentOutcome {
            session_id: id,
            status: session.status,
            result: state.result,
            error: session.error,
            usage: state.usage,
            cost_usd: state.cost_usd,
        })
    }

    /// Stops every loop, leaving their sessions `running` for the next start, and waits
    /// for them.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some agent sessions did not stop in time");
        }
    }

    /// Waits until no session of this runtime is running (tests and benchmarks).
    pub async fn idle(&self) {
        loop {
            if self.inner.running.lock().expect("running lock").is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A person's message as `post_message` stores it.
struct Question<'a> {
    content: &'a str,
    attachments: &'a [AttachmentId],
    images: Vec<baton_llm::ImageRef>,
}

/// The hash a system prompt is kept under: 128 bits of its SHA-256, in hex.
fn prompt_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
