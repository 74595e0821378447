use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use baton_core::{AgentView, Capabilities, Page, Run, RunId, RunStatus};
use baton_workflow::{Definition, RunView, StartRequest, WorkflowError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Json, Query};
use crate::routes::{page_of, PageQuery};
use crate::state::AppState;

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::NotFound(w) => ApiError::NotFound(w),
            WorkflowError::Conflict(m) => ApiError::Conflict(m),
            WorkflowError::BadInput(m) => ApiError::bad("invalid_request", m),
            WorkflowError::Script(s) => ApiError::Unprocessable {
                code: "invalid_script",
                message: s.to_string(),
            },
            WorkflowError::Unrunnable(d) => ApiError::Unprocessable {
                code: "invalid_script",
                message: match (d.line, d.column) {
                    (Some(l), Some(c)) if !d.message.contains("line") => {
                        format!("{} (line {l}, column {c})", d.message)
                    }
                    _ => d.message,
                },
            },
            WorkflowError::Store(e) => e.into(),
            WorkflowError::Agent(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceQuery {
    /// The workspace whose `.baton/workflows` and `.claude/workflows` are searched;
    /// the server's default when absent.
    pub workspace: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<WorkspaceQuery>,
) -> ApiResult<axum::Json<Page<Definition>>> {
    let ws = workspace(&state, q.workspace)?;
    let items = state.workflows.definitions(ws.as_deref()).await;
    Ok(axum::Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Agent types (`agentType`): `.baton/agents`, `.claude/agents`, `~/.claude/agents`.
pub async fn agent_types(
    State(state): State<AppState>,
    Query(q): Query<WorkspaceQuery>,
) -> ApiResult<axum::Json<Page<baton_workflow::AgentType>>> {
    let ws = workspace(&state, q.workspace)?;
    Ok(axum::Json(Page {
        items: state.workflows.agent_types(ws.as_deref()),
        next_cursor: None,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<WorkspaceQuery>,
) -> ApiResult<axum::Json<Definition>> {
    let ws = workspace(&state, q.workspace)?;
    Ok(axum::Json(
        state.workflows.definition(&name, ws.as_deref()).await?,
    ))
}

/// A workspace to read definitions from: an existing directory, as for a run.
fn workspace(state: &AppState, raw: Option<String>) -> ApiResult<Option<PathBuf>> {
    Ok(state.agents.resolve_workspace(
        raw.as_deref().map(std::path::Path::new),
        &Capabilities::default(),
    )?)
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The script's `args`.
    pub args: Option<Value>,
    /// The run's token budget; `agent()` throws once it is spent.
    pub budget_tokens: Option<u64>,
    /// Agents in flight at once (1 to 256); more than the configured default needs approval.
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: Option<usize>,
    pub workspace: Option<String>,
    /// Start at once even if the run is large.
    #[serde(default)]
    pub auto_approve: bool,
    /// Tools beyond reading for the run's agents.
    #[serde(default)]
    pub capabilities: Capabilities,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartInline {
    /// The workflow script (SPEC 4.1).
    pub script: String,
    pub args: Option<Value>,
    pub budget_tokens: Option<u64>,
    /// Agents in flight at once (1 to 256).
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: Option<usize>,
    pub workspace: Option<String>,
    #[serde(default)]
    pub auto_approve: bool,
    #[serde(default)]
    pub capabilities: Capabilities,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Started {
    pub run_id: RunId,
    /// `awaiting_approval` for a large run, else `queued`.
    pub status: RunStatus,
}

fn request(
    args: Option<Value>,
    budget: Option<u64>,
    conc: Option<usize>,
    ws: Option<String>,
    auto: bool,
    caps: Capabilities,
) -> ApiResult<StartRequest> {
    Ok(StartRequest {
        args,
        budget_tokens: budget,
        concurrency: conc,
        workspace: ws.map(PathBuf::from),
        auto_approve: auto,
        capabilities: caps,
    })
}

pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<StartRun>,
) -> ApiResult<(StatusCode, axum::Json<Started>)> {
    let r = request(
        req.args,
        req.budget_tokens,
        req.concurrency,
        req.workspace,
        req.auto_approve,
        req.capabilities,
    )?;
    let run = state.workflows.start_run(&name, r).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Started {
            run_id: run.id,
            status: run.status,
        }),
    ))
}

pub async fn start_inline(
    State(state): State<AppState>,
    Json(req): Json<StartInline>,
) -> ApiResult<(StatusCode, axum::Json<Started>)> {
    let r = request(
        req.args,
        req.budget_tokens,
        req.concurrency,
        req.workspace,
        req.auto_approve,
        req.capabilities,
    )?;
    let run = state.workflows.start_inline(&req.script, r).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Started {
            run_id: run.id,
            status: run.status,
        }),
    ))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    pub status: Option<RunStatus>,
    /// 1 to 500; 100 when absent.
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub async fn runs(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<axum::Json<Page<Run>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let items = state
        .workflows
        .list(q.status, limit + 1, page.after::<RunId>()?)
        .await?;
    Ok(axum::Json(page_of(items, limit, |r| r.id.to_string())))
}

pub async fn run(
    State(state): State<AppState>,
    Id(id): Id<RunId>,
) -> ApiResult<axum::Json<RunView>> {
    Ok(axum::Json(state.workflows.view(id).await?))
}

pub async fn agents(
    State(state): State<AppState>,
    Id(id): Id<RunId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<AgentView>>> {
    let limit = q.limit()?;
    let after: Option<u32> = q.after()?;
    let after = after.map(i64::from);
    let (last, items) = state.workflows.agents(id, after, limit + 1).await?;
    if after.is_some_and(|a| a > last) {
        return Err(ApiError::bad(
            "invalid_cursor",
            "invalid cursor: past the run's last agent",
        ));
    }
    Ok(axum::Json(page_of(items, limit, |a| a.order.to_string())))
}

/// A run's log, newest page first: a page ends before line `cursor` (the view's
/// `log_next`, then each page's `next_cursor`).
pub async fn log(
    State(state): State<AppState>,
    Id(id): Id<RunId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<String>>> {
    let limit = q.limit()?;
    let before: Option<u32> = q.after()?;
    let before = before.map(|b| b as usize);
    let (total, items) = state
        .workflows
        .log_lines(id, before, limit as usize)
        .await?;
    if before.is_some_and(|b| b > total) {
        return Err(ApiError::bad(
            "invalid_cursor",
            "invalid cursor: past the end of the run's log",
        ));
    }
    let start = before.unwrap_or(total).min(total) - items.len();
    let next_cursor = (start > 0).then(|| start.to_string());
    Ok(axum::Json(Page { items, next_cursor }))
}

pub async fn approve(
    State(state): State<AppState>,
    Id(id): Id<RunId>,
) -> ApiResult<axum::Json<Run>> {
    Ok(axum::Json(state.workflows.approve(id).await?))
}

pub async fn cancel(
    State(state): State<AppState>,
    Id(id): Id<RunId>,
) -> ApiResult<axum::Json<Run>> {
    Ok(axum::Json(state.workflows.cancel(id).await?))
}

pub async fn pause(State(state): State<AppState>, Id(id): Id<RunId>) -> ApiResult<axum::Json<Run>> {
    Ok(axum::Json(state.workflows.pause(id).await?))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRun {
    /// An edited script: the run starts again from the top and every agent whose
    /// journal entry is complete returns its stored result without a model call.
    pub script: Option<String>,
}

pub async fn resume(
    State(state): State<AppState>,
    Id(id): Id<RunId>,
    Json(req): Json<ResumeRun>,
) -> ApiResult<axum::Json<Run>> {
    Ok(axum::Json(state.workflows.resume(id, req.script).await?))
}
