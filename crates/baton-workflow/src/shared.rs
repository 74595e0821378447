//! What the run manager's parts share: the store, the hub, the agents, the settings, the
//! runs executing here and this instance's run slots.
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_agent::AgentRuntime;
use baton_core::{FrameBody, RunEvent, RunId, Topic};
use baton_events::EventHub;
use baton_script::Limits;
use baton_store::Store;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EngineConfig;
use crate::discovery::{self, canonical_name, Definition};
use crate::live::Live;
use crate::WorkflowError;

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub hub: Arc<EventHub>,
    pub agents: AgentRuntime,
    pub config: EngineConfig,
    /// The runs executing here.
    pub active: Mutex<HashMap<RunId, Arc<Live>>>,
    /// This instance's run capacity (`concurrent_runs`): a running run holds one slot, a
    /// paused one none.
    pub run_slots: Arc<Semaphore>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
    /// Wakes the cluster loop: work may be claimable, or a slot came free.
    pub wake: Arc<Notify>,
    /// Set when the cluster loop started (`WorkflowEngine::start`).
    pub started: std::sync::atomic::AtomicBool,
    /// A test's stand-in for a stalled process: renewals stop while set.
    pub hold_renewals: std::sync::atomic::AtomicBool,
}

impl Inner {
    /// Queued in order; nothing waits for the commit.
    pub(crate) async fn publish_run(&self, run: RunId, event: RunEvent) {
        self.hub
            .enqueue(Topic::Run(run), FrameBody::RunEvent(event).into())
            .await;
    }

    pub(crate) fn live(&self, id: RunId) -> Option<Arc<Live>> {
        self.active.lock().expect("active lock").get(&id).cloned()
    }

    pub(crate) fn script_limits(&self) -> Limits {
        Limits {
            memory_bytes: self.config.script_memory_bytes,
            stack_bytes: 1 << 20,
            wall_clock: self.config.run_wall_clock,
        }
    }

    pub(crate) async fn find(
        &self,
        name: &str,
        workspace: &Path,
    ) -> Result<Definition, WorkflowError> {
        let name = canonical_name(name);
        if !discovery::valid_name(name) {
            return Err(WorkflowError::BadInput(format!(
                "'{name}' is not a valid workflow name"
            )));
        }
        discovery::discover(workspace, self.config.home.as_deref())
            .await
            .into_iter()
            .find(|d| d.name == name)
            .ok_or(WorkflowError::NotFound("workflow"))
    }
}
