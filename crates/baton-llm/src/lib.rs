//! Model provider clients behind one interface. Each client streams, assembles tool
//! calls, and reads usage exactly as its vendor reports it; [`Client`] adds retries,
//! a stall watchdog, a per-call timeout and cancellation around any provider.
#![forbid(unsafe_code)]

mod anthropic;
mod client;
mod command;
mod error;
mod http;
mod openai;
mod pricing;
mod sse;
mod types;

pub use anthropic::AnthropicProvider;
pub use client::{Client, RetryPolicy};
pub use command::CommandProvider;
pub use error::LlmError;
pub use openai::OpenAiProvider;
pub use pricing::Pricing;
pub use types::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, Delta, Effort, ImageRef, StopReason,
    ToolCall, ToolSpec, Usage,
};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

/// Receives streamed output as it arrives.
pub type DeltaSink<'a> = &'a mut (dyn FnMut(Delta) + Send);

/// One attempt at one model call. Retrying, timeouts and stall detection live in
/// [`Client`], so a provider only speaks its vendor's protocol.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// `stall` is the longest wait for the next bytes of a stream.
    async fn attempt(
        &self,
        req: &ChatRequest,
        on_delta: DeltaSink<'_>,
        stall: std::time::Duration,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, LlmError>;

    /// Whether image parts may be sent.
    fn accepts_images(&self) -> bool {
        true
    }

    /// How this provider sends `ChatRequest::effort` (`reasoning_effort`), or `None` when
    /// it does not send it.
    fn effort_control(&self) -> Option<&'static str> {
        None
    }
}
