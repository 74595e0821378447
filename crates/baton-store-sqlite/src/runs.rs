use baton_core::time::Timestamp;
use baton_core::{AgentStatus, JournalEntry, Run, RunId, RunStatus, SessionId};
use baton_store::{PhaseTotals, StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use crate::db;
use crate::plan::{is, Outcome, Plan, RowKind, Stmt};
use crate::rows::{id_text, ts, Cols};

pub(crate) fn run_from(row: &SqliteRow) -> StoreResult<Run> {
    let c = Cols::new(row, "workflow_runs");
    Ok(Run {
        id: RunId(c.uuid("id")?),
        name: c.text("name")?,
        status: c.parsed("status", RunStatus::parse)?,
        source: c.text("source")?,
        script: c.text("script")?,
        args: c.opt_json("args")?,
        options: serde_json::from_value(c.json("options")?)
            .map_err(|_| StoreError::corrupt("workflow_runs", "options"))?,
        result: c.opt_json("result")?,
        error: c.opt_text("error")?,
        totals: serde_json::from_value(c.json("totals")?)
            .map_err(|_| StoreError::corrupt("workflow_runs", "totals"))?,
        log: serde_json::from_value(c.json("log")?)
            .map_err(|_| StoreError::corrupt("workflow_runs", "log"))?,
        created_at: c.time("created_at")?,
        started_at: c.opt_time("started_at")?,
        finished_at: c.opt_time("finished_at")?,
        updated_at: c.time("updated_at")?,
        lease: crate::leases::lease_from(&c)?,
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
        epoch: c.int("epoch")?,
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
            serde_json::to_string(&r.options).expect("options serialize").into(),
            opt_json(&r.result).into(),
            r.error.clone().into(),
            serde_json::to_string(&r.totals).expect("totals serialize").into(),
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
            log = ?8, started_at = ?9, finished_at = ?10, updated_at = ?11, source = ?12, script = ?13,
            owner = ?15, lease_expires_at = CASE WHEN ?15 IS NULL OR ?2 IN ('completed', 'failed', 'cancelled')
                THEN NULL ELSE lease_expires_at END
         WHERE id = ?1 AND epoch = ?14",
        vec![
            id_text(r.id.0).into(),
            r.status.as_str().into(),
            opt_json(&r.args).into(),
            serde_json::to_string(&r.options).expect("options serialize").into(),
            opt_json(&r.result).into(),
            r.error.clone().into(),
            serde_json::to_string(&r.totals).expect("totals serialize").into(),
            serde_json::to_string(&r.log).expect("log serializes").into(),
            r.started_at.as_ref().map(ts).into(),
            r.finished_at.as_ref().map(ts).into(),
            ts(&r.updated_at).into(),
            (&r.source).into(),
            (&r.script).into(),
            r.lease.epoch.into(),
            r.lease.owner.clone().into(),
        ],
    );
    Plan::new(vec![stmt, exists(r.id)], |out| {
        fenced(&out, out.first().is_some_and(|o| o.changes > 0))
    })
}

/// A statement that returns a row if run `id` exists.
fn exists(id: RunId) -> Stmt {
    Stmt::new(
        "SELECT 1 FROM workflow_runs WHERE id = ?1",
        vec![id_text(id.0).into()],
    )
}

/// The answer of a write conditional on a run's epoch whose last statement is `exists`.
fn fenced(out: &[Outcome], written: bool) -> StoreResult<()> {
    if written {
        Ok(())
    } else if out.last().is_some_and(|o| !o.rows.is_empty()) {
        Err(StoreError::Fenced("run"))
    } else {
        Err(StoreError::NotFound("run"))
    }
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
            result, error, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, epoch)
         VALUES ",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    tail: "ON CONFLICT (run_id, key) DO UPDATE SET seq = excluded.seq, epoch = excluded.epoch, label = excluded.label,
            phase = excluded.phase, status = excluded.status, session_id = excluded.session_id,
            prompt = excluded.prompt, result = excluded.result, error = excluded.error,
            input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
            cost_usd = excluded.cost_usd, cached = excluded.cached, started_at = excluded.started_at,
            finished_at = excluded.finished_at",
    // An upsert of the whole row: a later one of the same key replaces it.
    absorb: Some(|mine, later, theirs| {
        if is(later, &JOURNAL) {
            mine.clone_from_slice(theirs);
        }
        is(later, &JOURNAL)
    }),
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
            e.epoch.into(),
        ],
    );
    Plan::exec(vec![stmt]).on_error(|e| match e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound("run"),
        e => db(e),
    })
}

pub(crate) fn stop_running(run: RunId, epoch: i64, at: &Timestamp) -> Plan<u64> {
    Plan::new(
        vec![
            Stmt::new(
                "SELECT 1 FROM workflow_runs WHERE id = ?1 AND epoch = ?2",
                vec![id_text(run.0).into(), epoch.into()],
            ),
            Stmt::new(
                "UPDATE workflow_agents SET status = 'cancelled', finished_at = ?2
                 WHERE run_id = ?1 AND status = 'running'
                   AND EXISTS (SELECT 1 FROM workflow_runs WHERE id = ?1 AND epoch = ?3)",
                vec![id_text(run.0).into(), ts(at).into(), epoch.into()],
            ),
            exists(run),
        ],
        |out| {
            let held = out.first().is_some_and(|o| !o.rows.is_empty());
            fenced(&out, held)?;
            Ok(out.get(1).map(|o| o.changes).unwrap_or(0))
        },
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

pub(crate) async fn journal_page(
    pool: &SqlitePool,
    run: RunId,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<JournalEntry>> {
    let rows = sqlx::query(
        "SELECT * FROM workflow_agents WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )
    .bind(id_text(run.0))
    .bind(after.unwrap_or(i64::MIN))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(entry_from).collect()
}

pub(crate) async fn journal_totals(pool: &SqlitePool, run: RunId) -> StoreResult<Vec<PhaseTotals>> {
    let rows = sqlx::query(
        "SELECT phase, status, COUNT(*) AS agents, SUM(input_tokens + output_tokens) AS tokens,
            SUM(COALESCE(cost_usd, 0)) AS cost_usd, MIN(started_at) AS first_started,
            MAX(finished_at) AS last_finished, SUM(finished_at IS NULL) AS unfinished,
            MIN(seq) AS first_seq, MAX(seq) AS last_seq
         FROM workflow_agents WHERE run_id = ?1 GROUP BY phase, status ORDER BY first_seq",
    )
    .bind(id_text(run.0))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let c = Cols::new(row, "workflow_agents");
            Ok(PhaseTotals {
                phase: c.opt_text("phase")?,
                status: c.parsed("status", AgentStatus::parse)?,
                agents: c.int("agents")?,
                tokens: c.int("tokens")?,
                cost_usd: c.opt_real("cost_usd")?.unwrap_or(0.0),
                first_started: c.time("first_started")?,
                last_finished: c.opt_time("last_finished")?,
                unfinished: c.int("unfinished")?,
                first_seq: c.int("first_seq")?,
                last_seq: c.int("last_seq")?,
            })
        })
        .collect()
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
