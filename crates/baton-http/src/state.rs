use std::sync::Arc;
use std::time::Duration;

use baton_agent::AgentRuntime;
use baton_events::{EventHub, Snapshots};
use baton_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::guard::Access;

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub auth_token: Option<String>,
    /// Who may address and drive this server from a browser.
    pub access: Access,
    pub max_body_bytes: usize,
    /// Longest a request body may take to arrive; a slower one gets 408.
    pub body_timeout: Duration,
    /// How often a quiet WebSocket is pinged; one that has not answered anything for two
    /// of these intervals is closed.
    pub ws_ping: Duration,
    /// Frames a WebSocket connection may have queued before it is cut off.
    pub ws_queue_frames: usize,
    pub ws_max_message_bytes: usize,
    pub version: &'static str,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            auth_token: None,
            access: Access::default(),
            max_body_bytes: 4 * 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            ws_ping: Duration::from_secs(20),
            ws_queue_frames: 4096,
            ws_max_message_bytes: 64 * 1024,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub hub: Arc<EventHub>,
    pub agents: AgentRuntime,
    pub workflows: baton_workflow::WorkflowEngine,
    pub snapshots: Arc<dyn Snapshots>,
    pub config: Arc<HttpConfig>,
    /// Cancelled when the server is shutting down; WebSockets then send a close frame.
    pub shutdown: CancellationToken,
    /// Tracks WebSocket tasks so shutdown can wait for their close frames.
    pub tasks: TaskTracker,
}
