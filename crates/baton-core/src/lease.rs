use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Who runs a piece of long-running work (a run, a chat's agent session) now. One
/// instance at a time holds it; the holder renews it before `expires_at`, and another
/// instance may claim it only after that. Every claim raises `epoch`, and a write made
/// for the work under an older epoch is refused: a holder that stalled past its lease
/// cannot overwrite its successor's work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Lease {
    /// The holding instance's id; `None` when nobody holds the work.
    pub owner: Option<String>,
    /// 0 until first claimed; grows by one at every claim.
    pub epoch: i64,
    /// When the holder's claim lapses unless renewed.
    pub expires_at: Option<Timestamp>,
}

/// A live Baton process sharing the store, as its heartbeat shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Instance {
    pub id: String,
    pub started_at: Timestamp,
    pub seen_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A control request for a run, recorded in the store for whichever instance holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunControl {
    Cancel,
    Pause,
    Resume,
}

impl RunControl {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunControl::Cancel => "cancel",
            RunControl::Pause => "pause",
            RunControl::Resume => "resume",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cancel" => RunControl::Cancel,
            "pause" => RunControl::Pause,
            "resume" => RunControl::Resume,
            _ => return None,
        })
    }
}
