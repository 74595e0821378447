//! The connection loop. `axum::serve` has no timeouts and no connection cap, so a
//! client that never finishes its request head, or thousands of them, would hold the
//! server open; this loop bounds both, and answers what hyper rejects by itself (bad
//! bytes, a too-long target, too-large headers) in the API's JSON error shape.
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Longest a connection may take to send a complete request head: from accept,
    /// and again after each response (so it also ends idle keep-alive connections).
    pub header_timeout: Duration,
    /// Connections open at once (WebSockets included); more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serves `app` until `stop` is cancelled, then stops accepting, lets each connection
/// finish its request in flight and waits for them (WebSockets close on their own
/// shutdown signal).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    stop: CancellationToken,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    loop {
        let (tcp, _peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Frames and streamed answers are small writes: without TCP_NODELAY, Nagle's
        // algorithm and delayed ACKs add ~40 ms to each.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                max = config.max_connections,
                "connection refused: server.max_connections reached"
            );
            connections.spawn(refuse(tcp));
            continue;
        };
        let service = app
            .clone()
            .map_request(|req: Request<Incoming>| req.map(Body::new));
        let conn = http
            .serve_connection(
                TokioIo::new(JsonErrors::new(tcp)),
                TowerToHyperService::new(service),
            )
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Answers a connection over the cap with 503 and closes it. The request is read
/// (briefly) first: closing with unread data makes the client see a reset, not the 503.
async fn refuse(mut tcp: TcpStream) {
    let body = error_body(
        "too_many_connections",
        "the server has as many connections open as it accepts; try again shortly",
    );
    let response = response_bytes(503, "Service Unavailable", &body);
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(&response).await?;
        tcp.shutdown().await
    })
    .await;
}

fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

fn response_bytes(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The JSON answer for an empty response hyper wrote by itself for a request it could
/// not parse, if `head` is one. The application never answers an error without a body,
/// so an error status with `content-length: 0` can only come from hyper.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 "))?;
    let (reason, code, message) = match rest.get(..4)? {
        b"400 " => (
            "Bad Request",
            "bad_request",
            "the request is not valid HTTP (bad bytes in the request line or a header)",
        ),
        b"414 " => (
            "URI Too Long",
            "uri_too_long",
            "the request target is longer than the server accepts",
        ),
        b"431 " => (
            "Request Header Fields Too Large",
            "headers_too_large",
            "the request headers are larger than the server accepts",
        ),
        _ => return None,
    };
    let lower = head.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if !has(b"content-length: 0\r\n") || has(b"content-type:") || !lower.ends_with(b"\r\n\r\n") {
        return None;
    }
    let status: u16 = std::str::from_utf8(&rest[..3]).ok()?.parse().ok()?;
    Some(response_bytes(status, reason, &error_body(code, message)))
}

/// The connection's socket, with hyper's bodiless error responses replaced by JSON ones.
struct JsonErrors<T> {
    inner: T,
    /// Replacement bytes still to be written, and how many of them are.
    pending: Vec<u8>,
    written: usize,
}

impl<T> JsonErrors<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(json) = replacement(buf) {
            self.pending = json;
            self.written = 0;
            // Reported as written: hyper's bytes are replaced, and flushed by poll_flush.
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn only_bodiless_parse_errors_are_replaced() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(replacement(hyper_400).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json"));
        assert!(out.ends_with(r#"{"error":{"code":"bad_request","message":"the request is not valid HTTP (bad bytes in the request line or a header)"}}"#));
        assert!(replacement(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
        )
        .is_some());
        // The application's own errors carry a JSON body and a type.
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(&[0x81, 0x05, b'h']).is_none());
    }
}
