use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ChatId, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Chat {
    pub id: ChatId,
    pub title: String,
    /// Directory agents of this chat may read; `null` means the server's default.
    pub workspace: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewChat {
    pub title: String,
    pub workspace: Option<String>,
}
