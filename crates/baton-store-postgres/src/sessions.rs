use baton_core::{
    time, ChatId, Message, RunId, Session, SessionId, SessionStatus, Trace, TurnSummary,
};
use baton_store::{StoreError, StoreResult};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::db;
use crate::plan::{is, wrote, Plan, RowKind, Stmt, Val};
use crate::traces::{no_nul, pg_json, trace_from, COLUMNS};

pub(crate) fn session_from(row: &PgRow) -> StoreResult<Session> {
    let status: String = row.try_get("status").map_err(db)?;
    let Json(state): Json<Value> = row.try_get("state").map_err(db)?;
    Ok(Session {
        id: SessionId(row.try_get("id").map_err(db)?),
        chat_id: row
            .try_get::<Option<Uuid>, _>("chat_id")
            .map_err(db)?
            .map(ChatId),
        run_id: row
            .try_get::<Option<Uuid>, _>("run_id")
            .map_err(db)?
            .map(RunId),
        parent_id: row
            .try_get::<Option<Uuid>, _>("parent_id")
            .map_err(db)?
            .map(SessionId),
        provider: row.try_get("provider").map_err(db)?,
        model: row.try_get("model").map_err(db)?,
        status: SessionStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("agent_sessions", "status"))?,
        turn_number: row.try_get("turn_number").map_err(db)?,
        state,
        error: row.try_get("error").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
        lease: crate::leases::lease_from(row)?,
    })
}

fn state_text(s: &Session) -> String {
    serde_json::to_string(&pg_json(&s.state)).expect("JSON serializes")
}

static NEW: RowKind = RowKind {
    table: "agent_sessions",
    sql: "INSERT INTO agent_sessions (id, chat_id, run_id, parent_id, provider, model, status, turn_number,
            state, error, created_at, updated_at)
         SELECT id, chat_id, run_id, parent_id, provider, model, status, turn_number, state::jsonb,
            error, created_at, updated_at
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[],
            $8::int8[], $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[])
           AS u(id, chat_id, run_id, parent_id, provider, model, status, turn_number, state, error,
            created_at, updated_at)
         RETURNING id::text AS k",
    absorb: Some(|mine, later, theirs| {
        // A snapshot under epoch 0, a new row's, writes exactly when the row is there.
        if !is(later, &SAVE) || theirs.get(8) != Some(&Val::Int(Some(0))) {
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

pub(crate) fn create(s: &Session) -> Plan<()> {
    Plan::new(
        vec![Stmt::row(
            &NEW,
            s.id.0.to_string(),
            vec![
                s.id.0.into(),
                s.chat_id.map(|c| c.0).into(),
                s.run_id.map(|c| c.0).into(),
                s.parent_id.map(|c| c.0).into(),
                s.provider.as_str().into(),
                s.model.as_str().into(),
                s.status.as_str().into(),
                s.turn_number.into(),
                state_text(s).into(),
                s.error.as_deref().map(no_nul).into(),
                s.created_at.into(),
                s.updated_at.into(),
            ],
        )],
        |_| Ok(()),
    )
}

/// A system prompt under its hash; one already kept stays as it is (its hash is of its
/// text).
static PROMPT: RowKind = RowKind {
    table: "prompts",
    sql: "INSERT INTO prompts (hash, text) SELECT * FROM UNNEST($1::text[], $2::text[])
         ON CONFLICT (hash) DO NOTHING RETURNING hash AS k",
    absorb: Some(|_, later, _| is(later, &PROMPT)),
};

pub(crate) fn put_prompt(hash: &str, text: &str) -> Plan<()> {
    Plan::exec(vec![Stmt::row(
        &PROMPT,
        hash.to_string(),
        vec![no_nul(hash).into(), no_nul(text).into()],
    )])
}

pub(crate) async fn prompt(pool: &PgPool, hash: &str) -> StoreResult<Option<String>> {
    sqlx::query_scalar("SELECT text FROM prompts WHERE hash = $1")
        .bind(hash)
        .fetch_optional(pool)
        .await
        .map_err(db)
}

/// A session's state, if the caller still holds its lease (its epoch).
static SAVE: RowKind = RowKind {
    table: "agent_sessions",
    sql: "UPDATE agent_sessions s SET provider = u.provider, model = u.model, status = u.status,
            turn_number = u.turn_number, state = u.state::jsonb, error = u.error, updated_at = u.updated_at
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[],
            $8::timestamptz[], $9::int8[])
           AS u(id, provider, model, status, turn_number, state, error, updated_at, epoch)
         WHERE s.id = u.id AND s.epoch = u.epoch
         RETURNING s.id::text AS k",
    absorb: Some(|mine, later, theirs| {
        // A later snapshot under the same epoch writes exactly when this one does.
        let same_epoch = mine.get(8) == theirs.get(8);
        if is(later, &SAVE) && same_epoch {
            mine.clone_from_slice(theirs);
        }
        is(later, &SAVE) && same_epoch
    }),
};

/// A snapshot and the messages it adds, refused (`Fenced`) when the session's epoch has
/// moved on or it is missing (`refused` tells the two apart).
pub(crate) fn save(s: &Session, messages: &[Message]) -> Plan<()> {
    let mut stmts = vec![Stmt::row(
        &SAVE,
        s.id.0.to_string(),
        vec![
            s.id.0.into(),
            s.provider.as_str().into(),
            s.model.as_str().into(),
            s.status.as_str().into(),
            s.turn_number.into(),
            state_text(s).into(),
            s.error.as_deref().map(no_nul).into(),
            s.updated_at.into(),
            s.lease.epoch.into(),
        ],
    )];
    for m in messages {
        stmts.push(Stmt::one(
            "INSERT INTO messages (id, chat_id, role, content, attachments, turn_number, created_at, task_id)
             VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)",
            vec![
                m.id.0.into(),
                m.chat_id.0.into(),
                m.role.as_str().into(),
                no_nul(&m.content).into(),
                serde_json::to_string(&m.attachments)
                    .expect("ids serialize")
                    .into(),
                m.turn_number.into(),
                m.created_at.into(),
                m.task_id.map(|t| t.0).into(),
            ],
        ));
        if !m.attachments.is_empty() {
            stmts.push(Stmt::one(
                "UPDATE attachments SET referenced_at = $1 WHERE referenced_at IS NULL AND id = ANY($2)",
                vec![
                    m.created_at.into(),
                    Val::Uuids(m.attachments.iter().map(|a| a.0).collect()),
                ],
            ));
        }
        if let Some(task) = m.task_id {
            // Its notice is stored: the task is told, once.
            stmts.push(Stmt::one(
                "UPDATE tasks SET notified_at = $2 WHERE id = $1 AND notified_at IS NULL",
                vec![task.0.into(), m.created_at.into()],
            ));
        }
    }
    Plan::new(stmts, |out| wrote(&out, 0, StoreError::Fenced("session")))
}

/// What a refused write of session `id` means: `Fenced` if it is there, `NotFound` if not.
pub(crate) async fn refused(pool: &PgPool, id: SessionId, r: StoreResult<()>) -> StoreResult<()> {
    match r {
        Err(StoreError::Fenced(_)) => {
            let exists = sqlx::query("SELECT 1 FROM agent_sessions WHERE id = $1")
                .bind(id.0)
                .fetch_optional(pool)
                .await
                .map_err(db)?;
            Err(if exists.is_some() {
                StoreError::Fenced("session")
            } else {
                StoreError::NotFound("session")
            })
        }
        r => r,
    }
}

pub(crate) async fn get(pool: &PgPool, id: SessionId) -> StoreResult<Option<Session>> {
    sqlx::query("SELECT * FROM agent_sessions WHERE id = $1")
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(session_from)
        .transpose()
}

pub(crate) async fn list(pool: &PgPool, chat: ChatId) -> StoreResult<Vec<Session>> {
    let rows =
        sqlx::query("SELECT * FROM agent_sessions WHERE chat_id = $1 ORDER BY created_at, id")
            .bind(chat.0)
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.iter().map(session_from).collect()
}

pub(crate) async fn with_status(pool: &PgPool, status: SessionStatus) -> StoreResult<Vec<Session>> {
    let rows =
        sqlx::query("SELECT * FROM agent_sessions WHERE status = $1 ORDER BY created_at, id")
            .bind(status.as_str())
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.iter().map(session_from).collect()
}

/// Closes the running traces whose `column` is `$1` as cancelled with error `$2` at `$3`;
/// `$4` is the error's words (`text_words`).
pub(crate) fn close_traces(column: &str) -> String {
    format!(
        "UPDATE tool_traces SET outcome = 'cancelled', error = $2, finished_at = $3,
            latency_ms = GREATEST(0, trunc(EXTRACT(EPOCH FROM ($3 - started_at)) * 1000)::bigint),
            words = trim(words || ' ' || $4)
         WHERE {column} = $1 AND outcome = 'running'
         RETURNING {COLUMNS}"
    )
}

pub(crate) async fn close_running(
    pool: &PgPool,
    session: SessionId,
    reason: &str,
) -> StoreResult<Vec<Trace>> {
    let rows = sqlx::query(&close_traces("session_id"))
        .bind(session.0)
        .bind(no_nul(reason))
        .bind(time::now())
        .bind(baton_store::text_words(reason))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(trace_from).collect()
}

pub(crate) async fn turn_summaries(
    pool: &PgPool,
    session: SessionId,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<TurnSummary>> {
    // The page's turn numbers first, one index probe each (Postgres has no skip scan), so
    // only their traces are read and summed, however long the session is.
    let rows = sqlx::query(
        "WITH RECURSIVE page(n, k) AS (
            (SELECT turn_number, 1 FROM tool_traces
             WHERE session_id = $1 AND turn_number > $2 ORDER BY turn_number LIMIT 1)
            UNION ALL
            SELECT (SELECT t.turn_number FROM tool_traces t
                    WHERE t.session_id = $1 AND t.turn_number > page.n
                    ORDER BY t.turn_number LIMIT 1), k + 1
            FROM page WHERE page.n IS NOT NULL AND k < $3
         )
         SELECT turn_number, MIN(started_at) AS started_at,
                CASE WHEN bool_or(outcome = 'running') THEN NULL ELSE MAX(finished_at) END AS finished_at,
                COUNT(*) FILTER (WHERE kind = 'tool') AS tool_count,
                COALESCE(SUM(input_tokens), 0)::bigint AS input_tokens,
                COALESCE(SUM(output_tokens), 0)::bigint AS output_tokens,
                COALESCE(SUM(cache_tokens), 0)::bigint AS cache_tokens,
                COALESCE(SUM(cost_usd), 0)::float8 AS cost_usd
         FROM tool_traces WHERE session_id = $1 AND turn_number > $2
           AND turn_number <= COALESCE((SELECT max(n) FROM page), $2)
         GROUP BY turn_number ORDER BY turn_number LIMIT $3",
    )
    .bind(session.0)
    .bind(after.unwrap_or(i64::MIN))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let input: i64 = r.try_get("input_tokens").map_err(db)?;
            let cache: i64 = r.try_get("cache_tokens").map_err(db)?;
            Ok(TurnSummary {
                turn_number: r.try_get("turn_number").map_err(db)?,
                started_at: r.try_get("started_at").map_err(db)?,
                finished_at: r.try_get("finished_at").map_err(db)?,
                tool_count: r.try_get("tool_count").map_err(db)?,
                input_tokens: input,
                output_tokens: r.try_get("output_tokens").map_err(db)?,
                cache_tokens: cache,
                cache_hit_rate: TurnSummary::hit_rate(input, cache),
                cost_usd: r.try_get("cost_usd").map_err(db)?,
            })
        })
        .collect()
}
