//! Leases on runs and chats' sessions, control requests and instance heartbeats. Times
//! come from the database server's clock, the one clock every instance shares.
use std::time::Duration;

use baton_core::{Instance, Lease, Run, RunControl, RunId, Session, SessionId, Trace};
use baton_store::{Held, StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::db;
use crate::runs::run_from;
use crate::sessions::{close_traces, session_from};
use crate::traces::{no_nul, trace_from};

/// Wakes instances to claim work or read control requests.
pub(crate) const WORK_CHANNEL: &str = "baton_work";

pub(crate) fn lease_from(row: &PgRow) -> StoreResult<Lease> {
    Ok(Lease {
        owner: row.try_get("owner").map_err(db)?,
        epoch: row.try_get("epoch").map_err(db)?,
        expires_at: row.try_get("lease_expires_at").map_err(db)?,
    })
}

fn secs(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

/// Claims up to `limit` rows of `table` matching `open` that nobody holds (no owner, or
/// another instance's lapsed lease), oldest first; each goes to one claimer only.
pub(crate) async fn claim_unheld(
    pool: &PgPool,
    table: &str,
    open: &str,
    owner: &str,
    ttl: Duration,
    limit: u32,
) -> StoreResult<Vec<PgRow>> {
    sqlx::query(&format!(
        "UPDATE {table} SET owner = $1, epoch = epoch + 1,
            lease_expires_at = now() + make_interval(secs => $2)
         WHERE id IN (
            SELECT id FROM {table}
            WHERE {open}
              AND (owner IS NULL OR (owner <> $1
                   AND (lease_expires_at IS NULL OR lease_expires_at < now())))
            ORDER BY created_at, id
            LIMIT $3
            FOR UPDATE SKIP LOCKED)
         RETURNING *"
    ))
    .bind(owner)
    .bind(secs(ttl))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)
}

/// Claims row `id` of `table` when `free` holds for it (`$2` is the claimer).
async fn claim_row(
    pool: &PgPool,
    table: &str,
    free: &str,
    id: uuid::Uuid,
    owner: &str,
    ttl: Duration,
) -> StoreResult<Option<PgRow>> {
    sqlx::query(&format!(
        "UPDATE {table} SET owner = $2, epoch = epoch + 1,
            lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND ({free}) RETURNING *"
    ))
    .bind(id)
    .bind(owner)
    .bind(secs(ttl))
    .fetch_optional(pool)
    .await
    .map_err(db)
}

const LAPSED: &str = "owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at < now()";

pub(crate) async fn claim_runs(
    pool: &PgPool,
    owner: &str,
    ttl: Duration,
    limit: u32,
) -> StoreResult<Vec<Run>> {
    let rows = claim_unheld(
        pool,
        "workflow_runs",
        "status IN ('queued', 'running')",
        owner,
        ttl,
        limit,
    )
    .await?;
    let mut runs: Vec<Run> = rows.iter().map(run_from).collect::<StoreResult<_>>()?;
    runs.sort_by_key(|r| (r.created_at, r.id.0));
    Ok(runs)
}

pub(crate) async fn claim_run(
    pool: &PgPool,
    id: RunId,
    owner: &str,
    ttl: Duration,
) -> StoreResult<Option<Run>> {
    let free = format!("owner = $2 OR {LAPSED}");
    claim_row(pool, "workflow_runs", &free, id.0, owner, ttl)
        .await?
        .as_ref()
        .map(run_from)
        .transpose()
}

pub(crate) async fn claim_sessions(
    pool: &PgPool,
    owner: &str,
    ttl: Duration,
    limit: u32,
) -> StoreResult<Vec<Session>> {
    let open = "status = 'running' AND chat_id IS NOT NULL";
    claim_unheld(pool, "agent_sessions", open, owner, ttl, limit)
        .await?
        .iter()
        .map(session_from)
        .collect()
}

pub(crate) async fn claim_session(
    pool: &PgPool,
    id: SessionId,
    owner: &str,
    ttl: Duration,
) -> StoreResult<Option<Session>> {
    let free = format!("status <> 'running' OR {LAPSED}");
    claim_row(pool, "agent_sessions", &free, id.0, owner, ttl)
        .await?
        .as_ref()
        .map(session_from)
        .transpose()
}

pub(crate) async fn renew(pool: &PgPool, owner: &str, ttl: Duration) -> StoreResult<Held> {
    let mut tx = pool.begin().await.map_err(db)?;
    let runs = sqlx::query(
        "UPDATE workflow_runs SET lease_expires_at = now() + make_interval(secs => $2)
         WHERE owner = $1 AND status IN ('queued', 'running', 'paused') RETURNING id, epoch",
    )
    .bind(owner)
    .bind(secs(ttl))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let sessions = sqlx::query(
        "UPDATE agent_sessions SET lease_expires_at = now() + make_interval(secs => $2)
         WHERE owner = $1 AND status = 'running' RETURNING id, epoch",
    )
    .bind(owner)
    .bind(secs(ttl))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let tasks = sqlx::query(
        "UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $2)
         WHERE owner = $1 AND status IN ('queued', 'running') RETURNING id, epoch",
    )
    .bind(owner)
    .bind(secs(ttl))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    let pair = |r: &PgRow| -> StoreResult<(uuid::Uuid, i64)> {
        Ok((
            r.try_get("id").map_err(db)?,
            r.try_get("epoch").map_err(db)?,
        ))
    };
    Ok(Held {
        runs: runs
            .iter()
            .map(|r| pair(r).map(|(id, e)| (RunId(id), e)))
            .collect::<StoreResult<_>>()?,
        sessions: sessions
            .iter()
            .map(|r| pair(r).map(|(id, e)| (SessionId(id), e)))
            .collect::<StoreResult<_>>()?,
        tasks: tasks
            .iter()
            .map(|r| pair(r).map(|(id, e)| (baton_core::TaskId(id), e)))
            .collect::<StoreResult<_>>()?,
    })
}

pub(crate) async fn release(pool: &PgPool, owner: Option<&str>) -> StoreResult<u64> {
    let mut tx = pool.begin().await.map_err(db)?;
    let mut n = 0;
    for table in ["workflow_runs", "agent_sessions", "tasks"] {
        n += sqlx::query(&format!(
            "UPDATE {table} SET owner = NULL, lease_expires_at = NULL
             WHERE owner IS NOT NULL AND ($1::text IS NULL OR owner = $1)"
        ))
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
    }
    tx.commit().await.map_err(db)?;
    if n > 0 {
        notify(pool).await?;
    }
    Ok(n)
}

pub(crate) async fn request_control(
    pool: &PgPool,
    id: RunId,
    control: RunControl,
) -> StoreResult<()> {
    let done = sqlx::query("UPDATE workflow_runs SET control = $2 WHERE id = $1")
        .bind(id.0)
        .bind(control.as_str())
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("run"));
    }
    notify(pool).await
}

pub(crate) async fn take_controls(
    pool: &PgPool,
    owner: &str,
) -> StoreResult<Vec<(RunId, RunControl)>> {
    let rows = sqlx::query(
        "UPDATE workflow_runs r SET control = NULL FROM (
            SELECT id, control FROM workflow_runs WHERE owner = $1 AND control IS NOT NULL FOR UPDATE
         ) AS old WHERE r.id = old.id RETURNING r.id, old.control",
    )
    .bind(owner)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let c: String = r.try_get("control").map_err(db)?;
            Ok((
                RunId(r.try_get("id").map_err(db)?),
                RunControl::parse(&c)
                    .ok_or_else(|| StoreError::corrupt("workflow_runs", "control"))?,
            ))
        })
        .collect()
}

pub(crate) async fn request_session_cancel(pool: &PgPool, id: SessionId) -> StoreResult<()> {
    let done = sqlx::query("UPDATE agent_sessions SET cancel_requested = TRUE WHERE id = $1")
        .bind(id.0)
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("session"));
    }
    notify(pool).await
}

pub(crate) async fn take_session_cancels(
    pool: &PgPool,
    owner: &str,
) -> StoreResult<Vec<SessionId>> {
    let rows = sqlx::query(
        "UPDATE agent_sessions SET cancel_requested = FALSE
         WHERE owner = $1 AND cancel_requested RETURNING id",
    )
    .bind(owner)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| Ok(SessionId(r.try_get("id").map_err(db)?)))
        .collect()
}

pub(crate) async fn notify(pool: &PgPool) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WORK_CHANNEL)
        .execute(pool)
        .await
        .map(drop)
        .map_err(db)
}

pub(crate) async fn listen(pool: &PgPool) -> StoreResult<baton_store::WorkNotifications> {
    async fn listener(pool: &PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
        let mut l = sqlx::postgres::PgListener::connect_with(pool).await?;
        l.listen(WORK_CHANNEL).await?;
        Ok(l)
    }
    let first = listener(pool).await.map_err(db)?;
    let stream = futures_util::stream::unfold((first, pool.clone()), |(mut l, pool)| async move {
        if let Ok(Some(_)) = l.try_recv().await {
            return Some(((), (l, pool)));
        }
        // Lost: a wake-up may have been missed, so one is reported once listening again.
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match listener(&pool).await {
                Ok(new) => return Some(((), (new, pool))),
                Err(e) => tracing::warn!(error = %e, "listening for work again failed; retrying"),
            }
        }
    });
    Ok(Box::pin(stream))
}

pub(crate) async fn close_run_sessions(
    pool: &PgPool,
    run: RunId,
    reason: &str,
) -> StoreResult<Vec<Trace>> {
    let mut tx = pool.begin().await.map_err(db)?;
    let now = baton_core::time::now();
    sqlx::query(
        "UPDATE agent_sessions SET status = 'cancelled', error = $2, updated_at = $3
         WHERE run_id = $1 AND status = 'running'",
    )
    .bind(run.0)
    .bind(no_nul(reason))
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let rows = sqlx::query(&close_traces("run_id"))
        .bind(run.0)
        .bind(no_nul(reason))
        .bind(now)
        .bind(baton_store::text_words(reason))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    rows.iter().map(trace_from).collect()
}

pub(crate) async fn heartbeat(
    pool: &PgPool,
    id: &str,
    started_at: baton_core::Timestamp,
    ttl: Duration,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO instances (id, started_at, seen_at, expires_at)
         VALUES ($1, $2, now(), now() + make_interval(secs => $3))
         ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at, expires_at = EXCLUDED.expires_at",
    )
    .bind(id)
    .bind(started_at)
    .bind(secs(ttl))
    .execute(pool)
    .await
    .map(drop)
    .map_err(db)
}

pub(crate) async fn live_instances(pool: &PgPool) -> StoreResult<Vec<Instance>> {
    // Heartbeats that lapsed long ago are of no use to anyone.
    sqlx::query("DELETE FROM instances WHERE expires_at < now() - interval '1 day'")
        .execute(pool)
        .await
        .map_err(db)?;
    let rows =
        sqlx::query("SELECT * FROM instances WHERE expires_at >= now() ORDER BY started_at, id")
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(Instance {
                id: r.try_get("id").map_err(db)?,
                started_at: r.try_get("started_at").map_err(db)?,
                seen_at: r.try_get("seen_at").map_err(db)?,
                expires_at: r.try_get("expires_at").map_err(db)?,
            })
        })
        .collect()
}

pub(crate) async fn forget_instance(pool: &PgPool, id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM instances WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
        .map_err(db)
}
