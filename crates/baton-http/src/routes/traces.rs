use axum::extract::State;
use baton_core::{ChatId, Page, SessionId, Trace, TraceCursor};
use baton_store::TraceScope;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Query};
use crate::routes::PageQuery;
use crate::state::AppState;

/// A chat's traces.
pub async fn list(
    State(state): State<AppState>,
    Id(chat): Id<ChatId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Trace>>> {
    let after = cursor(&q)?;
    if state.store.get_chat(chat).await?.is_none() {
        return Err(ApiError::NotFound("chat"));
    }
    page(&state, TraceScope::Chat(chat), q.limit()?, after).await
}

/// One agent session's traces (an agent of a workflow run has no chat of its own).
pub async fn of_session(
    State(state): State<AppState>,
    Id(session): Id<SessionId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Trace>>> {
    let after = cursor(&q)?;
    if state.store.get_session(session).await?.is_none() {
        return Err(ApiError::NotFound("session"));
    }
    page(&state, TraceScope::Session(session), q.limit()?, after).await
}

fn cursor(q: &PageQuery) -> ApiResult<Option<TraceCursor>> {
    q.cursor
        .as_deref()
        .map(TraceCursor::decode)
        .transpose()
        .map_err(|e| ApiError::bad("invalid_cursor", e.to_string()))
}

async fn page(
    state: &AppState,
    scope: TraceScope,
    limit: u32,
    after: Option<TraceCursor>,
) -> ApiResult<axum::Json<Page<Trace>>> {
    // One extra row tells whether another page exists, so the last page says so.
    let mut items = state.store.list_traces(scope, limit + 1, after).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more.then(|| items.last()).flatten().map(|t| {
        TraceCursor {
            turn_number: t.turn_number,
            started_at: t.started_at,
            id: t.id,
        }
        .encode()
    });
    Ok(axum::Json(Page { items, next_cursor }))
}
