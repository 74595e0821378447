use baton_core::{
    time, ChatId, RunId, SessionId, Trace, TraceCursor, TraceFinish, TraceId, TraceKind,
    TraceOutcome,
};
use baton_store::{StoreError, StoreResult, TraceScope};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::db;
use crate::rows::{id_text, ts, Cols};

pub(crate) const COLUMNS: &str =
    "id, session_id, chat_id, run_id, parent_id, turn_number, kind, tool_name, \
    input, output, started_at, finished_at, latency_ms, tokens_used, input_tokens, output_tokens, \
    cache_tokens, cache_write_tokens, reasoning_tokens, cost_usd, error, outcome, meta";

/// SQLite allows 32,766 bound parameters per statement; 23 columns × 1,000 rows fits.
const ROWS_PER_STATEMENT: usize = 1_000;

pub(crate) fn trace_from(row: &SqliteRow) -> StoreResult<Trace> {
    let c = Cols::new(row, "tool_traces");
    Ok(Trace {
        id: TraceId(c.uuid("id")?),
        session_id: c.opt_uuid("session_id")?.map(SessionId),
        chat_id: c.opt_uuid("chat_id")?.map(ChatId),
        run_id: c.opt_uuid("run_id")?.map(RunId),
        parent_id: c.opt_uuid("parent_id")?.map(TraceId),
        turn_number: c.int("turn_number")?,
        kind: c.parsed("kind", TraceKind::parse)?,
        tool_name: c.text("tool_name")?,
        input: c.json("input")?,
        output: c.opt_json("output")?,
        started_at: c.time("started_at")?,
        finished_at: c.opt_time("finished_at")?,
        latency_ms: c.opt_int("latency_ms")?,
        tokens_used: c.opt_int("tokens_used")?,
        input_tokens: c.opt_int("input_tokens")?,
        output_tokens: c.opt_int("output_tokens")?,
        cache_tokens: c.opt_int("cache_tokens")?,
        cache_write_tokens: c.opt_int("cache_write_tokens")?,
        reasoning_tokens: c.opt_int("reasoning_tokens")?,
        cost_usd: c.opt_real("cost_usd")?,
        error: c.opt_text("error")?,
        outcome: c.parsed("outcome", TraceOutcome::parse)?,
        meta: c.json("meta")?,
    })
}

fn json_text(v: &Value) -> String {
    serde_json::to_string(v).expect("JSON values serialize")
}

pub(crate) async fn insert(conn: &mut SqliteConnection, traces: &[Trace]) -> StoreResult<()> {
    if traces.is_empty() {
        return Ok(());
    }
    // One statement is atomic by itself; only a multi-statement batch needs a savepoint.
    if traces.len() <= ROWS_PER_STATEMENT {
        return insert_rows(conn, traces).await;
    }
    let mut tx = conn.begin().await.map_err(db)?;
    for chunk in traces.chunks(ROWS_PER_STATEMENT) {
        insert_rows(&mut tx, chunk).await?;
    }
    tx.commit().await.map_err(db)
}

async fn insert_rows(conn: &mut SqliteConnection, chunk: &[Trace]) -> StoreResult<()> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("INSERT INTO tool_traces ({COLUMNS}) "));
    qb.push_values(chunk, |mut b, t| {
        b.push_bind(id_text(t.id.0))
            .push_bind(t.session_id.map(|x| id_text(x.0)))
            .push_bind(t.chat_id.map(|x| id_text(x.0)))
            .push_bind(t.run_id.map(|x| id_text(x.0)))
            .push_bind(t.parent_id.map(|x| id_text(x.0)))
            .push_bind(t.turn_number)
            .push_bind(t.kind.as_str())
            .push_bind(t.tool_name.clone())
            .push_bind(json_text(&t.input))
            .push_bind(t.output.as_ref().map(json_text))
            .push_bind(ts(&t.started_at))
            .push_bind(t.finished_at.as_ref().map(ts))
            .push_bind(t.latency_ms)
            .push_bind(t.tokens_used)
            .push_bind(t.input_tokens)
            .push_bind(t.output_tokens)
            .push_bind(t.cache_tokens)
            .push_bind(t.cache_write_tokens)
            .push_bind(t.reasoning_tokens)
            .push_bind(t.cost_usd)
            .push_bind(t.error.clone())
            .push_bind(t.outcome.as_str())
            .push_bind(json_text(&t.meta));
    });
    match qb.build().execute(&mut *conn).await {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(StoreError::Conflict("a trace with that id exists".into()))
        }
        Err(e) => return Err(db(e)),
    }
    Ok(())
}

pub(crate) async fn finish(
    conn: &mut SqliteConnection,
    id: TraceId,
    f: &TraceFinish,
) -> StoreResult<Trace> {
    let finished_at = f.finished_at.unwrap_or_else(time::now);
    let outcome = f.outcome.unwrap_or(TraceOutcome::Ok);
    // COALESCE keeps what the start wrote for anything the finish leaves unset.
    let row = sqlx::query(&format!(
        "UPDATE tool_traces SET
            output = COALESCE(?2, output),
            finished_at = ?3,
            latency_ms = COALESCE(?4, (?3 - started_at) / 1000),
            tokens_used = COALESCE(?5, tokens_used),
            input_tokens = COALESCE(?6, input_tokens),
            output_tokens = COALESCE(?7, output_tokens),
            cache_tokens = COALESCE(?8, cache_tokens),
            cache_write_tokens = COALESCE(?9, cache_write_tokens),
            reasoning_tokens = COALESCE(?10, reasoning_tokens),
            cost_usd = COALESCE(?11, cost_usd),
            error = COALESCE(?12, error),
            outcome = ?13,
            meta = CASE WHEN ?14 IS NULL THEN meta ELSE json_patch(meta, ?14) END
         WHERE id = ?1
         RETURNING {COLUMNS}"
    ))
    .bind(id_text(id.0))
    .bind(f.output.as_ref().map(json_text))
    .bind(ts(&finished_at))
    .bind(f.latency_ms)
    .bind(f.tokens_used)
    .bind(f.input_tokens)
    .bind(f.output_tokens)
    .bind(f.cache_tokens)
    .bind(f.cache_write_tokens)
    .bind(f.reasoning_tokens)
    .bind(f.cost_usd)
    .bind(f.error.clone())
    .bind(outcome.as_str())
    .bind(f.meta.as_ref().map(json_text))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.as_ref()
        .map(trace_from)
        .transpose()?
        .ok_or(StoreError::NotFound("trace"))
}

pub(crate) async fn get(pool: &SqlitePool, id: TraceId) -> StoreResult<Option<Trace>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM tool_traces WHERE id = ?1"))
        .bind(id_text(id.0))
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(trace_from)
        .transpose()
}

pub(crate) async fn list(
    pool: &SqlitePool,
    scope: TraceScope,
    limit: u32,
    after: Option<TraceCursor>,
) -> StoreResult<Vec<Trace>> {
    let (column, owner) = match scope {
        TraceScope::Chat(c) => ("chat_id", c.0),
        TraceScope::Session(s) => ("session_id", s.0),
    };
    let rows = match after {
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tool_traces WHERE {column} = ?1
                 ORDER BY turn_number, started_at, id LIMIT ?2"
            ))
            .bind(id_text(owner))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        }
        Some(c) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tool_traces
                 WHERE {column} = ?1 AND (turn_number, started_at, id) > (?2, ?3, ?4)
                 ORDER BY turn_number, started_at, id LIMIT ?5"
            ))
            .bind(id_text(owner))
            .bind(c.turn_number)
            .bind(ts(&c.started_at))
            .bind(id_text(c.id.0))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        }
    }
    .map_err(db)?;
    rows.iter().map(trace_from).collect()
}
