use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{AttachmentId, ChatId, MessageId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
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
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub chat_id: ChatId,
    pub role: Role,
    pub content: String,
    pub attachments: Vec<AttachmentId>,
    pub turn_number: i64,
}
