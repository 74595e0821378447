use axum::extract::State;
use axum::http::StatusCode;
use baton_agent::{AgentError, PostedMessage, SessionView};
use baton_core::{AttachmentId, ChatId, Page, SessionId, TurnSummary};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Json, Query};
use crate::routes::{page_of, PageQuery};
use crate::state::AppState;

const MAX_CONTENT_CHARS: usize = 200_000;

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::NotFound(what) => ApiError::NotFound(what),
            AgentError::Conflict(m) => ApiError::Conflict(m),
            AgentError::BadInput(m) => ApiError::bad("invalid_request", m),
            AgentError::Workspace(e @ baton_agent::WorkspaceError::OutsideRoots { .. }) => {
                ApiError::Forbidden {
                    code: "capability_not_allowed",
                    message: e.to_string(),
                }
            }
            AgentError::Workspace(e) => ApiError::bad("invalid_workspace", e.to_string()),
            AgentError::Store(e) => e.into(),
            AgentError::TooLarge(m) => ApiError::TooLarge(m),
            AgentError::Attachment(m) => ApiError::bad("invalid_attachment", m),
            AgentError::TextOnlyModel(m) => ApiError::bad("text_only_model", m),
            AgentError::Media(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// The user's message, 1 to 200,000 characters, not only spaces, no NUL.
    #[schemars(
        length(min = 1, max = 200_000),
        regex(pattern = r"^[^\u0000]*\S[^\u0000]*$")
    )]
    pub content: String,
    /// Ids from `POST /api/attachments`, shown to the model in this order before the
    /// text (at most 20); the model must accept images, or `[agents] vision_model` be set.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub attachments: Vec<AttachmentId>,
    /// A configured model; the session's (or the default) model when absent.
    pub model: Option<String>,
}

pub async fn post_message(
    State(state): State<AppState>,
    Id(chat): Id<ChatId>,
    Json(req): Json<PostMessage>,
) -> ApiResult<(StatusCode, axum::Json<PostedMessage>)> {
    let content = req.content.trim();
    if content.is_empty() {
        return Err(ApiError::bad(
            "invalid_content",
            "content must not be empty",
        ));
    }
    if content.chars().count() > MAX_CONTENT_CHARS {
        return Err(ApiError::bad(
            "invalid_content",
            format!("content is longer than {MAX_CONTENT_CHARS} characters"),
        ));
    }
    if content.contains('\0') {
        return Err(ApiError::bad(
            "invalid_content",
            "content contains a NUL character",
        ));
    }
    let posted = state
        .agents
        .post_message(chat, content.to_string(), req.attachments, req.model)
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(posted)))
}

pub async fn chat_sessions(
    State(state): State<AppState>,
    Id(chat): Id<ChatId>,
) -> ApiResult<axum::Json<Page<SessionView>>> {
    let items = state.agents.chat_sessions(chat).await?;
    Ok(axum::Json(Page {
        items,
        next_cursor: None,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    Id(id): Id<SessionId>,
) -> ApiResult<axum::Json<SessionView>> {
    Ok(axum::Json(state.agents.view(id).await?))
}

pub async fn turns(
    State(state): State<AppState>,
    Id(id): Id<SessionId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<TurnSummary>>> {
    let limit = q.limit()?;
    let after: Option<u32> = q.after()?;
    let after = after.map(i64::from);
    let (last, items) = state.agents.turns(id, after, limit + 1).await?;
    if after.is_some_and(|a| a > last) {
        return Err(ApiError::bad(
            "invalid_cursor",
            "invalid cursor: past the session's last turn",
        ));
    }
    Ok(axum::Json(page_of(items, limit, |t| {
        t.turn_number.to_string()
    })))
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Cancelling {
    pub session_id: SessionId,
    /// Always `cancelling`; a `session_state` frame reports `cancelled` when it stopped.
    pub status: &'static str,
}

pub async fn cancel(
    State(state): State<AppState>,
    Id(id): Id<SessionId>,
) -> ApiResult<(StatusCode, axum::Json<Cancelling>)> {
    state.agents.cancel(id).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Cancelling {
            session_id: id,
            status: "cancelling",
        }),
    ))
}
