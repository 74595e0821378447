use baton_core::{
    time, ChatId, RunId, SessionId, Trace, TraceCursor, TraceFinish, TraceId, TraceKind,
    TraceOutcome,
};
use baton_store::{finish_words, join_words, trace_words, StoreError, StoreResult, TraceScope};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use crate::db;
use crate::plan::{changed, coalesce, is, Arg, Plan, RowKind, Stmt};
use crate::rows::{id_text, ts, Cols};

macro_rules! columns {
    () => {
        "id, session_id, chat_id, run_id, parent_id, turn_number, kind, tool_name, \
        input, output, started_at, finished_at, latency_ms, tokens_used, input_tokens, output_tokens, \
        cache_tokens, cache_write_tokens, reasoning_tokens, cost_usd, error, outcome, meta"
    };
}

pub(crate) const COLUMNS: &str = columns!();

static INSERT: RowKind = RowKind {
    table: "tool_traces",
    head: concat!("INSERT INTO tool_traces (", columns!(), ", words) VALUES "),
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    tail: "",
    absorb: Some(|mine, later, f| {
        // A running trace takes in a finish that brings its latency and no meta (what
        // the tracer's finishes are): every column is then a plain COALESCE or a copy.
        if !is(later, &FINISH) || mine[21] != Arg::from("running") || f[3] == Arg::Null {
            return false;
        }
        let meta = match (&f[13], &mine[22]) {
            (Arg::Null, m) => m.clone(),
            (Arg::Text(patch), Arg::Text(m)) => {
                let (Ok(mut m), Ok(patch)) = (
                    serde_json::from_str::<Value>(m),
                    serde_json::from_str::<Value>(patch),
                ) else {
                    return false;
                };
                merge_patch(&mut m, patch);
                Arg::Text(m.to_string())
            }
            _ => return false,
        };
        mine[9] = coalesce(&f[1], &mine[9]);
        mine[11] = f[2].clone();
        mine[12] = f[3].clone();
        // tokens_used … cost_usd, then error.
        for (m, t) in (13..=19).zip(4..=10) {
            mine[m] = coalesce(&f[t], &mine[m]);
        }
        mine[20] = coalesce(&f[11], &mine[20]);
        mine[21] = f[12].clone();
        mine[22] = meta;
        if let (Arg::Text(a), Arg::Text(b)) = (&mine[23], &f[14]) {
            mine[23] = Arg::Text(join_words(a, b));
        }
        true
    }),
};

/// `json_patch` (RFC 7396), as the finish statement applies a finish's meta: an object
/// merges key by key, recursively, a null removes its key, anything else replaces.
fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(t) = target else {
        unreachable!("made an object above")
    };
    for (k, v) in patch {
        if v.is_null() {
            t.remove(&k);
        } else {
            merge_patch(t.entry(k).or_insert(Value::Null), v);
        }
    }
}

/// The finish of a trace nobody reads back. COALESCE keeps what the start wrote for
/// anything the finish leaves unset.
static FINISH: RowKind = RowKind {
    table: "tool_traces",
    head: "UPDATE tool_traces SET
            output = COALESCE(v.column2, output),
            finished_at = v.column3,
            latency_ms = COALESCE(v.column4, (v.column3 - started_at) / 1000),
            tokens_used = COALESCE(v.column5, tokens_used),
            input_tokens = COALESCE(v.column6, input_tokens),
            output_tokens = COALESCE(v.column7, output_tokens),
            cache_tokens = COALESCE(v.column8, cache_tokens),
            cache_write_tokens = COALESCE(v.column9, cache_write_tokens),
            reasoning_tokens = COALESCE(v.column10, reasoning_tokens),
            cost_usd = COALESCE(v.column11, cost_usd),
            error = COALESCE(v.column12, error),
            outcome = v.column13,
            meta = CASE WHEN v.column14 IS NULL THEN meta ELSE json_patch(meta, v.column14) END,
            words = trim(words || ' ' || v.column15)
         FROM (VALUES ",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    tail: ") AS v WHERE tool_traces.id = v.column1 AND tool_traces.outcome = 'running'",
    absorb: None,
};

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

/// One statement per 1,000 rows; the plan keeps them atomic together.
pub(crate) fn insert(traces: &[Trace]) -> Plan<()> {
    let stmts = traces
        .iter()
        .map(|t| {
            Stmt::row(
                &INSERT,
                id_text(t.id.0),
                vec![
                    id_text(t.id.0).into(),
                    t.session_id.map(|x| id_text(x.0)).into(),
                    t.chat_id.map(|x| id_text(x.0)).into(),
                    t.run_id.map(|x| id_text(x.0)).into(),
                    t.parent_id.map(|x| id_text(x.0)).into(),
                    t.turn_number.into(),
                    t.kind.as_str().into(),
                    (&t.tool_name).into(),
                    json_text(&t.input).into(),
                    t.output.as_ref().map(json_text).into(),
                    ts(&t.started_at).into(),
                    t.finished_at.as_ref().map(ts).into(),
                    t.latency_ms.into(),
                    t.tokens_used.into(),
                    t.input_tokens.into(),
                    t.output_tokens.into(),
                    t.cache_tokens.into(),
                    t.cache_write_tokens.into(),
                    t.reasoning_tokens.into(),
                    t.cost_usd.into(),
                    t.error.clone().into(),
                    t.outcome.as_str().into(),
                    json_text(&t.meta).into(),
                    trace_words(t).into(),
                ],
            )
        })
        .collect();
    Plan::exec(stmts).on_error(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict("a trace with that id exists".into())
        }
        e => db(e),
    })
}

pub(crate) fn finish(id: TraceId, f: &TraceFinish) -> Plan<Trace> {
    let exists = Stmt::new(
        "SELECT 1 FROM tool_traces WHERE id = ?1",
        vec![id_text(id.0).into()],
    );
    Plan::new(vec![finish_stmt(id, f), exists], |out| {
        match out.first().and_then(|o| o.rows.first()) {
            Some(row) => trace_from(row),
            // Finished already (closed by whoever took its session over, say).
            None if out.get(1).is_some_and(|o| !o.rows.is_empty()) => {
                Err(StoreError::Conflict("the trace is already finished".into()))
            }
            None => Err(StoreError::NotFound("trace")),
        }
    })
}

/// The finish of a queued write: nobody reads the row back.
pub(crate) fn finish_unread(id: TraceId, f: &TraceFinish) -> Plan<()> {
    let stmt = Stmt::row(&FINISH, id_text(id.0), finish_args(id, f));
    Plan::new(vec![stmt], |out| changed(&out, 0, "trace"))
}

/// The finish that answers the whole row.
fn finish_stmt(id: TraceId, f: &TraceFinish) -> Stmt {
    Stmt::new(
        format!(
            "{}{} {} RETURNING {COLUMNS}",
            FINISH.head, FINISH.row, FINISH.tail
        ),
        finish_args(id, f),
    )
}

fn finish_args(id: TraceId, f: &TraceFinish) -> Vec<Arg> {
    let finished_at = f.finished_at.unwrap_or_else(time::now);
    let outcome = f.outcome.unwrap_or(TraceOutcome::Ok);
    vec![
        id_text(id.0).into(),
        f.output.as_ref().map(json_text).into(),
        ts(&finished_at).into(),
        f.latency_ms.into(),
        f.tokens_used.into(),
        f.input_tokens.into(),
        f.output_tokens.into(),
        f.cache_tokens.into(),
        f.cache_write_tokens.into(),
        f.reasoning_tokens.into(),
        f.cost_usd.into(),
        f.error.clone().into(),
        outcome.as_str().into(),
        f.meta.as_ref().map(json_text).into(),
        finish_words(f).into(),
    ]
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

/// `list`, keeping what `filter` matches.
pub(crate) async fn search(
    pool: &SqlitePool,
    scope: TraceScope,
    filter: &baton_store::TraceFilter,
    limit: u32,
    after: Option<TraceCursor>,
) -> StoreResult<Vec<Trace>> {
    use baton_store::StatusFilter;
    let (column, owner) = match scope {
        TraceScope::Chat(c) => ("chat_id", c.0),
        TraceScope::Session(s) => ("session_id", s.0),
    };
    let mut sql = format!("SELECT {COLUMNS} FROM tool_traces WHERE {column} = ?");
    let mut args: Vec<crate::plan::Arg> = vec![id_text(owner).into()];
    if let Some(c) = &after {
        sql.push_str(" AND (turn_number, started_at, id) > (?, ?, ?)");
        args.extend([
            c.turn_number.into(),
            ts(&c.started_at).into(),
            id_text(c.id.0).into(),
        ]);
    }
    if let Some(k) = filter.kind {
        sql.push_str(" AND kind = ?");
        args.push(k.as_str().into());
    }
    if let Some(t) = &filter.tool {
        sql.push_str(" AND tool_name = ?");
        args.push(t.into());
    }
    match filter.status {
        // The same predicate as the partial index, so it is used.
        Some(StatusFilter::Failed) => sql.push_str(" AND outcome IN ('error', 'timeout')"),
        Some(StatusFilter::Running) => sql.push_str(" AND outcome = 'running'"),
        None => {}
    }
    if let Some(ms) = filter.min_latency_ms {
        sql.push_str(" AND latency_ms >= ?");
        args.push(ms.into());
    }
    if !filter.words.is_empty() {
        let query = filter
            .words
            .iter()
            .map(|w| format!("\"{w}\"*"))
            .collect::<Vec<_>>()
            .join(" AND ");
        sql.push_str(" AND rowid IN (SELECT rowid FROM trace_text WHERE trace_text MATCH ?)");
        args.push(query.into());
    }
    sql.push_str(" ORDER BY turn_number, started_at, id LIMIT ?");
    args.push(i64::from(limit).into());
    let mut sql_args = sqlx::sqlite::SqliteArguments::default();
    for a in args {
        a.add_to(&mut sql_args);
    }
    let rows = sqlx::query_with(&sql, sql_args)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(trace_from).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use sqlx::{Connection, SqliteConnection};

    /// The finish absorbed into a trace's start merges its meta as SQLite's `json_patch`
    /// does when the finish is its own statement.
    #[tokio::test]
    async fn merge_patch_is_sqlites_json_patch() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let cases = [
            (
                json!({ "a": 1, "b": { "c": 2, "d": 3 } }),
                json!({ "b": { "c": null, "e": 4 }, "f": 5 }),
            ),
            (json!({ "a": 1 }), json!({ "a": null })),
            (
                json!({ "a": [1, 2] }),
                json!({ "a": { "x": null, "y": 1 } }),
            ),
            (json!({ "a": 1 }), json!([1, 2])),
            (json!("text"), json!({ "a": { "b": null } })),
        ];
        for (target, patch) in cases {
            let sqlite: String = sqlx::query_scalar("SELECT json_patch(?1, ?2)")
                .bind(target.to_string())
                .bind(patch.to_string())
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let mut ours = target.clone();
            super::merge_patch(&mut ours, patch.clone());
            assert_eq!(
                ours,
                serde_json::from_str::<Value>(&sqlite).unwrap(),
                "{target} patched with {patch}"
            );
        }
    }
}
