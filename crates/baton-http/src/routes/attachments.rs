use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use baton_core::{Attachment, AttachmentId};
use baton_media::MediaError;

use crate::error::{ApiError, ApiResult};
use crate::extract::Id;
use crate::state::AppState;

/// Bytes of an over-size upload read and dropped before answering 413, so the client
/// gets the answer rather than a reset; a client sending more than this is cut off.
const DRAIN_BYTES: u64 = 64 << 20;

impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        let code = match e {
            MediaError::NotAnImage | MediaError::Unsupported(_) => "not_an_image",
            MediaError::TooManyPixels { .. } => "image_too_large",
            MediaError::Broken(_) => "broken_image",
        };
        ApiError::bad(code, e.to_string())
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::bad(
        "bad_multipart",
        format!("the upload is not well-formed multipart: {e}"),
    )
}

/// `POST /api/attachments`: one image as the multipart field `file`.
pub async fn upload(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let max = state.agents.attachment_limits().max_bytes;
    let mut multipart = Multipart::from_request(req, &state).await.map_err(|e| {
        ApiError::bad(
            "bad_content_type",
            format!("send the image as multipart/form-data with a field named 'file' ({e})"),
        )
    })?;
    let mut file: Option<Vec<u8>> = None;
    // Bytes read and dropped: of the file past the limit, and of other fields.
    let mut over = false;
    let mut dropped: u64 = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let is_file = field.name() == Some("file");
        if is_file && (file.is_some() || over) {
            return Err(ApiError::bad("bad_multipart", "send one file per upload"));
        }
        let mut buf = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if is_file && !over && (buf.len() + chunk.len()) as u64 <= max {
                buf.extend_from_slice(&chunk);
                continue;
            }
            if is_file && !over {
                over = true;
                dropped += buf.len() as u64;
                buf = Vec::new();
            }
            dropped += chunk.len() as u64;
            if dropped > max + DRAIN_BYTES {
                break;
            }
        }
        if dropped > max + DRAIN_BYTES {
            break;
        }
        if is_file && !over {
            file = Some(buf);
        }
    }
    if over {
        return Err(ApiError::TooLarge(format!(
            "the file is larger than {max} bytes, the most an attachment may be"
        )));
    }
    if dropped > max + DRAIN_BYTES {
        return Err(ApiError::TooLarge(format!(
            "the upload is larger than {max} bytes, the most an attachment may be"
        )));
    }
    let bytes = file.ok_or_else(|| {
        ApiError::bad(
            "missing_file",
            "send the image as multipart/form-data with a field named 'file'",
        )
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad("not_an_image", "the file is empty"));
    }
    let attachment = state.agents.upload_attachment(bytes).await?;
    Ok((StatusCode::CREATED, axum::Json(attachment)).into_response())
}

/// Attachments never change: an id names the same bytes for ever.
fn image(a: &Attachment, mime: &str, bytes: Vec<u8>, headers: &HeaderMap, tag: &str) -> Response {
    let etag = format!("\"{}{tag}\"", a.sha256);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut b = Response::builder().header(header::ETAG, &etag).header(
        header::CACHE_CONTROL,
        "private, max-age=31536000, immutable",
    );
    if fresh {
        return b
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("valid response");
    }
    b = b
        .header(header::CONTENT_TYPE, mime)
        .header(header::CONTENT_DISPOSITION, "inline")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        );
    b.body(Body::from(bytes)).expect("valid response")
}

pub async fn content(
    State(state): State<AppState>,
    Id(id): Id<AttachmentId>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let a = state.agents.attachment(id).await?;
    let bytes = state.agents.attachment_bytes(id, false).await?;
    Ok(image(&a, &a.mime, bytes, &headers, ""))
}

pub async fn thumbnail(
    State(state): State<AppState>,
    Id(id): Id<AttachmentId>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let a = state.agents.attachment(id).await?;
    let bytes = state.agents.attachment_bytes(id, true).await?;
    Ok(image(&a, "image/png", bytes, &headers, "-thumb"))
}
