use baton_core::time::Timestamp;
use baton_core::{AgentStatus, JournalEntry, Run, RunId, RunStatus, SessionId};
use baton_store::{PhaseTotals, StoreError, StoreResult};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::db;
use crate::plan::{is, wrote, Plan, RowKind, Stmt};
use crate::traces::{no_nul, pg_json};

pub(crate) fn run_from(row: &PgRow) -> StoreResult<Run> {
    let status: String = row.try_get("status").map_err(db)?;
    let args: Option<Json<Value>> = row.try_get("args").map_err(db)?;
    let result: Option<Json<Value>> = row.try_get("result").map_err(db)?;
    let Json(options): Json<Value> = row.try_get("options").map_err(db)?;
    let options = serde_json::from_value(options)
        .map_err(|_| StoreError::corrupt("workflow_runs", "options"))?;
    let Json(totals): Json<Value> = row.try_get("totals").map_err(db)?;
    let totals = serde_json::from_value(totals)
        .map_err(|_| StoreError::corrupt("workflow_runs", "totals"))?;
    let Json(log): Json<Vec<String>> = row
        .try_get("log")
        .map_err(|_| StoreError::corrupt("workflow_runs", "log"))?;
    Ok(Run {
        id: RunId(row.try_get("id").map_err(db)?),
        name: row.try_get("name").map_err(db)?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("workflow_runs", "status"))?,
        source: row.try_get("source").map_err(db)?,
        script: row.try_get("script").map_err(db)?,
        args: args.map(|Json(v)| v),
        options,
        result: result.map(|Json(v)| v),
        error: row.try_get("error").map_err(db)?,
        totals,
        log,
        created_at: row.try_get("created_at").map_err(db)?,
        started_at: row.try_get("started_at").map_err(db)?,
        finished_at: row.try_get("finished_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
        lease: crate::leases::lease_from(row)?,
    })
}

fn entry_from(row: &PgRow) -> StoreResult<JournalEntry> {
    let status: String = row.try_get("status").map_err(db)?;
    let result: Option<Json<Value>> = row.try_get("result").map_err(db)?;
    Ok(JournalEntry {
        run_id: RunId(row.try_get("run_id").map_err(db)?),
        key: row.try_get("key").map_err(db)?,
        seq: row.try_get("seq").map_err(db)?,
        label: row.try_get("label").map_err(db)?,
        phase: row.try_get("phase").map_err(db)?,
        status: AgentStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("workflow_agents", "status"))?,
        session_id: row
            .try_get::<Option<Uuid>, _>("session_id")
            .map_err(db)?
            .map(SessionId),
        prompt: row.try_get("prompt").map_err(db)?,
        result: result.map(|Json(v)| v),
        error: row.try_get("error").map_err(db)?,
        input_tokens: row.try_get("input_tokens").map_err(db)?,
        output_tokens: row.try_get("output_tokens").map_err(db)?,
        cost_usd: row.try_get("cost_usd").map_err(db)?,
        cached: row.try_get("cached").map_err(db)?,
        started_at: row.try_get("started_at").map_err(db)?,
        finished_at: row.try_get("finished_at").map_err(db)?,
        epoch: row.try_get("epoch").map_err(db)?,
    })
}

fn to_json(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).expect("run fields serialize")
}

fn j(v: &Value) -> String {
    serde_json::to_string(&pg_json(v)).expect("JSON serializes")
}

fn oj(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(j)
}

fn log_json(log: &[String]) -> String {
    j(&serde_json::to_value(log).expect("log serializes"))
}

pub(crate) async fn create(pool: &PgPool, r: &Run) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO workflow_runs (id, name, status, source, script, args, options, result, error, totals, log,
            created_at, started_at, finished_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10::jsonb, $11::jsonb, $12, $13, $14, $15)",
    )
    .bind(r.id.0)
    .bind(no_nul(&r.name))
    .bind(r.status.as_str())
    .bind(&r.source)
    .bind(no_nul(&r.script))
    .bind(oj(&r.args))
    .bind(j(&to_json(&r.options)))
    .bind(oj(&r.result))
    .bind(r.error.as_deref().map(no_nul))
    .bind(j(&to_json(&r.totals)))
    .bind(log_json(&r.log))
    .bind(r.created_at)
    .bind(r.started_at)
    .bind(r.finished_at)
    .bind(r.updated_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn update(pool: &PgPool, r: &Run) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE workflow_runs SET status = $2, args = $3::jsonb, options = $4::jsonb, result = $5::jsonb, error = $6,
            totals = $7::jsonb, log = $8::jsonb, started_at = $9, finished_at = $10, updated_at = $11, source = $12,
            script = $13, owner = $15,
            lease_expires_at = CASE WHEN $15::text IS NULL OR $2 IN ('completed', 'failed', 'cancelled')
                THEN NULL ELSE lease_expires_at END
         WHERE id = $1 AND epoch = $14",
    )
    .bind(r.id.0)
    .bind(r.status.as_str())
    .bind(oj(&r.args))
    .bind(j(&to_json(&r.options)))
    .bind(oj(&r.result))
    .bind(r.error.as_deref().map(no_nul))
    .bind(j(&to_json(&r.totals)))
    .bind(log_json(&r.log))
    .bind(r.started_at)
    .bind(r.finished_at)
    .bind(r.updated_at)
    .bind(&r.source)
    .bind(no_nul(&r.script))
    .bind(r.lease.epoch)
    .bind(r.lease.owner.as_deref())
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(refused(pool, r.id).await);
    }
    Ok(())
}

/// What a refused write of run `run` means: `Fenced` if it is there, `NotFound` if not.
pub(crate) async fn refused_journal(
    pool: &PgPool,
    run: RunId,
    r: StoreResult<()>,
) -> StoreResult<()> {
    match r {
        Err(StoreError::Fenced(_)) => Err(refused(pool, run).await),
        r => r,
    }
}

/// Why a write conditional on a run's epoch changed nothing.
async fn refused(pool: &PgPool, run: RunId) -> StoreError {
    match sqlx::query("SELECT 1 FROM workflow_runs WHERE id = $1")
        .bind(run.0)
        .fetch_optional(pool)
        .await
    {
        Ok(Some(_)) => StoreError::Fenced("run"),
        Ok(None) => StoreError::NotFound("run"),
        Err(e) => db(e),
    }
}

pub(crate) async fn get(pool: &PgPool, id: RunId) -> StoreResult<Option<Run>> {
    sqlx::query("SELECT * FROM workflow_runs WHERE id = $1")
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(run_from)
        .transpose()
}

pub(crate) async fn list(
    pool: &PgPool,
    status: Option<RunStatus>,
    limit: u32,
    before: Option<RunId>,
) -> StoreResult<Vec<Run>> {
    let rows = sqlx::query(
        "SELECT * FROM workflow_runs WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(status.map(|s| s.as_str()))
    .bind(before.map(|b| b.0))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(run_from).collect()
}

/// A journal entry, refused when the run's epoch has moved on. A claim may commit while
/// this statement runs (no lock is taken, so agents do not queue on the run's row); what
/// then keeps a late holder from overwriting its successor is the upsert's own
/// condition: an entry written under a higher epoch is never replaced.
static JOURNAL: RowKind = RowKind {
    table: "workflow_agents",
    sql: "INSERT INTO workflow_agents (run_id, key, seq, label, phase, status, session_id, prompt, result, error,
            input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, epoch)
         SELECT u.run_id, u.key, u.seq, u.label, u.phase, u.status, u.session_id, u.prompt, u.result::jsonb,
            u.error, u.input_tokens, u.output_tokens, u.cost_usd, u.cached, u.started_at, u.finished_at, u.epoch
         FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::uuid[],
            $8::text[], $9::text[], $10::text[], $11::int8[], $12::int8[], $13::float8[], $14::bool[],
            $15::timestamptz[], $16::timestamptz[], $17::int8[])
           AS u(run_id, key, seq, label, phase, status, session_id, prompt, result, error, input_tokens,
            output_tokens, cost_usd, cached, started_at, finished_at, epoch)
         WHERE EXISTS (SELECT 1 FROM workflow_runs r WHERE r.id = u.run_id AND r.epoch = u.epoch)
         ON CONFLICT (run_id, key) DO UPDATE SET seq = EXCLUDED.seq, label = EXCLUDED.label, phase = EXCLUDED.phase,
            status = EXCLUDED.status, session_id = EXCLUDED.session_id, prompt = EXCLUDED.prompt,
            result = EXCLUDED.result, error = EXCLUDED.error, input_tokens = EXCLUDED.input_tokens,
            output_tokens = EXCLUDED.output_tokens, cost_usd = EXCLUDED.cost_usd, cached = EXCLUDED.cached,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, epoch = EXCLUDED.epoch
         WHERE workflow_agents.epoch <= EXCLUDED.epoch
         RETURNING run_id::text || ' ' || key AS k",
    absorb: Some(|mine, later, theirs| {
        // The later entry of the same key under the same epoch is refused exactly when
        // this one is, and replaces it whole.
        let same_epoch = mine.get(16) == theirs.get(16);
        if is(later, &JOURNAL) && same_epoch {
            mine.clone_from_slice(theirs);
        }
        is(later, &JOURNAL) && same_epoch
    }),
};

/// Refused (`Fenced`) when the run's epoch has moved on or it is missing (`refused`
/// tells the two apart).
pub(crate) fn put_journal(e: &JournalEntry) -> Plan<()> {
    let stmt = Stmt::row(
        &JOURNAL,
        format!("{} {}", e.run_id.0, e.key),
        vec![
            e.run_id.0.into(),
            e.key.as_str().into(),
            e.seq.into(),
            e.label.as_deref().map(no_nul).into(),
            e.phase.as_deref().map(no_nul).into(),
            e.status.as_str().into(),
            e.session_id.map(|s| s.0).into(),
            no_nul(&e.prompt).into(),
            oj(&e.result).into(),
            e.error.as_deref().map(no_nul).into(),
            e.input_tokens.into(),
            e.output_tokens.into(),
            e.cost_usd.into(),
            e.cached.into(),
            e.started_at.into(),
            e.finished_at.into(),
            e.epoch.into(),
        ],
    );
    Plan::new(vec![stmt], |out| wrote(&out, 0, StoreError::Fenced("run")))
}

pub(crate) async fn stop_running(
    pool: &PgPool,
    run: RunId,
    epoch: i64,
    at: Timestamp,
) -> StoreResult<u64> {
    let mut tx = pool.begin().await.map_err(db)?;
    let held = sqlx::query("SELECT 1 FROM workflow_runs WHERE id = $1 AND epoch = $2 FOR SHARE")
        .bind(run.0)
        .bind(epoch)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    if held.is_none() {
        drop(tx);
        return Err(refused(pool, run).await);
    }
    let n = sqlx::query(
        "UPDATE workflow_agents SET status = 'cancelled', finished_at = $2
         WHERE run_id = $1 AND status = 'running'",
    )
    .bind(run.0)
    .bind(at)
    .execute(&mut *tx)
    .await
    .map(|r| r.rows_affected())
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(n)
}

pub(crate) async fn get_journal(
    pool: &PgPool,
    run: RunId,
    key: &str,
) -> StoreResult<Option<JournalEntry>> {
    sqlx::query("SELECT * FROM workflow_agents WHERE run_id = $1 AND key = $2")
        .bind(run.0)
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(entry_from)
        .transpose()
}

pub(crate) async fn journal_page(
    pool: &PgPool,
    run: RunId,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<JournalEntry>> {
    let rows = sqlx::query(
        "SELECT * FROM workflow_agents WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(run.0)
    .bind(after.unwrap_or(i64::MIN))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(entry_from).collect()
}

pub(crate) async fn journal_totals(pool: &PgPool, run: RunId) -> StoreResult<Vec<PhaseTotals>> {
    let rows = sqlx::query(
        "SELECT phase, status, COUNT(*)::bigint AS agents,
            SUM(input_tokens + output_tokens)::bigint AS tokens,
            SUM(COALESCE(cost_usd, 0))::float8 AS cost_usd, MIN(started_at) AS first_started,
            MAX(finished_at) AS last_finished,
            COUNT(*) FILTER (WHERE finished_at IS NULL)::bigint AS unfinished,
            MIN(seq)::bigint AS first_seq, MAX(seq)::bigint AS last_seq
         FROM workflow_agents WHERE run_id = $1 GROUP BY phase, status ORDER BY first_seq",
    )
    .bind(run.0)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let status: String = row.try_get("status").map_err(db)?;
            Ok(PhaseTotals {
                phase: row.try_get("phase").map_err(db)?,
                status: AgentStatus::parse(&status)
                    .ok_or_else(|| StoreError::corrupt("workflow_agents", "status"))?,
                agents: row.try_get("agents").map_err(db)?,
                tokens: row.try_get("tokens").map_err(db)?,
                cost_usd: row.try_get("cost_usd").map_err(db)?,
                first_started: row.try_get("first_started").map_err(db)?,
                last_finished: row.try_get("last_finished").map_err(db)?,
                unfinished: row.try_get("unfinished").map_err(db)?,
                first_seq: row.try_get("first_seq").map_err(db)?,
                last_seq: row.try_get("last_seq").map_err(db)?,
            })
        })
        .collect()
}

pub(crate) async fn list_journal(pool: &PgPool, run: RunId) -> StoreResult<Vec<JournalEntry>> {
    let rows =
        sqlx::query("SELECT * FROM workflow_agents WHERE run_id = $1 ORDER BY seq, started_at")
            .bind(run.0)
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.iter().map(entry_from).collect()
}
