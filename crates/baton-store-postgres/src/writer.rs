//! Group commit for the writes of running agents. Every write is a [`Plan`]: statements
//! and values, no code. The writer takes every write that queued while it was busy and
//! runs them in one transaction on one connection: the row writes of a kind joined into
//! one statement over `UNNEST` arrays ([`joined`]), the group's event-log appends into
//! one more; each write reads its outcome, the group commits once, and only then are its
//! writers answered. Ten statements an agent, each its own transaction, become a few
//! statements for dozens of agents.
//!
//! Two groups run at a time ([`crate::lanes`]): the next starts, on a second
//! connection, the statements that cannot meet the one ahead of it while that one still
//! runs or commits, and does the rest once it has committed. A group commits after the
//! one ahead of it, so a write commits after every write sent before it.
//!
//! A group in which nobody waits for any write ([`Writer::submit`]) commits without
//! waiting for the log flush; the next group with an awaited write takes it to the disk
//! (the server writes its log in order).
//!
//! If any statement fails or any write refuses its outcome (an update that found no
//! row, or a row fenced by a newer lease), the group is rolled back and each write is
//! replayed in its own transaction, so one bad write fails alone and nothing of it stays.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{Either, Executor, PgConnection, PgPool, Row};

use crate::lanes::{Ahead, HOLD};
use crate::plan::{columns, scalars, Frames, Outcome, RowKind, Stmt, Val};

/// A write waiting for its group.
pub(crate) type Job = Box<dyn baton_store_group::Job<Stmt, Outcome>>;

/// The queue to the writer task.
pub(crate) type Writer = baton_store_group::Queue<Stmt, Outcome>;

/// Runs one group after `ahead` (the group still open before it, if any): commits it
/// whole, or replays each write alone. Returns once it is committed or replayed, never
/// before `ahead` is done; true if some of it ran while `ahead` was still open.
pub(crate) async fn commit_group(
    pool: &PgPool,
    instance: &str,
    mut batch: Vec<Job>,
    mut ahead: Option<Ahead>,
) -> bool {
    if ahead.as_mut().is_some_and(Ahead::is_done) {
        ahead = None;
    }
    if batch.is_empty() {
        wait(ahead).await;
        return false;
    }
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(error = %e, writes = batch.len(), "no connection for a group of writes");
            wait(ahead).await;
            for job in batch {
                job.answer(Err(e.to_string()));
            }
            return false;
        }
    };
    let (ok, overlapped) = together(&mut conn, instance, &mut batch, ahead).await;
    if ok {
        let commit = exec(&mut conn, "COMMIT").await;
        if let Err(e) = &commit {
            let _ = exec(&mut conn, "ROLLBACK").await;
            tracing::error!(error = %e, writes = batch.len(), "group commit failed");
        }
        for job in batch {
            job.answer(commit.clone());
        }
        return overlapped;
    }
    let _ = exec(&mut conn, "ROLLBACK").await;
    for job in batch {
        alone(&mut conn, instance, job).await;
    }
    overlapped
}

async fn wait(ahead: Option<Ahead>) {
    if let Some(mut a) = ahead {
        a.done().await;
    }
}

/// `BEGIN`, and when nobody waits for this transaction, a commit that does not wait for
/// the log flush either.
async fn begin(conn: &mut PgConnection, awaited: bool) -> Result<(), sqlx::Error> {
    conn.execute("BEGIN").await?;
    if !awaited {
        conn.execute("SET LOCAL synchronous_commit = off").await?;
    }
    Ok(())
}

/// Every write of the group in one transaction: first the statements that cannot meet
/// `ahead`'s (all of them when nothing is ahead), then, once `ahead` is done, the rest.
/// Returns whether all writes accepted their outcomes (the transaction is then open,
/// waiting for its COMMIT) and whether some statements ran while `ahead` was open.
/// Never returns before `ahead` is done.
async fn together(
    conn: &mut PgConnection,
    instance: &str,
    batch: &mut [Job],
    ahead: Option<Ahead>,
) -> (bool, bool) {
    let awaited = batch.iter().any(|j| j.awaited());
    let mut outcomes: Vec<Vec<Option<Outcome>>> = batch
        .iter()
        .map(|job| job.stmts().iter().map(|_| None).collect())
        .collect();
    let (ran, overlapped) = {
        let stmts = || {
            batch.iter().enumerate().flat_map(|(j, job)| {
                job.stmts()
                    .iter()
                    .enumerate()
                    .map(move |(i, st)| ((j, i), st))
            })
        };
        let early = crate::lanes::early(stmts(), ahead.as_ref());
        let overlapped = ahead.is_some() && early.iter().any(|&e| e);
        let (first, rest): (Vec<_>, Vec<_>) = stmts().zip(early).partition(|(_, early)| *early);
        let first = joined(first.into_iter().map(|(st, _)| st));
        let rest = joined(rest.into_iter().map(|(st, _)| st));
        let ran_first = async {
            begin(conn, awaited).await?;
            execute_units(conn, instance, &first, &mut outcomes).await
        }
        .await;
        if let Err(e) = ran_first {
            tracing::debug!(error = %e, "a grouped write failed; replaying each alone");
            // Its rows go at once: nobody is to wait for them while this waits.
            let _ = exec(conn, "ROLLBACK").await;
            wait(ahead).await;
            return (false, overlapped);
        }
        if let Some(mut ahead) = ahead {
            if overlapped && !ahead.done_within(HOLD).await {
                tracing::warn!(
                    writes = batch.len(),
                    "the group ahead is taking long; letting go of the rows written early"
                );
                let _ = exec(conn, "ROLLBACK").await;
                ahead.done().await;
                return (false, overlapped);
            }
            ahead.done().await;
        }
        let ran = execute_units(conn, instance, &rest, &mut outcomes).await;
        (ran, overlapped)
    };
    if let Err(e) = ran {
        tracing::debug!(error = %e, "a grouped write failed; replaying each alone");
        return (false, overlapped);
    }
    let mut ok = true;
    for (job, mine) in batch.iter_mut().zip(outcomes) {
        ok &= job.accept(mine.into_iter().map(Option::unwrap_or_default).collect());
    }
    (ok, overlapped)
}

/// Where a statement sits in its group: (write, statement of that write).
type At = (usize, usize);

/// What the group runs: a statement as it is, row statements of one kind as one, or the
/// event-log appends.
enum Unit<'s> {
    One(At, &'s Stmt),
    Rows(&'static RowKind, Vec<Member<'s>>),
    Frames(Vec<(At, &'s Frames)>),
}

/// One row of a joined statement: the statements it stands for (more than one when it
/// absorbed later writes of its row), its key and its values.
struct Member<'s> {
    at: Vec<At>,
    key: &'s str,
    vals: Cow<'s, [Val]>,
}

/// The group's statements in running order, row statements of a kind joined where that
/// cannot change the result. A row statement joins an earlier one of its kind, moving
/// up to that one's place, only if nothing in between wrote its row (each touches its
/// row alone, so statements on other rows commute with it) and no other statement came
/// in between (any other statement may read or write anything, so it is a barrier). By
/// the same rule it may instead be absorbed by the last write of its row, if that one's
/// kind can fold it in (`RowKind::absorb`): an agent that starts and ends within one
/// group then writes its rows once. Event-log appends touch nothing else any write here
/// reads, so they all go last, as one statement, in the order they came: the topics'
/// counters are then locked for the shortest time.
fn joined<'s>(stmts: impl Iterator<Item = (At, &'s Stmt)>) -> Vec<Unit<'s>> {
    let mut units: Vec<Unit<'s>> = Vec::new();
    let mut frames = Vec::new();
    // The unit each kind of row statement joins (kinds are statics, known by address),
    // and the last write of each row: its unit and its place there.
    let mut open: HashMap<*const RowKind, usize> = HashMap::new();
    let mut written: HashMap<(&'static str, &'s str), (usize, usize)> = HashMap::new();
    for (at, st) in stmts {
        let (kind, key, vals) = match st {
            Stmt::Row { kind, key, vals } => (*kind, key.as_str(), vals.as_slice()),
            Stmt::Frames(f) => {
                frames.push((at, f));
                continue;
            }
            Stmt::One { .. } => {
                units.push(Unit::One(at, st));
                open.clear();
                written.clear();
                continue;
            }
        };
        let last = written.get(&(kind.table, key)).copied();
        if let Some((u, m)) = last {
            if let Unit::Rows(earlier, members) = &mut units[u] {
                if let Some(absorb) = earlier.absorb {
                    let member = &mut members[m];
                    let mut folded = member.vals.to_vec();
                    if absorb(&mut folded, kind, vals) {
                        member.vals = Cow::Owned(folded);
                        member.at.push(at);
                        continue;
                    }
                }
            }
        }
        let id: *const RowKind = kind;
        let target = open
            .get(&id)
            .copied()
            .filter(|&u| last.is_none_or(|(w, _)| w < u));
        let member = Member {
            at: vec![at],
            key,
            vals: Cow::Borrowed(vals),
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
                units.push(Unit::Rows(kind, vec![member]));
                open.insert(id, units.len() - 1);
                (units.len() - 1, 0)
            }
        };
        written.insert((kind.table, key), (u, m));
    }
    if !frames.is_empty() {
        units.push(Unit::Frames(frames));
    }
    units
}

/// Rows per joined statement at most.
const ROWS_PER_JOIN: usize = 1_024;

/// Every unit in order, each statement's outcome put in its place.
async fn execute_units(
    conn: &mut PgConnection,
    instance: &str,
    units: &[Unit<'_>],
    outcomes: &mut [Vec<Option<Outcome>>],
) -> Result<(), sqlx::Error> {
    for unit in units {
        match unit {
            Unit::One((j, i), st) => {
                let Stmt::One { sql, args } = st else {
                    unreachable!("a unit of one holds a plain statement")
                };
                outcomes[*j][*i] = Some(run_one(conn, sql, args).await?);
            }
            Unit::Rows(kind, members) => {
                for chunk in members.chunks(ROWS_PER_JOIN) {
                    let rows: Vec<&[Val]> = chunk.iter().map(|m| &*m.vals).collect();
                    let mut wrote = run_rows(conn, kind, &rows).await?;
                    for m in chunk {
                        // An absorbed write wrote its row exactly when its absorber did;
                        // a returned row goes to the first.
                        let row = wrote.remove(m.key);
                        let changes = u64::from(row.is_some());
                        let mut rows = row.into_iter().collect::<Vec<_>>();
                        for &(j, i) in &m.at {
                            outcomes[j][i] = Some(Outcome {
                                changes,
                                rows: std::mem::take(&mut rows),
                                first_seq: 0,
                            });
                        }
                    }
                }
            }
            Unit::Frames(members) => {
                let firsts = append_frames(conn, instance, members).await?;
                for (((j, i), _), first_seq) in members.iter().zip(firsts) {
                    outcomes[*j][*i] = Some(Outcome {
                        first_seq,
                        ..Outcome::default()
                    });
                }
            }
        }
    }
    Ok(())
}

/// One plain statement: the rows it returned and the rows it changed.
async fn run_one(conn: &mut PgConnection, sql: &str, args: &[Val]) -> Result<Outcome, sqlx::Error> {
    // `fetch_many` is deprecated in sqlx for its multi-statement use; for one
    // statement it is the call that yields both the rows and the rows changed.
    #[allow(deprecated)]
    let mut stream = sqlx::query_with(sql, scalars(args.iter())?).fetch_many(&mut *conn);
    let mut current = Outcome::default();
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Right(row) => current.rows.push(row),
            Either::Left(done) => current.changes = done.rows_affected(),
        }
    }
    Ok(current)
}

/// Rows of one kind as one statement; the rows it wrote, by key.
async fn run_rows(
    conn: &mut PgConnection,
    kind: &RowKind,
    rows: &[&[Val]],
) -> Result<HashMap<String, PgRow>, sqlx::Error> {
    let out = sqlx::query_with(kind.sql, columns(rows)?)
        .fetch_all(&mut *conn)
        .await?;
    let mut wrote = HashMap::with_capacity(out.len());
    for row in out {
        let key: String = row.try_get("k")?;
        wrote.insert(key, row);
    }
    Ok(wrote)
}

/// Appends every topic's frames of the group: one counter bump per topic (taken in topic
/// order, so two instances appending to the same topics cannot deadlock), the frames
/// numbered after it in the order they came, and one notification per topic, sent on
/// commit. Returns each append's first `seq`.
const APPEND: &str = "
    WITH u AS (SELECT * FROM UNNEST($1::text[], $2::int8[]) AS u(topic, n)),
    c AS (
        INSERT INTO event_topics (topic, last_seq, first_kept)
        SELECT topic, n, 1 FROM u ORDER BY topic
        ON CONFLICT (topic) DO UPDATE SET last_seq = event_topics.last_seq + EXCLUDED.last_seq
        RETURNING topic, last_seq
    ),
    e AS (
        INSERT INTO events (topic, seq, kind, at, body)
        SELECT f.topic, c.last_seq - u.n + f.pos, f.kind, f.at, f.body::json
        FROM UNNEST($3::text[], $4::int8[], $5::text[], $6::text[], $7::timestamptz[])
            AS f(topic, pos, kind, body, at)
        JOIN u ON u.topic = f.topic JOIN c ON c.topic = f.topic
    )
    SELECT c.topic, c.last_seq, pg_notify($8, $9 || ' ' || (c.last_seq - u.n + 1) || ' ' || c.last_seq || ' ' || c.topic)::text AS sent
    FROM c JOIN u ON u.topic = c.topic";

async fn append_frames(
    conn: &mut PgConnection,
    instance: &str,
    members: &[(At, &Frames)],
) -> Result<Vec<i64>, sqlx::Error> {
    // Frames per topic so far: a member's frames follow the earlier members' of its topic.
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    let mut starts = Vec::with_capacity(members.len());
    let (mut topic, mut pos, mut kind, mut body, mut at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (_, f) in members {
        let n = counts.entry(f.topic.as_str()).or_insert(0);
        starts.push(*n + 1);
        for (k, b) in &f.frames {
            *n += 1;
            topic.push(f.topic.as_str());
            pos.push(*n);
            kind.push(k.as_str());
            body.push(b.as_str());
            at.push(f.at);
        }
    }
    let topics: Vec<&str> = counts.keys().copied().collect();
    let ns: Vec<i64> = counts.values().copied().collect();
    let rows = sqlx::query(APPEND)
        .bind(&topics)
        .bind(&ns)
        .bind(&topic)
        .bind(&pos)
        .bind(&kind)
        .bind(&body)
        .bind(&at)
        .bind(crate::events::CHANNEL)
        .bind(instance)
        .fetch_all(&mut *conn)
        .await?;
    let mut last: HashMap<String, i64> = HashMap::with_capacity(rows.len());
    for row in rows {
        last.insert(row.try_get("topic")?, row.try_get("last_seq")?);
    }
    members
        .iter()
        .zip(starts)
        .map(|((_, f), start)| {
            let (Some(l), Some(n)) = (last.get(&f.topic), counts.get(f.topic.as_str())) else {
                return Err(sqlx::Error::Protocol(format!(
                    "topic {} got no numbers",
                    f.topic
                )));
            };
            Ok(l - n + start)
        })
        .collect()
}

async fn alone(conn: &mut PgConnection, instance: &str, mut job: Job) {
    let mut outcomes: Vec<Option<Outcome>> = job.stmts().iter().map(|_| None).collect();
    let ran = async {
        begin(conn, job.awaited()).await?;
        let stmts = job.stmts().iter().enumerate().map(|(i, st)| ((0, i), st));
        // Each statement as its own unit, in order.
        let units: Vec<Unit> = stmts
            .map(|(at, st)| match st {
                Stmt::One { .. } => Unit::One(at, st),
                Stmt::Row { kind, key, vals } => Unit::Rows(
                    kind,
                    vec![Member {
                        at: vec![at],
                        key,
                        vals: Cow::Borrowed(vals),
                    }],
                ),
                Stmt::Frames(f) => Unit::Frames(vec![(at, f)]),
            })
            .collect();
        execute_units(conn, instance, &units, std::slice::from_mut(&mut outcomes)).await
    };
    let ok = match ran.await {
        Ok(()) => job.accept(
            outcomes
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
        ),
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

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), String> {
    conn.execute(sql)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{is, wrote, Plan};
    use crate::PgStore;
    use baton_store::{StoreError, StoreResult};
    use tokio::sync::oneshot;

    /// Last value wins; `n` counts the writes, so order and count both show.
    static PUT: RowKind = RowKind {
        table: "t",
        sql: "INSERT INTO t (k, v, n) SELECT k, v, 1 FROM UNNEST($1::text[], $2::text[]) AS u(k, v)
              ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, n = t.n + 1 RETURNING k",
        absorb: None,
    };

    /// Appends to an existing row: the result depends on every earlier write of the row.
    static APPEND: RowKind = RowKind {
        table: "t",
        sql: "UPDATE t SET v = t.v || u.v, n = t.n + 1
              FROM UNNEST($1::text[], $2::text[]) AS u(k, v) WHERE t.k = u.k RETURNING t.k AS k",
        absorb: None,
    };

    /// A new row: fails, as the whole statement it is joined into, when the row exists.
    static ADD: RowKind = RowKind {
        table: "t",
        sql: "INSERT INTO t (k, v, n) SELECT k, v, 1 FROM UNNEST($1::text[], $2::text[]) AS u(k, v)
              RETURNING k",
        absorb: None,
    };

    /// Sets a row whole, `n` given: it writes its row whatever was there, so it can take
    /// in a later set (the later wins) or append (computed here).
    static SET: RowKind = RowKind {
        table: "t",
        sql: "INSERT INTO t (k, v, n) SELECT k, v, n FROM UNNEST($1::text[], $2::text[], $3::int8[])
              AS u(k, v, n) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, n = EXCLUDED.n RETURNING k",
        absorb: Some(|mine, later, theirs| {
            if is(later, &SET) {
                mine.clone_from_slice(theirs);
            } else if is(later, &APPEND) {
                let (Val::Text(Some(v)), Val::Text(Some(add)), Val::Int(Some(n))) =
                    (&mine[1], &theirs[1], &mine[2])
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

    #[derive(Clone)]
    enum Op {
        Set(String, String, i64),
        Put(String, String),
        Append(String, String),
        Add(String, String),
        /// A statement over all rows: a barrier.
        All,
        /// Frames appended to a topic.
        Frames(String, usize),
    }

    fn plan(op: &Op, strict: bool) -> Plan<i64> {
        let row = |kind, k: &String, v: &String| {
            Stmt::row(
                kind,
                k.clone(),
                vec![Val::from(k.as_str()), v.as_str().into()],
            )
        };
        match op {
            Op::Put(k, v) => Plan::new(vec![row(&PUT, k, v)], |_| Ok(0)),
            Op::Set(k, v, n) => Plan::new(
                vec![Stmt::row(
                    &SET,
                    k.clone(),
                    vec![Val::from(k.as_str()), v.as_str().into(), (*n).into()],
                )],
                |_| Ok(0),
            ),
            // A strict append refuses when its row is missing: the group is then replayed
            // write by write, and the answers must be those of writes run alone.
            Op::Append(k, v) => Plan::new(vec![row(&APPEND, k, v)], move |out| {
                if strict {
                    wrote(&out, 0, StoreError::NotFound("row"))?;
                }
                Ok(0)
            }),
            Op::Add(k, v) => Plan::new(vec![row(&ADD, k, v)], |_| Ok(0)),
            Op::All => Plan::new(vec![Stmt::one("UPDATE t SET v = v || '|'", vec![])], |_| {
                Ok(0)
            }),
            Op::Frames(topic, n) => Plan::new(
                vec![Stmt::Frames(Frames {
                    topic: topic.clone(),
                    frames: (0..*n)
                        .map(|i| ("f".into(), format!("{{\"i\": {i}}}")))
                        .collect(),
                    at: baton_core::time::now(),
                })],
                |out| Ok(out[0].first_seq),
            ),
        }
    }

    fn job(op: &Op, strict: bool) -> (Job, oneshot::Receiver<StoreResult<i64>>) {
        let (reply, rx) = oneshot::channel();
        (baton_store_group::job(plan(op, strict), Some(reply)), rx)
    }

    /// A small random generator, so a failing round can be replayed from its seed.
    fn ops(seed: u64, count: usize, adds: bool, keys: u64) -> Vec<Op> {
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
                let key = format!("k{}", next(keys));
                match next(28) {
                    0 => Op::All,
                    1 | 2 if adds => Op::Add(key, format!("n{i}")),
                    1..=9 => Op::Put(key, format!("p{i}")),
                    24..=27 => Op::Set(key, format!("s{i}"), i as i64),
                    10..=19 => Op::Append(key, format!("a{i}")),
                    _ => Op::Frames(format!("topic{}", next(3)), 1 + next(3) as usize),
                }
            })
            .collect()
    }

    async fn database(name: &str) -> (PgStore, String) {
        let admin = std::env::var("BATON_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let (base, query) = admin.split_once('?').unwrap_or((admin.as_str(), ""));
        let base = &base[..base.rfind('/').expect("a database in the URL")];
        let url = if query.is_empty() {
            format!("{base}/{name}")
        } else {
            format!("{base}/{name}?{query}")
        };
        PgStore::drop_database(&admin, name).await.unwrap();
        PgStore::create_database(&admin, name).await.unwrap();
        let store = PgStore::connect(&url).await.unwrap();
        store
            .pool()
            .execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL, n BIGINT NOT NULL)")
            .await
            .unwrap();
        (store, admin)
    }

    async fn contents(pool: &PgPool) -> (Vec<(String, String, i64)>, Vec<(String, i64, String)>) {
        let rows = sqlx::query_as("SELECT k, v, n FROM t ORDER BY k")
            .fetch_all(pool)
            .await
            .unwrap();
        let frames =
            sqlx::query_as("SELECT topic, seq, body::text FROM events ORDER BY topic, seq")
                .fetch_all(pool)
                .await
                .unwrap();
        (rows, frames)
    }

    async fn clear(pool: &PgPool) {
        pool.execute("TRUNCATE t, events, event_topics")
            .await
            .unwrap();
    }

    /// Runs `ops` one by one on `alone_db`: their answers and tables must be those the
    /// grouped writes got on `grouped`.
    async fn same_as_alone(
        seed: u64,
        ops: &[Op],
        strict: bool,
        answers: Vec<oneshot::Receiver<StoreResult<i64>>>,
        grouped: &PgStore,
        alone_db: &PgStore,
    ) {
        let mut expected = Vec::new();
        let mut conn = alone_db.pool().acquire().await.unwrap();
        for op in ops {
            let (j, rx) = job(op, strict);
            alone(&mut conn, "test", j).await;
            expected.push(rx.await.unwrap().ok());
        }
        drop(conn);
        let mut got = Vec::new();
        for rx in answers {
            got.push(rx.await.unwrap().ok());
        }
        assert_eq!(got, expected, "seed {seed}: answers differ");
        assert_eq!(
            contents(grouped.pool()).await,
            contents(alone_db.pool()).await,
            "seed {seed}: the tables differ"
        );
    }

    #[tokio::test]
    async fn grouped_writes_leave_what_one_by_one_writes_leave() {
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let (grouped, admin) = database(&format!("baton_group_g_{tag}")).await;
        let (alone_db, _) = database(&format!("baton_group_a_{tag}")).await;
        for seed in 0..40u64 {
            // Three rounds in four start with every row present and accept every outcome,
            // so the group must commit joined; in the others appends meet missing rows
            // (refused, in strict rounds) and new rows meet existing ones (a constraint
            // error), so the group is replayed write by write.
            let (present, strict) = (seed % 4 != 0, seed % 8 == 0);
            clear(grouped.pool()).await;
            clear(alone_db.pool()).await;
            let mut ops: Vec<Op> = if present {
                (0..5)
                    .map(|k| Op::Put(format!("k{k}"), "first".into()))
                    .collect()
            } else {
                Vec::new()
            };
            ops.extend(self::ops(seed, 150, !present, 5));

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
                let mut conn = grouped.pool().acquire().await.unwrap();
                assert!(
                    together(&mut conn, "test", &mut jobs, None).await.0,
                    "seed {seed}: the joined group did not go through"
                );
                exec(&mut conn, "COMMIT").await.unwrap();
                for job in jobs {
                    job.answer(Ok(()));
                }
            } else {
                commit_group(grouped.pool(), "test", jobs, None).await;
            }

            same_as_alone(seed, &ops, strict, answers, &grouped, &alone_db).await;
        }
        grouped.close().await;
        alone_db.close().await;
        for side in ["g", "a"] {
            PgStore::drop_database(&admin, &format!("baton_group_{side}_{tag}"))
                .await
                .unwrap();
        }
    }

    /// Groups two at a time, the second starting before the first commits: the writes
    /// leave what they leave one by one, refused and failing writes included.
    #[tokio::test]
    async fn overlapping_groups_leave_what_one_by_one_writes_leave() {
        use crate::lanes::{launch, LANES};
        use std::sync::Arc;
        use tokio::sync::Semaphore;
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let (grouped, admin) = database(&format!("baton_lanes_g_{tag}")).await;
        let (alone_db, _) = database(&format!("baton_lanes_a_{tag}")).await;
        let mut overlapped = 0;
        for seed in 0..24u64 {
            let (present, strict) = (seed % 4 != 0, seed % 8 == 0);
            clear(grouped.pool()).await;
            clear(alone_db.pool()).await;
            // Enough rows that most of a group's are not the group ahead's.
            let mut ops: Vec<Op> = if present {
                (0..40)
                    .map(|k| Op::Put(format!("k{k}"), "first".into()))
                    .collect()
            } else {
                Vec::new()
            };
            ops.extend(self::ops(seed, 240, !present, 40));

            let lanes = Arc::new(Semaphore::new(LANES));
            let mut ahead = None;
            let mut groups = Vec::new();
            let mut answers = Vec::new();
            let mut rest = &ops[..];
            let mut size = 1 + (seed as usize % 7);
            while !rest.is_empty() {
                let (now, later) = rest.split_at(size.min(rest.len()));
                rest = later;
                size = 1 + (size * 5 + 3) % 37;
                let (batch, rx): (Vec<_>, Vec<_>) = now.iter().map(|op| job(op, strict)).unzip();
                answers.extend(rx);
                let lane = lanes.clone().acquire_owned().await.unwrap();
                let (group, next) = launch(
                    grouped.pool(),
                    "test",
                    batch,
                    Default::default(),
                    ahead.take(),
                    lane,
                );
                ahead = Some(next);
                groups.push(group);
            }
            for group in groups {
                let (_, early) = tokio::time::timeout(std::time::Duration::from_secs(30), group)
                    .await
                    .expect("the groups finish (a group waits for the one ahead, never in a cycle)")
                    .unwrap();
                overlapped += usize::from(early);
            }

            same_as_alone(seed, &ops, strict, answers, &grouped, &alone_db).await;
        }
        assert!(
            overlapped > 24,
            "only {overlapped} groups ran while the one ahead was open"
        );
        grouped.close().await;
        alone_db.close().await;
        for side in ["g", "a"] {
            PgStore::drop_database(&admin, &format!("baton_lanes_{side}_{tag}"))
                .await
                .unwrap();
        }
    }

    /// A group whose group ahead takes too long lets go of the rows it wrote early (a
    /// transaction elsewhere waiting for them goes on), and its writes still commit
    /// after the group ahead's.
    #[tokio::test]
    async fn a_group_kept_waiting_lets_go_of_its_rows() {
        use crate::lanes::{launch, Ahead};
        use std::sync::Arc;
        use std::time::Duration;
        use tokio::sync::Semaphore;
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let name = format!("baton_hold_{tag}");
        let (store, admin) = database(&name).await;
        let pool = store.pool().clone();
        pool.execute("INSERT INTO t VALUES ('k1', 'first', 1)")
            .await
            .unwrap();
        // A group ahead that is not done until told.
        let (ahead_done, ahead) = Ahead::of(&[]);
        let lanes = Arc::new(Semaphore::new(2));
        let (j, answer) = job(&Op::Put("k1".into(), "grouped".into()), false);
        let (group, _) = launch(
            &pool,
            "test",
            vec![j],
            Default::default(),
            Some(ahead),
            lanes.clone().acquire_owned().await.unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Elsewhere, a write to the row the group wrote early: it waits for the group
        // to let go of it, not for the group ahead.
        let mut other = pool.acquire().await.unwrap();
        other.execute("SET statement_timeout = '5s'").await.unwrap();
        let waited = std::time::Instant::now();
        other
            .execute("UPDATE t SET v = 'other', n = n + 1 WHERE k = 'k1'")
            .await
            .expect("the row was let go");
        assert!(waited.elapsed() < Duration::from_secs(4));
        assert!(!group.is_finished(), "the group waits for the one ahead");
        ahead_done.send(()).unwrap();
        assert!(group.await.unwrap().1, "the group ran early");
        assert_eq!(answer.await.unwrap().unwrap(), 0);
        let row: (String, i64) = sqlx::query_as("SELECT v, n FROM t WHERE k = 'k1'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row, ("grouped".into(), 3), "the group's write came last");
        drop(other);
        store.close().await;
        PgStore::drop_database(&admin, &name).await.unwrap();
    }

    /// An agent that starts and ends within one group: its journal entry, session and
    /// trace are each written once, and the rows are those of its writes one by one.
    #[tokio::test]
    async fn an_agents_rows_absorb_their_later_writes() {
        use baton_core::{JournalEntry, Session, Trace, TraceFinish, TraceOutcome};
        use serde_json::json;
        let now = baton_core::time::now();
        let run = uuid::Uuid::now_v7();
        let session: Session = serde_json::from_value(json!({
            "id": uuid::Uuid::now_v7(), "chat_id": null, "run_id": run, "parent_id": null,
            "provider": "mock", "model": "mock-1", "status": "running", "turn_number": 0,
            "state": { "history": [] }, "error": null, "created_at": now, "updated_at": now,
        }))
        .unwrap();
        let mut saved = session.clone();
        saved.status = baton_core::SessionStatus::Completed;
        saved.state = json!({ "history": ["q", "a"] });
        let trace: Trace = serde_json::from_value(json!({
            "id": uuid::Uuid::now_v7(), "session_id": session.id, "chat_id": null,
            "run_id": run, "parent_id": null, "turn_number": 1, "kind": "llm",
            "tool_name": "mock-1", "input": { "messages": 1 }, "output": null,
            "started_at": now, "finished_at": null, "latency_ms": null, "tokens_used": null,
            "input_tokens": null, "output_tokens": null, "cache_tokens": null,
            "cache_write_tokens": null, "reasoning_tokens": null, "cost_usd": null,
            "error": null, "outcome": "running", "meta": { "a": 1, "b": 1 },
        }))
        .unwrap();
        let finish = TraceFinish {
            output: Some(json!("done")),
            finished_at: Some(now + std::time::Duration::from_micros(2_500)),
            output_tokens: Some(3),
            outcome: Some(TraceOutcome::Ok),
            meta: Some(json!({ "b": 2 })),
            ..Default::default()
        };
        let started: JournalEntry = serde_json::from_value(json!({
            "run_id": run, "key": "k", "seq": 1, "label": null, "phase": null,
            "status": "running", "session_id": session.id, "prompt": "q", "result": null,
            "error": null, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0,
            "cached": false, "started_at": now, "finished_at": null,
        }))
        .unwrap();
        let mut done = started.clone();
        done.status = baton_core::AgentStatus::Completed;
        done.result = Some(json!("done"));
        let plans = || -> Vec<Job> {
            fn boxed<T: Send + Sync + 'static>(plan: Plan<T>) -> Job {
                baton_store_group::job(plan, None)
            }
            vec![
                boxed(crate::runs::put_journal(&started)),
                boxed(crate::sessions::create(&session)),
                boxed(crate::traces::insert(std::slice::from_ref(&trace))),
                boxed(crate::traces::finish_unread(trace.id, &finish)),
                boxed(crate::sessions::save(&saved, &[])),
                boxed(crate::runs::put_journal(&done)),
            ]
        };
        let stmts: Vec<Stmt> = plans().iter().flat_map(|j| j.stmts().to_vec()).collect();
        let units = joined(stmts.iter().enumerate().map(|(i, st)| ((i, 0), st)));
        assert_eq!(
            units.len(),
            3,
            "one row each for the journal, session and trace"
        );

        let tag = uuid::Uuid::now_v7().simple().to_string();
        let (grouped, admin) = database(&format!("baton_absorb_g_{tag}")).await;
        let (alone_db, _) = database(&format!("baton_absorb_a_{tag}")).await;
        let rows = |pool: PgPool| async move {
            let mut out = Vec::new();
            for table in ["workflow_agents", "agent_sessions", "tool_traces"] {
                let row: String =
                    sqlx::query_scalar(&format!("SELECT row_to_json(x)::text FROM {table} x"))
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                out.push(row);
            }
            out
        };
        for db in [&grouped, &alone_db] {
            sqlx::query(
                "INSERT INTO workflow_runs (id, name, status, source, script, options, totals, log,
                    created_at, updated_at) VALUES ($1, 'r', 'running', 'inline', '', '{}', '{}', '[]', now(), now())",
            )
            .bind(run)
            .execute(db.pool())
            .await
            .unwrap();
        }
        let mut conn = grouped.pool().acquire().await.unwrap();
        let mut jobs = plans();
        assert!(together(&mut conn, "test", &mut jobs, None).await.0);
        exec(&mut conn, "COMMIT").await.unwrap();
        drop(conn);
        let mut conn = alone_db.pool().acquire().await.unwrap();
        for job in plans() {
            alone(&mut conn, "test", job).await;
        }
        drop(conn);
        let (g, a) = (
            rows(grouped.pool().clone()).await,
            rows(alone_db.pool().clone()).await,
        );
        assert_eq!(g, a);
        assert!(g[2].contains(r#""latency_ms":2"#), "{}", g[2]);
        assert!(g[2].contains(r#""meta":{"a": 1, "b": 2}"#), "{}", g[2]);
        grouped.close().await;
        alone_db.close().await;
        for side in ["g", "a"] {
            PgStore::drop_database(&admin, &format!("baton_absorb_{side}_{tag}"))
                .await
                .unwrap();
        }
    }
}
