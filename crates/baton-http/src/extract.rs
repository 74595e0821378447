//! Extractors whose rejections use the API's error shape and say exactly what is wrong.
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use baton_core::IdError;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body. An empty body without a content type reads as `{}` so that
/// `POST /api/chats` with nothing works as a user would expect.
pub struct Json<T>(pub T);

/// Bytes read (and discarded) past the limit before answering 413. Answering before the
/// client has finished sending makes the connection close with unread data, which the
/// client sees as a reset instead of the 413.
const DRAIN_BEYOND_LIMIT: usize = 16 * 1024 * 1024;

fn too_large(limit: usize) -> ApiError {
    ApiError::TooLarge(format!(
        "request body is larger than the {limit} bytes the server accepts"
    ))
}

/// The body, at most `limit` bytes.
async fn read_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(DRAIN_BEYOND_LIMIT)) {
        return Err(too_large(limit));
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad("bad_body", format!("could not read the request body: {e}"))
        })?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            buf.extend_from_slice(&chunk);
        } else if total > limit.saturating_add(DRAIN_BEYOND_LIMIT) {
            break;
        }
    }
    if total > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(buf))
}

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
        let bytes = read_limited(req, state.config.max_body_bytes).await?;
        let body: &[u8] = match &content_type {
            None if bytes.is_empty() => b"{}",
            None => {
                return Err(ApiError::bad(
                    "bad_content_type",
                    "expected Content-Type: application/json",
                ))
            }
            Some(ct) => {
                let essence = ct.split(';').next().unwrap_or("").trim();
                if essence != "application/json" && !essence.ends_with("+json") {
                    return Err(ApiError::bad(
                        "bad_content_type",
                        format!("expected Content-Type: application/json, got '{essence}'"),
                    ));
                }
                &bytes
            }
        };
        let de = &mut serde_json::Deserializer::from_slice(body);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(Json(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let code = if inner.is_syntax() || inner.is_eof() {
                    "invalid_json"
                } else {
                    "invalid_body"
                };
                let message = if path == "." {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                };
                Err(ApiError::bad(code, message))
            }
        }
    }
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rej| ApiError::bad("invalid_query", rej.body_text()))
    }
}

/// One typed id from the path.
pub struct Id<T>(pub T);

impl<S: Send + Sync, T> FromRequestParts<S> for Id<T>
where
    T: FromStr<Err = IdError> + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|rej| ApiError::bad("invalid_path", rej.body_text()))?;
        raw.parse()
            .map(Id)
            .map_err(|e: IdError| ApiError::bad("invalid_id", e.to_string()))
    }
}
