//! The workflow sandbox: each run gets its own QuickJS runtime with a memory limit, a
//! stack limit and an interrupt handler bound to the run's deadline and cancellation.
//! The script sees the workflow API and nothing else — no module loader, no
//! filesystem, network, process or timers — and every API call is a host call into
//! Rust, where the limits are enforced.
#![forbid(unsafe_code)]

mod error;
mod sandbox;
mod source;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

pub use error::ScriptError;
pub use sandbox::{parse, run};
pub use source::{Meta, PhaseMeta, Script};

/// One `agent()` call as the script made it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentCall {
    pub prompt: String,
    /// The options object as given (label, phase, schema, model, tools, max_tool_calls,
    /// timeout_ms), as JSON.
    pub opts: Value,
    /// `opts.phase`, or the title of the latest `phase()` call.
    pub phase: Option<String>,
}

/// What the host makes of an `agent()` call.
pub enum Admission {
    /// The call's result at once (a cached agent, a refusal).
    Answered(Result<Value, String>),
    /// Started: the rest of its work, whose result the call gets.
    Running(Pin<Box<dyn Future<Output = Result<Value, String>> + Send + 'static>>),
}

/// What the script's API calls reach. An `Err` becomes an exception in the script
/// with that message.
#[async_trait]
pub trait Host: Send + Sync + 'static {
    /// The agent's result (`null` when it was stopped or failed after retries).
    /// Admits the call. Admissions run one after another in the script's call order (a
    /// run's agents start, and are numbered, in the order the script asked for them);
    /// what an admitted agent does then runs as its own task.
    async fn agent(&self, call: AgentCall) -> Admission;
    /// `parallel`/`pipeline` with `n` items: refuse when over the limit.
    fn items(&self, n: usize) -> Result<(), String>;
    fn phase(&self, title: &str) -> Result<(), String>;
    fn log(&self, message: &str) -> Result<(), String>;
    /// Tokens spent so far.
    fn spent(&self) -> u64;
    /// Runs another workflow inline.
    async fn workflow(&self, name: String, args: Value) -> Result<Value, String>;
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub stack_bytes: usize,
    pub wall_clock: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            stack_bytes: 1 << 20,
            wall_clock: Duration::from_secs(7200),
        }
    }
}
