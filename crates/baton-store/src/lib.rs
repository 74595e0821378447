//! The storage interface. Every backend implements [`Store`] and must pass the shared
//! behaviour suite (`baton-store-sqlite/tests` and `baton-store-postgres/tests` run the
//! same cases from `baton_store::suite`-style test modules).
#![forbid(unsafe_code)]

mod error;
mod migrations;
mod words;

use async_trait::async_trait;
use baton_core::time::Timestamp;
use baton_core::{
    Attachment, AttachmentId, Chat, ChatId, ChatPatch, Frame, Instance, JournalEntry, Message,
    MessageId, NewAttachment, NewChat, NewFrame, NewMessage, Run, RunControl, RunId, RunStatus,
    Session, SessionId, SessionStatus, Task, TaskId, TaskStatus, Topic, Trace, TraceCursor,
    TraceFinish, TraceId, TurnSummary,
};
use std::time::Duration;

pub use error::StoreError;
pub use words::{
    finish_words, join_words, search_words, text_words, trace_words, MAX_SEARCH_WORDS,
};

/// Whether no topic appears twice in `batches`.
pub fn topics_are_distinct(batches: &[(Topic, Vec<NewFrame>)]) -> bool {
    let topics: std::collections::HashSet<Topic> = batches.iter().map(|(t, _)| *t).collect();
    topics.len() == batches.len()
}

/// `append_frames_to_topics` entry after entry, in order.
pub async fn append_one_by_one<S: Store + ?Sized>(
    store: &S,
    batches: &[(Topic, Vec<NewFrame>)],
) -> Vec<StoreResult<Vec<Frame>>> {
    let mut out = Vec::with_capacity(batches.len());
    for (topic, frames) in batches {
        out.push(store.append_frames(*topic, frames).await);
    }
    out
}

/// A write handed to [`Store::queue`].
#[derive(Debug, Clone)]
pub enum Queued {
    /// `create_session`.
    Session(Session),
    /// `save_session`.
    Snapshot(Session, Vec<Message>),
    /// `insert_trace`.
    Trace(Trace),
    /// `finish_trace` (its answer is [`Trace::finished`], computable without the store).
    Finish(TraceId, TraceFinish),
    /// `put_journal`.
    Journal(JournalEntry),
    /// `put_prompt`.
    Prompt { hash: String, text: String },
}
pub use migrations::{Migration, MigrationReport};

pub type StoreResult<T> = Result<T, StoreError>;

/// What another process sharing the database did to the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameNotice {
    /// It appended `first..=last` to `topic`.
    Appended { topic: Topic, first: i64, last: i64 },
    /// The listening connection was lost and is back: notices sent meanwhile are gone,
    /// so whoever follows topics must read them from the log.
    Reconnected,
}

/// What an instance still holds after renewing its leases: each piece of work with the
/// epoch it holds it under. Work it held that is missing was claimed by another instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub runs: Vec<(RunId, i64)>,
    pub sessions: Vec<(SessionId, i64)>,
    pub tasks: Vec<(TaskId, i64)>,
}

/// Wake-ups from other instances: a control request was left, or work became claimable.
pub type WorkNotifications = std::pin::Pin<Box<dyn futures_core::Stream<Item = ()> + Send>>;

/// Notices of frames appended by other processes, as they commit.
pub type FrameNotifications =
    std::pin::Pin<Box<dyn futures_core::Stream<Item = FrameNotice> + Send>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What the event log holds for one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicBounds {
    /// The highest `seq` ever assigned (0 when nothing was published).
    pub last_seq: i64,
    /// The lowest `seq` still stored; frames below it were pruned. `last_seq + 1` when
    /// the topic holds no frames.
    pub first_kept: i64,
}

/// A run's agents of one phase and status, together.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseTotals {
    pub phase: Option<String>,
    pub status: baton_core::AgentStatus,
    pub agents: i64,
    /// Input and output tokens.
    pub tokens: i64,
    pub cost_usd: f64,
    pub first_started: Timestamp,
    pub last_finished: Option<Timestamp>,
    /// Agents without a finish time.
    pub unfinished: i64,
    /// The start order of the first of them: phases are listed in the order they began.
    pub first_seq: i64,
    /// The highest start order: past it, a cursor names no agent.
    pub last_seq: i64,
}

/// Whose traces a listing reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceScope {
    Chat(ChatId),
    /// One agent session, for example one agent of a workflow run.
    Session(SessionId),
}

/// Which traces a search keeps: each field that is set narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFilter {
    pub kind: Option<baton_core::TraceKind>,
    /// Exactly this tool (or model) name.
    pub tool: Option<String>,
    pub status: Option<StatusFilter>,
    /// Calls that took at least this long (finished ones only).
    pub min_latency_ms: Option<i64>,
    /// Words every kept trace has in its tool name, input, output or error, each as a
    /// whole word or the start of one (`search_words` makes them from a person's query).
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Ended in an error or a timeout.
    Failed,
    Running,
}

impl TraceFilter {
    pub fn is_empty(&self) -> bool {
        self == &TraceFilter::default()
    }
}

/// Where a page of messages is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAnchor {
    /// The newest messages.
    Newest,
    /// The messages right after this one.
    After(MessageId),
    /// The messages right before this one.
    Before(MessageId),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Cheap round trip used by health checks.
    async fn ping(&self) -> StoreResult<()>;

    // chats
    async fn create_chat(&self, chat: NewChat) -> StoreResult<Chat>;
    async fn get_chat(&self, id: ChatId) -> StoreResult<Option<Chat>>;
    /// Newest first; `before` is the id of the last chat of the previous page.
    async fn list_chats(&self, limit: u32, before: Option<ChatId>) -> StoreResult<Vec<Chat>>;
    /// Changes a chat's settings; `None` when there is no such chat.
    async fn update_chat(&self, id: ChatId, patch: ChatPatch) -> StoreResult<Option<Chat>>;

    // messages
    async fn insert_message(&self, message: NewMessage) -> StoreResult<Message>;
    /// Oldest first.
    async fn list_messages(&self, chat: ChatId) -> StoreResult<Vec<Message>>;
    /// Up to `limit` of a chat's messages next to `at`, oldest first within the page
    /// (ordered by `(created_at, id)`). `NotFound("message")` when the anchor message is
    /// not one of the chat's.
    async fn page_messages(
        &self,
        chat: ChatId,
        at: MessageAnchor,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;

    // attachments: the bytes of images people attached, once per SHA-256
    /// Stores an upload; when the same bytes are stored already, answers that attachment
    /// (and restarts its orphan clock) instead. A message naming an attachment, stored by
    /// `insert_message` or `save_session`, marks it referenced in the same transaction.
    async fn put_attachment(&self, new: &NewAttachment) -> StoreResult<Attachment>;
    async fn get_attachment(&self, id: AttachmentId) -> StoreResult<Option<Attachment>>;
    /// The attachment's bytes, or its thumbnail's.
    async fn attachment_bytes(
        &self,
        id: AttachmentId,
        thumbnail: bool,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// Removes the attachments no message names that were last uploaded before `before`;
    /// answers how many went.
    async fn delete_orphan_attachments(&self, before: Timestamp) -> StoreResult<u64>;
    /// What `model` said the image with this SHA-256 shows, if it was asked before.
    async fn image_description(&self, sha256: &str, model: &str) -> StoreResult<Option<String>>;
    async fn put_image_description(
        &self,
        sha256: &str,
        model: &str,
        description: &str,
    ) -> StoreResult<()>;

    // traces
    async fn insert_trace(&self, trace: &Trace) -> StoreResult<()>;
    /// Many traces in as few statements as the backend allows (one transaction).
    async fn insert_traces(&self, traces: &[Trace]) -> StoreResult<()>;
    /// Completes a running trace. `NotFound` if there is no such trace; `Conflict` if it
    /// is finished already (a late finish never overwrites how it ended).
    async fn finish_trace(&self, id: TraceId, finish: &TraceFinish) -> StoreResult<Trace>;
    async fn get_trace(&self, id: TraceId) -> StoreResult<Option<Trace>>;
    /// Ordered by `(turn_number, started_at, id)`, strictly after `after`.
    async fn list_traces(
        &self,
        scope: TraceScope,
        limit: u32,
        after: Option<TraceCursor>,
    ) -> StoreResult<Vec<Trace>>;

    /// `list_traces` keeping only what `filter` matches, in the same order and with the
    /// same cursor (indexed on both backends: words through a full-text index, failures
    /// through a partial one).
    async fn search_traces(
        &self,
        scope: TraceScope,
        filter: &TraceFilter,
        limit: u32,
        after: Option<TraceCursor>,
    ) -> StoreResult<Vec<Trace>>;

    // agent sessions
    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    /// Writes the session's snapshot and inserts `messages` in one transaction, so a
    /// crash leaves either both or neither; only while the session's epoch is
    /// `session.lease.epoch` (`Fenced` on Postgres, `NotFound` on SQLite otherwise).
    /// A message naming a task (a notice) marks that task told, in the same transaction.
    async fn save_session(&self, session: &Session, messages: &[Message]) -> StoreResult<()>;
    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>>;
    /// A chat's sessions, oldest first.
    async fn list_sessions(&self, chat: ChatId) -> StoreResult<Vec<Session>>;
    async fn sessions_with_status(&self, status: SessionStatus) -> StoreResult<Vec<Session>>;
    /// Closes the session's traces still `running` as `cancelled` with `reason`;
    /// returns them as closed.
    async fn close_running_traces(
        &self,
        session: SessionId,
        reason: &str,
    ) -> StoreResult<Vec<Trace>>;
    /// Per-turn figures derived from the session's traces, in turn order: up to `limit`
    /// turns numbered above `after` (keyset on the turn number, over the session's trace
    /// index).
    async fn turn_summaries(
        &self,
        session: SessionId,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<TurnSummary>>;

    // workflow runs and their journal
    async fn create_run(&self, run: &Run) -> StoreResult<()>;
    /// Writes everything but the id, name and creation time, if the run's epoch is still
    /// `run.lease.epoch` (`Fenced` if another instance has claimed it since). Of the lease
    /// only the owner is written: `None` gives the run up; a finished run keeps the owner it
    /// ran on, and its lease lapses at once either way.
    async fn update_run(&self, run: &Run) -> StoreResult<()>;
    async fn get_run(&self, id: RunId) -> StoreResult<Option<Run>>;
    /// Newest first; `before` is the id of the last run of the previous page.
    async fn list_runs(
        &self,
        status: Option<RunStatus>,
        limit: u32,
        before: Option<RunId>,
    ) -> StoreResult<Vec<Run>>;
    /// Inserts or replaces the entry with the same `(run_id, key)`. Where several
    /// instances share the store, only while the run's epoch is `entry.epoch` (`Fenced`
    /// otherwise); SQLite, which one process holds, has nobody to fence.
    async fn put_journal(&self, entry: &JournalEntry) -> StoreResult<()>;

    /// Keeps a system prompt once under `hash` (of its text, the caller's to compute);
    /// writing it again changes nothing.
    async fn put_prompt(&self, hash: &str, text: &str) -> StoreResult<()>;
    /// The prompt kept under `hash`.
    async fn prompt(&self, hash: &str) -> StoreResult<Option<String>>;

    /// Queues a write whose caller need not wait for its commit, behind every write
    /// queued or made before it on this store; a failure is logged. Both backends hand
    /// it to their ordered group writer and return at once, so an agent does not stop
    /// for each of its rows (a group with no awaited write may commit without waiting
    /// for the log flush, which the next awaited commit brings); this default makes the
    /// write before returning. Whatever is written after it through this store commits
    /// after it, so a later awaited write (the journal's `completed`, say) vouches for
    /// everything queued before.
    async fn queue(&self, write: Queued) {
        let (what, result) = match write {
            Queued::Session(s) => ("session", self.create_session(&s).await),
            Queued::Snapshot(s, m) => ("snapshot", self.save_session(&s, &m).await),
            Queued::Trace(t) => ("trace", self.insert_trace(&t).await),
            Queued::Finish(id, f) => ("trace's finish", self.finish_trace(id, &f).await.map(drop)),
            Queued::Journal(e) => ("journal entry", self.put_journal(&e).await),
            Queued::Prompt { hash, text } => ("prompt", self.put_prompt(&hash, &text).await),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "writing a queued {what} failed");
        }
    }
    async fn get_journal(&self, run: RunId, key: &str) -> StoreResult<Option<JournalEntry>>;
    /// Marks every entry of `run` still `running` as `cancelled`, finished at `at`, after
    /// every write queued before it, if the run's epoch is still `epoch` (`Fenced`
    /// otherwise); returns how many there were.
    async fn stop_running_agents(&self, run: RunId, epoch: i64, at: Timestamp) -> StoreResult<u64>;
    /// A run's journal in start order.
    async fn list_journal(&self, run: RunId) -> StoreResult<Vec<JournalEntry>>;
    /// At most `limit` of a run's agents in start order, after the one whose `seq` is
    /// `after`.
    async fn journal_page(
        &self,
        run: RunId,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<JournalEntry>>;
    /// A run's agents counted per phase and status, however many there are.
    async fn journal_totals(&self, run: RunId) -> StoreResult<Vec<PhaseTotals>>;

    // leases: which instance runs which work (SPEC 4.6)
    /// Claims up to `limit` runs that are `queued` or `running` and that nobody holds (no
    /// owner, or a lease that lapsed), oldest first, for `owner` until `ttl` from now,
    /// each one epoch higher. Instances claiming at once never get the same run.
    async fn claim_runs(&self, owner: &str, ttl: Duration, limit: u32) -> StoreResult<Vec<Run>>;
    /// Claims run `id`, whatever its status, if nobody else holds it (a lease of
    /// `owner`'s own is taken again, one epoch higher); `None` if a live lease of another
    /// instance holds it (or there is no such run).
    async fn claim_run(&self, id: RunId, owner: &str, ttl: Duration) -> StoreResult<Option<Run>>;
    /// Claims up to `limit` chats' sessions that are `running` and that nobody holds.
    async fn claim_sessions(
        &self,
        owner: &str,
        ttl: Duration,
        limit: u32,
    ) -> StoreResult<Vec<Session>>;
    /// Claims session `id` if it is not `running` under another instance's live lease;
    /// `None` otherwise (or if there is no such session).
    async fn claim_session(
        &self,
        id: SessionId,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Session>>;
    /// Extends every lease `owner` holds on unfinished work to `ttl` from now and
    /// answers what it still holds.
    async fn renew_leases(&self, owner: &str, ttl: Duration) -> StoreResult<Held>;
    /// Gives up `owner`'s leases (everyone's with `None`: the process that holds a SQLite
    /// file knows nobody else runs anything) so they can be claimed at once.
    async fn release_leases(&self, owner: Option<&str>) -> StoreResult<u64>;
    /// Leaves `control` for whoever holds run `id` and wakes the instances.
    async fn request_run_control(&self, id: RunId, control: RunControl) -> StoreResult<()>;
    /// Takes (reads and clears) the control requests left for runs `owner` holds.
    async fn take_run_controls(&self, owner: &str) -> StoreResult<Vec<(RunId, RunControl)>>;
    /// Asks whoever holds chat session `id` to stop it, and wakes the instances.
    async fn request_session_cancel(&self, id: SessionId) -> StoreResult<()>;
    /// Takes (reads and clears) the cancel requests left for sessions `owner` holds.
    async fn take_session_cancels(&self, owner: &str) -> StoreResult<Vec<SessionId>>;
    /// Wakes the instances sharing the store to claim work (a run was queued).
    async fn notify_work(&self) -> StoreResult<()> {
        Ok(())
    }
    /// Wake-ups sent by other instances. `None` where one process uses the store.
    async fn work_notifications(&self) -> StoreResult<Option<WorkNotifications>> {
        Ok(None)
    }
    /// Closes a run's agent sessions still `running`, and their running traces, as
    /// cancelled with `reason` (what a run's new holder does with those its predecessor
    /// left); returns the closed traces.
    async fn close_run_sessions(&self, run: RunId, reason: &str) -> StoreResult<Vec<Trace>>;
    /// Records that instance `id` (started at `started_at`) is alive until `ttl` from now.
    async fn heartbeat(&self, id: &str, started_at: Timestamp, ttl: Duration) -> StoreResult<()>;
    /// Instances whose heartbeat has not lapsed, oldest first.
    async fn live_instances(&self) -> StoreResult<Vec<Instance>>;
    /// Removes instance `id`'s heartbeat (a clean stop).
    async fn forget_instance(&self, id: &str) -> StoreResult<()>;

    // background tasks
    /// Stores a new task.
    async fn create_task(&self, task: &Task) -> StoreResult<()>;
    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>>;
    /// Tasks, newest first, keyset-paged by id (`before` excluded).
    async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        limit: u32,
        before: Option<TaskId>,
    ) -> StoreResult<Vec<Task>>;
    /// The tasks session `parent` spawned, oldest first.
    async fn session_tasks(&self, parent: SessionId) -> StoreResult<Vec<Task>>;
    /// Writes a task's status, session, progress and outcome if it is still held under
    /// `task.lease.epoch` (`Fenced` otherwise) and has not ended (`Conflict`). An ending
    /// status gives up the lease.
    async fn update_task(&self, task: &Task) -> StoreResult<()>;
    /// Ends a queued task nobody holds as cancelled; `None` if it is held or not queued.
    async fn cancel_queued_task(
        &self,
        id: TaskId,
        at: Timestamp,
        reason: &str,
    ) -> StoreResult<Option<Task>>;
    /// Claims up to `limit` tasks nobody holds — queued ones, and running ones whose
    /// holder's lease lapsed — oldest first, raising each one's epoch.
    async fn claim_tasks(&self, owner: &str, ttl: Duration, limit: u32) -> StoreResult<Vec<Task>>;
    /// Asks whoever holds task `id` to stop it, and wakes the instances.
    async fn request_task_cancel(&self, id: TaskId) -> StoreResult<()>;
    /// Takes (reads and clears) the cancel requests left for tasks `owner` holds.
    async fn take_task_cancels(&self, owner: &str) -> StoreResult<Vec<TaskId>>;
    /// The ended tasks of chat `chat` not yet told to it, in the order they ended. A task
    /// is told by saving its notice message (`save_session` with a message naming it),
    /// which marks it told in the same transaction.
    async fn untold_tasks(&self, chat: ChatId) -> StoreResult<Vec<Task>>;
    /// Chats with ended tasks not yet told to them (at most `limit`).
    async fn chats_with_untold_tasks(&self, limit: u32) -> StoreResult<Vec<ChatId>>;

    // event log
    /// Appends frames to one topic with consecutive `seq` values, atomically; safe
    /// against concurrent appenders in other processes sharing the database.
    async fn append_frames(&self, topic: Topic, frames: &[NewFrame]) -> StoreResult<Vec<Frame>>;
    /// Appends to several topics at once, each as `append_frames` would, and answers
    /// per entry in the order given (a topic named twice gets its entries in that order).
    /// By default distinct topics go concurrently; a backend that can commit them
    /// together (SQLite) does.
    async fn append_frames_to_topics(
        &self,
        batches: Vec<(Topic, Vec<NewFrame>)>,
    ) -> Vec<StoreResult<Vec<Frame>>> {
        if !topics_are_distinct(&batches) {
            return append_one_by_one(self, &batches).await;
        }
        futures_util::future::join_all(
            batches
                .iter()
                .map(|(topic, frames)| self.append_frames(*topic, frames)),
        )
        .await
    }
    /// Frames with `seq > since`, oldest first, at most `limit`.
    async fn frames_since(&self, topic: Topic, since: i64, limit: u32) -> StoreResult<Vec<Frame>>;
    async fn topic_bounds(&self, topic: Topic) -> StoreResult<TopicBounds>;
    /// Drops frames with `seq <= up_to`; returns how many went.
    async fn prune_frames(&self, topic: Topic, up_to: i64) -> StoreResult<u64>;
    /// Frames other processes append to the shared database, as they commit. `None`
    /// where the backend serves one process only (SQLite).
    async fn frame_notifications(&self) -> StoreResult<Option<FrameNotifications>> {
        Ok(None)
    }

    /// Commits whatever is queued and releases the connections; for a clean stop.
    async fn close(&self) {}

    /// Whether a topic names something that exists (a chat, a run; `tasks` always).
    async fn topic_exists(&self, topic: Topic) -> StoreResult<bool>;
}
