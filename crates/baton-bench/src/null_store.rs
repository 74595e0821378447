//! A store that keeps nothing: the agent loop with persistence turned off. Frames still
//! get sequence numbers so the hub behaves as usual, and runs are kept in memory (a handful
//! of rows) so the benchmark can check that the run it timed really finished.
use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use baton_core::time::Timestamp;
use baton_core::{
    time, Chat, ChatId, Frame, JournalEntry, Message, NewChat, NewFrame, NewMessage, Run, RunId,
    RunStatus, Session, SessionId, SessionStatus, Topic, Trace, TraceCursor, TraceFinish, TraceId,
    TraceKind, TraceOutcome, TurnSummary,
};
use baton_core::{Instance, RunControl, Task, TaskId, TaskStatus};
use baton_store::{Backend, Held, PhaseTotals, Store, StoreError, StoreResult, TopicBounds};
use std::time::Duration;

fn claim(run: &mut Run, owner: &str, ttl: Duration) {
    run.lease.owner = Some(owner.to_string());
    run.lease.epoch += 1;
    run.lease.expires_at = Some(time::now() + ttl);
}

#[derive(Default)]
pub struct NullStore {
    seqs: Mutex<HashMap<Topic, i64>>,
    runs: Mutex<HashMap<RunId, Run>>,
}

#[async_trait]
impl Store for NullStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
    async fn create_chat(&self, chat: NewChat) -> StoreResult<Chat> {
        let now = time::now();
        Ok(Chat {
            id: ChatId::new(),
            title: chat.title,
            workspace: chat.workspace,
            capabilities: chat.capabilities,
            auto_continue: chat.auto_continue,
            created_at: now,
            updated_at: now,
        })
    }
    async fn get_chat(&self, _: ChatId) -> StoreResult<Option<Chat>> {
        Ok(None)
    }
    async fn list_chats(&self, _: u32, _: Option<ChatId>) -> StoreResult<Vec<Chat>> {
        Ok(vec![])
    }
    async fn update_chat(&self, _: ChatId, _: baton_core::ChatPatch) -> StoreResult<Option<Chat>> {
        Ok(None)
    }
    async fn insert_message(&self, _: NewMessage) -> StoreResult<Message> {
        Err(StoreError::NotFound("chat"))
    }
    async fn list_messages(&self, _: ChatId) -> StoreResult<Vec<Message>> {
        Ok(vec![])
    }
    async fn page_messages(
        &self,
        _: ChatId,
        _: baton_store::MessageAnchor,
        _: u32,
    ) -> StoreResult<Vec<Message>> {
        Ok(vec![])
    }
    async fn put_attachment(
        &self,
        new: &baton_core::NewAttachment,
    ) -> StoreResult<baton_core::Attachment> {
        Ok(new.attachment.clone())
    }
    async fn get_attachment(
        &self,
        _: baton_core::AttachmentId,
    ) -> StoreResult<Option<baton_core::Attachment>> {
        Ok(None)
    }
    async fn attachment_bytes(
        &self,
        _: baton_core::AttachmentId,
        _: bool,
    ) -> StoreResult<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn delete_orphan_attachments(&self, _: Timestamp) -> StoreResult<u64> {
        Ok(0)
    }
    async fn image_description(&self, _: &str, _: &str) -> StoreResult<Option<String>> {
        Ok(None)
    }
    async fn put_image_description(&self, _: &str, _: &str, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn insert_trace(&self, _: &Trace) -> StoreResult<()> {
        Ok(())
    }
    async fn insert_traces(&self, _: &[Trace]) -> StoreResult<()> {
        Ok(())
    }
    async fn finish_trace(&self, id: TraceId, f: &TraceFinish) -> StoreResult<Trace> {
        let now = time::now();
        Ok(Trace {
            id,
            session_id: None,
            chat_id: None,
            run_id: None,
            parent_id: None,
            turn_number: 0,
            kind: TraceKind::Tool,
            tool_name: String::new(),
            input: serde_json::Value::Null,
            output: f.output.clone(),
            started_at: now,
            finished_at: Some(now),
            latency_ms: Some(0),
            tokens_used: f.tokens_used,
            input_tokens: f.input_tokens,
            output_tokens: f.output_tokens,
            cache_tokens: f.cache_tokens,
            cache_write_tokens: f.cache_write_tokens,
            reasoning_tokens: f.reasoning_tokens,
            cost_usd: f.cost_usd,
            error: f.error.clone(),
            outcome: f.outcome.unwrap_or(TraceOutcome::Ok),
            meta: serde_json::json!({}),
        })
    }
    async fn get_trace(&self, _: TraceId) -> StoreResult<Option<Trace>> {
        Ok(None)
    }
    async fn list_traces(
        &self,
        _: baton_store::TraceScope,
        _: u32,
        _: Option<TraceCursor>,
    ) -> StoreResult<Vec<Trace>> {
        Ok(vec![])
    }
    async fn search_traces(
        &self,
        _: baton_store::TraceScope,
        _: &baton_store::TraceFilter,
        _: u32,
        _: Option<TraceCursor>,
    ) -> StoreResult<Vec<Trace>> {
        Ok(vec![])
    }
    async fn create_session(&self, _: &Session) -> StoreResult<()> {
        Ok(())
    }
    async fn save_session(&self, _: &Session, _: &[Message]) -> StoreResult<()> {
        Ok(())
    }
    async fn get_session(&self, _: SessionId) -> StoreResult<Option<Session>> {
        Ok(None)
    }
    async fn list_sessions(&self, _: ChatId) -> StoreResult<Vec<Session>> {
        Ok(vec![])
    }
    async fn sessions_with_status(&self, _: SessionStatus) -> StoreResult<Vec<Session>> {
        Ok(vec![])
    }
    async fn close_running_traces(&self, _: SessionId, _: &str) -> StoreResult<Vec<Trace>> {
        Ok(vec![])
    }
    async fn turn_summaries(
        &self,
        _: SessionId,
        _: Option<i64>,
        _: u32,
    ) -> StoreResult<Vec<TurnSummary>> {
        Ok(vec![])
    }
    async fn create_run(&self, run: &Run) -> StoreResult<()> {
        self.runs.lock().unwrap().insert(run.id, run.clone());
        Ok(())
    }
    async fn update_run(&self, run: &Run) -> StoreResult<()> {
        let mut runs = self.runs.lock().unwrap();
        let mut run = run.clone();
        // The lease is the store's: only its owner is written.
        if let Some(old) = runs.get(&run.id) {
            let owner = run.lease.owner.take();
            run.lease = old.lease.clone();
            run.lease.owner = owner;
            if run.status.is_finished() {
                run.lease.expires_at = None;
            }
        }
        runs.insert(run.id, run);
        Ok(())
    }
    async fn get_run(&self, id: RunId) -> StoreResult<Option<Run>> {
        Ok(self.runs.lock().unwrap().get(&id).cloned())
    }
    async fn list_runs(
        &self,
        _: Option<RunStatus>,
        _: u32,
        _: Option<RunId>,
    ) -> StoreResult<Vec<Run>> {
        Ok(vec![])
    }
    async fn put_journal(&self, _: &JournalEntry) -> StoreResult<()> {
        Ok(())
    }
    async fn put_prompt(&self, _: &str, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn prompt(&self, _: &str) -> StoreResult<Option<String>> {
        Ok(None)
    }
    async fn get_journal(&self, _: RunId, _: &str) -> StoreResult<Option<JournalEntry>> {
        Ok(None)
    }
    async fn claim_runs(&self, owner: &str, ttl: Duration, limit: u32) -> StoreResult<Vec<Run>> {
        let mut runs = self.runs.lock().unwrap();
        let mut out = Vec::new();
        for run in runs.values_mut() {
            if out.len() as u32 >= limit {
                break;
            }
            if matches!(run.status, RunStatus::Queued | RunStatus::Running)
                && run.lease.owner.is_none()
            {
                claim(run, owner, ttl);
                out.push(run.clone());
            }
        }
        Ok(out)
    }
    async fn claim_run(&self, id: RunId, owner: &str, ttl: Duration) -> StoreResult<Option<Run>> {
        let mut runs = self.runs.lock().unwrap();
        Ok(runs
            .get_mut(&id)
            .filter(|r| {
                r.lease.owner.is_none()
                    || r.lease.owner.as_deref() == Some(owner)
                    || r.lease.expires_at.is_none()
            })
            .map(|r| {
                claim(r, owner, ttl);
                r.clone()
            }))
    }
    async fn claim_sessions(&self, _: &str, _: Duration, _: u32) -> StoreResult<Vec<Session>> {
        Ok(vec![])
    }
    async fn claim_session(
        &self,
        _: SessionId,
        _: &str,
        _: Duration,
    ) -> StoreResult<Option<Session>> {
        Ok(None)
    }
    async fn renew_leases(&self, owner: &str, _: Duration) -> StoreResult<Held> {
        let runs = self.runs.lock().unwrap();
        Ok(Held {
            runs: runs
                .values()
                .filter(|r| r.lease.owner.as_deref() == Some(owner))
                .map(|r| (r.id, r.lease.epoch))
                .collect(),
            sessions: vec![],
            tasks: vec![],
        })
    }
    async fn release_leases(&self, _: Option<&str>) -> StoreResult<u64> {
        Ok(0)
    }
    async fn request_run_control(&self, _: RunId, _: RunControl) -> StoreResult<()> {
        Ok(())
    }
    async fn take_run_controls(&self, _: &str) -> StoreResult<Vec<(RunId, RunControl)>> {
        Ok(vec![])
    }
    async fn request_session_cancel(&self, _: SessionId) -> StoreResult<()> {
        Ok(())
    }
    async fn take_session_cancels(&self, _: &str) -> StoreResult<Vec<SessionId>> {
        Ok(vec![])
    }
    // The benchmarks start no background tasks.
    async fn create_task(&self, _: &Task) -> StoreResult<()> {
        Ok(())
    }
    async fn get_task(&self, _: TaskId) -> StoreResult<Option<Task>> {
        Ok(None)
    }
    async fn list_tasks(
        &self,
        _: Option<TaskStatus>,
        _: u32,
        _: Option<TaskId>,
    ) -> StoreResult<Vec<Task>> {
        Ok(vec![])
    }
    async fn session_tasks(&self, _: SessionId) -> StoreResult<Vec<Task>> {
        Ok(vec![])
    }
    async fn update_task(&self, _: &Task) -> StoreResult<()> {
        Err(StoreError::NotFound("task"))
    }
    async fn cancel_queued_task(
        &self,
        _: TaskId,
        _: Timestamp,
        _: &str,
    ) -> StoreResult<Option<Task>> {
        Ok(None)
    }
    async fn claim_tasks(&self, _: &str, _: Duration, _: u32) -> StoreResult<Vec<Task>> {
        Ok(vec![])
    }
    async fn request_task_cancel(&self, _: TaskId) -> StoreResult<()> {
        Err(StoreError::NotFound("task"))
    }
    async fn take_task_cancels(&self, _: &str) -> StoreResult<Vec<TaskId>> {
        Ok(vec![])
    }
    async fn untold_tasks(&self, _: ChatId) -> StoreResult<Vec<Task>> {
        Ok(vec![])
    }
    async fn chats_with_untold_tasks(&self, _: u32) -> StoreResult<Vec<ChatId>> {
        Ok(vec![])
    }
    async fn close_run_sessions(&self, _: RunId, _: &str) -> StoreResult<Vec<Trace>> {
        Ok(vec![])
    }
    async fn heartbeat(&self, _: &str, _: Timestamp, _: Duration) -> StoreResult<()> {
        Ok(())
    }
    async fn live_instances(&self) -> StoreResult<Vec<Instance>> {
        Ok(vec![])
    }
    async fn forget_instance(&self, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn stop_running_agents(&self, _: RunId, _: i64, _: Timestamp) -> StoreResult<u64> {
        Ok(0)
    }
    async fn list_journal(&self, _: RunId) -> StoreResult<Vec<JournalEntry>> {
        Ok(vec![])
    }
    async fn journal_page(
        &self,
        _: RunId,
        _: Option<i64>,
        _: u32,
    ) -> StoreResult<Vec<JournalEntry>> {
        Ok(vec![])
    }
    async fn journal_totals(&self, _: RunId) -> StoreResult<Vec<PhaseTotals>> {
        Ok(vec![])
    }
    async fn append_frames(&self, topic: Topic, frames: &[NewFrame]) -> StoreResult<Vec<Frame>> {
        let mut seqs = self.seqs.lock().unwrap();
        let seq = seqs.entry(topic).or_insert(0);
        let at = time::now();
        Ok(frames
            .iter()
            .map(|f| {
                *seq += 1;
                Frame {
                    topic,
                    seq: *seq,
                    kind: f.kind.clone(),
                    at,
                    body: f.body.clone(),
                }
            })
            .collect())
    }
    async fn frames_since(&self, _: Topic, _: i64, _: u32) -> StoreResult<Vec<Frame>> {
        Ok(vec![])
    }
    async fn topic_bounds(&self, _: Topic) -> StoreResult<TopicBounds> {
        Ok(TopicBounds::default())
    }
    async fn prune_frames(&self, _: Topic, _: i64) -> StoreResult<u64> {
        Ok(0)
    }
    async fn topic_exists(&self, _: Topic) -> StoreResult<bool> {
        Ok(true)
    }
}
