use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{AttachmentId, ChatId, MessageId, TaskId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// Told to the chat by Baton, not typed by a person: a background task finished.
    Notice,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Notice => "notice",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "notice" => Some(Role::Notice),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    pub id: MessageId,
    pub chat_id: ChatId,
    pub role: Role,
    pub content: String,
    pub attachments: Vec<AttachmentId>,
    pub turn_number: i64,
    pub created_at: Timestamp,
    /// The background task a notice tells of; storing the notice marks the task told.
    pub task_id: Option<TaskId>,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub chat_id: ChatId,
    pub role: Role,
    pub content: String,
    pub attachments: Vec<AttachmentId>,
    pub turn_number: i64,
}
