use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("HTTP {status} from the provider: {message}")]
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("could not reach the provider: {0}")]
    Connect(String),
    #[error("no data from the provider for {0:?}; the stream stalled")]
    Stalled(Duration),
    #[error("the stream ended before the response was complete")]
    Truncated,
    #[error("the call took longer than its {0:?} limit")]
    Timeout(Duration),
    #[error("cancelled")]
    Cancelled,
    #[error("provider error: {0}")]
    Provider(String),
    #[error("unreadable response from the provider: {0}")]
    Protocol(String),
    #[error("{0}")]
    Config(String),
}

impl LlmError {
    /// Transient failures worth another attempt.
    pub fn retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            LlmError::Connect(_) | LlmError::Stalled(_) | LlmError::Truncated => true,
            LlmError::Provider(m) => m.contains("overloaded"),
            _ => false,
        }
    }
}
