use std::path::Path;

use axum::extract::State;
use axum::http::StatusCode;
use baton_core::{Chat, ChatId, ChatPatch, Message, MessageId, NewChat, Page};
use baton_store::MessageAnchor;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Json, Query};
use crate::routes::{page_of, PageQuery};
use crate::state::AppState;

const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChat {
    /// Up to 200 characters, no control characters; "New chat" when absent or blank.
    #[schemars(
        length(max = 200),
        regex(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")
    )]
    pub title: Option<String>,
    /// An existing directory agents of this chat may read; the server's default when absent.
    /// Granting `write` or `exec` needs it inside `agents.workspace_roots`.
    pub workspace: Option<String>,
    /// Tools beyond reading for the chat's agents: `{"write": true}` grants
    /// `write_file`/`edit_file`, `{"exec": true}` grants `bash`. Both off when absent.
    #[serde(default)]
    pub capabilities: baton_core::Capabilities,
    /// Whether a finished background task's notice wakes the chat's agent to go on with
    /// it (on when absent).
    pub auto_continue: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChat {
    /// Up to 200 characters, not blank, no control characters.
    #[schemars(
        length(max = 200),
        regex(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")
    )]
    pub title: Option<String>,
    /// Whether a finished background task's notice wakes the chat's agent.
    pub auto_continue: Option<bool>,
}

fn valid_title(t: &str) -> ApiResult<String> {
    if t.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad(
            "invalid_title",
            format!("title is longer than {MAX_TITLE_CHARS} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "invalid_title",
            "title contains control characters",
        ));
    }
    Ok(t.trim().to_string())
}

pub async fn create(
    State(state): State<AppState>,
    Json(req): Json<CreateChat>,
) -> ApiResult<(StatusCode, axum::Json<Chat>)> {
    let title = match req.title.as_deref() {
        None => "New chat".to_string(),
        Some(t) => match valid_title(t)? {
            t if t.is_empty() => "New chat".to_string(),
            t => t,
        },
    };
    let workspace = state
        .agents
        .resolve_workspace(req.workspace.as_deref().map(Path::new), &req.capabilities)?
        .map(|p| p.display().to_string());
    let chat = state
        .store
        .create_chat(NewChat {
            title,
            workspace,
            capabilities: req.capabilities,
            auto_continue: req.auto_continue.unwrap_or(true),
        })
        .await?;
    tracing::info!(chat = %chat.id, "chat created");
    Ok((StatusCode::CREATED, axum::Json(chat)))
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Chat>>> {
    let limit = q.limit()?;
    let items = state
        .store
        .list_chats(limit + 1, q.after::<ChatId>()?)
        .await?;
    Ok(axum::Json(page_of(items, limit, |c| c.id.to_string())))
}

pub async fn get(State(state): State<AppState>, Id(id): Id<ChatId>) -> ApiResult<axum::Json<Chat>> {
    state
        .store
        .get_chat(id)
        .await?
        .map(axum::Json)
        .ok_or(ApiError::NotFound("chat"))
}

pub async fn update(
    State(state): State<AppState>,
    Id(id): Id<ChatId>,
    Json(req): Json<UpdateChat>,
) -> ApiResult<axum::Json<Chat>> {
    let title = match req.title.as_deref() {
        None => None,
        Some(t) if t.trim().is_empty() => {
            return Err(ApiError::bad("invalid_title", "title is blank"))
        }
        Some(t) => Some(valid_title(t)?),
    };
    let chat = state
        .store
        .update_chat(
            id,
            ChatPatch {
                title,
                auto_continue: req.auto_continue,
            },
        )
        .await?
        .ok_or(ApiError::NotFound("chat"))?;
    tracing::info!(chat = %chat.id, auto_continue = chat.auto_continue, "chat updated");
    Ok(axum::Json(chat))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Messages per page, 1 to 500. Without `limit`, `cursor` and `before`, every message.
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// The messages after this one (a `next_cursor` of a page read forwards).
    pub cursor: Option<String>,
    /// The messages before this one: older ones, for scrolling up.
    pub before: Option<String>,
}

/// A chat's messages, oldest first. With `limit` alone: the newest `limit`, and
/// `next_cursor` is the `before` of the page of older ones (null when there are none).
/// With `before`: the page before it, `next_cursor` likewise. With `cursor`: the page
/// after it, `next_cursor` the `cursor` of the next one.
pub async fn messages(
    State(state): State<AppState>,
    Id(id): Id<ChatId>,
    Query(q): Query<MessagesQuery>,
) -> ApiResult<axum::Json<Page<Message>>> {
    if state.store.get_chat(id).await?.is_none() {
        return Err(ApiError::NotFound("chat"));
    }
    let parse = |raw: &Option<String>, what: &str| -> ApiResult<Option<MessageId>> {
        raw.as_deref()
            .map(|r| {
                r.parse::<MessageId>().map_err(|_| {
                    ApiError::bad("invalid_cursor", format!("{what} is not a message id"))
                })
            })
            .transpose()
    };
    let after = parse(&q.cursor, "cursor")?;
    let before = parse(&q.before, "before")?;
    let anchor = match (after, before) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "invalid_cursor",
                "give cursor or before, not both",
            ))
        }
        (Some(m), None) => MessageAnchor::After(m),
        (None, Some(m)) => MessageAnchor::Before(m),
        (None, None) if q.limit.is_none() => {
            let items = state.store.list_messages(id).await?;
            return Ok(axum::Json(Page {
                items,
                next_cursor: None,
            }));
        }
        (None, None) => MessageAnchor::Newest,
    };
    let limit = PageQuery {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let mut items = match state.store.page_messages(id, anchor, limit + 1).await {
        Err(baton_store::StoreError::NotFound(_)) => {
            return Err(ApiError::bad(
                "invalid_cursor",
                "the cursor names no message of this chat",
            ))
        }
        other => other?,
    };
    let more = items.len() > limit as usize;
    let next_cursor = if let MessageAnchor::After(_) = anchor {
        items.truncate(limit as usize);
        more.then(|| items.last().map(|m| m.id.to_string()))
            .flatten()
    } else {
        if more {
            items.remove(0);
        }
        more.then(|| items.first().map(|m| m.id.to_string()))
            .flatten()
    };
    Ok(axum::Json(Page { items, next_cursor }))
}
