//! Background tasks: rows, claims under a lease (`FOR UPDATE SKIP LOCKED`), fenced
//! updates, cancel requests.
use std::time::Duration;

use baton_core::{ChatId, SessionId, Task, TaskId, TaskStatus, Timestamp};
use baton_store::{StoreError, StoreResult};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::db;
use crate::leases::{claim_unheld, lease_from, notify};
use crate::traces::no_nul;

pub(crate) fn task_from(row: &PgRow) -> StoreResult<Task> {
    let corrupt = |col| StoreError::corrupt("tasks", col);
    let status: String = row.try_get("status").map_err(db)?;
    let Json(capabilities): Json<Value> = row.try_get("capabilities").map_err(db)?;
    let tools: Option<Json<Value>> = row.try_get("tools").map_err(db)?;
    let Json(progress): Json<Value> = row.try_get("progress").map_err(db)?;
    let result: Option<Json<Value>> = row.try_get("result").map_err(db)?;
    let depth: i32 = row.try_get("depth").map_err(db)?;
    let uuid = |col: &str| -> StoreResult<Option<Uuid>> { row.try_get(col).map_err(db) };
    Ok(Task {
        id: TaskId(row.try_get("id").map_err(db)?),
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        label: row.try_get("label").map_err(db)?,
        prompt: row.try_get("prompt").map_err(db)?,
        model: row.try_get("model").map_err(db)?,
        workspace: row.try_get("workspace").map_err(db)?,
        capabilities: serde_json::from_value(capabilities).map_err(|_| corrupt("capabilities"))?,
        tools: tools
            .map(|Json(v)| serde_json::from_value(v))
            .transpose()
            .map_err(|_| corrupt("tools"))?,
        parent_session_id: uuid("parent_session_id")?.map(SessionId),
        chat_id: uuid("chat_id")?.map(ChatId),
        depth: u32::try_from(depth).map_err(|_| corrupt("depth"))?,
        session_id: uuid("session_id")?.map(SessionId),
        progress: serde_json::from_value(progress).map_err(|_| corrupt("progress"))?,
        result: match result {
            None => None,
            Some(Json(Value::String(s))) => Some(s),
            Some(_) => return Err(corrupt("result")),
        },
        error: row.try_get("error").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        started_at: row.try_get("started_at").map_err(db)?,
        finished_at: row.try_get("finished_at").map_err(db)?,
        notified_at: row.try_get("notified_at").map_err(db)?,
        lease: lease_from(row)?,
    })
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("task fields serialize")
}

/// The result text as a JSON string, NUL-free (Postgres text cannot hold NUL).
fn result_json(r: &Option<String>) -> Option<String> {
    r.as_deref().map(|s| json(&no_nul(s)))
}

pub(crate) async fn create(pool: &PgPool, t: &Task) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tasks (id, kind, status, label, prompt, model, workspace, capabilities, tools,
            parent_session_id, chat_id, depth, session_id, progress, result, error,
            created_at, started_at, finished_at, notified_at)
         VALUES ($1, 'subagent', $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13::jsonb,
            $14::jsonb, $15, $16, $17, $18, $19)",
    )
    .bind(t.id.0)
    .bind(t.status.as_str())
    .bind(t.label.as_deref().map(no_nul))
    .bind(no_nul(&t.prompt))
    .bind(t.model.as_deref())
    .bind(t.workspace.as_deref())
    .bind(json(&t.capabilities))
    .bind(t.tools.as_ref().map(json))
    .bind(t.parent_session_id.map(|s| s.0))
    .bind(t.chat_id.map(|c| c.0))
    .bind(i32::try_from(t.depth).unwrap_or(i32::MAX))
    .bind(t.session_id.map(|s| s.0))
    .bind(json(&t.progress))
    .bind(result_json(&t.result))
    .bind(t.error.as_deref().map(no_nul))
    .bind(t.created_at)
    .bind(t.started_at)
    .bind(t.finished_at)
    .bind(t.notified_at)
    .execute(pool)
    .await
    .map_err(db)?;
    notify(pool).await
}

pub(crate) async fn update(pool: &PgPool, t: &Task) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE tasks SET status = $2, session_id = $3, progress = $4::jsonb, result = $5::jsonb,
            error = $6, started_at = $7, finished_at = $8,
            owner = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN NULL ELSE owner END,
            lease_expires_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled')
                THEN NULL ELSE lease_expires_at END
         WHERE id = $1 AND epoch = $9 AND status NOT IN ('completed', 'failed', 'cancelled')",
    )
    .bind(t.id.0)
    .bind(t.status.as_str())
    .bind(t.session_id.map(|s| s.0))
    .bind(json(&t.progress))
    .bind(result_json(&t.result))
    .bind(t.error.as_deref().map(no_nul))
    .bind(t.started_at)
    .bind(t.finished_at)
    .bind(t.lease.epoch)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() > 0 {
        return Ok(());
    }
    let now: Option<String> = sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1")
        .bind(t.id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    match now.as_deref().map(TaskStatus::parse) {
        None => Err(StoreError::NotFound("task")),
        Some(Some(s)) if s.is_finished() => Err(StoreError::Conflict(format!(
            "the task already ended ({})",
            s.as_str()
        ))),
        Some(_) => Err(StoreError::Fenced("task")),
    }
}

pub(crate) async fn cancel_queued(
    pool: &PgPool,
    id: TaskId,
    at: Timestamp,
    reason: &str,
) -> StoreResult<Option<Task>> {
    sqlx::query(
        "UPDATE tasks SET status = 'cancelled', error = $3, finished_at = $2
         WHERE id = $1 AND status = 'queued' AND owner IS NULL RETURNING *",
    )
    .bind(id.0)
    .bind(at)
    .bind(no_nul(reason))
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .as_ref()
    .map(task_from)
    .transpose()
}

pub(crate) async fn claim(
    pool: &PgPool,
    owner: &str,
    ttl: Duration,
    limit: u32,
) -> StoreResult<Vec<Task>> {
    let rows = claim_unheld(
        pool,
        "tasks",
        "status IN ('queued', 'running')",
        owner,
        ttl,
        limit,
    )
    .await?;
    let mut tasks: Vec<Task> = rows.iter().map(task_from).collect::<StoreResult<_>>()?;
    tasks.sort_by_key(|t| (t.created_at, t.id.0));
    Ok(tasks)
}

pub(crate) async fn request_cancel(pool: &PgPool, id: TaskId) -> StoreResult<()> {
    let done = sqlx::query("UPDATE tasks SET cancel_requested = TRUE WHERE id = $1")
        .bind(id.0)
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("task"));
    }
    notify(pool).await
}

pub(crate) async fn take_cancels(pool: &PgPool, owner: &str) -> StoreResult<Vec<TaskId>> {
    let rows = sqlx::query(
        "UPDATE tasks SET cancel_requested = FALSE
         WHERE owner = $1 AND cancel_requested RETURNING id",
    )
    .bind(owner)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| Ok(TaskId(r.try_get("id").map_err(db)?)))
        .collect()
}

const ENDED: &str = "status IN ('completed', 'failed', 'cancelled')";

pub(crate) async fn untold(pool: &PgPool, chat: ChatId) -> StoreResult<Vec<Task>> {
    let rows = sqlx::query(&format!(
        "SELECT * FROM tasks WHERE chat_id = $1 AND notified_at IS NULL AND {ENDED}
         ORDER BY finished_at, id"
    ))
    .bind(chat.0)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(task_from).collect()
}

pub(crate) async fn chats_with_untold(pool: &PgPool, limit: u32) -> StoreResult<Vec<ChatId>> {
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT chat_id FROM tasks
         WHERE chat_id IS NOT NULL AND notified_at IS NULL AND {ENDED} LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| Ok(ChatId(r.try_get("chat_id").map_err(db)?)))
        .collect()
}

pub(crate) async fn get(pool: &PgPool, id: TaskId) -> StoreResult<Option<Task>> {
    sqlx::query("SELECT * FROM tasks WHERE id = $1")
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(task_from)
        .transpose()
}

pub(crate) async fn list(
    pool: &PgPool,
    status: Option<TaskStatus>,
    limit: u32,
    before: Option<TaskId>,
) -> StoreResult<Vec<Task>> {
    let rows = sqlx::query(
        "SELECT * FROM tasks WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(status.map(|s| s.as_str()))
    .bind(before.map(|b| b.0))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(task_from).collect()
}

pub(crate) async fn of_session(pool: &PgPool, parent: SessionId) -> StoreResult<Vec<Task>> {
    let rows = sqlx::query("SELECT * FROM tasks WHERE parent_session_id = $1 ORDER BY id")
        .bind(parent.0)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(task_from).collect()
}
