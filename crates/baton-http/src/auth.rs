//! Bearer-token auth for `/api` and `/ws`. Browsers cannot set headers on a WebSocket,
//! so `/ws` also accepts `?token=`.
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.config.auth_token.as_deref() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if !(path.starts_with("/api/") || path == "/api" || path == "/ws") {
        return next.run(req).await;
    }
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| std::borrow::Cow::Borrowed(token.trim()));
    let from_query = (path == "/ws")
        .then(|| req.uri().query())
        .flatten()
        .and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "token")
                // The web app sends it through encodeURIComponent; a raw `+` stays `+`.
                .map(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
        });
    match from_header.or(from_query) {
        Some(given) if same(&given, expected) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// Compares digests so the time taken does not depend on how much of the token matched.
fn same(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
