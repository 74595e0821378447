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

/// A JSON object body with `Content-Type: application/json`. Nothing else is read:
/// a body a plain HTML form on another site could send (no type, a form type, text)
/// is refused before anything happens, and so are an empty body, an array and trailing
/// data after the object.
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

/// The body, at most `limit` bytes, arriving within `deadline`.
async fn read_limited(
    req: Request,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<Bytes, ApiError> {
    tokio::time::timeout(deadline, read_body(req, limit))
        .await
        .map_err(|_| {
            ApiError::Timeout(format!(
                "the request body did not arrive within {} s",
                deadline.as_secs_f64()
            ))
        })?
}

async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
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
        let essence = content_type
            .as_deref()
            .map(|ct| ct.split(';').next().unwrap_or("").trim().to_string());
        match essence.as_deref() {
            Some(e) if e == "application/json" || e.ends_with("+json") => {}
            Some(e) => {
                return Err(ApiError::bad(
                    "bad_content_type",
                    format!("expected Content-Type: application/json, got '{e}'"),
                ))
            }
            None => {
                return Err(ApiError::bad(
                    "bad_content_type",
                    "expected Content-Type: application/json",
                ))
            }
        }
        let config = &state.config;
        let body = read_limited(req, config.max_body_bytes, config.body_timeout).await?;
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None => {
                return Err(ApiError::bad(
                    "missing_body",
                    "expected a JSON object as the request body; send {} for the defaults",
                ))
            }
            Some(b'{') => {}
            Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok() => {
                return Err(ApiError::bad(
                    "invalid_body",
                    "expected a JSON object as the request body",
                ))
            }
            Some(_) => {
                return Err(ApiError::bad(
                    "invalid_json",
                    "the request body is not JSON",
                ))
            }
        }
        let mut de = serde_json::Deserializer::from_slice(&body);
        let parsed = serde_path_to_error::deserialize(&mut de);
        if parsed.is_ok() {
            de.end().map_err(|_| {
                ApiError::bad(
                    "invalid_json",
                    "unexpected data after the JSON object in the request body",
                )
            })?;
        }
        match parsed {
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
