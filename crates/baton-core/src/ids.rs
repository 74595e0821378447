//! Typed ids. Every id is a UUIDv7 so that ids sort by creation time, which keeps
//! keyset pagination and B-tree inserts cheap on both backends.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id '{value}': expected a UUID")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub const KIND: &'static str = $kind;

            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                // Only the hyphenated form this server writes: one id, one spelling.
                let hyphenated = s.len() == 36;
                hyphenated.then(|| Uuid::parse_str(s).ok()).flatten().map(Self).ok_or_else(|| IdError {
                    kind: $kind,
                    value: s.chars().take(64).collect(),
                })
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                "Uuid".into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "format": "uuid" })
            }
        }
    };
}

id_type!(ChatId, "chat");
id_type!(MessageId, "message");
id_type!(SessionId, "session");
id_type!(TraceId, "trace");
id_type!(RunId, "run");
id_type!(TaskId, "task");
id_type!(AttachmentId, "attachment");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let id = ChatId::new();
        assert_eq!(id.to_string().parse::<ChatId>().unwrap(), id);
        let err = "not-a-uuid".parse::<ChatId>().unwrap_err();
        assert_eq!(err.kind, "chat");
        assert!(err.to_string().contains("not-a-uuid"));
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = TraceId::new();
        let b = TraceId::new();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }
}
