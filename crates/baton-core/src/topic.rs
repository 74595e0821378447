//! WebSocket topics: `chat:<id>`, `run:<id>`, `tasks`.
use std::fmt;
use std::str::FromStr;

use crate::{ChatId, RunId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Chat(ChatId),
    Run(RunId),
    Tasks,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown topic '{0}': expected chat:<uuid>, run:<uuid> or tasks")]
pub struct TopicError(pub String);

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Chat(id) => write!(f, "chat:{id}"),
            Topic::Run(id) => write!(f, "run:{id}"),
            Topic::Tasks => f.write_str("tasks"),
        }
    }
}

impl FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        let err = || TopicError(s.chars().take(80).collect());
        if s == "tasks" {
            return Ok(Topic::Tasks);
        }
        let (kind, id) = s.split_once(':').ok_or_else(err)?;
        match kind {
            "chat" => id.parse().map(Topic::Chat).map_err(|_| err()),
            "run" => id.parse().map(Topic::Run).map_err(|_| err()),
            _ => Err(err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let id = ChatId::new();
        let t: Topic = format!("chat:{id}").parse().unwrap();
        assert_eq!(t, Topic::Chat(id));
        assert_eq!(t.to_string(), format!("chat:{id}"));
        assert_eq!("tasks".parse::<Topic>().unwrap(), Topic::Tasks);
        for bad in ["", "chat", "chat:", "chat:xyz", "runs:1", "tasks:1", "task"] {
            assert!(bad.parse::<Topic>().is_err(), "{bad}");
        }
    }
}
