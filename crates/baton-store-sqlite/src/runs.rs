use baton_core::time::Timestamp;
use baton_core::{AgentStatus, JournalEntry, Run, RunId, RunStatus, SessionId};
use baton_store::{StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use crate::db;
use crate::plan::{changed, Plan, RowKind, Stmt};
use crate::rows::{id_text, ts, Cols};

fn run_from(row: &SqliteRow) -> StoreResult<Run> {
    let c = Cols::new(row, "workflow_runs");
    Ok(Run {
        id: RunId(c.uuid("id")?),
        name: c.text("name")?,
        status: c.parsed("status", RunStatus::parse)?,
        source: c.text("source")?,
        script: c.text("script")?,
        args: c.opt_json("args")?,
        options: c.json("options")?,
        result: c.opt_json("result")?,
        error: c.opt_text("error")?,
        totals: c.json("totals")?,
        log: serde_json::from_value(c.json("log")?)
            .map_err(|_| StoreError::corrupt("workflow_runs", "log"))?,
        created_at: c.time("created_at")?,
        started_at: c.opt_time("started_at")?,
        finished_at: c.opt_time("finished_at")?,
        updated_at: c.time("updated_at")?,
    })
}

fn entry_from(row: &SqliteRow) -> StoreResult<JournalEntry> {
    let c = Cols::new(row, "workflow_agents");
    Ok(JournalEntry {
        run_id: RunId(c.uuid("run_id")?),
        key: c.text("key")?,
        seq: c.int("seq")?,
        label: c.opt_text("label")?,
        phase: c.opt_text("phase")?,
        status: c.parsed("status", AgentStatus::parse)?,
        session_id: c.opt_uuid("session_id")?.map(SessionId),
        prompt: c.text("prompt")?,
        result: c.opt_json("result")?,
        error: c.opt_text("error")?,
        input_tokens: c.int("input_tokens")?,
        output_tokens: c.int("output_tokens")?,
        cost_usd: c.opt_real("cost_usd")?.unwrap_or(0.0),
        cached: c.int("cached")? != 0,
        started_at: c.time("started_at")?,
        finished_at: c.opt_time("finished_at")?,
    })
}

fn opt_json(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

pub(crate) fn create(r: &Run) -> Plan<()> {
    Plan::exec(vec![Stmt::new(
        "INSERT INTO workflow_runs (id, name, status, source, script, args, options, result, error, totals, log,
            created_at, started_at, finished_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        vec![
            id_text(r.id.0).into(),
            (&r.name).into(),
            r.status.as_str().into(),
            (&r.source).into(),
            (&r.script).into(),
            opt_json(&r.args).into(),
            r.options.to_string().into(),
            opt_json(&r.result).into(),
            r.error.clone().into(),
            r.totals.to_string().into(),
            serde_json::to_string(&r.log).expect("log serializes").into(),
            ts(&r.created_at).into(),
            r.started_at.as_ref().map(ts).into(),
            r.finished_at.as_ref().map(ts).into(),
            ts(&r.updated_at).into(),
        ],
    )])
}

pub(crate) fn update(r: &Run) -> Plan<()> {
    let stmt = Stmt::new(
        "UPDATE workflow_runs SET status = ?2, args = ?3, options = ?4, result = ?5, error = ?6, totals = ?7,
            log = ?8, started_at = ?9, finished_at = ?10, updated_at = ?11, source = ?12, script = ?13 WHERE id = ?1",
        vec![
            id_text(r.id.0).into(),
            r.status.as_str().into(),
            opt_json(&r.args).into(),
            r.options.to_string().into(),
            opt_json(&r.result).into(),
            r.error.clone().into(),
            r.totals.to_string().into(),
            serde_json::to_string(&r.log).expect("log serializes").into(),
            r.started_at.as_ref().map(ts).into(),
            r.finished_at.as_ref().map(ts).into(),
            ts(&r.updated_at).into(),
            (&r.source).into(),
            (&r.script).into(),
        ],
    );
    Plan::new(vec![stmt], |out| changed(&out, 0, "run"))
}

pub(crate) async fn get(pool: &SqlitePool, id: RunId) -> StoreResult<Option<Run>> {
    sqlx::query("SELECT * FROM workflow_runs WHERE id = ?1")
        .bind(id_text(id.0))
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(run_from)
        .transpose()
}

pub(crate) async fn list(
    pool: &SqlitePool,
    status: Option<RunStatus>,
    limit: u32,
    before: Option<RunId>,
) -> StoreResult<Vec<Run>> {
    let rows = sqlx::query(
        "SELECT * FROM workflow_runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR id < ?2)
         ORDER BY id DESC LIMIT ?3",
    )
    .bind(status.map(|s| s.as_str()))
    .bind(before.map(|b| id_text(b.0)))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(run_from).collect()
}

static JOURNAL: RowKind = RowKind {
    table: "workflow_agents",
    head: "INSERT INTO workflow_agents (run_id, key, seq, label, phase, status, session_id, prompt,
            result, error, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at)
         VALUES ",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    tail: "ON CONFLICT (run_id, key) DO UPDATE SET seq = excluded.seq, label = excluded.label,
            phase = excluded.phase, status = excluded.status, session_id = excluded.session_id,
            prompt = excluded.prompt, result = excluded.result, error = excluded.error,
            input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
            cost_usd = excluded.cost_usd, cached = excluded.cached, started_at = excluded.started_at,
            finished_at = excluded.finished_at",
};

pub(crate) fn put_journal(e: &JournalEntry) -> Plan<()> {
    let run = id_text(e.run_id.0);
    let stmt = Stmt::row(
        &JOURNAL,
        format!("{run} {}", e.key),
        vec![
            run.into(),
            (&e.key).into(),
            e.seq.into(),
            e.label.clone().into(),
            e.phase.clone().into(),
            e.status.as_str().into(),
            e.session_id.map(|s| id_text(s.0)).into(),
            (&e.prompt).into(),
            opt_json(&e.result).into(),
            e.error.clone().into(),
            e.input_tokens.into(),
            e.output_tokens.into(),
            e.cost_usd.into(),
            i64::from(e.cached).into(),
            ts(&e.started_at).into(),
            e.finished_at.as_ref().map(ts).into(),
        ],
    );
    Plan::exec(vec![stmt]).on_error(|e| match e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound("run"),
        e => db(e),
    })
}

pub(crate) fn stop_running(run: RunId, at: &Timestamp) -> Plan<u64> {
    Plan::new(
        vec![Stmt::new(
            "UPDATE workflow_agents SET status = 'cancelled', finished_at = ?2
             WHERE run_id = ?1 AND status = 'running'",
            vec![id_text(run.0).into(), ts(at).into()],
        )],
        |out| Ok(out.first().map(|o| o.changes).unwrap_or(0)),
    )
}

pub(crate) async fn get_journal(
    pool: &SqlitePool,
    run: RunId,
    key: &str,
) -> StoreResult<Option<JournalEntry>> {
    sqlx::query("SELECT * FROM workflow_agents WHERE run_id = ?1 AND key = ?2")
        .bind(id_text(run.0))
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(entry_from)
        .transpose()
}

pub(crate) async fn list_journal(pool: &SqlitePool, run: RunId) -> StoreResult<Vec<JournalEntry>> {
    let rows =
        sqlx::query("SELECT * FROM workflow_agents WHERE run_id = ?1 ORDER BY seq, started_at")
            .bind(id_text(run.0))
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.iter().map(entry_from).collect()
}
