use std::borrow::Cow;

use baton_core::{
    time, ChatId, RunId, SessionId, Trace, TraceCursor, TraceFinish, TraceId, TraceKind,
    TraceOutcome,
};
use baton_store::{finish_words, join_words, trace_words, StoreError, StoreResult, TraceScope};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::db;
use crate::plan::{coalesce, is, wrote, Plan, RowKind, Stmt, Val};

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

/// A new trace, one row of many in one statement: a batch of any size is one statement
/// of 23 arrays, which is what lets Postgres take tens of thousands of rows a second.
static NEW: RowKind = RowKind {
    table: "tool_traces",
    sql: "INSERT INTO tool_traces (id, session_id, chat_id, run_id, parent_id, turn_number, kind,
            tool_name, input, output, started_at, finished_at, latency_ms, tokens_used, input_tokens,
            output_tokens, cache_tokens, cache_write_tokens, reasoning_tokens, cost_usd, error, outcome, meta,
            words)
         SELECT id, session_id, chat_id, run_id, parent_id, turn_number, kind, tool_name,
                input::jsonb, output::jsonb, started_at, finished_at, latency_ms, tokens_used,
                input_tokens, output_tokens, cache_tokens, cache_write_tokens, reasoning_tokens,
                cost_usd, error, outcome, meta::jsonb, words
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::int8[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
                     $12::timestamptz[], $13::int8[], $14::int8[], $15::int8[], $16::int8[],
                     $17::int8[], $18::int8[], $19::int8[], $20::float8[], $21::text[],
                     $22::text[], $23::text[], $24::text[])
           AS t(id, session_id, chat_id, run_id, parent_id, turn_number, kind, tool_name,
                input, output, started_at, finished_at, latency_ms, tokens_used, input_tokens,
                output_tokens, cache_tokens, cache_write_tokens, reasoning_tokens, cost_usd,
                error, outcome, meta, words)
         RETURNING id::text AS k",
    absorb: Some(absorb_finish),
};

fn new_row(t: &Trace) -> Stmt {
    Stmt::row(
        &NEW,
        t.id.0.to_string(),
        vec![
            t.id.0.into(),
            t.session_id.map(|x| x.0).into(),
            t.chat_id.map(|x| x.0).into(),
            t.run_id.map(|x| x.0).into(),
            t.parent_id.map(|x| x.0).into(),
            t.turn_number.into(),
            t.kind.as_str().into(),
            no_nul(&t.tool_name).into(),
            json_text(&t.input).into(),
            t.output.as_ref().map(json_text).into(),
            t.started_at.into(),
            t.finished_at.into(),
            t.latency_ms.into(),
            t.tokens_used.into(),
            t.input_tokens.into(),
            t.output_tokens.into(),
            t.cache_tokens.into(),
            t.cache_write_tokens.into(),
            t.reasoning_tokens.into(),
            t.cost_usd.into(),
            t.error.as_deref().map(no_nul).into(),
            t.outcome.as_str().into(),
            json_text(&t.meta).into(),
            trace_words(t).into(),
        ],
    )
}

/// New traces, all or none.
pub(crate) fn insert(traces: &[Trace]) -> Plan<()> {
    Plan::new(traces.iter().map(new_row).collect(), |_| Ok(())).on_error(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict("a trace with that id exists".into())
        }
        e => db(e),
    })
}

/// A trace's finish: only a running trace is finished, so the finish of a holder that
/// lost the work (its trace closed by whoever took its session over) cannot overwrite it.
macro_rules! finish_sql {
    ($returning:literal) => {
        concat!(
            "UPDATE tool_traces t SET
                output = COALESCE(u.output::jsonb, t.output),
                finished_at = u.finished_at,
                latency_ms = COALESCE(u.latency_ms,
                    trunc(EXTRACT(EPOCH FROM (u.finished_at - t.started_at)) * 1000)::bigint),
                tokens_used = COALESCE(u.tokens_used, t.tokens_used),
                input_tokens = COALESCE(u.input_tokens, t.input_tokens),
                output_tokens = COALESCE(u.output_tokens, t.output_tokens),
                cache_tokens = COALESCE(u.cache_tokens, t.cache_tokens),
                cache_write_tokens = COALESCE(u.cache_write_tokens, t.cache_write_tokens),
                reasoning_tokens = COALESCE(u.reasoning_tokens, t.reasoning_tokens),
                cost_usd = COALESCE(u.cost_usd, t.cost_usd),
                error = COALESCE(u.error, t.error),
                outcome = u.outcome,
                meta = CASE WHEN u.meta IS NULL THEN t.meta ELSE t.meta || u.meta::jsonb END,
                words = trim(t.words || ' ' || u.words)
             FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::int8[], $5::int8[],
                         $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[],
                         $11::float8[], $12::text[], $13::text[], $14::text[], $15::text[])
               AS u(id, output, finished_at, latency_ms, tokens_used, input_tokens, output_tokens,
                    cache_tokens, cache_write_tokens, reasoning_tokens, cost_usd, error, outcome, meta,
                    words)
             WHERE t.id = u.id AND t.outcome = 'running'
             RETURNING t.id::text AS k",
            $returning
        )
    };
}

/// A finish whose caller reads the finished trace.
static FINISH: RowKind = RowKind {
    table: "tool_traces",
    sql: finish_sql!(", t.*"),
    absorb: None,
};

/// A finish nobody reads back.
static FINISH_UNREAD: RowKind = RowKind {
    table: "tool_traces",
    sql: finish_sql!(""),
    absorb: None,
};

/// A new running trace takes in its finish (one nobody reads back), computed as
/// `FINISH`'s statement computes it, so the row is written once, finished.
fn absorb_finish(mine: &mut [Val], later: &'static RowKind, f: &[Val]) -> bool {
    if !is(later, &FINISH_UNREAD) || mine[21] != Val::from("running") {
        return false;
    }
    // Its meta is merged key by key (`||`), which needs both to be objects.
    let meta = match (&f[13], &mine[22]) {
        (Val::Text(None), m) => m.clone(),
        (Val::Text(Some(theirs)), Val::Text(Some(m))) => {
            let (Ok(Value::Object(mut m)), Ok(Value::Object(t))) = (
                serde_json::from_str::<Value>(m),
                serde_json::from_str::<Value>(theirs),
            ) else {
                return false;
            };
            m.extend(t);
            Val::from(Value::Object(m).to_string())
        }
        _ => return false,
    };
    let (Val::Time(Some(started)), Val::Time(Some(finished))) = (&mine[10], &f[2]) else {
        return false;
    };
    // Whole milliseconds, cut toward zero as the finish statement's `trunc` does.
    let ms = (finished.timestamp_micros() - started.timestamp_micros()) / 1000;
    mine[9] = coalesce(&f[1], &mine[9]);
    mine[11] = f[2].clone();
    mine[12] = coalesce(&f[3], &Val::from(ms));
    // tokens_used … cost_usd, then error.
    for (m, t) in (13..=19).zip(4..=10) {
        mine[m] = coalesce(&f[t], &mine[m]);
    }
    mine[20] = coalesce(&f[11], &mine[20]);
    mine[21] = f[12].clone();
    mine[22] = meta;
    if let (Val::Text(Some(a)), Val::Text(Some(b))) = (&mine[23], &f[14]) {
        mine[23] = Val::from(join_words(a, b));
    }
    true
}

fn finish_row(kind: &'static RowKind, id: TraceId, f: &TraceFinish) -> Stmt {
    Stmt::row(
        kind,
        id.0.to_string(),
        vec![
            id.0.into(),
            f.output.as_ref().map(json_text).into(),
            f.finished_at.unwrap_or_else(time::now).into(),
            f.latency_ms.into(),
            f.tokens_used.into(),
            f.input_tokens.into(),
            f.output_tokens.into(),
            f.cache_tokens.into(),
            f.cache_write_tokens.into(),
            f.reasoning_tokens.into(),
            f.cost_usd.into(),
            f.error.as_deref().map(no_nul).into(),
            f.outcome.unwrap_or(TraceOutcome::Ok).as_str().into(),
            f.meta.as_ref().map(json_text).into(),
            finish_words(f).into(),
        ],
    )
}

/// Refused (`Conflict`) when the trace is not running: finished already, or missing
/// (`finished` tells the two apart).
pub(crate) fn finish(id: TraceId, f: &TraceFinish) -> Plan<Trace> {
    Plan::new(vec![finish_row(&FINISH, id, f)], |out| {
        match out.first().and_then(|o| o.rows.first()) {
            Some(row) => trace_from(row),
            None => Err(not_running()),
        }
    })
}

pub(crate) fn finish_unread(id: TraceId, f: &TraceFinish) -> Plan<()> {
    Plan::new(vec![finish_row(&FINISH_UNREAD, id, f)], |out| {
        wrote(&out, 0, not_running())
    })
}

fn not_running() -> StoreError {
    StoreError::Conflict("the trace is already finished".into())
}

/// What a refused finish means: `Conflict` if the trace is there, `NotFound` if not.
pub(crate) async fn finished(
    pool: &PgPool,
    id: TraceId,
    r: StoreResult<Trace>,
) -> StoreResult<Trace> {
    match r {
        Err(StoreError::Conflict(c)) => match get(pool, id).await? {
            Some(_) => Err(StoreError::Conflict(c)),
            None => Err(StoreError::NotFound("trace")),
        },
        r => r,
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
        // The expression of the GIN index, word for word, and its predicate, so the index
        // answers for finished traces; the few running ones are read through theirs.
        // Two arms, as one condition with an OR is folded by the planner into one that
        // no partial index matches.
        let words = "to_tsvector('simple', words)";
        let q = next();
        let _ = args.add(query);
        sql = format!(
            "{sql} AND outcome <> 'running' AND {words} @@ to_tsquery('simple', {q})
             UNION ALL {sql} AND outcome = 'running' AND {words} @@ to_tsquery('simple', {q})"
        );
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
