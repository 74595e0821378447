//! Workflows: discovery, the built-in catalog, and the run manager with its journal.
#![forbid(unsafe_code)]

mod agent_opts;
pub mod agent_types;
mod catalog;
mod cluster;
mod config;
pub mod discovery;
mod engine;
mod execute;
mod host;
mod key;
pub mod lifecycle;
mod live;
mod prefix_gate;
mod shared;
mod snapshots;
mod view;
mod worktree;

pub use agent_types::AgentType;
pub use baton_core::{AgentView, PhaseView, RunView};
pub use config::{instance_id, ClusterConfig, EngineConfig};
pub use discovery::{Definition, DefinitionError, Source};
pub use engine::{StartRequest, WorkflowEngine};
pub use snapshots::WorkflowSnapshots;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Script(baton_script::ScriptError),
    /// A saved script that cannot run: what is wrong with it, and where.
    #[error("{}", .0.message)]
    Unrunnable(DefinitionError),
    #[error(transparent)]
    Store(#[from] baton_store::StoreError),
    #[error(transparent)]
    Agent(#[from] baton_agent::AgentError),
}
