use baton_core::{
    time, ChatId, Message, RunId, Session, SessionId, SessionStatus, Trace, TurnSummary,
};
use baton_store::StoreResult;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::chats::message_insert;
use crate::db;
use crate::plan::{changed, is, Arg, Plan, RowKind, Stmt};
use crate::rows::{id_text, ts, Cols};
use crate::traces::{trace_from, COLUMNS};

pub(crate) fn session_from(row: &SqliteRow) -> StoreResult<Session> {
    let c = Cols::new(row, "agent_sessions");
    Ok(Session {
        id: SessionId(c.uuid("id")?),
        chat_id: c.opt_uuid("chat_id")?.map(ChatId),
        run_id: c.opt_uuid("run_id")?.map(RunId),
        parent_id: c.opt_uuid("parent_id")?.map(SessionId),
        provider: c.text("provider")?,
        model: c.text("model")?,
        status: c.parsed("status", SessionStatus::parse)?,
        turn_number: c.int("turn_number")?,
        state: c.json("state")?,
        error: c.opt_text("error")?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
        lease: crate::leases::lease_from(&c)?,
    })
}

static CREATE: RowKind = RowKind {
    table: "agent_sessions",
    head: "INSERT INTO agent_sessions (id, chat_id, run_id, parent_id, provider, model, status,
            turn_number, state, error, created_at, updated_at) VALUES ",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    tail: "",
    absorb: Some(|mine, later, theirs| {
        // A snapshot under epoch 0, a new row's, writes exactly when the row is there.
        if !is(later, &SAVE) || theirs.get(8) != Some(&Arg::Int(0)) {
            return false;
        }
        // provider, model, status, turn_number, state, error; then updated_at.
        for (m, t) in (4..=9).zip(1..=6) {
            mine[m] = theirs[t].clone();
        }
        mine[11] = theirs[7].clone();
        true
    }),
};

static SAVE: RowKind = RowKind {
    table: "agent_sessions",
    head: "UPDATE agent_sessions SET provider = v.column2, model = v.column3, status = v.column4,
            turn_number = v.column5, state = v.column6, error = v.column7, updated_at = v.column8
         FROM (VALUES ",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
    tail: ") AS v WHERE agent_sessions.id = v.column1 AND agent_sessions.epoch = v.column9",
    absorb: Some(|mine, later, theirs| {
        // A later snapshot under the same epoch writes exactly when this one does.
        let same_epoch = mine.get(8) == theirs.get(8);
        if is(later, &SAVE) && same_epoch {
            mine.clone_from_slice(theirs);
        }
        is(later, &SAVE) && same_epoch
    }),
};

/// A system prompt under its hash. Its hash is of its text, so writing it again writes
/// what is there (an update rather than nothing: a joined statement must change each of
/// its rows).
static PROMPT: RowKind = RowKind {
    table: "prompts",
    head: "INSERT INTO prompts (hash, text) VALUES ",
    row: "(?, ?)",
    tail: " ON CONFLICT (hash) DO UPDATE SET text = excluded.text",
    absorb: Some(|_, later, _| is(later, &PROMPT)),
};

pub(crate) fn put_prompt(hash: &str, text: &str) -> Plan<()> {
    Plan::exec(vec![Stmt::row(
        &PROMPT,
        hash.to_string(),
        vec![hash.into(), text.into()],
    )])
}

pub(crate) async fn prompt(pool: &SqlitePool, hash: &str) -> StoreResult<Option<String>> {
    sqlx::query_scalar("SELECT text FROM prompts WHERE hash = ?1")
        .bind(hash)
        .fetch_optional(pool)
        .await
        .map_err(db)
}

pub(crate) fn create(s: &Session) -> Plan<()> {
    Plan::exec(vec![Stmt::row(
        &CREATE,
        id_text(s.id.0),
        vec![
            id_text(s.id.0).into(),
            s.chat_id.map(|c| id_text(c.0)).into(),
            s.run_id.map(|c| id_text(c.0)).into(),
            s.parent_id.map(|c| id_text(c.0)).into(),
            (&s.provider).into(),
            (&s.model).into(),
            s.status.as_str().into(),
            s.turn_number.into(),
            s.state.to_string().into(),
            s.error.clone().into(),
            ts(&s.created_at).into(),
            ts(&s.updated_at).into(),
        ],
    )])
}

/// The session's row and, atomically with it, the messages it produced.
pub(crate) fn save(s: &Session, messages: &[Message]) -> Plan<()> {
    let mut stmts = vec![Stmt::row(
        &SAVE,
        id_text(s.id.0),
        vec![
            id_text(s.id.0).into(),
            (&s.provider).into(),
            (&s.model).into(),
            s.status.as_str().into(),
            s.turn_number.into(),
            s.state.to_string().into(),
            s.error.clone().into(),
            ts(&s.updated_at).into(),
            s.lease.epoch.into(),
        ],
    )];
    for m in messages {
        stmts.extend(message_insert(m));
        if let Some(task) = m.task_id {
            stmts.push(crate::tasks::mark_told(task, &m.created_at));
        }
    }
    Plan::new(stmts, |out| changed(&out, 0, "session"))
}

pub(crate) async fn get(pool: &SqlitePool, id: SessionId) -> StoreResult<Option<Session>> {
    sqlx::query("SELECT * FROM agent_sessions WHERE id = ?1")
        .bind(id_text(id.0))
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(session_from)
        .transpose()
}

pub(crate) async fn list(pool: &SqlitePool, chat: ChatId) -> StoreResult<Vec<Session>> {
    let rows =
        sqlx::query("SELECT * FROM agent_sessions WHERE chat_id = ?1 ORDER BY created_at, id")
            .bind(id_text(chat.0))
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.iter().map(session_from).collect()
}

pub(crate) async fn with_status(
    pool: &SqlitePool,
    status: SessionStatus,
) -> StoreResult<Vec<Session>> {
    let rows =
        sqlx::query("SELECT * FROM agent_sessions WHERE status = ?1 ORDER BY created_at, id")
            .bind(status.as_str())
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.iter().map(session_from).collect()
}

/// Closes the running traces whose `column` is `?1` as cancelled with error `?2` at `?3`;
/// `?4` is the error's words (`text_words`).
pub(crate) fn close_traces(column: &str) -> String {
    format!(
        "UPDATE tool_traces SET outcome = 'cancelled', error = ?2, finished_at = ?3,
            latency_ms = MAX(0, (?3 - started_at) / 1000),
            words = trim(words || ' ' || ?4)
         WHERE {column} = ?1 AND outcome = 'running'
         RETURNING {COLUMNS}"
    )
}

pub(crate) fn close_running(session: SessionId, reason: &str) -> Plan<Vec<Trace>> {
    let stmt = Stmt::new(
        close_traces("session_id"),
        vec![
            id_text(session.0).into(),
            reason.into(),
            ts(&time::now()).into(),
            baton_store::text_words(reason).into(),
        ],
    );
    Plan::new(vec![stmt], |out| {
        out.iter()
            .flat_map(|o| o.rows.iter())
            .map(trace_from)
            .collect()
    })
}

pub(crate) async fn turn_summaries(
    pool: &SqlitePool,
    session: SessionId,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<TurnSummary>> {
    let rows = sqlx::query(
        "SELECT turn_number, MIN(started_at) AS started_at,
                CASE WHEN SUM(outcome = 'running') > 0 THEN NULL ELSE MAX(finished_at) END AS finished_at,
                SUM(kind = 'tool') AS tool_count,
                COALESCE(SUM(input_tokens), 0) AS input_tokens,
                COALESCE(SUM(output_tokens), 0) AS output_tokens,
                COALESCE(SUM(cache_tokens), 0) AS cache_tokens,
                COALESCE(SUM(cost_usd), 0.0) AS cost_usd
         FROM tool_traces WHERE session_id = ?1 AND turn_number > ?2
         GROUP BY turn_number ORDER BY turn_number LIMIT ?3",
    )
    .bind(id_text(session.0))
    .bind(after.unwrap_or(i64::MIN))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let c = Cols::new(r, "tool_traces");
            let input: i64 = c.int("input_tokens")?;
            let cache: i64 = c.int("cache_tokens")?;
            Ok(TurnSummary {
                turn_number: c.int("turn_number")?,
                started_at: c.time("started_at")?,
                finished_at: c.opt_time("finished_at")?,
                tool_count: c.int("tool_count")?,
                input_tokens: input,
                output_tokens: c.int("output_tokens")?,
                cache_tokens: cache,
                cache_hit_rate: TurnSummary::hit_rate(input, cache),
                cost_usd: r.try_get::<f64, _>("cost_usd").map_err(db)?,
            })
        })
        .collect()
}
