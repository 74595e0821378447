//! SQLite implementation of [`baton_store::Store`]: one file, WAL, a single writer
//! connection (so writers queue in-process instead of spinning on `SQLITE_BUSY`) and a
//! small pool of readers.
#![forbid(unsafe_code)]

mod attachments;
mod chats;
mod events;
mod leases;
mod migrate;
mod plan;
mod rows;
mod runs;
mod sessions;
mod tasks;
mod traces;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
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
    TopicBounds, TraceScope,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

pub use migrate::MIGRATIONS;

#[derive(Clone)]
pub struct SqliteStore {
    /// For migrations and checkpoints; every write goes through `write`.
    writer: SqlitePool,
    write: writer::Writer,
    reader: SqlitePool,
}

/// The file path named by a `sqlite://` URL (`sqlite://data/baton.db` is relative,
/// `sqlite:///var/lib/baton.db` absolute).
pub fn path_from_url(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

impl SqliteStore {
    /// Opens (creating the file and its folder if needed) and migrates.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let store = Self::connect_unmigrated(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens without applying migrations (for `baton migrate`, which reports them).
    pub async fn connect_unmigrated(url: &str) -> StoreResult<Self> {
        let path = path_from_url(url).ok_or_else(|| StoreError::Migration {
            version: "-".into(),
            reason: format!("'{url}' does not name a SQLite file"),
        })?;
        Self::open(&path).await
    }

    async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(StoreError::database)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::database)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across process crashes in WAL mode; only an OS crash can
            // lose the last commits. That is the trade every embedded server makes.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Checkpoints run beside the writer instead (see `writer`).
            .pragma("wal_autocheckpoint", "0");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::database)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone().read_only(false))
            .await
            .map_err(StoreError::database)?;
        // The writer's own connection, apart from the pool: it lives in the writer task.
        // Its joined statements and event-log inserts come in a few lengths each, and a
        // text not in the cache is parsed again: room for all of them.
        // Temporary files in memory: a statement that may fail halfway inside a group keeps
        // the pages it changes in a statement journal, which SQLite otherwise spills to a
        // file on disk, written and thrown away in every group. The writer's temporary data
        // is bounded by a group; readers, whose sorts can be large, keep the default.
        let conn = SqliteConnection::connect_with(
            &options
                .clone()
                .pragma("temp_store", "memory")
                .statement_cache_capacity(writer::STATEMENTS_KEPT),
        )
        .await
        .map_err(StoreError::database)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let write = writer::start(conn, writer.clone(), PathBuf::from(wal));
        Ok(Self {
            writer,
            write,
            reader,
        })
    }

    pub async fn migrate(&self) -> StoreResult<MigrationReport> {
        migrate::run(&self.writer).await
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }
}

pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::database(e)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
            .map_err(db)
    }

    async fn create_chat(&self, chat: NewChat) -> StoreResult<Chat> {
        self.write.write(chats::create_chat(chat)).await
    }

    async fn get_chat(&self, id: ChatId) -> StoreResult<Option<Chat>> {
        chats::get_chat(&self.reader, id).await
    }

    async fn list_chats(&self, limit: u32, before: Option<ChatId>) -> StoreResult<Vec<Chat>> {
        chats::list_chats(&self.reader, limit, before).await
    }

    async fn update_chat(&self, id: ChatId, patch: ChatPatch) -> StoreResult<Option<Chat>> {
        self.write.write(chats::update_chat(id, patch)).await
    }

    async fn insert_message(&self, message: NewMessage) -> StoreResult<Message> {
        self.write.write(chats::insert_message(message)).await
    }

    async fn list_messages(&self, chat: ChatId) -> StoreResult<Vec<Message>> {
        chats::list_messages(&self.reader, chat).await
    }

    async fn page_messages(
        &self,
        chat: ChatId,
        at: baton_store::MessageAnchor,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        chats::page_messages(&self.reader, chat, at, limit).await
    }

    async fn put_attachment(&self, new: &NewAttachment) -> StoreResult<Attachment> {
        self.write.write(attachments::put(new)).await
    }

    async fn get_attachment(&self, id: AttachmentId) -> StoreResult<Option<Attachment>> {
        attachments::get(&self.reader, id).await
    }

    async fn attachment_bytes(
        &self,
        id: AttachmentId,
        thumbnail: bool,
    ) -> StoreResult<Option<Vec<u8>>> {
        attachments::bytes(&self.reader, id, thumbnail).await
    }

    async fn delete_orphan_attachments(&self, before: Timestamp) -> StoreResult<u64> {
        self.write.write(attachments::delete_orphans(&before)).await
    }

    async fn image_description(&self, sha256: &str, model: &str) -> StoreResult<Option<String>> {
        attachments::description(&self.reader, sha256, model).await
    }

    async fn put_image_description(
        &self,
        sha256: &str,
        model: &str,
        description: &str,
    ) -> StoreResult<()> {
        self.write
            .write(attachments::put_description(sha256, model, description))
            .await
    }

    async fn insert_trace(&self, trace: &Trace) -> StoreResult<()> {
        self.write
            .write(traces::insert(std::slice::from_ref(trace)))
            .await
    }

    async fn insert_traces(&self, traces: &[Trace]) -> StoreResult<()> {
        self.write.write(traces::insert(traces)).await
    }

    async fn finish_trace(&self, id: TraceId, finish: &TraceFinish) -> StoreResult<Trace> {
        self.write.write(traces::finish(id, finish)).await
    }

    async fn get_trace(&self, id: TraceId) -> StoreResult<Option<Trace>> {
        traces::get(&self.reader, id).await
    }

    async fn list_traces(
        &self,
        scope: TraceScope,
        limit: u32,
        after: Option<TraceCursor>,
    ) -> StoreResult<Vec<Trace>> {
        traces::list(&self.reader, scope, limit, after).await
    }

    async fn search_traces(
        &self,
        scope: TraceScope,
        filter: &baton_store::TraceFilter,
        limit: u32,
        after: Option<TraceCursor>,
    ) -> StoreResult<Vec<Trace>> {
        traces::search(&self.reader, scope, filter, limit, after).await
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        self.write.write(sessions::create(session)).await
    }

    async fn save_session(&self, session: &Session, messages: &[Message]) -> StoreResult<()> {
        self.write.write(sessions::save(session, messages)).await
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        sessions::get(&self.reader, id).await
    }

    async fn list_sessions(&self, chat: ChatId) -> StoreResult<Vec<Session>> {
        sessions::list(&self.reader, chat).await
    }

    async fn sessions_with_status(&self, status: SessionStatus) -> StoreResult<Vec<Session>> {
        sessions::with_status(&self.reader, status).await
    }

    async fn close_running_traces(
        &self,
        session: SessionId,
        reason: &str,
    ) -> StoreResult<Vec<Trace>> {
        self.write
            .write(sessions::close_running(session, reason))
            .await
    }

    async fn turn_summaries(
        &self,
        session: SessionId,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<TurnSummary>> {
        sessions::turn_summaries(&self.reader, session, after, limit).await
    }

    async fn create_run(&self, run: &Run) -> StoreResult<()> {
        self.write.write(runs::create(run)).await
    }

    async fn update_run(&self, run: &Run) -> StoreResult<()> {
        self.write.write(runs::update(run)).await
    }

    async fn get_run(&self, id: RunId) -> StoreResult<Option<Run>> {
        runs::get(&self.reader, id).await
    }

    async fn list_runs(
        &self,
        status: Option<RunStatus>,
        limit: u32,
        before: Option<RunId>,
    ) -> StoreResult<Vec<Run>> {
        runs::list(&self.reader, status, limit, before).await
    }

    async fn put_prompt(&self, hash: &str, text: &str) -> StoreResult<()> {
        self.write.write(sessions::put_prompt(hash, text)).await
    }

    async fn prompt(&self, hash: &str) -> StoreResult<Option<String>> {
        self.write.settled().await;
        sessions::prompt(&self.reader, hash).await
    }

    async fn put_journal(&self, entry: &JournalEntry) -> StoreResult<()> {
        self.write.write(runs::put_journal(entry)).await
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
        runs::get_journal(&self.reader, run, key).await
    }

    async fn stop_running_agents(&self, run: RunId, epoch: i64, at: Timestamp) -> StoreResult<u64> {
        self.write.write(runs::stop_running(run, epoch, &at)).await
    }

    async fn claim_runs(&self, owner: &str, ttl: Duration, limit: u32) -> StoreResult<Vec<Run>> {
        self.write
            .write(leases::claim_runs(owner, ttl, limit))
            .await
    }

    async fn claim_run(&self, id: RunId, owner: &str, ttl: Duration) -> StoreResult<Option<Run>> {
        self.write.write(leases::claim_run(id, owner, ttl)).await
    }

    async fn claim_sessions(
        &self,
        owner: &str,
        ttl: Duration,
        limit: u32,
    ) -> StoreResult<Vec<Session>> {
        self.write
            .write(leases::claim_sessions(owner, ttl, limit))
            .await
    }

    async fn claim_session(
        &self,
        id: SessionId,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Session>> {
        self.write
            .write(leases::claim_session(id, owner, ttl))
            .await
    }

    async fn renew_leases(&self, owner: &str, ttl: Duration) -> StoreResult<Held> {
        self.write.write(leases::renew(owner, ttl)).await
    }

    async fn release_leases(&self, owner: Option<&str>) -> StoreResult<u64> {
        self.write.write(leases::release(owner)).await
    }

    async fn request_run_control(&self, id: RunId, control: RunControl) -> StoreResult<()> {
        self.write.write(leases::request_control(id, control)).await
    }

    async fn take_run_controls(&self, owner: &str) -> StoreResult<Vec<(RunId, RunControl)>> {
        self.write.write(leases::take_controls(owner)).await
    }

    async fn request_session_cancel(&self, id: SessionId) -> StoreResult<()> {
        self.write.write(leases::request_session_cancel(id)).await
    }

    async fn take_session_cancels(&self, owner: &str) -> StoreResult<Vec<SessionId>> {
        self.write.write(leases::take_session_cancels(owner)).await
    }

    async fn create_task(&self, task: &Task) -> StoreResult<()> {
        self.write.write(tasks::create(task)).await
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        tasks::get(&self.reader, id).await
    }

    async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        limit: u32,
        before: Option<TaskId>,
    ) -> StoreResult<Vec<Task>> {
        tasks::list(&self.reader, status, limit, before).await
    }

    async fn session_tasks(&self, parent: SessionId) -> StoreResult<Vec<Task>> {
        tasks::of_session(&self.reader, parent).await
    }

    async fn update_task(&self, task: &Task) -> StoreResult<()> {
        self.write.write(tasks::update(task)).await
    }

    async fn cancel_queued_task(
        &self,
        id: TaskId,
        at: Timestamp,
        reason: &str,
    ) -> StoreResult<Option<Task>> {
        self.write
            .write(tasks::cancel_queued(id, &at, reason))
            .await
    }

    async fn claim_tasks(&self, owner: &str, ttl: Duration, limit: u32) -> StoreResult<Vec<Task>> {
        self.write.write(tasks::claim(owner, ttl, limit)).await
    }

    async fn request_task_cancel(&self, id: TaskId) -> StoreResult<()> {
        self.write.write(tasks::request_cancel(id)).await
    }

    async fn take_task_cancels(&self, owner: &str) -> StoreResult<Vec<TaskId>> {
        self.write.write(tasks::take_cancels(owner)).await
    }

    async fn untold_tasks(&self, chat: ChatId) -> StoreResult<Vec<Task>> {
        tasks::untold(&self.reader, chat).await
    }

    async fn chats_with_untold_tasks(&self, limit: u32) -> StoreResult<Vec<ChatId>> {
        tasks::chats_with_untold(&self.reader, limit).await
    }

    async fn close_run_sessions(&self, run: RunId, reason: &str) -> StoreResult<Vec<Trace>> {
        self.write
            .write(leases::close_run_sessions(run, reason))
            .await
    }

    async fn heartbeat(&self, id: &str, started_at: Timestamp, ttl: Duration) -> StoreResult<()> {
        self.write
            .write(leases::heartbeat(id, &started_at, ttl))
            .await
    }

    async fn live_instances(&self) -> StoreResult<Vec<Instance>> {
        leases::live_instances(&self.reader).await
    }

    async fn forget_instance(&self, id: &str) -> StoreResult<()> {
        self.write.write(leases::forget_instance(id)).await
    }

    async fn list_journal(&self, run: RunId) -> StoreResult<Vec<JournalEntry>> {
        runs::list_journal(&self.reader, run).await
    }

    async fn journal_page(
        &self,
        run: RunId,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<JournalEntry>> {
        runs::journal_page(&self.reader, run, after, limit).await
    }

    async fn journal_totals(&self, run: RunId) -> StoreResult<Vec<PhaseTotals>> {
        runs::journal_totals(&self.reader, run).await
    }

    async fn append_frames(&self, topic: Topic, frames: &[NewFrame]) -> StoreResult<Vec<Frame>> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let batches = vec![(topic, frames.to_vec())];
        let at = baton_core::time::now();
        let firsts = self.write.write(events::append_many(&batches, at)).await?;
        Ok(events::numbered(batches, firsts, at)
            .pop()
            .unwrap_or_default())
    }

    async fn append_frames_to_topics(
        &self,
        batches: Vec<(Topic, Vec<NewFrame>)>,
    ) -> Vec<StoreResult<Vec<Frame>>> {
        // One plan needs every topic once and something to number.
        if batches.iter().any(|(_, f)| f.is_empty()) || !baton_store::topics_are_distinct(&batches)
        {
            return baton_store::append_one_by_one(self, &batches).await;
        }
        let at = baton_core::time::now();
        match self.write.write(events::append_many(&batches, at)).await {
            Ok(firsts) => events::numbered(batches, firsts, at)
                .into_iter()
                .map(Ok)
                .collect(),
            Err(e) => batches.iter().map(|_| Err(e.duplicate())).collect(),
        }
    }

    async fn frames_since(&self, topic: Topic, since: i64, limit: u32) -> StoreResult<Vec<Frame>> {
        events::since(&self.reader, topic, since, limit).await
    }

    async fn topic_bounds(&self, topic: Topic) -> StoreResult<TopicBounds> {
        events::bounds(&self.reader, topic).await
    }

    async fn prune_frames(&self, topic: Topic, up_to: i64) -> StoreResult<u64> {
        self.write.write(events::prune(topic, up_to)).await
    }

    async fn close(&self) {
        SqliteStore::close(self).await
    }

    async fn topic_exists(&self, topic: Topic) -> StoreResult<bool> {
        events::topic_exists(&self.reader, topic).await
    }
}
