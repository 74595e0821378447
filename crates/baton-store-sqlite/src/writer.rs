//! Group commit on the one writer connection. Every write is a [`Plan`]: statements and
//! values, no code. The writer takes every write that queued while it was busy, runs
//! them all in one transaction, lets each read its outcome, commits once, and only then
//! answers. Under load a commit carries dozens of writes; writes nobody waits for
//! ([`Writer::submit`]) make the groups larger still.
//!
//! Writes of one row by its key (statements made with [`Stmt::row`]) are joined, kind by
//! kind, into multi-row statements wherever that cannot change what the group leaves
//! ([`joined`]): every statement is a trip to the connection's thread, and under load
//! those trips, not SQLite's work, had become the writer's limit.
//!
//! If any statement fails or any write refuses its outcome (an update that found no
//! row), the group is rolled back and each write is replayed in its own transaction, so
//! one bad write fails alone and nothing of it stays.
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_store_group::{next_batch, refuse_rest, Msg};
use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Connection, Either, Executor, SqliteConnection, SqlitePool};
use tokio::sync::mpsc;

use crate::plan::{runs_of_two_powers, Arg, Outcome, RowKind, Stmt};

/// Writes per commit at most, so one transaction never grows without bound.
const MAX_BATCH: usize = 512;

/// A write waiting for its group.
type Job = Box<dyn baton_store_group::Job<Stmt, Outcome>>;

/// The queue to the writer task.
pub(crate) type Writer = baton_store_group::Queue<Stmt, Outcome>;

/// Starts the writer task. `conn` is the writer's own connection; `admin`, another one,
/// runs checkpoints; `wal` is the database's log file.
pub(crate) fn start(conn: SqliteConnection, admin: SqlitePool, wal: PathBuf) -> Writer {
    let (queue, rx) = Writer::new();
    tokio::spawn(run(conn, admin, wal, rx));
    queue
}

async fn run(
    mut conn: SqliteConnection,
    admin: SqlitePool,
    wal: PathBuf,
    mut rx: mpsc::UnboundedReceiver<Msg<Stmt, Outcome>>,
) {
    let mut checkpoints = Checkpoints::new(admin, wal);
    while let Some((batch, mut waiters)) = next_batch(&mut rx, MAX_BATCH).await {
        if !batch.is_empty() {
            checkpoints.before_group(&mut conn).await;
            commit_group(&mut conn, batch).await;
            checkpoints.after_commit();
        }
        if waiters.settle() {
            refuse_rest(&mut rx);
            let _ = conn.close().await;
            waiters.closed();
            return;
        }
    }
    let _ = conn.close().await;
}

async fn commit_group(conn: &mut SqliteConnection, mut batch: Vec<Job>) {
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
async fn together(conn: &mut SqliteConnection, batch: &mut [Job]) -> bool {
    let units = {
        let stmts = batch.iter().enumerate().flat_map(|(j, job)| {
            job.stmts()
                .iter()
                .enumerate()
                .map(move |(i, st)| ((j, i), st))
        });
        joined(stmts)
    };
    let mut outcomes: Vec<Vec<Option<Outcome>>> = batch
        .iter()
        .map(|job| job.stmts().iter().map(|_| None).collect())
        .collect();
    if let Err(e) = execute_units(conn, &units, &mut outcomes).await {
        tracing::debug!(error = %e, "a grouped write failed; replaying each alone");
        return false;
    }
    let mut ok = true;
    for (job, mine) in batch.iter_mut().zip(outcomes) {
        ok &= job.accept(mine.into_iter().map(Option::unwrap_or_default).collect());
    }
    ok
}

/// Where a statement sits in its group: (write, statement of that write).
type At = (usize, usize);

/// What the group runs: a statement as it is, or row statements of one kind as one.
enum Unit<'s> {
    One(At, &'s Stmt),
    Rows(&'static RowKind, Vec<Member<'s>>),
}

/// One row of a joined statement: the statements it stands for (more than one when it
/// absorbed later writes of its row) and its values.
struct Member<'s> {
    at: Vec<At>,
    args: Cow<'s, [Arg]>,
}

/// The group's statements in running order, row statements of a kind joined where that
/// cannot change the result. A row statement joins an earlier one of its kind, moving
/// up to that one's place, only if nothing in between wrote its row (each touches its
/// row alone, so statements on other rows commute with it) and no other statement came
/// in between (any other statement may read or write anything, so it is a barrier). By
/// the same rule it may instead be absorbed by the last write of its row, if that one's
/// kind can fold it in (`RowKind::absorb`): an agent that starts and ends within one
/// group then writes its rows once.
fn joined<'s>(stmts: impl Iterator<Item = (At, &'s Stmt)>) -> Vec<Unit<'s>> {
    let mut units: Vec<Unit<'s>> = Vec::new();
    // The unit each kind of row statement joins (kinds are statics, known by address),
    // and the last write of each row: its unit and its place there.
    let mut open: HashMap<*const RowKind, usize> = HashMap::new();
    let mut written: HashMap<(&'static str, &'s str), (usize, usize)> = HashMap::new();
    for (at, st) in stmts {
        let Some(row) = &st.row else {
            units.push(Unit::One(at, st));
            open.clear();
            written.clear();
            continue;
        };
        let last = written.get(&(row.kind.table, row.key.as_str())).copied();
        if let Some((u, m)) = last {
            if let Unit::Rows(earlier, members) = &mut units[u] {
                if let Some(absorb) = earlier.absorb {
                    let member = &mut members[m];
                    let mut folded = member.args.to_vec();
                    if absorb(&mut folded, row.kind, &st.args) {
                        member.args = Cow::Owned(folded);
                        member.at.push(at);
                        continue;
                    }
                }
            }
        }
        let kind: *const RowKind = row.kind;
        let target = open
            .get(&kind)
            .copied()
            .filter(|&u| last.is_none_or(|(w, _)| w < u));
        let member = Member {
            at: vec![at],
            args: Cow::Borrowed(&st.args),
        };
        let (u, m) = match target {
            Some(u) => {
                let Unit::Rows(_, members) = &mut units[u] else {
                    unreachable!("an open unit holds rows")
                };
                members.push(member);
                (u, members.len() - 1)
            }
            None => {
                units.push(Unit::Rows(row.kind, vec![member]));
                open.insert(kind, units.len() - 1);
                (units.len() - 1, 0)
            }
        };
        written.insert((row.kind.table, row.key.as_str()), (u, m));
    }
    units
}

/// Rows per joined statement at most (a power of two), far below SQLite's limit on values
/// per statement.
const ROWS_PER_JOIN: usize = 64;

/// Prepared statements the writer's connection keeps: the few texts of each kind of
/// joined statement and of the event log's, and the other writes besides.
pub(crate) const STATEMENTS_KEPT: usize = 1_024;

/// `BEGIN IMMEDIATE`, then every unit in order, each statement's outcome put in its place.
async fn execute_units(
    conn: &mut SqliteConnection,
    units: &[Unit<'_>],
    outcomes: &mut [Vec<Option<Outcome>>],
) -> Result<(), sqlx::Error> {
    conn.execute("BEGIN IMMEDIATE").await?;
    for unit in units {
        match unit {
            Unit::One((j, i), st) => {
                outcomes[*j][*i] = Some(run_one(conn, &st.sql, st.args.iter()).await?);
            }
            Unit::Rows(kind, members) => {
                for chunk in runs_of_two_powers(members, ROWS_PER_JOIN) {
                    let sql = kind.sql(chunk.len());
                    let args = chunk.iter().flat_map(|m| m.args.iter());
                    let out = run_one(conn, &sql, args).await?;
                    // Each row of a joined statement changes one row when it finds its row;
                    // if one did not, which one is not known here: the group is replayed
                    // write by write, where each sees its own outcome.
                    if out.changes != chunk.len() as u64 {
                        return Err(sqlx::Error::Protocol(format!(
                            "{} of {} joined row writes to {} found their row",
                            out.changes,
                            chunk.len(),
                            kind.table
                        )));
                    }
                    // An absorbed write wrote its row exactly when its absorber did.
                    for &(j, i) in chunk.iter().flat_map(|m| &m.at) {
                        outcomes[j][i] = Some(Outcome {
                            rows: Vec::new(),
                            changes: 1,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// One statement: the rows it returned and the rows it changed. Prepared once, then
/// taken from sqlx's statement cache.
async fn run_one<'a>(
    conn: &mut SqliteConnection,
    sql: &str,
    values: impl Iterator<Item = &'a Arg>,
) -> Result<Outcome, sqlx::Error> {
    let mut args = SqliteArguments::default();
    for a in values {
        a.clone().add_to(&mut args);
    }
    // `fetch_many` is deprecated in sqlx for its multi-statement use; for one
    // statement it is the call that yields both the rows and the rows changed.
    #[allow(deprecated)]
    let mut stream = sqlx::query_with(sql, args).fetch_many(&mut *conn);
    let mut current = Outcome::default();
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Right(row) => current.rows.push(row),
            Either::Left(done) => current.changes = done.rows_affected(),
        }
    }
    Ok(current)
}

async fn alone(conn: &mut SqliteConnection, mut job: Job) {
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
        outcomes.push(run_one(conn, &st.sql, st.args.iter()).await?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{changed, is, Plan};
    use baton_store::StoreResult;
    use tokio::sync::oneshot;

    /// Last value wins; `n` counts the writes, so order and count both show.
    static PUT: RowKind = RowKind {
        table: "t",
        head: "INSERT INTO t (k, v, n) VALUES ",
        row: "(?, ?, 1)",
        tail: "ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = t.n + 1",
        absorb: None,
    };

    /// Appends to an existing row: the result depends on every earlier write of the row.
    static APPEND: RowKind = RowKind {
        table: "t",
        head: "UPDATE t SET v = t.v || x.column2, n = t.n + 1 FROM (VALUES ",
        row: "(?, ?)",
        tail: ") AS x WHERE t.k = x.column1",
        absorb: None,
    };

    /// A new row: fails, as the whole statement it is joined into, when the row exists.
    static ADD: RowKind = RowKind {
        table: "t",
        head: "INSERT INTO t (k, v, n) VALUES ",
        row: "(?, ?, 1)",
        tail: "",
        absorb: None,
    };

    /// Sets a row whole, `n` given: it writes its row whatever was there, so it can take
    /// in a later set (the later wins) or append (computed here).
    static SET: RowKind = RowKind {
        table: "t",
        head: "INSERT INTO t (k, v, n) VALUES ",
        row: "(?, ?, ?)",
        tail: "ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = excluded.n",
        absorb: Some(|mine, later, theirs| {
            if is(later, &SET) {
                mine.clone_from_slice(theirs);
            } else if is(later, &APPEND) {
                let (Arg::Text(v), Arg::Text(add), Arg::Int(n)) = (&mine[1], &theirs[1], &mine[2])
                else {
                    return false;
                };
                (mine[1], mine[2]) = (format!("{v}{add}").into(), (n + 1).into());
            } else {
                return false;
            }
            true
        }),
    };

    /// Every write of one row: `(kind, key, value)`, or a statement over all rows.
    #[derive(Clone)]
    enum Op {
        Set(String, String, i64),
        Put(String, String),
        Append(String, String),
        Add(String, String),
        All,
    }

    fn plan(op: &Op, strict: bool) -> Plan<()> {
        match op {
            Op::Put(k, v) => Plan::exec(vec![Stmt::row(&PUT, k.clone(), vec![k.into(), v.into()])]),
            Op::Set(k, v, n) => Plan::exec(vec![Stmt::row(
                &SET,
                k.clone(),
                vec![k.into(), v.into(), (*n).into()],
            )]),
            // A strict append refuses when its row is missing: the group is then replayed
            // write by write, and the answers must be those of writes run alone.
            Op::Append(k, v) => {
                let st = Stmt::row(&APPEND, k.clone(), vec![k.into(), v.into()]);
                if strict {
                    Plan::new(vec![st], |out| changed(&out, 0, "row"))
                } else {
                    Plan::exec(vec![st])
                }
            }
            Op::Add(k, v) => Plan::exec(vec![Stmt::row(&ADD, k.clone(), vec![k.into(), v.into()])]),
            Op::All => Plan::exec(vec![Stmt::new("UPDATE t SET v = v || '|'", vec![])]),
        }
    }

    async fn database(dir: &std::path::Path, name: &str) -> SqliteConnection {
        let url = format!("sqlite://{}?mode=rwc", dir.join(name).display());
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        conn.execute("PRAGMA synchronous = OFF").await.unwrap();
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL, n INTEGER NOT NULL)")
            .await
            .unwrap();
        conn
    }

    async fn contents(conn: &mut SqliteConnection) -> Vec<(String, String, i64)> {
        sqlx::query_as("SELECT k, v, n FROM t ORDER BY k")
            .fetch_all(conn)
            .await
            .unwrap()
    }

    fn job(op: &Op, strict: bool) -> (Job, oneshot::Receiver<StoreResult<()>>) {
        let (reply, rx) = oneshot::channel();
        (baton_store_group::job(plan(op, strict), Some(reply)), rx)
    }

    /// A small random generator, so a failing round can be replayed from its seed.
    fn ops(seed: u64, count: usize, adds: bool) -> Vec<Op> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        (0..count)
            .map(|i| {
                let key = format!("k{}", next(5));
                match next(24) {
                    0 => Op::All,
                    1 | 2 if adds => Op::Add(key, format!("n{i}")),
                    1..=9 => Op::Put(key, format!("p{i}")),
                    20..=23 => Op::Set(key, format!("s{i}"), i as i64),
                    _ => Op::Append(key, format!("a{i}")),
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn joined_row_writes_leave_what_one_by_one_writes_leave() {
        let dir = std::env::temp_dir().join(format!("baton-joined-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        for seed in 0..40u64 {
            // Three rounds in four start with every row present and accept every outcome,
            // so the group must commit joined; in the others appends meet missing rows
            // (refused, in strict rounds) and new rows meet existing ones (a constraint
            // error), so the group is replayed write by write.
            let (present, strict) = (seed % 4 != 0, seed % 8 == 0);
            let mut ops: Vec<Op> = if present {
                (0..5)
                    .map(|k| Op::Put(format!("k{k}"), "first".into()))
                    .collect()
            } else {
                Vec::new()
            };
            ops.extend(self::ops(seed, 150, !present));
            let mut grouped = database(&dir, &format!("g{seed}.db")).await;
            let mut alone_db = database(&dir, &format!("a{seed}.db")).await;

            let (mut jobs, answers): (Vec<_>, Vec<_>) =
                ops.iter().map(|op| job(op, strict)).unzip();
            let stmts: Vec<Stmt> = ops.iter().flat_map(|op| plan(op, strict).stmts).collect();
            let units = joined(stmts.iter().enumerate().map(|(i, st)| ((i, 0), st)));
            assert!(
                units.len() * 4 < stmts.len() * 3,
                "seed {seed}: only {} of {} statements were joined",
                stmts.len() - units.len(),
                stmts.len()
            );
            if present {
                assert!(
                    together(&mut grouped, &mut jobs).await,
                    "seed {seed}: the joined group did not go through"
                );
                exec(&mut grouped, "COMMIT").await.unwrap();
                for job in jobs {
                    job.answer(Ok(()));
                }
            } else {
                commit_group(&mut grouped, jobs).await;
            }

            let mut expected = Vec::new();
            for op in &ops {
                let (j, rx) = job(op, strict);
                alone(&mut alone_db, j).await;
                expected.push(rx.await.unwrap().is_ok());
            }
            let mut got = Vec::new();
            for rx in answers {
                got.push(rx.await.unwrap().is_ok());
            }
            assert_eq!(got, expected, "seed {seed}: answers differ");
            assert_eq!(
                contents(&mut grouped).await,
                contents(&mut alone_db).await,
                "seed {seed}: the tables differ"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
