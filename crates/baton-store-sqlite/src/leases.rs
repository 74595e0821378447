//! Leases on runs and chats' sessions, control requests and instance heartbeats, as the
//! Postgres store keeps them. One process holds a SQLite file, so nobody races these;
//! they keep the two backends one behaviour.
use std::time::Duration;

use baton_core::{time, Instance, Lease, Run, RunControl, RunId, Session, SessionId, Trace};
use baton_store::{Held, StoreResult};
use sqlx::SqlitePool;

use crate::db;
use crate::plan::{Plan, Stmt};
use crate::rows::{id_text, ts, Cols};
use crate::runs::run_from;
use crate::sessions::{close_traces, session_from};
use crate::traces::trace_from;

pub(crate) fn lease_from(c: &Cols<'_>) -> StoreResult<Lease> {
    Ok(Lease {
        owner: c.opt_text("owner")?,
        epoch: c.int("epoch")?,
        expires_at: c.opt_time("lease_expires_at")?,
    })
}

/// Now and `ttl` from now, as stored.
fn window(ttl: Duration) -> (i64, i64) {
    let now = ts(&time::now());
    (
        now,
        now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)),
    )
}

/// Claims up to `limit` rows of `table` matching `open` that nobody holds (no owner, or
/// another process's lapsed lease), oldest first.
pub(crate) fn claim_unheld(
    table: &str,
    open: &str,
    owner: &str,
    ttl: Duration,
    limit: u32,
) -> Stmt {
    let (now, until) = window(ttl);
    Stmt::new(
        format!(
            "UPDATE {table} SET owner = ?1, epoch = epoch + 1, lease_expires_at = ?2
             WHERE id IN (
                SELECT id FROM {table}
                WHERE {open}
                  AND (owner IS NULL OR (owner <> ?1
                       AND (lease_expires_at IS NULL OR lease_expires_at < ?3)))
                ORDER BY created_at, id LIMIT ?4)
             RETURNING *"
        ),
        vec![
            owner.into(),
            until.into(),
            now.into(),
            i64::from(limit).into(),
        ],
    )
}

/// Claims row `id` of `table` when `free` holds for it (`?2` is the claimer, `?4` now).
fn claim_row(table: &str, free: &str, id: uuid::Uuid, owner: &str, ttl: Duration) -> Stmt {
    let (now, until) = window(ttl);
    Stmt::new(
        format!(
            "UPDATE {table} SET owner = ?2, epoch = epoch + 1, lease_expires_at = ?3
             WHERE id = ?1 AND ({free}) RETURNING *"
        ),
        vec![id_text(id).into(), owner.into(), until.into(), now.into()],
    )
}

const LAPSED: &str = "owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at < ?4";

pub(crate) fn claim_runs(owner: &str, ttl: Duration, limit: u32) -> Plan<Vec<Run>> {
    let open = "status IN ('queued', 'running')";
    Plan::new(
        vec![claim_unheld("workflow_runs", open, owner, ttl, limit)],
        |out| {
            let mut runs: Vec<Run> = out[0]
                .rows
                .iter()
                .map(run_from)
                .collect::<StoreResult<_>>()?;
            runs.sort_by_key(|r| (r.created_at, r.id.0));
            Ok(runs)
        },
    )
}

pub(crate) fn claim_run(id: RunId, owner: &str, ttl: Duration) -> Plan<Option<Run>> {
    let free = format!("owner = ?2 OR {LAPSED}");
    Plan::new(
        vec![claim_row("workflow_runs", &free, id.0, owner, ttl)],
        |out| out[0].rows.first().map(run_from).transpose(),
    )
}

pub(crate) fn claim_sessions(owner: &str, ttl: Duration, limit: u32) -> Plan<Vec<Session>> {
    let open = "status = 'running' AND chat_id IS NOT NULL";
    Plan::new(
        vec![claim_unheld("agent_sessions", open, owner, ttl, limit)],
        |out| out[0].rows.iter().map(session_from).collect(),
    )
}

pub(crate) fn claim_session(id: SessionId, owner: &str, ttl: Duration) -> Plan<Option<Session>> {
    let free = format!("status <> 'running' OR {LAPSED}");
    Plan::new(
        vec![claim_row("agent_sessions", &free, id.0, owner, ttl)],
        |out| out[0].rows.first().map(session_from).transpose(),
    )
}

pub(crate) fn renew(owner: &str, ttl: Duration) -> Plan<Held> {
    let (_, until) = window(ttl);
    Plan::new(
        vec![
            Stmt::new(
                "UPDATE workflow_runs SET lease_expires_at = ?2
                 WHERE owner = ?1 AND status IN ('queued', 'running', 'paused') RETURNING id, epoch",
                vec![owner.into(), until.into()],
            ),
            Stmt::new(
                "UPDATE agent_sessions SET lease_expires_at = ?2
                 WHERE owner = ?1 AND status = 'running' RETURNING id, epoch",
                vec![owner.into(), until.into()],
            ),
            Stmt::new(
                "UPDATE tasks SET lease_expires_at = ?2
                 WHERE owner = ?1 AND status IN ('queued', 'running') RETURNING id, epoch",
                vec![owner.into(), until.into()],
            ),
        ],
        |out| {
            let pairs = |i: usize, table| -> StoreResult<Vec<(uuid::Uuid, i64)>> {
                out[i]
                    .rows
                    .iter()
                    .map(|r| {
                        let c = Cols::new(r, table);
                        Ok((c.uuid("id")?, c.int("epoch")?))
                    })
                    .collect()
            };
            Ok(Held {
                runs: pairs(0, "workflow_runs")?
                    .into_iter()
                    .map(|(id, e)| (RunId(id), e))
                    .collect(),
                sessions: pairs(1, "agent_sessions")?
                    .into_iter()
                    .map(|(id, e)| (SessionId(id), e))
                    .collect(),
                tasks: pairs(2, "tasks")?
                    .into_iter()
                    .map(|(id, e)| (baton_core::TaskId(id), e))
                    .collect(),
            })
        },
    )
}

pub(crate) fn release(owner: Option<&str>) -> Plan<u64> {
    let stmt = |table: &str| {
        Stmt::new(
            format!(
                "UPDATE {table} SET owner = NULL, lease_expires_at = NULL
                 WHERE owner IS NOT NULL AND (?1 IS NULL OR owner = ?1)"
            ),
            vec![owner.into()],
        )
    };
    Plan::new(
        vec![stmt("workflow_runs"), stmt("agent_sessions"), stmt("tasks")],
        |out| Ok(out.iter().map(|o| o.changes).sum()),
    )
}

pub(crate) fn request_control(id: RunId, control: RunControl) -> Plan<()> {
    Plan::new(
        vec![Stmt::new(
            "UPDATE workflow_runs SET control = ?2 WHERE id = ?1",
            vec![id_text(id.0).into(), control.as_str().into()],
        )],
        |out| crate::plan::changed(&out, 0, "run"),
    )
}

pub(crate) fn take_controls(owner: &str) -> Plan<Vec<(RunId, RunControl)>> {
    Plan::new(
        vec![
            Stmt::new(
                "SELECT id, control FROM workflow_runs WHERE owner = ?1 AND control IS NOT NULL",
                vec![owner.into()],
            ),
            Stmt::new(
                "UPDATE workflow_runs SET control = NULL WHERE owner = ?1 AND control IS NOT NULL",
                vec![owner.into()],
            ),
        ],
        |out| {
            out[0]
                .rows
                .iter()
                .map(|r| {
                    let c = Cols::new(r, "workflow_runs");
                    Ok((
                        RunId(c.uuid("id")?),
                        c.parsed("control", RunControl::parse)?,
                    ))
                })
                .collect()
        },
    )
}

pub(crate) fn request_session_cancel(id: SessionId) -> Plan<()> {
    Plan::new(
        vec![Stmt::new(
            "UPDATE agent_sessions SET cancel_requested = 1 WHERE id = ?1",
            vec![id_text(id.0).into()],
        )],
        |out| crate::plan::changed(&out, 0, "session"),
    )
}

pub(crate) fn take_session_cancels(owner: &str) -> Plan<Vec<SessionId>> {
    Plan::new(
        vec![Stmt::new(
            "UPDATE agent_sessions SET cancel_requested = 0
             WHERE owner = ?1 AND cancel_requested = 1 RETURNING id",
            vec![owner.into()],
        )],
        |out| {
            out[0]
                .rows
                .iter()
                .map(|r| Ok(SessionId(Cols::new(r, "agent_sessions").uuid("id")?)))
                .collect()
        },
    )
}

pub(crate) fn close_run_sessions(run: RunId, reason: &str) -> Plan<Vec<Trace>> {
    let now = ts(&time::now());
    Plan::new(
        vec![
            Stmt::new(
                "UPDATE agent_sessions SET status = 'cancelled', error = ?2, updated_at = ?3
                 WHERE run_id = ?1 AND status = 'running'",
                vec![id_text(run.0).into(), reason.into(), now.into()],
            ),
            Stmt::new(
                close_traces("run_id"),
                vec![
                    id_text(run.0).into(),
                    reason.into(),
                    now.into(),
                    baton_store::text_words(reason).into(),
                ],
            ),
        ],
        |out| out[1].rows.iter().map(trace_from).collect(),
    )
}

pub(crate) fn heartbeat(id: &str, started_at: &baton_core::Timestamp, ttl: Duration) -> Plan<()> {
    let (now, until) = window(ttl);
    Plan::exec(vec![Stmt::new(
        "INSERT INTO instances (id, started_at, seen_at, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, expires_at = excluded.expires_at",
        vec![id.into(), ts(started_at).into(), now.into(), until.into()],
    )])
}

pub(crate) fn forget_instance(id: &str) -> Plan<()> {
    Plan::exec(vec![Stmt::new(
        "DELETE FROM instances WHERE id = ?1",
        vec![id.into()],
    )])
}

pub(crate) async fn live_instances(pool: &SqlitePool) -> StoreResult<Vec<Instance>> {
    let rows =
        sqlx::query("SELECT * FROM instances WHERE expires_at >= ?1 ORDER BY started_at, id")
            .bind(ts(&time::now()))
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.iter()
        .map(|r| {
            let c = Cols::new(r, "instances");
            Ok(Instance {
                id: c.text("id")?,
                started_at: c.time("started_at")?,
                seen_at: c.time("seen_at")?,
                expires_at: c.time("expires_at")?,
            })
        })
        .collect()
}
