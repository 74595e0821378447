//! Background tasks: rows, claims under a lease, fenced updates, cancel requests.
use std::time::Duration;

use baton_core::{ChatId, SessionId, Task, TaskId, TaskStatus, Timestamp};
use baton_store::{StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use crate::db;
use crate::leases::{claim_unheld, lease_from};
use crate::plan::{Plan, Stmt};
use crate::rows::{id_text, ts, Cols};

pub(crate) fn task_from(row: &SqliteRow) -> StoreResult<Task> {
    let c = Cols::new(row, "tasks");
    let corrupt = |col| StoreError::corrupt("tasks", col);
    Ok(Task {
        id: TaskId(c.uuid("id")?),
        status: c.parsed("status", TaskStatus::parse)?,
        label: c.opt_text("label")?,
        prompt: c.text("prompt")?,
        model: c.opt_text("model")?,
        workspace: c.opt_text("workspace")?,
        capabilities: serde_json::from_value(c.json("capabilities")?)
            .map_err(|_| corrupt("capabilities"))?,
        tools: c
            .opt_json("tools")?
            .map(serde_json::from_value)
            .transpose()
            .map_err(|_| corrupt("tools"))?,
        parent_session_id: c.opt_uuid("parent_session_id")?.map(SessionId),
        chat_id: c.opt_uuid("chat_id")?.map(ChatId),
        depth: u32::try_from(c.int("depth")?).map_err(|_| corrupt("depth"))?,
        session_id: c.opt_uuid("session_id")?.map(SessionId),
        progress: serde_json::from_value(c.json("progress")?).map_err(|_| corrupt("progress"))?,
        result: c.opt_text("result")?,
        error: c.opt_text("error")?,
        created_at: c.time("created_at")?,
        started_at: c.opt_time("started_at")?,
        finished_at: c.opt_time("finished_at")?,
        notified_at: c.opt_time("notified_at")?,
        lease: lease_from(&c)?,
    })
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("task fields serialize")
}

pub(crate) fn create(t: &Task) -> Plan<()> {
    Plan::exec(vec![Stmt::new(
        "INSERT INTO tasks (id, kind, status, label, prompt, model, workspace, capabilities, tools,
            parent_session_id, chat_id, depth, session_id, progress, result, error,
            created_at, started_at, finished_at, notified_at)
         VALUES (?1, 'subagent', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        vec![
            id_text(t.id.0).into(),
            t.status.as_str().into(),
            t.label.clone().into(),
            (&t.prompt).into(),
            t.model.clone().into(),
            t.workspace.clone().into(),
            json(&t.capabilities).into(),
            t.tools.as_ref().map(json).into(),
            t.parent_session_id.map(|s| id_text(s.0)).into(),
            t.chat_id.map(|c| id_text(c.0)).into(),
            i64::from(t.depth).into(),
            t.session_id.map(|s| id_text(s.0)).into(),
            json(&t.progress).into(),
            t.result.clone().into(),
            t.error.clone().into(),
            ts(&t.created_at).into(),
            t.started_at.as_ref().map(ts).into(),
            t.finished_at.as_ref().map(ts).into(),
            t.notified_at.as_ref().map(ts).into(),
        ],
    )])
}

pub(crate) fn update(t: &Task) -> Plan<()> {
    let stmt = Stmt::new(
        "UPDATE tasks SET status = ?2, session_id = ?3, progress = ?4, result = ?5, error = ?6,
            started_at = ?7, finished_at = ?8,
            owner = CASE WHEN ?2 IN ('completed', 'failed', 'cancelled') THEN NULL ELSE owner END,
            lease_expires_at = CASE WHEN ?2 IN ('completed', 'failed', 'cancelled')
                THEN NULL ELSE lease_expires_at END
         WHERE id = ?1 AND epoch = ?9 AND status NOT IN ('completed', 'failed', 'cancelled')",
        vec![
            id_text(t.id.0).into(),
            t.status.as_str().into(),
            t.session_id.map(|s| id_text(s.0)).into(),
            json(&t.progress).into(),
            t.result.clone().into(),
            t.error.clone().into(),
            t.started_at.as_ref().map(ts).into(),
            t.finished_at.as_ref().map(ts).into(),
            t.lease.epoch.into(),
        ],
    );
    let now = Stmt::new(
        "SELECT status FROM tasks WHERE id = ?1",
        vec![id_text(t.id.0).into()],
    );
    Plan::new(vec![stmt, now], |out| {
        if out[0].changes > 0 {
            return Ok(());
        }
        match out[1].rows.first() {
            None => Err(StoreError::NotFound("task")),
            Some(r) => {
                let status = Cols::new(r, "tasks").parsed("status", TaskStatus::parse)?;
                Err(refused(status))
            }
        }
    })
}

/// Why a task's fenced write changed nothing, given its status now.
fn refused(status: TaskStatus) -> StoreError {
    if status.is_finished() {
        StoreError::Conflict(format!("the task already ended ({})", status.as_str()))
    } else {
        StoreError::Fenced("task")
    }
}

pub(crate) fn cancel_queued(id: TaskId, at: &Timestamp, reason: &str) -> Plan<Option<Task>> {
    Plan::new(
        vec![Stmt::new(
            "UPDATE tasks SET status = 'cancelled', error = ?3, finished_at = ?2
             WHERE id = ?1 AND status = 'queued' AND owner IS NULL RETURNING *",
            vec![id_text(id.0).into(), ts(at).into(), reason.into()],
        )],
        |out| out[0].rows.first().map(task_from).transpose(),
    )
}

pub(crate) fn claim(owner: &str, ttl: Duration, limit: u32) -> Plan<Vec<Task>> {
    Plan::new(
        vec![claim_unheld(
            "tasks",
            "status IN ('queued', 'running')",
            owner,
            ttl,
            limit,
        )],
        |out| {
            let mut tasks: Vec<Task> = out[0]
                .rows
                .iter()
                .map(task_from)
                .collect::<StoreResult<_>>()?;
            tasks.sort_by_key(|t| (t.created_at, t.id.0));
            Ok(tasks)
        },
    )
}

pub(crate) fn request_cancel(id: TaskId) -> Plan<()> {
    Plan::new(
        vec![Stmt::new(
            "UPDATE tasks SET cancel_requested = 1 WHERE id = ?1",
            vec![id_text(id.0).into()],
        )],
        |out| crate::plan::changed(&out, 0, "task"),
    )
}

pub(crate) fn take_cancels(owner: &str) -> Plan<Vec<TaskId>> {
    Plan::new(
        vec![Stmt::new(
            "UPDATE tasks SET cancel_requested = 0
             WHERE owner = ?1 AND cancel_requested = 1 RETURNING id",
            vec![owner.into()],
        )],
        |out| {
            out[0]
                .rows
                .iter()
                .map(|r| Ok(TaskId(Cols::new(r, "tasks").uuid("id")?)))
                .collect()
        },
    )
}

/// Marks task `id` told, with the notice message that tells it (`sessions::save`).
pub(crate) fn mark_told(id: TaskId, at: &Timestamp) -> Stmt {
    Stmt::new(
        "UPDATE tasks SET notified_at = ?2 WHERE id = ?1 AND notified_at IS NULL",
        vec![id_text(id.0).into(), ts(at).into()],
    )
}

const ENDED: &str = "status IN ('completed', 'failed', 'cancelled')";

pub(crate) async fn untold(pool: &SqlitePool, chat: ChatId) -> StoreResult<Vec<Task>> {
    let rows = sqlx::query(&format!(
        "SELECT * FROM tasks WHERE chat_id = ?1 AND notified_at IS NULL AND {ENDED}
         ORDER BY finished_at, id"
    ))
    .bind(id_text(chat.0))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(task_from).collect()
}

pub(crate) async fn chats_with_untold(pool: &SqlitePool, limit: u32) -> StoreResult<Vec<ChatId>> {
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT chat_id FROM tasks
         WHERE chat_id IS NOT NULL AND notified_at IS NULL AND {ENDED} LIMIT ?1"
    ))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| Ok(ChatId(Cols::new(r, "tasks").uuid("chat_id")?)))
        .collect()
}

pub(crate) async fn get(pool: &SqlitePool, id: TaskId) -> StoreResult<Option<Task>> {
    sqlx::query("SELECT * FROM tasks WHERE id = ?1")
        .bind(id_text(id.0))
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(task_from)
        .transpose()
}

pub(crate) async fn list(
    pool: &SqlitePool,
    status: Option<TaskStatus>,
    limit: u32,
    before: Option<TaskId>,
) -> StoreResult<Vec<Task>> {
    let rows = sqlx::query(
        "SELECT * FROM tasks WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR id < ?2)
         ORDER BY id DESC LIMIT ?3",
    )
    .bind(status.map(|s| s.as_str()))
    .bind(before.map(|b| id_text(b.0)))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(task_from).collect()
}

pub(crate) async fn of_session(pool: &SqlitePool, parent: SessionId) -> StoreResult<Vec<Task>> {
    let rows = sqlx::query("SELECT * FROM tasks WHERE parent_session_id = ?1 ORDER BY id")
        .bind(id_text(parent.0))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(task_from).collect()
}
