//! Group commit on the one writer connection. Every write is a [`Plan`]: statements and
//! values, no code. The writer takes every write that queued while it was busy, runs
//! them all in one transaction, lets each read its outcome, commits once, and only then
//! answers. Under load a commit carries dozens of writes; writes nobody waits for
//! ([`Writer::submit`]) make the groups larger still.
//!
//! If any statement fails or any write refuses its outcome (an update that found no
//! row), the group is rolled back and each write is replayed in its own transaction, so
//! one bad write fails alone and nothing of it stays.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_store::{StoreError, StoreResult};
use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Connection, Either, Executor, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::plan::{Outcome, Plan, Stmt};

/// Writes per commit at most, so one transaction never grows without bound.
const MAX_BATCH: usize = 512;

/// A write whose value type the writer does not know.
trait Job: Send + Sync {
    fn stmts(&self) -> &[Stmt];
    /// Reads its outcomes; false if the write refuses them.
    fn accept(&mut self, outcomes: Vec<Outcome>) -> bool;
    fn failed(&mut self, e: sqlx::Error);
    /// Answers once the fate of its transaction is known.
    fn answer(self: Box<Self>, commit: Result<(), String>);
}

struct Typed<T> {
    plan: Plan<T>,
    result: Option<StoreResult<T>>,
    /// None for a write nobody waits for: its failure is logged.
    reply: Option<oneshot::Sender<StoreResult<T>>>,
}

impl<T: Send + Sync + 'static> Job for Typed<T> {
    fn stmts(&self) -> &[Stmt] {
        &self.plan.stmts
    }

    fn accept(&mut self, outcomes: Vec<Outcome>) -> bool {
        let r = (self.plan.decode)(outcomes);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn failed(&mut self, e: sqlx::Error) {
        self.result = Some(Err((self.plan.on_error)(e)));
    }

    fn answer(self: Box<Self>, commit: Result<(), String>) {
        let out = match (self.result, commit) {
            // Its own failure says more than the rollback it caused.
            (Some(Err(own)), _) => Err(own),
            (_, Err(e)) => Err(StoreError::database(std::io::Error::other(e))),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(StoreError::database(std::io::Error::other("not run"))),
        };
        match self.reply {
            Some(reply) => {
                let _ = reply.send(out);
            }
            None => {
                if let Err(e) = out {
                    tracing::error!(error = %e, "a queued write failed");
                }
            }
        }
    }
}

enum Msg {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Msg>,
}

fn closed() -> StoreError {
    StoreError::database(std::io::Error::other("the store is closed"))
}

impl Writer {
    /// `conn` is the writer's own connection; `admin`, another one, runs checkpoints;
    /// `wal` is the database's log file.
    pub fn start(conn: SqliteConnection, admin: SqlitePool, wal: PathBuf) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, admin, wal, rx));
        Self { tx }
    }

    fn send<T: Send + Sync + 'static>(
        &self,
        plan: Plan<T>,
        reply: Option<oneshot::Sender<StoreResult<T>>>,
    ) -> StoreResult<()> {
        let job = Typed {
            plan,
            result: None,
            reply,
        };
        self.tx.send(Msg::Job(Box::new(job))).map_err(|_| closed())
    }

    /// Runs `plan` in the next group transaction; answers after that commit.
    pub async fn write<T: Send + Sync + 'static>(&self, plan: Plan<T>) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        self.send(plan, Some(reply))?;
        rx.await.map_err(|_| closed())?
    }

    /// Queues `plan` for the next group and returns at once; its failure is logged.
    pub fn submit<T: Send + Sync + 'static>(&self, plan: Plan<T>) {
        if self.send(plan, None).is_err() {
            tracing::error!("a write was queued after the store closed");
        }
    }

    /// Commits what is queued, then closes the connection; later writes fail.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run(
    mut conn: SqliteConnection,
    admin: SqlitePool,
    wal: PathBuf,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let mut checkpoints = Checkpoints::new(admin, wal);
    let mut closing = None;
    while let Some(first) = rx.recv().await {
        let mut batch: Vec<Box<dyn Job>> = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => batch.push(job),
                Msg::Close(ack) => {
                    closing = Some(ack);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            checkpoints.before_group(&mut conn).await;
            commit_group(&mut conn, batch).await;
            checkpoints.after_commit();
        }
        if closing.is_some() {
            break;
        }
    }
    rx.close();
    // Writes that raced the close get their error instead of hanging.
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Job(job) => job.answer(Err("the store is closed".into())),
            Msg::Close(ack) => {
                let _ = ack.send(());
            }
        }
    }
    let _ = conn.close().await;
    if let Some(ack) = closing {
        let _ = ack.send(());
    }
}

async fn commit_group(conn: &mut SqliteConnection, mut batch: Vec<Box<dyn Job>>) {
    let ok = together(conn, &mut batch).await;
    if ok {
        let commit = exec(conn, "COMMIT").await;
        if commit.is_err() {
            let _ = exec(conn, "ROLLBACK").await;
        }
        if let Err(e) = &commit {
            tracing::error!(error = %e, writes = batch.len(), "group commit failed");
        }
        for job in batch {
            job.answer(commit.clone());
        }
        return;
    }
    let _ = exec(conn, "ROLLBACK").await;
    for job in batch {
        alone(conn, job).await;
    }
}

/// Every write of the group in one transaction; true if all of them accepted their
/// outcomes (the transaction is then open, waiting for its COMMIT).
async fn together(conn: &mut SqliteConnection, batch: &mut [Box<dyn Job>]) -> bool {
    let stmts = batch.iter().flat_map(|j| j.stmts().iter());
    let mut outcomes = Vec::new();
    if let Err(e) = execute(conn, stmts, &mut outcomes).await {
        tracing::debug!(error = %e, "a grouped write failed; replaying each alone");
        return false;
    }
    let mut outcomes = outcomes.into_iter();
    let mut ok = true;
    for job in batch.iter_mut() {
        let n = job.stmts().len();
        let mine: Vec<Outcome> = outcomes.by_ref().take(n).collect();
        ok &= job.accept(mine);
    }
    ok
}

async fn alone(conn: &mut SqliteConnection, mut job: Box<dyn Job>) {
    let mut outcomes = Vec::new();
    let ok = match execute(conn, job.stmts().iter(), &mut outcomes).await {
        Ok(()) => job.accept(outcomes),
        Err(e) => {
            job.failed(e);
            false
        }
    };
    let commit = if ok {
        exec(conn, "COMMIT").await
    } else {
        Err("rolled back".to_string())
    };
    if commit.is_err() {
        let _ = exec(conn, "ROLLBACK").await;
    }
    job.answer(commit);
}

/// `BEGIN IMMEDIATE`, then `stmts` one by one, each outcome pushed in order. Each
/// statement is its own trip to the connection's thread but is prepared once and then
/// taken from sqlx's statement cache: sending a whole group as one string was tried and
/// was slower, because SQLite then parses every statement of every group again.
async fn execute<'s>(
    conn: &mut SqliteConnection,
    stmts: impl Iterator<Item = &'s Stmt>,
    outcomes: &mut Vec<Outcome>,
) -> Result<(), sqlx::Error> {
    conn.execute("BEGIN IMMEDIATE").await?;
    for st in stmts {
        let mut args = SqliteArguments::default();
        for a in &st.args {
            a.clone().add_to(&mut args);
        }
        // `fetch_many` is deprecated in sqlx for its multi-statement use; for one
        // statement it is the call that yields both the rows and the rows changed.
        #[allow(deprecated)]
        let mut stream = sqlx::query_with(&st.sql, args).fetch_many(&mut *conn);
        let mut current = Outcome::default();
        while let Some(item) = stream.try_next().await? {
            match item {
                Either::Right(row) => current.rows.push(row),
                Either::Left(done) => current.changes = done.rows_affected(),
            }
        }
        outcomes.push(current);
    }
    Ok(())
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), String> {
    conn.execute(sql)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Commits at most between two checkpoints, and the longest wait for one.
const CHECKPOINT_EVERY: u32 = 100;
const CHECKPOINT_AFTER: Duration = Duration::from_secs(1);
/// Pages in the log beyond which the writer itself finishes a checkpoint (SQLite's own
/// default threshold).
const LOG_PAGES: i64 = 1_000;
/// The same bound in bytes of log file (pages of 4 KiB and their frame headers).
const LOG_BYTES: u64 = LOG_PAGES as u64 * 4_120;
/// The longest the writer waits for a side checkpoint before its own.
const SIDE_WAIT: Duration = Duration::from_secs(5);

/// SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, with
/// its fsyncs, on the writer's critical path. It is turned off; passive checkpoints run
/// on another connection instead, which writers never wait for. Under a steady stream of
/// commits such a checkpoint never quite catches up, and the log only starts over once
/// one does; so when the log has grown past `LOG_PAGES`, the writer runs one between two
/// groups (most pages already copied, so it is short), and the next group starts the log
/// from its beginning.
///
/// The side checkpoint tells the log's length only when it ends, and on a starved machine
/// it can take as long as thousands of commits; so the writer also watches the log file:
/// it grows only when the log reaches past its largest length so far, and once it passes
/// `LOG_BYTES` the writer catches up at once.
struct Checkpoints {
    admin: SqlitePool,
    wal: PathBuf,
    /// The largest size of the log file seen.
    wal_high: u64,
    running: Arc<AtomicBool>,
    catch_up: Arc<AtomicBool>,
    commits: u32,
    last: Instant,
}

impl Checkpoints {
    fn new(admin: SqlitePool, wal: PathBuf) -> Self {
        Self {
            admin,
            wal,
            wal_high: 0,
            running: Arc::new(AtomicBool::new(false)),
            catch_up: Arc::new(AtomicBool::new(false)),
            commits: 0,
            last: Instant::now(),
        }
    }

    /// Before a group: the writer's own checkpoint, when the log is too long. It first
    /// waits for a side checkpoint still running (two cannot run at once), so writes
    /// cannot outrun checkpoints, and is tried again before every group until it copies
    /// the whole log: only a complete one lets the next group start the log over.
    async fn before_group(&self, conn: &mut SqliteConnection) {
        if !self.catch_up.load(Ordering::SeqCst) {
            return;
        }
        let waiting = Instant::now();
        while self.running.load(Ordering::SeqCst) && waiting.elapsed() < SIDE_WAIT {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut *conn)
            .await
        {
            Ok((0, log, copied)) if copied >= log => self.catch_up.store(false, Ordering::SeqCst),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checkpointing the SQLite log failed"),
        }
    }

    fn after_commit(&mut self) {
        if let Ok(len) = std::fs::metadata(&self.wal).map(|m| m.len()) {
            if len > self.wal_high {
                self.wal_high = len;
                if len > LOG_BYTES {
                    self.catch_up.store(true, Ordering::SeqCst);
                }
            }
        }
        self.commits += 1;
        if self.commits < CHECKPOINT_EVERY && self.last.elapsed() < CHECKPOINT_AFTER {
            return;
        }
        // While the writer is catching up, a second checkpointer would only make it busy.
        if self.catch_up.load(Ordering::SeqCst) || self.running.swap(true, Ordering::SeqCst) {
            return;
        }
        self.commits = 0;
        self.last = Instant::now();
        let (admin, running, catch_up) = (
            self.admin.clone(),
            self.running.clone(),
            self.catch_up.clone(),
        );
        tokio::spawn(async move {
            // One row: busy, pages in the log, pages copied to the database.
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&admin)
                .await
            {
                Ok((_, log, _)) if log > LOG_PAGES => catch_up.store(true, Ordering::SeqCst),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "checkpointing the SQLite log failed"),
            }
            running.store(false, Ordering::SeqCst);
        });
    }
}
