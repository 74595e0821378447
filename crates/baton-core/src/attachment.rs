use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{AttachmentId, Timestamp};

/// An image a person attached (`POST /api/attachments`). Its bytes live in the store, once
/// per SHA-256: uploading the same bytes again answers the same attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Attachment {
    pub id: AttachmentId,
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`, read from the bytes.
    pub mime: String,
    /// Bytes.
    pub size: i64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    pub width: i64,
    pub height: i64,
    pub created_at: Timestamp,
}

/// An upload to store: the attachment with its bytes and its thumbnail.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub attachment: Attachment,
    pub bytes: Vec<u8>,
    /// A PNG at most 256 pixels on a side.
    pub thumbnail: Vec<u8>,
}
