//! PostgreSQL implementation of [`baton_store::Store`]. Several Baton instances may share
//! one database: migrations take an advisory lock and event sequence numbers come from a
//! row-locked counter, so nothing here assumes a single process.
#![forbid(unsafe_code)]

mod attachments;
mod chats;
mod events;
mod lanes;
mod leases;
mod migrate;
mod plan;
mod runs;
mod sessions;
mod tasks;
mod traces;
mod writer;

use std::time::Duration;

use async_trait::async_trait;
use baton_core::time::Timestamp;
use baton_core::{
    Attachment, AttachmentId, Chat, ChatId, ChatPatch, Frame, Instance, JournalEntry, Message,
    NewAttachment, NewChat, NewFrame, NewMessage, Run, RunControl, RunId, RunStatus, Session,
    SessionId, SessionStatus, Task, TaskId, TaskStatus, Topic, Trace, TraceCursor, TraceFinish,
    TraceId, TurnSummary,
};
use baton_store::{
    Backend, Held, MigrationReport, PhaseTotals, Queued, Store, StoreError, StoreResult,
    TopicBounds, TraceScope, WorkNotifications,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

pub use migrate::MIGRATIONS;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The writes of running work (sessions, traces, journal entries, event-log
    /// appends), grouped into few transactions. Every other write waits first for what
    /// was sent to it ([`writer::Writer::settled`]), so writes through this store commit
    /// in the order they were made, as [`Store::queue`] promises.
    write: writer::Writer,
    /// Tells this instance's frame notifications from other instances'.
    instance: String,
}

pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::database(e)
}

impl PgStore {
    /// Connects and migrates.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let store = Self::connect_unmigrated(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without applying migrations (for `baton migrate`, which reports them).
    pub async fn connect_unmigrated(url: &str) -> StoreResult<Self> {
        let options: PgConnectOptions = url.parse().map_err(db)?;
        let options = options.log_statements(tracing::log::LevelFilter::Trace);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        let instance = uuid::Uuid::now_v7().simple().to_string();
        Ok(Self {
            write: lanes::start(pool.clone(), instance.clone()),
            pool,
            instance,
        })
    }

    pub async fn migrate(&self) -> StoreResult<MigrationReport> {
        migrate::run(&self.pool).await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.pool.close().await;
    }

    /// `Store::append_frames`, with the frames moved into the answer rather than copied.
    async fn append_owned(&self, topic: Topic, frames: Vec<NewFrame>) -> StoreResult<Vec<Frame>> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let at = baton_core::time::now();
        let first = self.write.write(events::append(topic, &frames, at)).await?;
        Ok(frames
            .into_iter()
            .zip(first..)
            .map(|(f, seq)| f.stored(topic, seq, at))
            .collect())
    }

    /// Creates database `name` through the server that `admin_url` points at. For test
    /// suites and benchmarks that want a database of their own.
    pub async fn create_database(admin_url: &str, name: &str) -> StoreResult<()> {
        check_db_name(name)?;
        let mut conn = PgConnection::connect(admin_url).await.map_err(db)?;
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .map_err(db)?;
        conn.close().await.map_err(db)
    }

    /// Drops database `name`, disconnecting whoever still uses it.
    pub async fn drop_database(admin_url: &str, name: &str) -> StoreResult<()> {
        check_db_name(name)?;
        let mut conn = PgConnection::connect(admin_url).await.map_err(db)?;
        conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await
            .map_err(db)?;
        conn.close().await.map_err(db)
    }
}

fn check_db_name(name: &str) -> StoreResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "unusable database name '{name}'"
        )))
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db)
    }

    async fn create_chat(&self, chat: NewChat) -> StoreResult<Chat> {
        self.write.settled().await;
        chats::create_chat(&self.pool, chat).await
    }

    async fn get_chat(&self, id: ChatId) -> StoreResult<Option<Chat>> {
        chats::get_chat(&self.pool, id).await
    }

    async fn list_chats(&self, limit: u32, before: Option<ChatId>) -> StoreResult<Vec<Chat>> {
        chats::list_chats(&self.pool, limit, before).await
    }

    async fn update_chat(&self, id: ChatId, patch: ChatPatch) -> StoreResult<Option<Chat>> {
        self.write.settled().await;
        chats::update_chat(&self.pool, id, patch).await
    }

    async fn insert_message(&self, message: NewMessage) -> StoreResult<Message> {
        self.write.settled().await;
        chats::insert_message(&self.pool, message).await
    }

    async fn list_messages(&self, chat: ChatId) -> StoreResult<Vec<Message>> {
        chats::list_messages(&self.pool, chat).await
    }

    async fn page_messages(
        &self,
        chat: ChatId,
        at: baton_store::MessageAnchor,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        chats::page_messages(&self.pool, chat, at, limit).await
    }

    async fn put_attachment(&self, new: &NewAttachment) -> StoreResult<Attachment> {
        self.write.settled().await;
        attachments::put(&self.pool, new).await
    }

    async fn get_attachment(&self, id: AttachmentId) -> StoreResult<Option<Attachment>> {
        attachments::get(&self.pool, id).await
    }

    async fn attachment_bytes(
        &self,
        id: AttachmentId,
        thumbnail: bool,
    ) -> StoreResult<Option<Vec<u8>>> {
        attachments::bytes(&self.pool, id, thumbnail).await
    }

    async fn delete_orphan_attachments(&self, before: Timestamp) -> StoreResult<u64> {
        self.write.settled().await;
        attachments::delete_orphans(&self.pool, before).await
    }

    async fn image_description(&self, sha256: &str, model: &str) -> StoreResult<Option<String>> {
        attachments::description(&self.pool, sha256, model).await
    }

    async fn put_image_description(
        &self,
        sha256: &str,
        model: &str,
        description: &str,
    ) -> StoreResult<()> {
        self.write.settled().await;
        attachments::put_description(&self.pool, sha256, model, description).await
    }

    async fn insert_trace(&self, trace: &Trace) -> StoreResult<()> {
        self.write
            .write(traces::insert(std::slice::from_ref(trace)))
            .await
    }

    async fn insert_traces(&self, traces: &[Trace]) -> StoreResult<()> {
        if traces.is_empty() {
            return Ok(());
        }
        self.write.write(traces::insert(traces)).await
    }

    async fn finish_trace(&self, id: TraceId, finish: &TraceFinish) -> StoreResult<Trace> {
        let r = self.write.write(traces::finish(id, finish)).await;
        traces::finished(&self.pool, id, r).await
    }

    async fn get_trace(&self, id: TraceId) -> StoreResult<Option<Trace>> {
        traces::get(&self.pool, id).await
    }

    async fn list_traces(
        &self,
        scope: TraceScope,
        limit: u32,
        after: Option<TraceCursor>,
    ) -> StoreResult<Vec<Trace>> {
        traces::list(&self.pool, scope, limit, after).await
    }

    async fn search_traces(
        &self,
        scope: TraceScope,
        filter: &baton_store::TraceFilter,
        limit: u32,
        after: Option<TraceCursor>,
    ) -> StoreResult<Vec<Trace>> {
        traces::search(&self.pool, scope, filter, limit, after).await
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        self.write.write(sessions::create(session)).await
    }

    async fn save_session(&self, session: &Session, messages: &[Message]) -> StoreResult<()> {
        let r = self.write.write(sessions::save(session, messages)).await;
        sessions::refused(&self.pool, session.id, r).await
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        sessions::get(&self.pool, id).await
    }

    async fn list_sessions(&self, chat: ChatId) -> StoreResult<Vec<Session>> {
        sessions::list(&self.pool, chat).await
    }

    async fn sessions_with_status(&self, status: SessionStatus) -> StoreResult<Vec<Session>> {
        sessions::with_status(&self.pool, status).await
    }

    async fn close_running_traces(
        &self,
        session: SessionId,
        reason: &str,
    ) -> StoreResult<Vec<Trace>> {
        self.write.settled().await;
        sessions::close_running(&self.pool, session, reason).await
    }

    async fn turn_summaries(
        &self,
        session: SessionId,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<TurnSummary>> {
        sessions::turn_summaries(&self.pool, session, after, limit).await
    }

    async fn create_run(&self, run: &Run) -> StoreResult<()> {
        self.write.settled().await;
        runs::create(&self.pool, run).await
    }

    async fn update_run(&self, run: &Run) -> StoreResult<()> {
        self.write.settled().await;
        runs::update(&self.pool, run).await
    }

    async fn get_run(&self, id: RunId) -> StoreResult<Option<Run>> {
        runs::get(&self.pool, id).await
    }

    async fn list_runs(
        &self,
        status: Option<RunStatus>,
        limit: u32,
        before: Option<RunId>,
    ) -> StoreResult<Vec<Run>> {
        runs::list(&self.pool, status, limit, before).await
    }

    async fn put_prompt(&self, hash: &str, text: &str) -> StoreResult<()> {
        self.write.write(sessions::put_prompt(hash, text)).await
    }

    async fn prompt(&self, hash: &str) -> StoreResult<Option<String>> {
        self.write.settled().await;
        sessions::prompt(&self.pool, hash).await
    }

    async fn put_journal(&self, entry: &JournalEntry) -> StoreResult<()> {
        let r = self.write.write(runs::put_journal(entry)).await;
        runs::refused_journal(&self.pool, entry.run_id, r).await
    }

    async fn queue(&self, write: Queued) {
        match write {
            Queued::Session(s) => self.write.submit(sessions::create(&s)),
            Queued::Snapshot(s, m) => self.write.submit(sessions::save(&s, &m)),
            Queued::Trace(t) => self.write.submit(traces::insert(std::slice::from_ref(&t))),
            Queued::Finish(id, f) => self.write.submit(traces::finish_unread(id, &f)),
            Queued::Journal(e) => self.write.submit(runs::put_journal(&e)),
            Queued::Prompt { hash, text } => self.write.submit(sessions::put_prompt(&hash, &text)),
        }
    }

    async fn get_journal(&self, run: RunId, key: &str) -> StoreResult<Option<JournalEntry>> {
        runs::get_journal(&self.pool, run, key).await
    }

    async fn stop_running_agents(&self, run: RunId, epoch: i64, at: Timestamp) -> StoreResult<u64> {
        self.write.settled().await;
        runs::stop_running(&self.pool, run, epoch, at).await
    }

    async fn claim_runs(&self, owner: &str, ttl: Duration, limit: u32) -> StoreResult<Vec<Run>> {
        self.write.settled().await;
        leases::claim_runs(&self.pool, owner, ttl, limit).await
    }

    async fn claim_run(&self, id: RunId, owner: &str, ttl: Duration) -> StoreResult<Option<Run>> {
        self.write.settled().await;
        leases::claim_run(&self.pool, id, owner, ttl).await
    }

    async fn claim_sessions(
        &self,
        owner: &str,
        ttl: Duration,
        limit: u32,
    ) -> StoreResult<Vec<Session>> {
        self.write.settled().await;
        leases::claim_sessions(&self.pool, owner, ttl, limit).await
    }

    async fn claim_session(
        &self,
        id: SessionId,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Session>> {
        self.write.settled().await;
        leases::claim_session(&self.pool, id, owner, ttl).await
    }

    async fn renew_leases(&self, owner: &str, ttl: Duration) -> StoreResult<Held> {
        leases::renew(&self.pool, owner, ttl).await
    }

    async fn release_leases(&self, owner: Option<&str>) -> StoreResult<u64> {
        self.write.settled().await;
        leases::release(&self.pool, owner).await
    }

    async fn request_run_control(&self, id: RunId, control: RunControl) -> StoreResult<()> {
        self.write.settled().await;
        leases::request_control(&self.pool, id, control).await
    }

    async fn take_run_controls(&self, owner: &str) -> StoreResult<Vec<(RunId, RunControl)>> {
        self.write.settled().await;
        leases::take_controls(&self.pool, owner).await
    }

    async fn request_session_cancel(&self, id: SessionId) -> StoreResult<()> {
        self.write.settled().await;
        leases::request_session_cancel(&self.pool, id).await
    }

    async fn take_session_cancels(&self, owner: &str) -> StoreResult<Vec<SessionId>> {
        self.write.settled().await;
        leases::take_session_cancels(&self.pool, owner).await
    }

    async fn create_task(&self, task: &Task) -> StoreResult<()> {
        self.write.settled().await;
        tasks::create(&self.pool, task).await
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        tasks::get(&self.pool, id).await
    }

    async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        limit: u32,
        before: Option<TaskId>,
    ) -> StoreResult<Vec<Task>> {
        tasks::list(&self.pool, status, limit, before).await
    }

    async fn session_tasks(&self, parent: SessionId) -> StoreResult<Vec<Task>> {
        tasks::of_session(&self.pool, parent).await
    }

    async fn update_task(&self, task: &Task) -> StoreResult<()> {
        self.write.settled().await;
        tasks::update(&self.pool, task).await
    }

    async fn cancel_queued_task(
        &self,
        id: TaskId,
        at: Timestamp,
        reason: &str,
    ) -> StoreResult<Option<Task>> {
        self.write.settled().await;
        tasks::cancel_queued(&self.pool, id, at, reason).await
    }

    async fn claim_tasks(&self, owner: &str, ttl: Duration, limit: u32) -> StoreResult<Vec<Task>> {
        self.write.settled().await;
        tasks::claim(&self.pool, owner, ttl, limit).await
    }

    async fn request_task_cancel(&self, id: TaskId) -> StoreResult<()> {
        self.write.settled().await;
        tasks::request_cancel(&self.pool, id).await
    }

    async fn take_task_cancels(&self, owner: &str) -> StoreResult<Vec<TaskId>> {
        self.write.settled().await;
        tasks::take_cancels(&self.pool, owner).await
    }

    async fn untold_tasks(&self, chat: ChatId) -> StoreResult<Vec<Task>> {
        tasks::untold(&self.pool, chat).await
    }

    async fn chats_with_untold_tasks(&self, limit: u32) -> StoreResult<Vec<ChatId>> {
        tasks::chats_with_untold(&self.pool, limit).await
    }

    async fn notify_work(&self) -> StoreResult<()> {
        leases::notify(&self.pool).await
    }

    async fn work_notifications(&self) -> StoreResult<Option<WorkNotifications>> {
        leases::listen(&self.pool).await.map(Some)
    }

    async fn close_run_sessions(&self, run: RunId, reason: &str) -> StoreResult<Vec<Trace>> {
        self.write.settled().await;
        leases::close_run_sessions(&self.pool, run, reason).await
    }

    async fn heartbeat(&self, id: &str, started_at: Timestamp, ttl: Duration) -> StoreResult<()> {
        leases::heartbeat(&self.pool, id, started_at, ttl).await
    }

    async fn live_instances(&self) -> StoreResult<Vec<Instance>> {
        leases::live_instances(&self.pool).await
    }

    async fn forget_instance(&self, id: &str) -> StoreResult<()> {
        self.write.settled().await;
        leases::forget_instance(&self.pool, id).await
    }

    async fn list_journal(&self, run: RunId) -> StoreResult<Vec<JournalEntry>> {
        runs::list_journal(&self.pool, run).await
    }

    async fn journal_page(
        &self,
        run: RunId,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<JournalEntry>> {
        runs::journal_page(&self.pool, run, after, limit).await
    }

    async fn journal_totals(&self, run: RunId) -> StoreResult<Vec<PhaseTotals>> {
        runs::journal_totals(&self.pool, run).await
    }

    async fn append_frames(&self, topic: Topic, frames: &[NewFrame]) -> StoreResult<Vec<Frame>> {
        self.append_owned(topic, frames.to_vec()).await
    }

    async fn append_frames_to_topics(
        &self,
        batches: Vec<(Topic, Vec<NewFrame>)>,
    ) -> Vec<StoreResult<Vec<Frame>>> {
        // Sent to the writer in order as each is first polled, so appends to one topic
        // keep their order; together they make one group.
        futures_util::future::join_all(
            batches
                .into_iter()
                .map(|(topic, frames)| self.append_owned(topic, frames)),
        )
        .await
    }

    async fn frames_since(&self, topic: Topic, since: i64, limit: u32) -> StoreResult<Vec<Frame>> {
        events::since(&self.pool, topic, since, limit).await
    }

    async fn topic_bounds(&self, topic: Topic) -> StoreResult<TopicBounds> {
        events::bounds(&self.pool, topic).await
    }

    async fn prune_frames(&self, topic: Topic, up_to: i64) -> StoreResult<u64> {
        self.write.settled().await;
        events::prune(&self.pool, topic, up_to).await
    }

    async fn frame_notifications(&self) -> StoreResult<Option<baton_store::FrameNotifications>> {
        events::listen(&self.pool, self.instance.clone())
            .await
            .map(Some)
    }

    async fn close(&self) {
        PgStore::close(self).await
    }

    async fn topic_exists(&self, topic: Topic) -> StoreResult<bool> {
        events::topic_exists(&self.pool, topic).await
    }
}
