use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use baton_agent::SpawnRequest;
use baton_core::{Capabilities, Page, Task, TaskId, TaskStatus};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ApiResult;
use crate::extract::{Id, Json, Query};
use crate::routes::{page_of, PageQuery};
use crate::state::AppState;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartTask {
    /// What the background agent is to do: 1 to 200,000 characters.
    #[schemars(length(min = 1, max = 200_000), regex(pattern = r"\S"))]
    pub prompt: String,
    /// A configured model; the server's default when absent.
    pub model: Option<String>,
    /// An existing directory; the server's default workspace when absent.
    pub workspace: Option<String>,
    /// A short name for lists; the prompt's start when absent.
    #[schemars(
        length(max = 200),
        regex(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")
    )]
    pub label: Option<String>,
    /// Tools beyond reading; `write` and `exec` only inside `agents.workspace_roots`.
    #[serde(default)]
    pub capabilities: Capabilities,
}

pub async fn start(
    State(state): State<AppState>,
    Json(req): Json<StartTask>,
) -> ApiResult<(StatusCode, axum::Json<Task>)> {
    let task = state
        .agents
        .spawn_task(SpawnRequest {
            prompt: req.prompt,
            model: req.model,
            label: req.label,
            tools: None,
            workspace: req.workspace.map(PathBuf::from),
            capabilities: req.capabilities,
            parent: None,
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(task)))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TasksQuery {
    pub status: Option<TaskStatus>,
    /// 1 to 500; 100 when absent.
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<TasksQuery>,
) -> ApiResult<axum::Json<Page<Task>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let items = state
        .store
        .list_tasks(q.status, limit + 1, page.after::<TaskId>()?)
        .await?;
    Ok(axum::Json(page_of(items, limit, |t| t.id.to_string())))
}

pub async fn get(State(state): State<AppState>, Id(id): Id<TaskId>) -> ApiResult<axum::Json<Task>> {
    Ok(axum::Json(state.agents.task(id).await?))
}

pub async fn cancel(
    State(state): State<AppState>,
    Id(id): Id<TaskId>,
) -> ApiResult<axum::Json<Task>> {
    Ok(axum::Json(state.agents.cancel_task(id).await?))
}
