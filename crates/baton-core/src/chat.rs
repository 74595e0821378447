use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ChatId, Timestamp};

/// Opt-in tool capabilities beyond reading the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// `write_file` and `edit_file`.
    #[serde(default)]
    pub write: bool,
    /// `bash`.
    #[serde(default)]
    pub exec: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Chat {
    pub id: ChatId,
    pub title: String,
    /// Directory agents of this chat may read; `null` means the server's default.
    pub workspace: Option<String>,
    /// What the chat's agents may do beyond reading.
    pub capabilities: Capabilities,
    /// Whether a finished background task's notice wakes the chat's agent to go on with
    /// it; when off the notice is only shown (and the agent reads it with the next message).
    pub auto_continue: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewChat {
    pub title: String,
    pub workspace: Option<String>,
    pub capabilities: Capabilities,
    pub auto_continue: bool,
}

/// A change to a chat's settings; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ChatPatch {
    pub title: Option<String>,
    pub auto_continue: Option<bool>,
}
