use std::borrow::Cow;

use baton_core::{
    time, ChatId, RunId, SessionId, Trace, TraceCursor, TraceFinish, TraceId, TraceKind,
    TraceOutcome,
};
use baton_store::{StoreError, StoreResult, TraceScope};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::db;

pub(crate) const COLUMNS: &str =
    "id, session_id, chat_id, run_id, parent_id, turn_number, kind, tool_name, \
    input, output, started_at, finished_at, latency_ms, tokens_used, input_tokens, output_tokens, \
    cache_tokens, cache_write_tokens, reasoning_tokens, cost_usd, error, outcome, meta";

/// Postgres text and `jsonb` cannot hold U+0000, which models and tools can emit; it is
/// replaced by U+FFFD rather than failing the whole write.
pub(crate) fn no_nul(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_string()
    }
}

pub(crate) fn pg_json(v: &Value) -> Cow<'_, Value> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(has_nul),
            Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn clean(v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(no_nul(s)),
            Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (no_nul(k), clean(v))).collect())
            }
            other => other.clone(),
        }
    }
    if has_nul(v) {
        Cow::Owned(clean(v))
    } else {
        Cow::Borrowed(v)
    }
}

fn json_text(v: &Value) -> String {
    serde_json::to_string(&pg_json(v)).expect("JSON values serialize")
}

pub(crate) fn trace_from(row: &PgRow) -> StoreResult<Trace> {
    let kind: String = row.try_get("kind").map_err(db)?;
    let outcome: String = row.try_get("outcome").map_err(db)?;
    let Json(input): Json<Value> = row.try_get("input").map_err(db)?;
    let output: Option<Json<Value>> = row.try_get("output").map_err(db)?;
    let Json(meta): Json<Value> = row.try_get("meta").map_err(db)?;
    Ok(Trace {
        id: TraceId(row.try_get("id").map_err(db)?),
        session_id: row
            .try_get::<Option<Uuid>, _>("session_id")
            .map_err(db)?
            .map(SessionId),
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
            .map(TraceId),
        turn_number: row.try_get("turn_number").map_err(db)?,
        kind: TraceKind::parse(&kind).ok_or_else(|| StoreError::corrupt("tool_traces", "kind"))?,
        tool_name: row.try_get("tool_name").map_err(db)?,
        input,
        output: output.map(|Json(v)| v),
        started_at: row.try_get("started_at").map_err(db)?,
        finished_at: row.try_get("finished_at").map_err(db)?,
        latency_ms: row.try_get("latency_ms").map_err(db)?,
        tokens_used: row.try_get("tokens_used").map_err(db)?,
        input_tokens: row.try_get("input_tokens").map_err(db)?,
        output_tokens: row.try_get("output_tokens").map_err(db)?,
        cache_tokens: row.try_get("cache_tokens").map_err(db)?,
        cache_write_tokens: row.try_get("cache_write_tokens").map_err(db)?,
        reasoning_tokens: row.try_get("reasoning_tokens").map_err(db)?,
        cost_usd: row.try_get("cost_usd").map_err(db)?,
        error: row.try_get("error").map_err(db)?,
        outcome: TraceOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::corrupt("tool_traces", "outcome"))?,
        meta,
    })
}

/// Column-wise arrays for one `INSERT … SELECT FROM UNNEST(…)`: one statement and 23
/// parameters whatever the batch size, which is what lets Postgres take tens of
/// thousands of rows a second.
#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    session_id: Vec<Option<Uuid>>,
    chat_id: Vec<Option<Uuid>>,
    run_id: Vec<Option<Uuid>>,
    parent_id: Vec<Option<Uuid>>,
    turn_number: Vec<i64>,
    kind: Vec<&'static str>,
    tool_name: Vec<String>,
    input: Vec<String>,
    output: Vec<Option<String>>,
    started_at: Vec<DateTime<Utc>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
    latency_ms: Vec<Option<i64>>,
    tokens_used: Vec<Option<i64>>,
    input_tokens: Vec<Option<i64>>,
    output_tokens: Vec<Option<i64>>,
    cache_tokens: Vec<Option<i64>>,
    cache_write_tokens: Vec<Option<i64>>,
    reasoning_tokens: Vec<Option<i64>>,
    cost_usd: Vec<Option<f64>>,
    error: Vec<Option<String>>,
    outcome: Vec<&'static str>,
    meta: Vec<String>,
}

impl Columns {
    fn push(&mut self, t: &Trace) {
        self.id.push(t.id.0);
        self.session_id.push(t.session_id.map(|x| x.0));
        self.chat_id.push(t.chat_id.map(|x| x.0));
        self.run_id.push(t.run_id.map(|x| x.0));
        self.parent_id.push(t.parent_id.map(|x| x.0));
        self.turn_number.push(t.turn_number);
        self.kind.push(t.kind.as_str());
        self.tool_name.push(no_nul(&t.tool_name));
        self.input.push(json_text(&t.input));
        self.output.push(t.output.as_ref().map(json_text));
        self.started_at.push(t.started_at);
        self.finished_at.push(t.finished_at);
        self.latency_ms.push(t.latency_ms);
        self.tokens_used.push(t.tokens_used);
        self.input_tokens.push(t.input_tokens);
        self.output_tokens.push(t.output_tokens);
        self.cache_tokens.push(t.cache_tokens);
        self.cache_write_tokens.push(t.cache_write_tokens);
        self.reasoning_tokens.push(t.reasoning_tokens);
        self.cost_usd.push(t.cost_usd);
        self.error.push(t.error.as_deref().map(no_nul));
        self.outcome.push(t.outcome.as_str());
        self.meta.push(json_text(&t.meta));
    }
}

pub(crate) async fn insert(pool: &PgPool, traces: &[Trace]) -> StoreResult<()> {
    if traces.is_empty() {
        return Ok(());
    }
    let mut c = Columns::default();
    for t in traces {
        c.push(t);
    }
    let res = sqlx::query(&format!(
        "INSERT INTO tool_traces ({COLUMNS})
         SELECT id, session_id, chat_id, run_id, parent_id, turn_number, kind, tool_name,
                input::jsonb, output::jsonb, started_at, finished_at, latency_ms, tokens_used,
                input_tokens, output_tokens, cache_tokens, cache_write_tokens, reasoning_tokens,
                cost_usd, error, outcome, meta::jsonb
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::int8[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
                     $12::timestamptz[], $13::int8[], $14::int8[], $15::int8[], $16::int8[],
                     $17::int8[], $18::int8[], $19::int8[], $20::float8[], $21::text[],
                     $22::text[], $23::text[])
           AS t({COLUMNS})"
    ))
    .bind(&c.id)
    .bind(&c.session_id)
    .bind(&c.chat_id)
    .bind(&c.run_id)
    .bind(&c.parent_id)
    .bind(&c.turn_number)
    .bind(&c.kind)
    .bind(&c.tool_name)
    .bind(&c.input)
    .bind(&c.output)
    .bind(&c.started_at)
    .bind(&c.finished_at)
    .bind(&c.latency_ms)
    .bind(&c.tokens_used)
    .bind(&c.input_tokens)
    .bind(&c.output_tokens)
    .bind(&c.cache_tokens)
    .bind(&c.cache_write_tokens)
    .bind(&c.reasoning_tokens)
    .bind(&c.cost_usd)
    .bind(&c.error)
    .bind(&c.outcome)
    .bind(&c.meta)
    .execute(pool)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict("a trace with that id exists".into()))
        }
        Err(e) => Err(db(e)),
    }
}

pub(crate) async fn finish(pool: &PgPool, id: TraceId, f: &TraceFinish) -> StoreResult<Trace> {
    let finished_at = f.finished_at.unwrap_or_else(time::now);
    let outcome = f.outcome.unwrap_or(TraceOutcome::Ok);
    let row = sqlx::query(&format!(
        "UPDATE tool_traces SET
            output = COALESCE($2::text::jsonb, output),
            finished_at = $3,
            latency_ms = COALESCE($4, (EXTRACT(EPOCH FROM ($3 - started_at)) * 1000)::bigint),
            tokens_used = COALESCE($5, tokens_used),
            input_tokens = COALESCE($6, input_tokens),
            output_tokens = COALESCE($7, output_tokens),
            cache_tokens = COALESCE($8, cache_tokens),
            cache_write_tokens = COALESCE($9, cache_write_tokens),
            reasoning_tokens = COALESCE($10, reasoning_tokens),
            cost_usd = COALESCE($11, cost_usd),
            error = COALESCE($12, error),
            outcome = $13,
            meta = CASE WHEN $14::text IS NULL THEN meta ELSE meta || $14::text::jsonb END
         WHERE id = $1 AND outcome = 'running'
         RETURNING {COLUMNS}"
    ))
    .bind(id.0)
    .bind(f.output.as_ref().map(json_text))
    .bind(finished_at)
    .bind(f.latency_ms)
    .bind(f.tokens_used)
    .bind(f.input_tokens)
    .bind(f.output_tokens)
    .bind(f.cache_tokens)
    .bind(f.cache_write_tokens)
    .bind(f.reasoning_tokens)
    .bind(f.cost_usd)
    .bind(f.error.as_deref().map(no_nul))
    .bind(outcome.as_str())
    .bind(f.meta.as_ref().map(json_text))
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    match row {
        Some(row) => trace_from(&row),
        // Finished already: closed by whoever took its session over, say. The finish of
        // a holder that lost the work must not overwrite that.
        None => match get(pool, id).await? {
            Some(_) => Err(StoreError::Conflict("the trace is already finished".into())),
            None => Err(StoreError::NotFound("trace")),
        },
    }
}

pub(crate) async fn get(pool: &PgPool, id: TraceId) -> StoreResult<Option<Trace>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM tool_traces WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(trace_from)
        .transpose()
}

pub(crate) async fn list(
    pool: &PgPool,
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
                "SELECT {COLUMNS} FROM tool_traces WHERE {column} = $1
                 ORDER BY turn_number, started_at, id LIMIT $2"
            ))
            .bind(owner)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        }
        Some(c) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tool_traces
                 WHERE {column} = $1 AND (turn_number, started_at, id) > ($2, $3, $4)
                 ORDER BY turn_number, started_at, id LIMIT $5"
            ))
            .bind(owner)
            .bind(c.turn_number)
            .bind(c.started_at)
            .bind(c.id.0)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        }
    }
    .map_err(db)?;
    rows.iter().map(trace_from).collect()
}

/// `list`, keeping what `filter` matches.
pub(crate) async fn search(
    pool: &PgPool,
    scope: TraceScope,
    filter: &baton_store::TraceFilter,
    limit: u32,
    after: Option<TraceCursor>,
) -> StoreResult<Vec<Trace>> {
    use baton_store::StatusFilter;
    use sqlx::Arguments;
    let (column, owner) = match scope {
        TraceScope::Chat(c) => ("chat_id", c.0),
        TraceScope::Session(s) => ("session_id", s.0),
    };
    // Encoding these plain values cannot fail, so `add`'s result is not looked at.
    let mut args = sqlx::postgres::PgArguments::default();
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let mut sql = format!(
        "SELECT {COLUMNS} FROM tool_traces WHERE {column} = {}",
        next()
    );
    let _ = args.add(owner);
    if let Some(c) = &after {
        sql.push_str(&format!(
            " AND (turn_number, started_at, id) > ({}, {}, {})",
            next(),
            next(),
            next()
        ));
        let _ = args.add(c.turn_number);
        let _ = args.add(c.started_at);
        let _ = args.add(c.id.0);
    }
    if let Some(k) = filter.kind {
        sql.push_str(&format!(" AND kind = {}", next()));
        let _ = args.add(k.as_str());
    }
    if let Some(t) = &filter.tool {
        sql.push_str(&format!(" AND tool_name = {}", next()));
        let _ = args.add(t.clone());
    }
    match filter.status {
        // The same predicate as the partial index, so it is used.
        Some(StatusFilter::Failed) => sql.push_str(" AND outcome IN ('error', 'timeout')"),
        Some(StatusFilter::Running) => sql.push_str(" AND outcome = 'running'"),
        None => {}
    }
    if let Some(ms) = filter.min_latency_ms {
        sql.push_str(&format!(" AND latency_ms >= {}", next()));
        let _ = args.add(ms);
    }
    if !filter.words.is_empty() {
        let query = filter
            .words
            .iter()
            .map(|w| format!("{w}:*"))
            .collect::<Vec<_>>()
            .join(" & ");
        // The expression of the GIN index, word for word, so the index answers it.
        sql.push_str(&format!(
            " AND to_tsvector('simple', regexp_replace(tool_name || ' ' || input::text || ' ' || coalesce(output::text, '') || ' ' || coalesce(error, ''), '\\\\[nrt]|[^[:alnum:]]+', ' ', 'g')) @@ to_tsquery('simple', {})",
            next()
        ));
        let _ = args.add(query);
    }
    sql.push_str(&format!(
        " ORDER BY turn_number, started_at, id LIMIT {}",
        next()
    ));
    let _ = args.add(i64::from(limit));
    let rows = sqlx::query_with(&sql, args)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(trace_from).collect()
}
