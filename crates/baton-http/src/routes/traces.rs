use axum::extract::State;
use baton_core::{ChatId, Page, SessionId, Trace, TraceCursor, TraceKind};
use baton_store::{search_words, StatusFilter, TraceFilter, TraceScope};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Query};
use crate::routes::PageQuery;
use crate::state::AppState;

/// `?limit=&cursor=` and what to find; every filter given narrows the list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceQuery {
    /// Items per page, 1 to 500; 100 when absent.
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (of the same search); absent for the first page.
    pub cursor: Option<String>,
    /// Only model calls (`llm`) or only tool calls (`tool`).
    pub kind: Option<TraceKind>,
    /// Only calls of this tool (or model), by its exact name.
    #[schemars(length(min = 1, max = 200))]
    pub tool: Option<String>,
    /// Only failed calls (an error or a timeout) or only those still running.
    pub status: Option<StatusQuery>,
    /// Only calls that took at least this many milliseconds.
    #[schemars(range(max = 86_400_000))]
    pub min_ms: Option<u32>,
    /// Words (whole, or the start of one) every call kept has in its tool name, input,
    /// output or error; at most 8.
    #[schemars(length(min = 1, max = 500))]
    pub q: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusQuery {
    Failed,
    Running,
}

impl TraceQuery {
    fn page(&self) -> PageQuery {
        PageQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }

    fn filter(&self) -> ApiResult<TraceFilter> {
        if let Some(t) = &self.tool {
            if t.is_empty() || t.chars().count() > 200 {
                return Err(ApiError::bad(
                    "invalid_query",
                    "tool must be 1 to 200 characters",
                ));
            }
            // No tool or model name has one; Postgres cannot even compare text with NUL.
            if t.chars().any(char::is_control) {
                return Err(ApiError::bad(
                    "invalid_query",
                    "tool must not contain control characters",
                ));
            }
        }
        if self.min_ms.is_some_and(|ms| ms > 86_400_000) {
            return Err(ApiError::bad(
                "invalid_query",
                "min_ms must be at most 86400000",
            ));
        }
        let words = match &self.q {
            None => vec![],
            Some(q) if q.chars().count() > 500 => {
                return Err(ApiError::bad(
                    "invalid_query",
                    "q must be at most 500 characters",
                ))
            }
            Some(q) => {
                let words = search_words(q);
                if words.is_empty() {
                    return Err(ApiError::bad(
                        "invalid_query",
                        "q has no words to search for (letters or digits)",
                    ));
                }
                words
            }
        };
        Ok(TraceFilter {
            kind: self.kind,
            tool: self.tool.clone(),
            status: self.status.map(|s| match s {
                StatusQuery::Failed => StatusFilter::Failed,
                StatusQuery::Running => StatusFilter::Running,
            }),
            min_latency_ms: self.min_ms.map(i64::from),
            words,
        })
    }
}

/// A chat's traces.
pub async fn list(
    State(state): State<AppState>,
    Id(chat): Id<ChatId>,
    Query(q): Query<TraceQuery>,
) -> ApiResult<axum::Json<Page<Trace>>> {
    let (filter, p) = (q.filter()?, q.page());
    let after = cursor(&p)?;
    if state.store.get_chat(chat).await?.is_none() {
        return Err(ApiError::NotFound("chat"));
    }
    page(&state, TraceScope::Chat(chat), &filter, p.limit()?, after).await
}

/// One agent session's traces (an agent of a workflow run has no chat of its own).
pub async fn of_session(
    State(state): State<AppState>,
    Id(session): Id<SessionId>,
    Query(q): Query<TraceQuery>,
) -> ApiResult<axum::Json<Page<Trace>>> {
    let (filter, p) = (q.filter()?, q.page());
    let after = cursor(&p)?;
    if state.store.get_session(session).await?.is_none() {
        return Err(ApiError::NotFound("session"));
    }
    page(
        &state,
        TraceScope::Session(session),
        &filter,
        p.limit()?,
        after,
    )
    .await
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
    filter: &TraceFilter,
    limit: u32,
    after: Option<TraceCursor>,
) -> ApiResult<axum::Json<Page<Trace>>> {
    // One extra row tells whether another page exists, so the last page says so.
    let mut items = if filter.is_empty() {
        state.store.list_traces(scope, limit + 1, after).await?
    } else {
        state
            .store
            .search_traces(scope, filter, limit + 1, after)
            .await?
    };
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
