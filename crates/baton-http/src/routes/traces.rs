use axum::extract::State;
use baton_core::{ChatId, Page, Trace, TraceCursor};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Query};
use crate::routes::PageQuery;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    Id(chat): Id<ChatId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Trace>>> {
    let limit = q.limit()?;
    let after = q
        .cursor
        .as_deref()
        .map(TraceCursor::decode)
        .transpose()
        .map_err(|e| ApiError::bad("invalid_cursor", e.to_string()))?;
    if state.store.get_chat(chat).await?.is_none() {
        return Err(ApiError::NotFound("chat"));
    }
    // One extra row tells whether another page exists, so the last page says so.
    let mut items = state.store.list_traces(chat, limit + 1, after).await?;
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
