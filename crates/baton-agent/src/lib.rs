//! The agent runtime: sessions that call models, run the tools they ask for, trace every
//! call and snapshot themselves at every turn boundary.
#![forbid(unsafe_code)]

mod attachments;
mod cache_shape;
mod error;
pub mod lifecycle;
pub mod models;
mod notices;
mod runner;
mod runtime;
mod shared;
mod snapshots;
pub mod state;
pub mod tasks;
pub mod tools;
mod tracing_calls;
pub mod workspace;

pub use attachments::AttachmentLimits;
pub use baton_core::SessionView;
pub use error::AgentError;
pub use models::{ModelEntry, ModelRegistry};
pub use runner::STRUCTURED_OUTPUT;
pub use runtime::{AgentOutcome, AgentRuntime, AgentSpec, PostedMessage};
pub use shared::AgentConfig;
pub use snapshots::AgentSnapshots;
pub use tasks::{SpawnRequest, TaskLimits};
pub use workspace::{WorkspaceError, WorkspacePolicy};
