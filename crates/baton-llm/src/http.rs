//! What the HTTP providers share: sending the request, turning error statuses into
//! [`LlmError`], and reading an SSE body with the stall watchdog and cancellation.
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::sse::{Event, Parser};
use crate::LlmError;

pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    stall: Duration,
    cancel: &CancellationToken,
) -> Result<reqwest::Response, LlmError> {
    let resp = tokio::select! {
        _ = cancel.cancelled() => return Err(LlmError::Cancelled),
        r = tokio::time::timeout(stall, req.send()) => match r {
            Err(_) => return Err(LlmError::Stalled(stall)),
            Ok(Err(e)) => return Err(LlmError::Connect(e.to_string())),
            Ok(Ok(resp)) => resp,
        },
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let body = tokio::time::timeout(Duration::from_secs(5), resp.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Err(LlmError::Status {
        status,
        message: error_message(&body),
        retry_after,
    })
}

/// The vendor's error message when the body is its JSON error shape, else the body.
fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        });
    let text = from_json.unwrap_or_else(|| body.trim().to_string());
    text.chars().take(500).collect()
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = h
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 3600.0)));
    }
    h.get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)))
}

/// Calls `on_event` for each SSE event until it returns `true` (the vendor's end
/// marker). A body that ends first is `Truncated`.
pub(crate) async fn read_events(
    resp: reqwest::Response,
    stall: Duration,
    cancel: &CancellationToken,
    mut on_event: impl FnMut(Event) -> Result<bool, LlmError>,
) -> Result<(), LlmError> {
    let mut body = resp.bytes_stream();
    let mut parser = Parser::default();
    loop {
        let chunk = tokio::select! {
            _ = cancel.cancelled() => return Err(LlmError::Cancelled),
            c = tokio::time::timeout(stall, body.next()) => match c {
                Err(_) => return Err(LlmError::Stalled(stall)),
                Ok(None) => return Err(LlmError::Truncated),
                Ok(Some(Err(e))) => return Err(LlmError::Connect(e.to_string())),
                Ok(Some(Ok(bytes))) => bytes,
            },
        };
        for event in parser.push(&chunk) {
            if on_event(event)? {
                return Ok(());
            }
        }
    }
}

pub(crate) fn api_key(env: &Option<String>) -> Result<Option<String>, LlmError> {
    match env {
        None => Ok(None),
        Some(name) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(LlmError::Config(format!(
                "the API key variable {name} is not set in the server's environment"
            ))),
        },
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}
